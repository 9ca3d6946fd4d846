"""Each abnormal state, through the real pipeline: its start line, its gauge and its readiness detail (the
line's timing, counts and end rules are pinned in tests/unit/test_conditions.py)."""

from __future__ import annotations

import logging
import re

import pytest

from tests.support.core_harness import OK, TOPIC, CoreHarness, FakeApi, Request, envelope_activity
from tests.support.fake_kafka import FakeProducer
from worker.config import TrafficSettings
from worker.mics.transport import RawResponse

LOGGER = "worker.conditions"
UNAVAILABLE = RawResponse(503, {}, b'{"status":"error","error":"Service Unavailable"}')
THROTTLED = RawResponse(429, {"retry-after": "1"}, b'{"status":"error","error":"Too Many Requests"}')
UNAUTHORIZED = RawResponse(401, {}, b'{"status":"error","error":"Unauthorized"}')


def condition_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name == LOGGER]


def details(core: CoreHarness) -> dict[str, list[str]]:
    conditions: dict[str, list[str]] = core.health.readiness()[1]["conditions"]  # type: ignore[assignment]
    return conditions


class TestApi:
    async def test_an_outage_is_api_failing_and_the_worker_stays_ready(self, caplog: pytest.LogCaptureFixture) -> None:
        """503 on every request: the circuit opens, one line says the API fails on the activity route, the gauge is
        1, /readyz names it and stays 200; once the API answers, every message is delivered."""
        down = True

        def answer(_request: Request) -> RawResponse:
            return UNAVAILABLE if down else OK

        traffic = TrafficSettings(circuit_failures=3, probe_interval_s=0.01, probe_max_interval_s=0.02)
        with caplog.at_level(logging.INFO, logger=LOGGER):
            async with CoreHarness(api=FakeApi(answer), traffic=traffic) as core:
                core.assign(0)
                for index in range(5):
                    core.consumer.append(TOPIC, 0, envelope_activity("1509"), key=str(index).encode())
                await core.until(lambda: "api_failing" in details(core), "the api_failing condition")
                assert condition_lines(caplog) == [
                    "the API fails (5xx or no answer): the route's circuit is open: activity "
                    "(one probe at a time until an answer is not a failure)"
                ]
                assert core.sample("mics_worker_condition", {"condition": "api_failing"}) == 1
                ready, state = core.health.readiness()
                assert ready, state
                assert state["conditions"] == {"api_failing": ["activity"]}
                down = False
                await core.until(lambda: core.stored(0) == 5, "every delivery")
        assert core.producer.acked == []

    async def test_throttling_is_api_throttled(self, caplog: pytest.LogCaptureFixture) -> None:
        """A 429 with Retry-After: 1 holds the route for a second: one api_throttled line names the route."""
        answers = [THROTTLED]

        def answer(_request: Request) -> RawResponse:
            return answers.pop() if answers else OK

        with caplog.at_level(logging.INFO, logger=LOGGER):
            async with CoreHarness(api=FakeApi(answer)) as core:
                core.assign(0)
                core.consumer.append(TOPIC, 0, envelope_activity("1509"))
                await core.until(lambda: "api_throttled" in details(core), "the api_throttled condition")
                assert core.health.readiness()[0]
                await core.until(lambda: core.stored(0) == 1, "the delivery")
        assert condition_lines(caplog)[0] == (
            "the API throttles (429 or Retry-After): the route backs off: activity "
            "(the route's senders wait for the shared backoff)"
        )


class TestCredentials:
    async def test_a_refused_token_names_the_datamart(self, caplog: pytest.LogCaptureFixture) -> None:
        """401 for datamart 2000: one line names it with the status and the probe interval; not ready."""

        def answer(request: Request) -> RawResponse:
            return UNAUTHORIZED if request.datamart == "2000" else OK

        with caplog.at_level(logging.INFO, logger=LOGGER):
            async with CoreHarness(api=FakeApi(answer), credentials_probe_interval_s=0.05) as core:
                core.assign(0)
                core.consumer.append(TOPIC, 0, envelope_activity("2000"))
                await core.until(lambda: "credentials_held" in details(core), "the credentials_held condition")
                ready, state = core.health.readiness()
                assert not ready
                assert "paused_credentials" in state["reasons"]  # type: ignore[operator]
                assert state["conditions"] == {"credentials_held": ["2000"]}
                assert core.sample("mics_worker_condition", {"condition": "credentials_held"}) == 1
        assert condition_lines(caplog)[0] == (
            "the API refuses the token for a datamart (401/403): 2000 "
            "(HTTP 401; its messages wait, the token is probed every 0.05 s)"
        )


class TestDeadLetterTopic:
    async def test_a_missing_topic_is_named_at_start_before_any_dead_letter(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """The broker says the DLQ topic does not exist: the line names it at once, with no message consumed."""
        producer = FakeProducer(missing_topics={"orders-dlq"})
        with caplog.at_level(logging.INFO, logger=LOGGER):
            async with CoreHarness(producer=producer, dlq_topic="orders-dlq") as core:
                await core.until(lambda: "dlq_unwritable" in details(core), "the dlq_unwritable condition")
                assert details(core) == {"dlq_unwritable": ["orders-dlq"]}
                assert core.sample("mics_worker_condition", {"condition": "dlq_unwritable"}) == 1
        assert condition_lines(caplog)[0] == (
            "the dead-letter topic cannot be written: orders-dlq "
            "(the topic orders-dlq does not exist (the worker never creates it): a dead letter holds the worker)"
        )

    async def test_failed_writes_hold_and_name_the_topic_until_writes_pass(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Writes fail: one line names the topic and the error, the worker holds; once they pass, the end line."""
        producer = FakeProducer(down=True)
        with caplog.at_level(logging.INFO, logger=LOGGER):
            async with CoreHarness(producer=producer, dlq_topic="orders-dlq") as core:
                core.assign(0)
                core.consumer.append(TOPIC, 0, b"not json")
                await core.until(lambda: "dlq_unwritable" in details(core), "the dlq_unwritable condition")
                ready, state = core.health.readiness()
                assert not ready
                assert "paused_dlq_unavailable" in state["reasons"]  # type: ignore[operator]
                producer.down = False
                await core.until(lambda: core.stored(0) == 1, "the dead letter's acknowledgement")
                await core.until(lambda: details(core) == {}, "the end of the condition (after its settle time)")
        lines = condition_lines(caplog)
        assert lines[0] == (
            "the dead-letter topic cannot be written: orders-dlq "
            "(Local: Message timed out: holding, nothing is committed past it)"
        )
        assert re.fullmatch(
            r"ended after \d+ s: the dead-letter topic cannot be written: orders-dlq; in all: failed_writes [1-9]\d*",
            lines[-1],
        )
        assert len(producer.acked) == 1
