"""Backpressure in-process: bounded in bytes and messages, per partition, never the whole assignment."""

from __future__ import annotations

import asyncio

from tests.support.core_harness import OK, TOPIC, CoreHarness, FakeApi, Request, envelope_activity
from worker.flow import WAKE_WHILE_PAUSED_S
from worker.mics.transport import RawResponse
from worker.pipeline import IDLE_POLL_TIMEOUT_S
from worker.retry import RetryPolicy

UNAVAILABLE = RawResponse(503, {}, b'{"status":"error","error":"Service Unavailable"}')


BIG = envelope_activity("1509").replace(b'"$properties":{}', b'"$properties":{"pad":"' + b"x" * 250_000 + b'"}')
ONE_RECORD = 2 * len(BIG) + 1_000  # what one BIG holds in the window: the record, its re-encoded body, key, headers


class StuckApi:
    """An API that answers nothing until released: what the worker holds then is the most it ever holds."""

    def __init__(self) -> None:
        self.released = asyncio.Event()
        self.api = FakeApi(self._answer)

    async def _answer(self, _request: Request) -> RawResponse:
        await self.released.wait()
        return OK


class TestBytes:
    async def test_large_messages_are_bounded_by_bytes_not_only_by_count(self) -> None:
        """250 kB messages with the API stuck: the bytes held stay within MAX_IN_FLIGHT_BYTES plus one record,
        though the count window (2,000) is far from full; the partition is paused, not the worker stopped."""
        stuck, limit = StuckApi(), 2_000_000
        async with CoreHarness(api=stuck.api, max_in_flight_bytes=limit) as core:
            assert core.pipeline is not None
            core.consumer.queue_bytes = 1_000_000
            core.assign(0)
            for _ in range(40):
                core.consumer.append(TOPIC, 0, BIG)
            await core.until(lambda: (TOPIC, 0) in core.consumer.paused, "the partition paused")
            held = core.sample("mics_worker_in_flight_bytes") or 0
            assert limit <= held <= limit + ONE_RECORD
            assert core.pipeline.in_flight < 40
            stuck.released.set()
            await core.until(lambda: len(core.api.writes()) >= 40, "every message after the API answers")

    async def test_a_deep_fetch_queue_passes_each_share_by_one_record_at_most(self) -> None:
        """The same messages on three partitions with librdkafka's whole queue (16 MiB) fetched ahead: a poll is
        counted in records of the size seen, so each partition stops within one record of its byte share, and the
        window within one record per partition."""
        stuck, limit = StuckApi(), 3_000_000
        async with CoreHarness(api=stuck.api, max_in_flight_bytes=limit) as core:
            assert core.pipeline is not None
            core.assign(0, 1, 2)
            for _ in range(20):
                for partition in (0, 1, 2):
                    core.consumer.append(TOPIC, partition, BIG)
            every = {(TOPIC, 0), (TOPIC, 1), (TOPIC, 2)}
            await core.until(lambda: every <= core.consumer.paused, "all three partitions paused")
            held = core.sample("mics_worker_in_flight_bytes") or 0
            assert limit <= held <= limit + 3 * ONE_RECORD
            assert core.pipeline.in_flight < 60
            stuck.released.set()
            await core.until(lambda: len(core.api.writes()) >= 60, "every message after the API answers")


class TestFairness:
    async def test_a_partition_stuck_behind_retries_never_stops_the_others(self) -> None:
        """Partition 0's heads answer 503 for a long time; partitions 1 and 2 are fed all along with a small
        window: their offsets keep advancing, and no pause ever covers the whole assignment."""
        stuck = {"open": False}

        def answer(request: Request) -> RawResponse:
            if b'"$site_id":"stuck"' in (request.body or b"") and not stuck["open"]:
                return UNAVAILABLE
            return OK

        body = envelope_activity("1509")
        stuck_body = body.replace(b'"$site_id":"1023"', b'"$site_id":"stuck"')
        patient = RetryPolicy(max_attempts=1_000_000, max_elapsed_s=3600.0, base_delay_s=0.001, max_delay_s=0.01)
        async with CoreHarness(api=FakeApi(answer), max_in_flight=30, consume_batch_size=10, retry=patient) as core:
            core.assign(0, 1, 2)
            for index in range(60):
                core.consumer.append(TOPIC, 0, stuck_body, key=f"k{index % 3}".encode())
            for round_ in range(10):
                for partition in (1, 2):
                    for _ in range(20):
                        core.consumer.append(TOPIC, partition, body)
                target = 20 * (round_ + 1)
                await core.until(lambda t=target: core.stored(1) == t and core.stored(2) == t, f"round {round_}")
            assert (TOPIC, 0) in core.consumer.paused
            assert core.stored(0) == 0
            everything = {(TOPIC, 0), (TOPIC, 1), (TOPIC, 2)}
            assert all(set(call) != everything for call in core.consumer.pause_calls)
            stuck["open"] = True
            await core.until(lambda: core.stored(0) == 60, "partition 0 once its heads succeed")


class TestMessageWindow:
    async def test_uncommitted_messages_never_pass_the_window(self) -> None:
        """Six busy partitions, a window of 60 and a stuck API: at no point are more than 60 messages taken past the
        commit (what a crash would repeat), though every partition has far more waiting."""
        release = asyncio.Event()
        peak = 0

        async def stuck(_request: Request) -> RawResponse:
            await release.wait()
            return OK

        async with CoreHarness(api=FakeApi(stuck), max_in_flight=60) as core:
            assert core.pipeline is not None
            core.assign(*range(6))
            for partition in range(6):
                for index in range(100):
                    core.consumer.append(TOPIC, partition, envelope_activity("1509"), key=f"k{index}".encode())

            def full() -> bool:
                nonlocal peak
                peak = max(peak, int(core.sample("mics_worker_in_flight_messages") or 0))
                return len(core.consumer.paused) == 6

            await core.until(full, "every partition at its share")
            release.set()
            await core.until(lambda: all(core.stored(p) == 100 for p in range(6)), "everything, once released")
        assert 0 < peak <= 60

    async def test_while_a_partition_is_paused_the_poll_waits_only_a_few_milliseconds(self) -> None:
        """Its resume is decided between polls: with the idle wait (100 ms) every cycle of the window sat out up to
        two of them with nothing to send. Paused, the polls wait `WAKE_WHILE_PAUSED_S`; resumed and drained, the
        idle wait again."""
        stuck = StuckApi()
        async with CoreHarness(api=stuck.api, max_in_flight=10) as core:
            assert core.pipeline is not None
            core.assign(0)
            for index in range(30):
                core.consumer.append(TOPIC, 0, envelope_activity("1509"), key=f"k{index}".encode())
            await core.until(lambda: (TOPIC, 0) in core.consumer.paused, "the partition paused")
            seen = len(core.consumer.poll_timeouts)
            await core.until(lambda: len(core.consumer.poll_timeouts) > seen + 2, "more polls while paused")
            assert set(core.consumer.poll_timeouts[seen + 1 :]) == {WAKE_WHILE_PAUSED_S}
            stuck.released.set()
            await core.until(lambda: core.stored(0) == 30, "everything, once released")
            await core.until(lambda: (TOPIC, 0) not in core.consumer.paused, "the partition resumed")
            seen = len(core.consumer.poll_timeouts)
            await core.until(lambda: len(core.consumer.poll_timeouts) > seen + 2, "more polls once resumed")
            assert set(core.consumer.poll_timeouts[seen + 1 :]) == {IDLE_POLL_TIMEOUT_S}
