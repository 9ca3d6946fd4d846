"""Scenario 2: the Kafka broker goes away mid-stream and comes back; the worker reconnects and loses nothing.

The session broker is restarted in place (same data, same ports): cheaper than a second JVM on a 2-core machine,
and the tests after this one find it running again. When the session uses an external broker, which cannot be
restarted from here, a private broker is started for this module instead.
"""

from __future__ import annotations

import pytest

from tests.support.events import MixSpec, generate
from tests.support.kafka_broker import KafkaBroker
from tests.support.ledger import Ledger
from tests.support.sandbox_process import SandboxProcess
from tests.support.scenario import Scenario

pytestmark = [pytest.mark.integration]

BROKER_ERROR = "Kafka client error"  # how worker.kafka logs a client error (a lost broker among them)


class TestBrokerRestart:
    @pytest.mark.timeout(300)
    def test_the_worker_reconnects_after_a_broker_restart_and_loses_nothing(
        self, restartable: KafkaBroker, sandbox: SandboxProcess
    ) -> None:
        """Stopped and started mid-stream, the broker gets the worker back: the rest of the stream and a batch
        produced after the restart all arrive, nothing twice (the outage is shorter than the session timeout)."""
        scenario = Scenario(restartable.bootstrap_servers, sandbox)
        try:
            before = list(generate(2000, MixSpec(invalid=0.03), seed=41))
            scenario.produce(before)
            sandbox.set_faults(latency_ms=10)
            worker = scenario.start_worker(MAX_IN_FLIGHT="200", MAX_CONCURRENCY="8")
            worker.wait_until(lambda: scenario.delivered_count() >= 500, 120, "progress before the outage")

            reported = worker.stderr().count(BROKER_ERROR)
            restartable.stop()
            # Down until the worker has seen it (its client reports the lost broker), not for a wall-clock time.
            worker.wait_until(
                lambda: worker.stderr().count(BROKER_ERROR) > reported, 60, "the worker to report the broker gone"
            )
            assert worker.is_running(), "the worker exited while the broker was down"
            restartable.start()
            after = list(generate(500, MixSpec(invalid=0.03), seed=42))
            scenario.produce(after)

            ledger = Ledger(before + after)
            settlement = scenario.wait_settled(ledger, 180, worker)
            assert worker.stop() == 0
        finally:
            scenario.close()
        assert settlement.missing == set()
        assert settlement.unknown == 0
        assert settlement.reason_counts() == ledger.expected_reasons()
        assert settlement.duplicates == 0
