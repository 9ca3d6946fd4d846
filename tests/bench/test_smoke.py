"""`bench/run.py --smoke` end to end against the real broker: every figure reported, every event accounted for.

Speed is not asserted anywhere here (the machine is shared); only that the harness completes, reports each figure,
and that each run's ledger balances: every produced event delivered to the API or dead-lettered as intended.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.fixtures.kafka import KafkaService
from worker.mics.transport import DEFAULT_BACKEND

REPO_ROOT = Path(__file__).resolve().parents[2]
SMOKE_EVENTS = 2000

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def smoke(kafka_broker: KafkaService, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str]:
    """One smoke run of the harness (module scope: every test reads the same run): its JSON and its Markdown."""
    kafka_broker.ensure_running()
    out = tmp_path_factory.mktemp("bench")
    command = [sys.executable, "-m", "bench.run", "--smoke"]
    command += ["--output", str(out / "RESULTS.md"), "--json", str(out / "r.json")]
    done = subprocess.run(
        command,
        cwd=REPO_ROOT,
        env={**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_broker.bootstrap_servers, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return orjson.loads((out / "r.json").read_bytes()), (out / "RESULTS.md").read_text()


@pytest.mark.timeout(700)
class TestSmokeRun:
    def test_every_worker_run_reports_every_figure(self, smoke: tuple[dict[str, Any], str]) -> None:
        """Both mixes ran once with the default backend and once with the null API, each with every figure positive."""
        results, _ = smoke
        runs = sorted((run["backend"], run["mix"]) for run in results["runs"])
        expected = [(backend, mix) for backend in (DEFAULT_BACKEND, "null") for mix in ("activity", "mixed")]
        assert runs == sorted(expected)
        for run in results["runs"]:
            assert run["events"] == SMOKE_EVENTS
            for figure in ("events_per_s", "cpu_us_per_event", "peak_rss_mib"):
                assert run[figure] > 0, figure
            if run["backend"] != "null":  # the null API sends nothing to the sandbox
                assert run["sandbox_cpu_us_per_request"] > 0

    def test_every_event_is_accounted_for(self, smoke: tuple[dict[str, Any], str]) -> None:
        """In each run the API's counts plus the dead letters make up every produced event, each as intended."""
        results, _ = smoke
        for run in results["runs"]:
            ledger = run["ledger"]
            assert run["balanced"], ledger
            assert sum(ledger["delivered_at_api"].values()) + ledger["dead_letters_found"] == SMOKE_EVENTS
            assert ledger["worker_outcomes"] == SMOKE_EVENTS
            assert ledger["dead_letters_wrong"] == 0
        mixed = next(run for run in results["runs"] if run["mix"] == "mixed")
        assert mixed["ledger"]["dead_letters_found"] > 0  # the realistic mix carries invalid messages

    def test_ceilings_and_latency_are_reported(self, smoke: tuple[dict[str, Any], str]) -> None:
        """Consume+decode, consume+plan and HTTP-only ceilings, and latency percentiles, are all measured."""
        results, _ = smoke
        assert sorted(c["kind"] for c in results["ceilings"]) == ["decode", "http", "plan"]
        for ceiling in results["ceilings"]:
            assert ceiling["per_s"] > 0
            assert ceiling["cpu_us_per_item"] > 0
        [latency] = results["latency"]
        assert 0 < latency["p50_ms"] <= latency["p99_ms"] <= latency["max_ms"]

    def test_the_markdown_carries_the_generated_section(self, smoke: tuple[dict[str, Any], str]) -> None:
        """The results file gets the generated section with the machine, the versions and the targets table."""
        _, markdown = smoke
        assert "<!-- bench:main -->" in markdown
        assert "<!-- /bench:main -->" in markdown
        for heading in ("Versions:", "### End to end", "### Latency", "### Ceilings", "### Where", "### Targets"):
            assert heading in markdown
        assert "own work ≤ half the HTTP call's cost" in markdown  # the null API run makes the split measurable
