"""Scenarios 4 and 5: when the credentials are revoked or the DLQ cannot be written, the worker stops, not spills.

Stopping means: consumption paused under its reason (`mics_worker_paused{reason=...}` = 1), `/readyz` answering
503, nothing dead-lettered because of it, and no offset committed past a message that has not reached its end.
Once the cause goes away the worker finds out by itself and finishes the stream with nothing lost.
"""

from __future__ import annotations

import secrets

import pytest

from tests.support.events import MixSpec, generate
from tests.support.kafka_broker import create_topic, delete_topic
from tests.support.ledger import Ledger
from tests.support.scenario import Scenario, eventually, paused

pytestmark = [pytest.mark.integration]

# A stopped worker is watched, not for a wall-clock time, but over events that show it kept looking: its credentials
# probes (every CREDENTIALS_PROBE_INTERVAL_S, each answered 401), or a failed retry round of its dead-letter backlog.
PROBES = 4


DLQ_WRITES = "mics_worker_dlq_writes_total"


def answered(scenario: Scenario, status: str) -> int:
    """How many API answers had this status so far."""
    return int(scenario.sandbox.stats()["responses"].get(status, 0))


class TestCredentialsRevoked:
    @pytest.mark.timeout(180)
    def test_a_revoked_token_pauses_the_worker_until_the_api_accepts_it_again(self, scenario: Scenario) -> None:
        """Revoked mid-stream, the token stops all sending and makes the worker unready; restored, all arrives."""
        ledger = scenario.produce(list(generate(1500, MixSpec(invalid=0), seed=61)))
        scenario.sandbox.set_faults(latency_ms=5)
        worker = scenario.start_worker(MAX_CONCURRENCY="8")
        worker.wait_until(lambda: scenario.delivered_count() >= 200, 60, "the stream to flow")

        original = scenario.sandbox.token
        scenario.sandbox.set_token("rotated-" + secrets.token_urlsafe(16))
        worker.wait_until(lambda: paused(worker, "credentials"), 30, "the credentials pause")
        assert worker.probe("/readyz") == 503
        assert worker.probe("/healthz") == 200
        delivered = scenario.delivered_count()
        probed = answered(scenario, "401")
        worker.wait_until(lambda: answered(scenario, "401") >= probed + PROBES, 30, f"{PROBES} refused probes")
        assert paused(worker, "credentials")
        assert scenario.delivered_count() == delivered
        assert scenario.dead_letter_count() == 0
        assert delivered < len(ledger.messages)

        scenario.sandbox.set_token(original)
        worker.wait_until(lambda: not paused(worker, "credentials"), 30, "the worker to resume by itself")
        settlement = scenario.wait_settled(ledger, 120, worker)
        assert worker.probe("/readyz") == 200
        assert worker.stop() == 0

        assert settlement.missing == set()
        assert settlement.dead_lettered == {}
        assert settlement.duplicates == 0
        assert scenario.sandbox.stats()["responses"].get("401", 0) > 0


class TestDeadLetterTopicUnwritable:
    @pytest.mark.timeout(180)
    def test_a_deleted_dlq_topic_pauses_the_worker_and_holds_commits_until_it_is_back(self, scenario: Scenario) -> None:
        """With its DLQ gone, the worker pauses, turns unready and commits nothing past an invalid message; then
        the topic is re-created and every message reaches its end."""
        first = list(generate(300, MixSpec(invalid=0.05), seed=62))
        scenario.produce(first)
        settings = {"KAFKA_MESSAGE_TIMEOUT_MS": "5000", "MAX_CONCURRENCY": "8"}
        worker = scenario.start_worker(**settings)
        scenario.wait_settled(Ledger(first), 60, worker)

        delete_topic(scenario.bootstrap_servers, scenario.dlq)
        second = list(generate(300, MixSpec(invalid=0.05), seed=63))
        scenario.produce(second)
        worker.wait_until(lambda: paused(worker, "dlq_unavailable"), 60, "the dlq_unavailable pause")
        assert worker.probe("/readyz") == 503
        stuck = [m for m in second if m.expected != "delivered"]
        assert stuck
        # librdkafka's auto-commit runs every second: give it a few chances to overstep. The backlog holds at most the
        # stuck messages and each retry round re-sends all of it, so more refusals than stuck messages mean a round
        # failed after the hold: at least the first retry delay plus the 5 s message timeout.
        worker.wait_until(
            lambda: worker.metric_sum(DLQ_WRITES, result="error") > len(stuck), 90, "a failed dead-letter retry round"
        )
        assert paused(worker, "dlq_unavailable")
        committed = scenario.committed()
        for message in stuck:
            topic, partition, offset = scenario.positions[message.ledger_id]
            assert committed[(topic, partition)] <= offset, f"committed past an undelivered dead letter {message}"

        create_topic(scenario.bootstrap_servers, scenario.dlq, 1)
        # Deleting the topic took the first batch's dead letters with it: from here the ledger is the second batch.
        ledger = Ledger(second)
        settlement = scenario.wait_settled(ledger, 120, worker)
        worker.wait_until(lambda: not paused(worker, "dlq_unavailable"), 30, "the worker to resume")
        eventually(lambda: worker.probe("/readyz") == 200, 10, "readiness")
        assert worker.stop() == 0

        assert settlement.missing == set()
        assert settlement.reason_counts() == ledger.expected_reasons()
        assert scenario.settle(Ledger(first + second)).duplicates == 0
