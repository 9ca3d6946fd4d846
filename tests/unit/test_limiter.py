"""AdaptiveLimit: grows while used and fast, shrinks on throttling and latency at most once per RTT, stays in
[1, maximum]; slots are granted in order and a drain wakes slot waiters."""

from __future__ import annotations

import asyncio

import pytest

from tests.support.clock import FakeClock
from worker.traffic.limiter import MIN_INTERVAL_S, AdaptiveLimit

RTT = 0.03


def run_intervals(limit: AdaptiveLimit, clock: FakeClock, intervals: int, *, rtt: float = RTT, **kw: bool) -> None:
    """`intervals` decision intervals of answers taking `rtt`, with the limit fully in use."""
    throttled = kw.get("throttled", False)
    for _ in range(intervals):
        limit.in_flight = limit.limit  # requests fill the limit (the peak is read at the decision)
        limit._peak = limit.limit
        clock.advance(max(rtt, MIN_INTERVAL_S))
        limit.observe(rtt, throttled)
    limit.in_flight = 0


class TestDecisions:
    def test_a_healthy_api_lets_the_limit_grow_from_the_start_to_the_maximum(self) -> None:
        """Fast, successful answers with the limit in use: 20 grows to 256 within about 25 round trips."""
        clock = FakeClock()
        limit = AdaptiveLimit(20, 256, clock=clock)
        assert limit.limit == 20
        run_intervals(limit, clock, 30)
        assert limit.limit == 256
        run_intervals(limit, clock, 5)
        assert limit.limit == 256

    def test_an_unused_limit_does_not_grow(self) -> None:
        """While fewer than half the slots are used, the API says nothing about more: the limit stays."""
        clock = FakeClock()
        limit = AdaptiveLimit(20, 256, clock=clock)
        for _ in range(50):
            clock.advance(RTT)
            limit.observe(RTT, False)
        assert limit.limit == 20

    def test_throttling_shrinks_once_per_interval_however_many_429s(self) -> None:
        """A hundred 429s within one round trip shrink the limit once (x0.7), not a hundred times."""
        clock = FakeClock()
        limit = AdaptiveLimit(100, 256, clock=clock)
        clock.advance(RTT)
        for _ in range(100):
            limit.observe(RTT, True)
        assert limit.limit == 70

    def test_sustained_throttling_reaches_one_and_never_below(self) -> None:
        clock = FakeClock()
        limit = AdaptiveLimit(100, 256, clock=clock)
        run_intervals(limit, clock, 40, throttled=True)
        assert limit.limit == 1

    def test_rising_latency_shrinks_the_limit(self) -> None:
        """Baseline 30 ms; answers at 90 ms (over twice the baseline) shrink it by 10% per interval."""
        clock = FakeClock()
        limit = AdaptiveLimit(100, 256, clock=clock)
        run_intervals(limit, clock, 1, rtt=RTT)
        before = limit.limit
        run_intervals(limit, clock, 3, rtt=3 * RTT)
        assert limit.limit == int(before * 0.9 * 0.9 * 0.9)

    def test_latency_within_the_tolerance_still_grows(self) -> None:
        clock = FakeClock()
        limit = AdaptiveLimit(20, 256, clock=clock)
        run_intervals(limit, clock, 1, rtt=RTT)
        run_intervals(limit, clock, 3, rtt=1.5 * RTT)
        assert limit.limit > 20

    def test_a_loopback_api_is_not_throttled_by_the_loops_own_delay(self) -> None:
        """Baseline 0.3 ms, answers at 4 ms: below the 5 ms floor x tolerance, the limit still grows."""
        clock = FakeClock()
        limit = AdaptiveLimit(20, 256, clock=clock)
        run_intervals(limit, clock, 1, rtt=0.0003)
        run_intervals(limit, clock, 5, rtt=0.004)
        assert limit.limit > 20

    def test_the_baseline_follows_a_slower_api_after_two_windows(self) -> None:
        """The API moves from 30 ms to 200 ms: the limit shrinks at first, then grows again on the new baseline."""
        clock = FakeClock()
        limit = AdaptiveLimit(100, 256, clock=clock)
        run_intervals(limit, clock, 1)
        run_intervals(limit, clock, 120, rtt=0.2)  # 24 s: two baseline windows
        shrunk = limit.limit
        run_intervals(limit, clock, 20, rtt=0.2)
        assert limit.limit > shrunk

    @pytest.mark.parametrize(("initial", "maximum", "expected"), [(20, 8, 8), (0, 8, 1), (20, 256, 20)])
    def test_the_start_is_clamped_to_the_bounds(self, initial: int, maximum: int, expected: int) -> None:
        assert AdaptiveLimit(initial, maximum).limit == expected

    def test_a_fixed_limit_is_the_maximum_and_never_moves(self) -> None:
        clock = FakeClock()
        limit = AdaptiveLimit(20, 64, adaptive=False, clock=clock)
        run_intervals(limit, clock, 10, throttled=True)
        assert limit.limit == 64

    def test_bad_bounds_are_refused(self) -> None:
        with pytest.raises(ValueError, match="maximum"):
            AdaptiveLimit(1, 0)
        with pytest.raises(ValueError, match="tolerance"):
            AdaptiveLimit(1, 4, tolerance=1.0)


