"""Scenario 6: the group scales out from one worker to three and back to one during a run; nothing is lost.

The stream is live (produced at a steady rate the workers keep up with) while members join and leave gracefully
(SIGTERM), so each rebalance drains the partitions it moves before committing them: no duplicate at all.

A second test pins down a stall found while building this one: librdkafka keeps a partition's pause flag when the
partition is revoked and later assigned back. A partition revoked while the worker was paused (for backpressure,
credentials, ...) and given back after the pause ended was never fetched again, silently, until the worker learned
to re-apply its pause state on every assignment change.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from functools import partial

import pytest
from confluent_kafka import Consumer

from tests.fixtures.kafka import KafkaService
from tests.support.events import MixSpec, generate
from tests.support.ledger import Ledger
from tests.support.sandbox_process import SandboxProcess
from tests.support.scenario import OUTCOMES, PacedProducer, Scenario, paused
from tests.support.worker_process import WorkerProcess

pytestmark = [pytest.mark.integration]

PARTITIONS = 6
RATE_PER_S = 120


@pytest.fixture
def wide_scenario(kafka_broker: KafkaService, sandbox: SandboxProcess) -> Iterator[Scenario]:
    """A scenario whose topics have enough partitions for three members."""
    kafka_broker.ensure_running()
    world = Scenario(kafka_broker.bootstrap_servers, sandbox, partitions=PARTITIONS)
    try:
        yield world
    finally:
        world.close()


def _has_outcomes(worker: WorkerProcess, count: int) -> bool:
    return worker.metric_sum(OUTCOMES) >= count


class TestScaleOutAndIn:
    @pytest.mark.timeout(240)
    def test_one_to_three_to_one_workers_during_a_live_stream_loses_and_repeats_nothing(
        self, wide_scenario: Scenario
    ) -> None:
        """Two members join a running worker, take partitions, work, and leave; every id arrives exactly once."""
        scenario = wide_scenario
        messages = list(generate(int(RATE_PER_S * 30), MixSpec(invalid=0.02), seed=71))
        scenario.sandbox.set_faults(latency_ms=5)
        settings = {"MAX_CONCURRENCY": "8", "MAX_IN_FLIGHT": "500"}
        first = scenario.start_worker(**settings)
        first.wait_until(lambda: first.probe("/readyz") == 200, 60, "the first member to join")
        stream = PacedProducer(scenario.bootstrap_servers, scenario.topic_for, RATE_PER_S)
        stream.start(messages)
        first.wait_until(partial(_has_outcomes, first, 300), 60, "the first member's progress")

        joiners = [scenario.start_worker(**settings), scenario.start_worker(**settings)]
        for joiner in joiners:
            joiner.wait_until(partial(_has_outcomes, joiner, 100), 60, "a joiner's progress")
        assert first.metric_sum("mics_worker_rebalances_total", event="revoke") >= 1
        for joiner in joiners:
            assert joiner.stop() == 0
        assert first.is_running()
        stream.join(60)

        settlement = scenario.wait_settled(Ledger(messages), 120, first)
        assert first.metric_sum("mics_worker_assigned_partitions") == 2 * PARTITIONS
        assert first.stop() == 0
        ledger = Ledger(messages)
        assert settlement.missing == set()
        assert settlement.unknown == 0
        assert settlement.reason_counts() == ledger.expected_reasons()
        assert settlement.duplicates == 0


class TestRebalanceWhilePaused:
    @pytest.mark.timeout(180)
    def test_partitions_given_back_after_a_pause_ended_are_consumed_again(self, scenario: Scenario) -> None:
        """Revoked during a credentials pause and returned after it, partitions are consumed to their end."""
        ledger = scenario.produce(list(generate(600, MixSpec(invalid=0), seed=72)))
        scenario.sandbox.set_faults(latency_ms=20)
        worker = scenario.start_worker(MAX_CONCURRENCY="2", DRAIN_TIMEOUT_S="2")
        worker.wait_until(lambda: scenario.delivered_count() >= 20, 60, "the stream to flow")

        original = scenario.sandbox.token
        scenario.sandbox.set_token("revoked-" + uuid.uuid4().hex)
        worker.wait_until(lambda: paused(worker, "credentials"), 30, "the credentials pause")
        bystander = _join_group(scenario)  # takes partitions from the paused worker, processes nothing
        try:
            scenario.sandbox.set_token(original)
            worker.wait_until(lambda: not paused(worker, "credentials"), 30, "the end of the pause")
        finally:
            bystander.close()  # leaves the group: its partitions go back to the worker, no longer paused

        settlement = scenario.wait_settled(ledger, 45, worker)
        assert worker.stop() == 0
        assert settlement.missing == set()


def _join_group(scenario: Scenario) -> Consumer:
    """A member of the scenario's group that holds partitions and never reads them (nor commits anything)."""
    consumer = Consumer(
        {
            "bootstrap.servers": scenario.bootstrap_servers,
            "group.id": scenario.group,
            "partition.assignment.strategy": "cooperative-sticky",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([scenario.activities, scenario.mixed])
    for _ in range(300):
        consumer.poll(0.1)
        if consumer.assignment():
            consumer.pause(consumer.assignment())
            return consumer
    consumer.close()
    raise AssertionError("the bystander got no partition")
