"""Scenario 3: the API misbehaves (503s, 429s with Retry-After, hangs, connection resets, an outage).

Every failure here is retryable, so the rule is: keep retrying within the budget, dead-letter nothing, lose
nothing, and show the retries in `mics_worker_retries_total` under the failure's reason. Only when the budget
runs out does a message go to the DLQ, as `retries_exhausted`.

The outage lasts the issue's 60 s, met with the worker's default retry budget (20 attempts within 600 s, backoff
capped at 30 s) and its default circuit breaker (open after 10 failures in a row, one probe at a time, failed probes
not counted), so the test shows what a deployment with default settings rides out.

Every scenario runs on each HTTP backend a deployment would pick for speed (aiohttp, httptools, pyreqwest): a backend
is kept only if it maps every one of these failures onto the same outcome. httpx passes the transport contract
(tests/mics) but is an order of magnitude slower and is not run here.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import pytest

from tests.support.events import MixSpec, generate
from tests.support.ledger import Ledger, read_dead_letters
from tests.support.scenario import RETRIES, Scenario, eventually
from worker.retry import RetryPolicy

pytestmark = [pytest.mark.integration]

OUTAGE_S = 60
EVENTS = "mics_worker_route_events_total"
RETRY_AFTER_S = 1
ANSWERS_429 = 4
STORM_BACKENDS = ("aiohttp", "httptools", "pyreqwest")


@pytest.fixture(params=STORM_BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The HTTP backend the worker of this test runs on."""
    return str(request.param)


@dataclass(frozen=True)
class Storm:
    """One kind of API misbehaviour, the worker settings it needs, and the retry reason it must show."""

    faults: dict[str, float]
    retry_reason: str
    evidence: tuple[str, str]  # where the sandbox's stats count the fault: ("responses", "503"), ("dropped", "hang")
    settings: dict[str, str] = field(default_factory=dict)
    # Whether the worker's own retry loop sees every fault. A reset on a reused keep-alive connection may be re-sent
    # once by the HTTP client itself (for an idempotent PUT), so not every reset reaches the retry metric.
    every_fault_reaches_the_worker: bool = True


STORMS = {
    "30% 503s": Storm({"p503": 0.3}, "http_503", ("responses", "503")),
    # A 429 slows the whole route for its Retry-After (issue 13), so a 20% storm would take minutes: 5% keeps the
    # storm dense (about 20 of them) and the run short.
    "429s with Retry-After": Storm({"p429": 0.05, "retry_after_s": 1}, "http_429", ("responses", "429")),
    "hangs past the read timeout": Storm(
        {"p_hang": 0.05, "hang_s": 5},
        "timeout",
        ("dropped", "hang"),
        {"HTTP_READ_TIMEOUT_S": "0.5", "HTTP_TOTAL_TIMEOUT_S": "2"},
    ),
    "connection resets": Storm(
        {"p_reset": 0.2}, "connection_reset", ("dropped", "reset"), every_fault_reaches_the_worker=False
    ),
}


