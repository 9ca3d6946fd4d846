"""Pace: off until a 429 with evidence, cut once per throttling episode, grows only while it binds, goes off after a
quiet spell; queued requests leave in order at the pace, and a drained one leaves the queue without a gap."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.support.clock import FakeClock
from worker.traffic.pace import BURST_S, CUT, EPISODE_S, GROWTH, MIN_EVIDENCE, OFF_AFTER_S, WINDOW_S, Pace


def answered(pace: Pace, clock: FakeClock, count: int, over_s: float) -> None:
    """`count` successful answers spread evenly over `over_s` seconds."""
    for _ in range(count):
        clock.advance(over_s / count)
        pace.answered(False)


async def queue_one_and_drain_it(pace: Pace) -> int:
    """Ask the pace without letting time pass until a request queues; drain that one. Returns how many left at once."""
    drained = asyncio.Event()
    left = 0
    while True:
        waiter = asyncio.ensure_future(pace.wait(drained))
        await asyncio.sleep(0)
        if not waiter.done():
            break
        assert waiter.result() is True
        left += 1
    drained.set()
    assert await waiter is False
    return left


def paced(clock: FakeClock, rate_before_cut: float = 100.0) -> Pace:
    """A pace set by one 429 after `rate_before_cut` answers a second for a whole window."""
    pace = Pace(clock)
    answered(pace, clock, int(rate_before_cut * WINDOW_S), WINDOW_S)
    pace.answered(True)
    return pace


class TestDecisions:
    def test_off_until_a_429_and_a_429_among_a_handful_of_answers_teaches_nothing(self) -> None:
        clock = FakeClock()
        pace = Pace(clock)
        answered(pace, clock, MIN_EVIDENCE - 1, 1.0)
        assert pace.rate is None
        pace.answered(True)
        assert pace.rate is None  # the shared backoff alone slows the route

    def test_the_first_cut_is_a_share_of_the_answered_rate(self) -> None:
        """200 answers over the 2 s window (100/s), then a 429: the pace is 90/s (the window's open slot aside)."""
        clock = FakeClock()
        pace = paced(clock, 100.0)
        assert pace.rate is not None
        assert CUT * 100.0 * 0.85 <= pace.rate <= CUT * 100.0 * 1.0001

    def test_one_cut_per_episode(self) -> None:
        clock = FakeClock()
        pace = paced(clock)
        first = pace.rate
        assert first is not None
        for _ in range(20):  # the rest of the burst's 429s
            clock.advance(0.01)
            pace.answered(True)
        assert pace.rate == first
        clock.advance(EPISODE_S)
        pace.answered(True)
        assert pace.rate == pytest.approx(first * CUT)


class TestGrowth:
    async def test_it_grows_only_while_it_binds_and_goes_off_after_a_quiet_spell(self) -> None:
        clock = FakeClock()
        pace = paced(clock, 20.0)
        rate = pace.rate
        assert rate is not None
        never = asyncio.Event()

        async def one_second_at_the_pace(queue_one: bool) -> None:
            """Requests leave at the pace for a second; with `queue_one`, one more queues and is given up."""
            steps = int(rate)
            for _ in range(steps):
                clock.advance(1.0 / rate)
                assert await pace.wait(never)
            if queue_one:
                await queue_one_and_drain_it(pace)

        await one_second_at_the_pace(queue_one=False)  # nobody queued: the pace held nothing back
        clock.advance(0.001)
        pace.answered(False)
        assert pace.rate == rate

        await one_second_at_the_pace(queue_one=True)  # requests queued and left at the pace: it binds
        clock.advance(0.001)
        pace.answered(False)
        assert pace.rate == pytest.approx(rate * (1 + GROWTH))

        clock.advance(OFF_AFTER_S)
        pace.answered(False)
        pace.answered(False)
        assert pace.rate is None

    async def test_a_pace_the_worker_does_not_reach_does_not_grow(self) -> None:
        """Requests queue but few leave (a busy loop, not the pace, held them): no growth."""
        clock = FakeClock()
        pace = paced(clock, 50.0)
        rate = pace.rate
        assert rate is not None
        left = await queue_one_and_drain_it(pace)  # a burst's worth left, then one queued
        assert left < 0.8 * rate
        clock.advance(1.5)
        pace.answered(False)
        assert pace.rate == rate


class TestQueue:
    async def test_queued_requests_leave_in_order_at_the_pace_and_a_drained_one_leaves_no_gap(self) -> None:
        """At 40/s, 20 requests: one drained while queued; the other 19 leave in arrival order, spaced by the pace
        (at least (19 - burst) / 40 s in all), and none waits for the drained one's turn."""
        pace = Pace(rate=40.0)
        never, drained = asyncio.Event(), asyncio.Event()
        order: list[int] = []

        async def request(index: int, wake: asyncio.Event) -> None:
            if await pace.wait(wake):
                order.append(index)

        began = time.monotonic()
        tasks = [asyncio.ensure_future(request(i, drained if i == 15 else never)) for i in range(20)]
        await asyncio.sleep(0)
        drained.set()
        await asyncio.gather(*tasks)
        elapsed = time.monotonic() - began
        assert order == [i for i in range(20) if i != 15]
        burst = int(BURST_S * 40) + 1  # BURST_S worth may leave at once after a quiet spell
        assert elapsed >= (19 - burst) / 40.0 * 0.9
        assert pace.waiting == 0
