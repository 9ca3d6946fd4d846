"""Abnormal states: one line at the start, one every `repeat_s` with the counts since the last, one at the end;
the gauge and the readiness details follow; a state that flaps within `settle_s` is one episode."""

from __future__ import annotations

import logging

import pytest
from prometheus_client import CollectorRegistry

from tests.support.clock import FakeClock
from worker.conditions import CONDITIONS, ConditionMetrics, Conditions
from worker.health import Health

LOGGER = "worker.conditions"


def gauge(registry: CollectorRegistry, condition: str) -> float | None:
    return registry.get_sample_value("mics_worker_condition", {"condition": condition})


def starts(registry: CollectorRegistry, condition: str) -> float | None:
    return registry.get_sample_value("mics_worker_condition_starts_total", {"condition": condition})


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def health(clock: FakeClock) -> Health:
    return Health(clock=clock)


@pytest.fixture
def conditions(registry: CollectorRegistry, health: Health, clock: FakeClock) -> Conditions:
    return Conditions(ConditionMetrics(registry), health, repeat_s=30.0, settle_s=5.0, clock=clock)


def lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name == LOGGER]


class TestLines:
    def test_start_names_the_state_the_subject_and_why(
        self, conditions: Conditions, caplog: pytest.LogCaptureFixture
    ) -> None:
        """The start line is one line: what is wrong, on what, and why as far as it is known; ERROR, since the
        operator must act (create the topic)."""
        with caplog.at_level(logging.INFO, logger=LOGGER):
            conditions.set("dlq_unwritable", "orders-dlq", True, "Unknown topic or partition")
            conditions.set("dlq_unwritable", "orders-dlq", True, "Unknown topic or partition")
        assert lines(caplog) == [
            "the dead-letter topic cannot be written: orders-dlq (Unknown topic or partition)",
        ]
        record = caplog.records[-1]
        assert record.levelno == logging.ERROR
        assert (record.__dict__["condition"], record.__dict__["subject"]) == ("dlq_unwritable", "orders-dlq")

    def test_still_lines_every_repeat_with_the_counts_since_the_last(
        self, conditions: Conditions, clock: FakeClock, caplog: pytest.LogCaptureFixture
    ) -> None:
        """While it lasts: one line per 30 s, with the events counted since the previous line, none in between."""
        with caplog.at_level(logging.INFO, logger=LOGGER):
            conditions.set("api_throttled", "activity", True, "the route's senders wait for the shared backoff")
            conditions.count("api_throttled", "activity", "answers_429", 7)
            clock.advance(29.0)
            conditions.tick()
            clock.advance(1.0)
            conditions.tick()
            conditions.tick()
            conditions.count("api_throttled", "activity", "answers_429", 2)
            clock.advance(30.0)
            conditions.tick()
        assert [record.levelno for record in caplog.records] == [logging.WARNING] * 3
        assert lines(caplog)[1:] == [
            "still, for 30 s: the API throttles (429 or Retry-After): the route backs off: activity "
            "(the route's senders wait for the shared backoff); in the last 30 s: answers_429 7",
            "still, for 60 s: the API throttles (429 or Retry-After): the route backs off: activity "
            "(the route's senders wait for the shared backoff); in the last 30 s: answers_429 2",
        ]

    def test_end_line_after_it_stayed_off_for_settle_s_with_the_totals(
        self, conditions: Conditions, clock: FakeClock, caplog: pytest.LogCaptureFixture
    ) -> None:
        """The end is written once the state stayed off for settle_s, with how long it lasted and every count."""
        with caplog.at_level(logging.INFO, logger=LOGGER):
            conditions.set("api_failing", "profile", True)
            conditions.count("api_failing", "profile", "answers_5xx", 3)
            clock.advance(12.0)
            conditions.set("api_failing", "profile", False)
            clock.advance(4.0)
            conditions.tick()
            assert len(lines(caplog)) == 1
            clock.advance(1.0)
            conditions.tick()
        assert lines(caplog)[1] == (
            "ended after 12 s: the API fails (5xx or no answer): the route's circuit is open: profile; "
            "in all: answers_5xx 3"
        )
        assert caplog.records[-1].levelno == logging.INFO

    def test_a_state_of_the_worker_itself_ends_at_once(
        self, conditions: Conditions, health: Health, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Only the API's states settle: a joined group, a readable DLQ or an accepted token end when they end."""
        with caplog.at_level(logging.INFO, logger=LOGGER):
            conditions.set("group_join_waiting", "orders", True)
            conditions.set("group_join_waiting", "orders", False)
        assert lines(caplog)[1] == "ended after 0 s: waiting to join the consumer group: orders"
        assert health.readiness()[1]["conditions"] == {}

    def test_a_state_back_within_settle_s_is_the_same_episode(
        self, conditions: Conditions, registry: CollectorRegistry, clock: FakeClock, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A route backing off once a second in a 429 storm writes one start line, not a start and end a second."""
        with caplog.at_level(logging.INFO, logger=LOGGER):
            for _ in range(10):
                conditions.set("api_throttled", "choice", True)
                clock.advance(0.5)
                conditions.set("api_throttled", "choice", False)
                clock.advance(0.5)
                conditions.tick()
        assert len(lines(caplog)) == 1
        assert starts(registry, "api_throttled") == 1.0

    def test_counts_of_an_inactive_state_are_ignored(
        self, conditions: Conditions, clock: FakeClock, caplog: pytest.LogCaptureFixture
    ) -> None:
        """An event counted while the state is off (a lone 503) belongs to no episode."""
        conditions.count("api_failing", "activity", "answers_5xx")
        with caplog.at_level(logging.INFO, logger=LOGGER):
            conditions.set("api_failing", "activity", True)
            clock.advance(30.0)
            conditions.tick()
        assert lines(caplog)[1] == (
            "still, for 30 s: the API fails (5xx or no answer): the route's circuit is open: activity"
        )

    def test_an_unknown_condition_is_a_bug(self, conditions: Conditions) -> None:
        """Names are the metric's label values: a fixed set."""
        with pytest.raises(ValueError, match="unknown condition 'bogus'"):
            conditions.set("bogus", "x", True)


class TestMetricsAndReadiness:
    def test_every_series_exists_at_zero_from_the_start(self, registry: CollectorRegistry) -> None:
        """Rules and panels see each condition before it first happens."""
        ConditionMetrics(registry)
        for name in CONDITIONS:
            assert gauge(registry, name) == 0.0
            assert starts(registry, name) == 0.0

    def test_gauge_counts_the_subjects_and_readiness_names_them(
        self, conditions: Conditions, registry: CollectorRegistry, health: Health, clock: FakeClock
    ) -> None:
        """Two held datamarts: the gauge is 2, the details list both; after both end, 0 and none."""
        conditions.set("credentials_held", "1509", True, "HTTP 401")
        conditions.set("credentials_held", "2000", True, "HTTP 403")
        assert gauge(registry, "credentials_held") == 2.0
        assert starts(registry, "credentials_held") == 2.0
        assert health.readiness()[1]["conditions"] == {"credentials_held": ["1509", "2000"]}
        conditions.set("credentials_held", "1509", False)
        conditions.set("credentials_held", "2000", False)
        clock.advance(5.0)
        conditions.tick()
        assert gauge(registry, "credentials_held") == 0.0
        assert health.readiness()[1]["conditions"] == {}

    def test_broker_unreachable_makes_the_worker_not_ready(self, conditions: Conditions, health: Health) -> None:
        """A joined, live worker that reaches no broker is not ready, with the reason broker_unreachable."""
        health.set_joined(True)
        conditions.set("broker_unreachable", "kafka:9092", True)
        ready, details = health.readiness()
        assert not ready
        assert details["reasons"] == ["broker_unreachable"]

    @pytest.mark.parametrize("name", ["api_failing", "api_throttled"])
    def test_the_apis_trouble_keeps_the_worker_ready(self, conditions: Conditions, health: Health, name: str) -> None:
        """An API outage or throttling is shown, but the worker stays ready: replacing it would not help."""
        health.set_joined(True)
        conditions.set(name, "activity", True)
        ready, details = health.readiness()
        assert ready
        assert details["conditions"] == {name: ["activity"]}