class TestRetryableFailures:
    @pytest.mark.timeout(150)
    @pytest.mark.parametrize("storm", STORMS.values(), ids=STORMS.keys())
    def test_a_storm_of_retryable_failures_delays_messages_but_loses_none(
        self, scenario: Scenario, backend: str, storm: Storm
    ) -> None:
        """Under the storm every message is delivered once, nothing is dead-lettered, and the retries are counted."""
        ledger = scenario.produce(list(generate(400, MixSpec(invalid=0), seed=51)))
        scenario.sandbox.set_faults(latency_ms=2, **storm.faults)
        worker = scenario.start_worker(
            HTTP_BACKEND=backend, MAX_CONCURRENCY="16", RETRY_BASE_DELAY_S="0.05", **storm.settings
        )
        settlement = scenario.wait_settled(ledger, 120, worker)
        retries = worker.metric_sum(RETRIES, reason=storm.retry_reason)
        all_retries = worker.metric_sum(RETRIES)
        assert worker.stop() == 0

        assert settlement.missing == set()
        assert settlement.dead_lettered == {}
        assert settlement.duplicates == 0
        assert sum(settlement.delivered.values()) == len(ledger.messages)
        stats = scenario.sandbox.stats()
        section, key = storm.evidence
        faults = stats[section].get(key, 0)
        assert faults > 0
        assert retries > 0
        # Nothing was dead-lettered and everything arrived once, so every faulted request was sent again: the API
        # saw at least one request per message plus one per fault, and the worker counted a retry for each fault.
        assert sum(stats["requests"].values()) >= len(ledger.messages) + faults
        if storm.every_fault_reaches_the_worker:
            assert all_retries >= faults, (all_retries, faults)

    @pytest.mark.timeout(120)
    def test_a_429_is_retried_no_sooner_than_its_retry_after(self, scenario: Scenario, backend: str) -> None:
        """Each 429 asks for RETRY_AFTER_S: the worker waits at least that long before every retry (its own backoff
        is shorter here), retries each one, and delivers the message once the API lets it."""
        worker = scenario.start_worker(HTTP_BACKEND=backend, RETRY_BASE_DELAY_S="0.05")
        worker.wait_until(lambda: worker.probe("/readyz") == 200, 60, "the worker to join its group")
        scenario.sandbox.set_faults(p429=1.0, retry_after_s=RETRY_AFTER_S)
        began = time.monotonic()  # before the message exists: before its first request
        ledger = scenario.produce(list(generate(1, MixSpec(invalid=0), seed=55)))

        def answered_429() -> int:
            return int(scenario.sandbox.stats()["responses"].get("429", 0))

        worker.wait_until(
            lambda: answered_429() >= ANSWERS_429, ANSWERS_429 * RETRY_AFTER_S + 30, f"{ANSWERS_429} answers 429"
        )
        waited = time.monotonic() - began
        scenario.sandbox.set_faults(p429=0.0)
        settlement = scenario.wait_settled(ledger, 60, worker)
        retries = worker.metric_sum(RETRIES, reason="http_429")
        answered = answered_429()
        assert worker.stop() == 0

        assert settlement.missing == set()
        assert settlement.dead_lettered == {}
        # N answers are N - 1 waits apart, each at least Retry-After long.
        assert waited >= (ANSWERS_429 - 1) * RETRY_AFTER_S, waited
        assert retries == answered >= ANSWERS_429  # one retry per 429: none skipped, none extra

    @pytest.mark.timeout(300)
    def test_an_outage_is_ridden_out_within_the_retry_budget(self, scenario: Scenario, backend: str) -> None:
        """A 60 s outage mid-stream dead-letters nothing under the default retry budget: the messages wait it out
        and arrive once it ends."""
        ledger = scenario.produce(list(generate(1500, MixSpec(invalid=0), seed=52)))
        scenario.sandbox.set_faults(latency_ms=5)
        default = RetryPolicy()
        worker = scenario.start_worker(
            HTTP_BACKEND=backend,
            MAX_CONCURRENCY="8",
            RETRY_MAX_ATTEMPTS=str(default.max_attempts),
            RETRY_MAX_ELAPSED_S=str(default.max_elapsed_s),
            RETRY_MAX_DELAY_S=str(default.max_delay_s),  # the scenario's environment shortens it; not here
        )
        worker.wait_until(lambda: scenario.delivered_count() >= 200, 60, "the stream to flow")
        scenario.sandbox.set_faults(outage_s=OUTAGE_S)
        worker.wait_until(lambda: worker.metric_sum(EVENTS, event="circuit_open") >= 1, 30, "the circuit to open")
        eventually(lambda: scenario.sandbox.faults()["outage_s"] == 0, OUTAGE_S + 30, "the end of the outage")
        assert not read_dead_letters(scenario.bootstrap_servers, scenario.dlq), "dead-lettered during the outage"
        settlement = scenario.wait_settled(ledger, 120, worker)
        closes = worker.metric_sum(EVENTS, event="circuit_close")  # read while the worker still serves metrics
        assert worker.stop() == 0

        assert settlement.missing == set()
        assert settlement.dead_lettered == {}
        assert settlement.duplicates == 0
        assert scenario.sandbox.stats()["responses"].get("503", 0) >= 10
        assert closes >= 1

    @pytest.mark.timeout(150)
    def test_messages_whose_budget_runs_out_during_an_outage_are_dead_lettered_as_retries_exhausted(
        self, scenario: Scenario, backend: str
    ) -> None:
        """With a 1 s budget and the circuit breaker off, messages caught by an outage end as retries_exhausted; a
        batch sent after it arrives. (With the circuit on, the default, the outage holds them instead.)"""
        caught = list(generate(50, MixSpec(invalid=0), seed=53))
        after = list(generate(50, MixSpec(invalid=0), seed=54))
        worker = scenario.start_worker(
            HTTP_BACKEND=backend,
            MAX_CONCURRENCY="4",
            RETRY_MAX_ELAPSED_S="1",
            RETRY_BASE_DELAY_S="0.05",
            CIRCUIT_FAILURES="0",
        )
        worker.wait_until(lambda: worker.probe("/readyz") == 200, 60, "the worker to join its group")
        scenario.sandbox.set_faults(outage_s=8)
        scenario.produce(caught)
        settlement = scenario.wait_settled(Ledger(caught), 60, worker)
        assert set(settlement.reasons.values()) == {"retries_exhausted"}
        assert len(settlement.reasons) == len(caught)
        eventually(lambda: scenario.sandbox.faults()["outage_s"] == 0, 30, "the end of the outage")
        scenario.produce(after)
        settlement = scenario.wait_settled(Ledger(caught + after), 60, worker)
        assert worker.stop() == 0

        assert settlement.missing == set()
        assert settlement.duplicates == 0
        assert set(settlement.delivered) == {message.ledger_id for message in after}
        statuses = {
            record.headers["mics.dlq.http.status"]
            for record in read_dead_letters(scenario.bootstrap_servers, scenario.dlq)
        }
        assert statuses == {b"503"}
