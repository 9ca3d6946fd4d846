"""Issue 13's scenario (c): a misconfigured base path, where every answer is 404, halts instead of dead-lettering.

The API base URL carries a wrong path prefix, so the sandbox answers every activity POST with 404: the collection
endpoint "does not exist", which can only mean the configuration is wrong. The worker must hold the route, say so
once with the URL template (never a message's ids), fail `/readyz`, dead-letter nothing — and a worker started with
the right URL afterwards delivers every message exactly once.
"""

from __future__ import annotations

import json

import pytest

from tests.support.events import MixSpec, generate
from tests.support.ledger import read_dead_letters
from tests.support.scenario import Scenario
from tests.support.worker_process import WorkerProcess

pytestmark = [pytest.mark.integration]

WRONG_PREFIX = "/api-v2-typo"
HALTED = "mics_worker_route_halted"


def error_lines(worker: WorkerProcess) -> list[dict[str, object]]:
    """The worker's ERROR log records (JSON lines on stderr)."""
    records = [json.loads(line) for line in worker.stderr().splitlines() if line.startswith("{")]
    return [record for record in records if record.get("level") == "ERROR"]


class TestWrongBasePath:
    @pytest.mark.timeout(240)
    def test_every_404_halts_the_route_names_the_url_and_dead_letters_nothing(self, scenario: Scenario) -> None:
        """300 activities against a wrong base path: the route halts, one ERROR names the URL, /readyz fails, the DLQ
        stays empty; a worker with the right base URL then delivers all 300 once."""
        messages = list(generate(300, MixSpec(profiles=0, choices=0, invalid=0), seed=71))
        ledger = scenario.produce(messages)
        wrong_base = scenario.sandbox.base_url + WRONG_PREFIX
        misconfigured = scenario.start_worker(API_BASE_URL=wrong_base)
        misconfigured.wait_until(
            lambda: misconfigured.probe("/healthz") == 200 and misconfigured.metric_sum(HALTED, route="activity") == 1,
            90,
            "the activity route to halt",
        )
        misconfigured.wait_until(lambda: misconfigured.probe("/readyz") == 503, 30, "/readyz to fail")
        answered_404 = scenario.sandbox.stats()["responses"].get("404", 0)
        errors = error_lines(misconfigured)
        assert misconfigured.stop() == 0

        assert read_dead_letters(scenario.bootstrap_servers, scenario.dlq) == []
        assert answered_404 >= 1
        halt_lines = [str(record["message"]) for record in errors if "base URL or path is wrong" in str(record)]
        assert len(halt_lines) == 1, errors
        assert f"{wrong_base}/v1/datamarts/{{datamart_id}}/user_activities" in halt_lines[0]
        assert "HTTP 404" in halt_lines[0]
        assert not any(message.ledger_id in halt_lines[0] for message in messages)

        fixed = scenario.start_worker()
        settlement = scenario.wait_settled(ledger, 120, fixed)
        assert fixed.stop() == 0
        assert settlement.missing == set()
        assert settlement.dead_lettered == {}
        assert settlement.duplicates == 0
        assert len(settlement.delivered) == len(messages)
