"""The watch turns what has no event of its own into conditions: a late group join, brokers down and back."""

from __future__ import annotations

import logging

import pytest
from confluent_kafka import KafkaError
from prometheus_client import CollectorRegistry

from tests.support.clock import FakeClock
from worker.conditions import Conditions
from worker.health import Health
from worker.metrics import WorkerMetrics
from worker.watch import JOIN_GRACE_S, StateWatch

BROKERS = "kafka-0:9092,kafka-1:9092"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def metrics() -> WorkerMetrics:
    return WorkerMetrics(CollectorRegistry(), process_metrics=False)


@pytest.fixture
def health(clock: FakeClock) -> Health:
    return Health(clock=clock)


@pytest.fixture
def watch(metrics: WorkerMetrics, health: Health, clock: FakeClock) -> StateWatch:
    conditions = Conditions(metrics.conditions, health, settle_s=0.0, clock=clock)
    return StateWatch(
        conditions,
        metrics,
        {},
        bootstrap_servers=BROKERS,
        group_id="orders",
        session_timeout_ms=45_000,
        clock=clock,
    )


def messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name == "worker.conditions"]


class TestGroupJoin:
    def test_a_join_longer_than_the_grace_says_why_it_can_take_long(
        self, watch: StateWatch, clock: FakeClock, health: Health, caplog: pytest.LogCaptureFixture
    ) -> None:
        """No assignment 5 s after the start: one line names the group and the previous member's session timeout
        (the 42-45 s wait after a kill -9); the assignment ends it."""
        with caplog.at_level(logging.INFO, logger="worker.conditions"):
            clock.advance(JOIN_GRACE_S - 0.1)
            watch.tick()
            assert messages(caplog) == []
            clock.advance(0.3)  # the watch samples at most every 0.25 s
            watch.tick()
            assert health.readiness()[1]["conditions"] == {"group_join_waiting": ["orders"]}
            watch.assigned()
        assert messages(caplog)[0] == (
            "waiting to join the consumer group: orders (group orders: no partitions after 5 s; after an unclean "
            "stop (kill -9) the group waits for the previous member's session to time out (session.timeout.ms=45000) "
            "before it rebalances)"
        )
        assert messages(caplog)[1] == "ended after 0 s: waiting to join the consumer group: orders"
        assert health.readiness()[1]["conditions"] == {}

    def test_a_quick_join_writes_nothing(
        self, watch: StateWatch, clock: FakeClock, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A join within the grace is normal: no line."""
        with caplog.at_level(logging.INFO, logger="worker.conditions"):
            clock.advance(2.0)
            watch.tick()
            watch.assigned()
            clock.advance(60.0)
            watch.tick()
        assert messages(caplog) == []


class TestBrokers:
    def test_all_brokers_down_until_a_newer_report_sees_one_up(
        self,
        watch: StateWatch,
        metrics: WorkerMetrics,
        clock: FakeClock,
        health: Health,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        """librdkafka's "all brokers down" starts it (not ready); connection errors are counted; a statistics report
        from before the error does not end it, a later one with a broker up does."""
        health.set_joined(True)
        metrics.brokers_seen = (clock() - 1.0, 2)  # the last report before the outage
        with caplog.at_level(logging.INFO, logger="worker.conditions"):
            watch.client_error(KafkaError(KafkaError._ALL_BROKERS_DOWN, "2/2 brokers are down"))
            watch.client_error(KafkaError(KafkaError._TRANSPORT, "Connection refused"))
            watch.client_error(KafkaError(KafkaError._TRANSPORT, "Connection refused"))
            clock.advance(1.0)
            watch.tick()
            ready, details = health.readiness()
            assert not ready
            assert details["reasons"] == ["broker_unreachable"]
            metrics.brokers_seen = (clock(), 0)
            clock.advance(1.0)
            watch.tick()
            assert not health.readiness()[0]
            metrics.brokers_seen = (clock(), 1)
            clock.advance(1.0)
            watch.tick()
        assert health.readiness()[0]
        assert messages(caplog) == [
            f"no Kafka broker is reachable: {BROKERS} (2/2 brokers are down)",
            f"ended after 3 s: no Kafka broker is reachable: {BROKERS}; in all: connection_errors 2",
        ]

    def test_statistics_count_only_brokers_that_are_up(self, metrics: WorkerMetrics) -> None:
        """A report with one broker UP, one DOWN and the logical coordinator alias UP counts one."""
        metrics.observe_kafka_stats(
            '{"brokers": {"a:9092/1": {"state": "UP", "source": "learned"}, '
            '"b:9092/2": {"state": "DOWN", "source": "learned"}, '
            '"GroupCoordinator": {"state": "UP", "source": "logical"}}}'
        )
        assert metrics.brokers_seen[1] == 1
