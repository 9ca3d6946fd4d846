"""Revoke, stop and holds in-process: sleeping retries are woken, drains end in time, no hold outlives its end."""

from __future__ import annotations

import time

from confluent_kafka import KafkaError

from tests.support.core_harness import TOPIC, CoreHarness, FakeApi, envelope_activity
from worker.config import DlqGuardSettings
from worker.mics.transport import RawResponse
from worker.retry import RetryPolicy

THROTTLED = RawResponse(429, {"retry-after": "300"}, b'{"status":"error","error":"Too Many Requests"}')
SLOW_RETRIES = RetryPolicy(max_attempts=20, max_elapsed_s=3600.0, base_delay_s=0.001, max_delay_s=0.01)


class TestWakingRetries:
    async def test_a_revoke_wakes_a_retry_asleep_for_five_minutes(self) -> None:
        """A 429 with Retry-After: 300 puts the message to sleep; the revoke hands the partition over at once,
        leaving the message uncommitted for its next owner, and a 30 s drain timeout is not waited out."""
        api = FakeApi(lambda _request: THROTTLED)
        async with CoreHarness(api=api, retry=SLOW_RETRIES, drain_timeout_s=30.0) as core:
            assert core.pipeline is not None
            core.assign(0)
            core.consumer.append(TOPIC, 0, envelope_activity("1509"))
            await core.until(lambda: core.sample("mics_worker_retries_total", _retry_labels()) == 1, "a retry")
            started = time.monotonic()
            core.consumer.rebalance("revoke", [(TOPIC, 0)])
            await core.until(lambda: core.pipeline is not None and core.pipeline.in_flight == 0, "the hand-over")
            took = time.monotonic() - started
        assert took < 15.0  # bounded by the wake-up, far below the 300 s sleep and the drain budget
        assert core.committed(0) == 0
        assert len(api.writes()) == 1

    async def test_stop_wakes_sleeping_retries_and_exits_without_waiting_the_drain_timeout(self) -> None:
        """SIGTERM's path with messages held by a 429's 300 s Retry-After (the route's shared backoff): run()
        returns at once, the messages stay uncommitted."""
        async with CoreHarness(api=FakeApi(lambda _r: THROTTLED), retry=SLOW_RETRIES, drain_timeout_s=30.0) as core:
            assert core.pipeline is not None
            core.assign(0)
            core.consumer.append(TOPIC, 0, envelope_activity("1509"))
            core.consumer.append(TOPIC, 0, envelope_activity("1509"))
            await core.until(
                lambda: (
                    core.pipeline is not None
                    and core.pipeline.in_flight == 2
                    and (core.sample("mics_worker_retries_total", _retry_labels()) or 0) >= 1
                    and core.sample("mics_worker_route_held", {"route": "activity", "reason": "backoff"}) == 1
                ),
                "both messages taken, the route backing off",
            )
            started = time.monotonic()
            summary = await core.stop()
        assert time.monotonic() - started < 15.0
        assert summary.consumed == 2
        assert summary.finished == 0
        assert core.committed(0) == 0

    async def test_a_lane_behind_a_given_up_message_is_given_up_too(self) -> None:
        """Same key: the head sleeps in backoff, the next waits behind it; at revoke both are given up and the
        second is never sent ahead of the first."""
        api = FakeApi(lambda _request: THROTTLED)
        async with CoreHarness(api=api, retry=SLOW_RETRIES) as core:
            assert core.pipeline is not None
            core.assign(0)
            core.consumer.append(TOPIC, 0, envelope_activity("1509"), key=b"same")
            core.consumer.append(TOPIC, 0, envelope_activity("1509"), key=b"same")
            await core.until(lambda: core.sample("mics_worker_retries_total", _retry_labels()) == 1, "a retry")
            core.consumer.rebalance("revoke", [(TOPIC, 0)])
            await core.until(lambda: core.pipeline is not None and core.pipeline.in_flight == 0, "the hand-over")
        assert len(api.writes()) == 1


class TestHolds:
    async def test_a_guard_with_no_cooldown_resumes(self) -> None:
        """DLQ_GUARD_COOLDOWN_S=0 trips and re-arms at once instead of holding for ever."""
        guard = DlqGuardSettings(window=10, max_ratio=0.5, min_samples=1, max_consecutive=3, cooldown_s=0.0)
        async with CoreHarness(dlq_guard=guard) as core:
            core.assign(0)
            for _ in range(5):
                core.consumer.append(TOPIC, 0, b"{bad")
            core.consumer.append(TOPIC, 0, envelope_activity("1509"))
            await core.until(lambda: core.stored(0) == 6, "every message, the guard re-armed")
            assert core.sample("mics_worker_paused", {"reason": "dlq_rate"}) == 0

    async def test_messages_taken_during_a_hold_wait_and_are_not_spilled(self) -> None:
        """The guard trips on a run of bad messages: those taken after it wait (no dead letter) until it ends."""
        guard = DlqGuardSettings(window=10, max_ratio=1.0, min_samples=10, max_consecutive=2, cooldown_s=3600.0)
        async with CoreHarness(dlq_guard=guard) as core:
            core.assign(0)
            for _ in range(6):
                core.consumer.append(TOPIC, 0, b"{bad")
            await core.until(lambda: core.sample("mics_worker_paused", {"reason": "dlq_rate"}) == 1, "the trip")
            await core.until(lambda: (TOPIC, 0) in core.consumer.paused, "the partition paused")
            assert len(core.producer.acked) <= 3
            assert not core.health.readiness()[0]


class TestConsumeErrors:
    async def test_a_consume_error_is_counted_and_consumption_goes_on(self) -> None:
        """An error librdkafka returns in place of a message is counted by name; the next message flows."""
        async with CoreHarness() as core:
            core.assign(0)
            core.consumer.inject_error(KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART))
            core.consumer.append(TOPIC, 0, envelope_activity("1509"))
            await core.until(lambda: core.stored(0) == 1, "the delivery")
        assert core.sample("mics_worker_consume_errors_total", {"error": "UNKNOWN_TOPIC_OR_PART"}) == 1


def _retry_labels() -> dict[str, str]:
    return {"route": "activity", "reason": "http_429"}
