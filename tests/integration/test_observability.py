"""What ops dashboards read, checked on a real run: `/metrics` adds up to the ledger, `/readyz` follows credentials,
and every series a dashboard panel or alert rule names is actually exported by a running worker."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable

import pytest

from tests.integration.conftest import OUTCOMES, Stream, wait_for_outcomes
from tests.observability.test_dashboard_and_rules import (
    PROMETHEUS_OWN_SERIES,
    dashboard,
    metric_names,
    panel_exprs,
    rules,
)
from tests.support.events import MixSpec, generate
from tests.support.ledger import read_dead_letters
from tests.support.worker_process import WorkerProcess

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

_SERIES = re.compile(r"^([a-zA-Z_:][\w:]*)")


class TestMetricsLedger:
    def test_counters_add_up_to_what_the_sandbox_and_the_dlq_received(
        self, stream: Stream, running: Callable[[WorkerProcess], WorkerProcess]
    ) -> None:
        """consumed = delivered + dead-lettered, per route and reason, equal to what the sandbox and the DLQ hold."""
        messages = list(generate(800, MixSpec(invalid=0.05), seed=31))
        stream.produce(messages)
        stream.sandbox.set_faults(latency_ms=1)
        worker = running(stream.worker())
        worker.wait_until(lambda: worker.metric_sum(OUTCOMES) >= 200, 120, "a first part of the stream")
        mid = worker.metrics()
        mid_consumed = _sum(mid, "mics_worker_messages_consumed_total")
        mid_finished = _sum(mid, OUTCOMES)
        assert mid_consumed >= mid_finished
        wait_for_outcomes(worker, len(messages))
        final = worker.metrics()
        assert worker.stop() == 0

        requests = stream.sandbox.stats()["requests"]
        sandbox_by_route = {
            "activity": requests.get("POST activity", 0),
            "profile": requests.get("PUT profile", 0),
            "choice": requests.get("PUT choice_put", 0),
        }
        dlq_by_reason = Counter(r.reason for r in read_dead_letters(stream.bootstrap_servers, stream.dlq))
        assert _sum(final, "mics_worker_messages_consumed_total") == len(messages)
        assert _sum(final, "mics_worker_in_flight_messages") == 0
        for route, count in sandbox_by_route.items():
            assert _sum(final, OUTCOMES, route=route, outcome="delivered") == count, route
        for reason, count in dlq_by_reason.items():
            assert _sum(final, OUTCOMES, outcome="dead_lettered", reason=reason) == count, reason
        assert _sum(final, OUTCOMES, outcome="dead_lettered") == sum(dlq_by_reason.values())
        assert _sum(final, "mics_worker_dlq_writes_total", result="ok") == sum(dlq_by_reason.values())
        assert _sum(final, "mics_worker_http_requests_total", status_class="2xx") == sum(sandbox_by_route.values())
        assert _sum(final, "mics_worker_validation_failures_total") == dlq_by_reason["schema_invalid"]
        assert _sum(final, "mics_worker_end_to_end_latency_seconds_count") == sum(sandbox_by_route.values())


class TestReadiness:
    def test_readyz_flips_while_the_api_rejects_the_credentials_and_back_when_they_work(
        self, stream: Stream, running: Callable[[WorkerProcess], WorkerProcess]
    ) -> None:
        """Token revoked: paused and not ready, nothing dead-lettered; token back: ready again, all delivered."""
        worker = running(stream.worker())
        worker.wait_until(lambda: worker.probe("/readyz") == 200, 60, "ready")
        original = stream.sandbox.token
        stream.sandbox.set_token("a-token-the-worker-does-not-have")
        messages = list(generate(50, MixSpec(invalid=0), seed=32))
        ledger = stream.produce(messages)
        worker.wait_until(lambda: worker.probe("/readyz") == 503, 60, "not ready")
        assert worker.metric_sum("mics_worker_paused", reason="credentials") == 1
        assert worker.probe("/healthz") == 200  # alive: only waiting for credentials
        stream.sandbox.set_token(original)
        worker.wait_until(lambda: worker.probe("/readyz") == 200, 60, "ready again")
        wait_for_outcomes(worker, len(messages))
        assert worker.metric_sum(OUTCOMES, outcome="dead_lettered") == 0
        assert worker.stop() == 0
        settlement = stream.settle(ledger)
        assert (len(settlement.missing), sum(settlement.dead_lettered.values())) == (0, 0)


class TestDashboardSeries:
    def test_every_series_a_panel_or_rule_reads_is_exported_after_a_short_run(
        self, stream: Stream, running: Callable[[WorkerProcess], WorkerProcess]
    ) -> None:
        """After a short run with retries and dead letters, /metrics has every series the dashboard and rules use."""
        stream.sandbox.set_faults(p503=0.3)
        stream.produce(list(generate(200, MixSpec(invalid=0.05), seed=33)))
        worker = running(stream.worker(RETRY_BASE_DELAY_S="0.01", KAFKA_STATISTICS_INTERVAL_MS="500"))
        wait_for_outcomes(worker, 200)
        worker.wait_until(lambda: "mics_worker_consumer_lag" in _names(worker.metrics()), 30, "lag from statistics")
        exported = _names(worker.metrics())
        assert worker.stop() == 0
        wanted = set()
        for _, expr in panel_exprs(dashboard()):
            wanted |= metric_names(expr)
        for rule in rules():
            wanted |= metric_names(str(rule["expr"]))
        assert wanted - PROMETHEUS_OWN_SERIES - exported == set()


def _names(samples: dict[str, float]) -> set[str]:
    return {match.group(1) for key in samples if (match := _SERIES.match(key))}


def _sum(samples: dict[str, float], name: str, **labels: str) -> float:
    wanted = [f'{key}="{value}"' for key, value in labels.items()]
    total = 0.0
    for key, value in samples.items():
        base, _, label_text = key.partition("{")
        if base == name and all(w in label_text for w in wanted):
            total += value
    return total