class TestSlots:
    async def test_slots_beyond_the_limit_wait_and_are_granted_in_order(self) -> None:
        limit = AdaptiveLimit(2, 2)
        wake = asyncio.Event()
        assert await limit.acquire(wake)
        assert await limit.acquire(wake)
        order: list[int] = []

        async def take(index: int) -> None:
            assert await limit.acquire(wake)
            order.append(index)

        waiters = [asyncio.create_task(take(index)) for index in range(3)]
        await asyncio.sleep(0)
        assert (limit.in_flight, limit.waiting, order) == (2, 3, [])
        limit.release()
        limit.release()
        await asyncio.sleep(0)
        assert order == [0, 1]
        limit.release()
        await asyncio.gather(*waiters)
        assert order == [0, 1, 2]
        assert limit.in_flight == 2

    async def test_a_drain_wakes_slot_waiters_of_its_partition_only(self) -> None:
        """`recheck` after a partition starts draining: its waiter leaves without a slot, the other keeps waiting."""
        limit = AdaptiveLimit(1, 1)
        draining, other = asyncio.Event(), asyncio.Event()
        assert await limit.acquire(other)
        leaving = asyncio.create_task(limit.acquire(draining))
        staying = asyncio.create_task(limit.acquire(other))
        await asyncio.sleep(0)
        draining.set()
        limit.recheck()
        assert await leaving is False
        await asyncio.sleep(0)
        assert not staying.done()
        limit.release()
        assert await staying is True
        assert limit.in_flight == 1

    async def test_a_waiter_cancelled_after_its_grant_gives_the_slot_back(self) -> None:
        limit = AdaptiveLimit(1, 1)
        wake = asyncio.Event()
        assert await limit.acquire(wake)
        waiter = asyncio.create_task(limit.acquire(wake))
        await asyncio.sleep(0)
        limit.release()  # granted to the waiter ...
        waiter.cancel()  # ... which is cancelled before it runs
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert limit.in_flight == 0

    async def test_a_grown_limit_admits_waiters_at_its_next_decision(self) -> None:
        clock = FakeClock()
        limit = AdaptiveLimit(1, 8, clock=clock)
        wake = asyncio.Event()
        assert await limit.acquire(wake)
        waiter = asyncio.create_task(limit.acquire(wake))
        await asyncio.sleep(0)
        clock.advance(RTT)
        limit.observe(RTT, False)  # the limit was in use: it grows, and the waiter gets the new slot
        assert await waiter is True
        assert limit.in_flight == 2
