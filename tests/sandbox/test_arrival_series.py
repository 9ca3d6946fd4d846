"""The scenario measurement helper on hand-made and limiter-made arrival buckets."""

from __future__ import annotations

import pytest

from tests.support.arrival_series import ArrivalSeries
from tests.support.clock import FakeClock
from worker.sandbox.ratelimit import RateLimiter, RateLimitSettings


def _series(admitted: list[int], throttled: list[int] | None = None) -> ArrivalSeries:
    return ArrivalSeries(100.0, 0.5, tuple(admitted), tuple(throttled or [0] * len(admitted)))


class TestRates:
    def test_rate_and_share_after_a_warm_up(self) -> None:
        """Skipping the warm-up leaves the steady buckets: 5 per 0.5 s is 10/s, 1 in 6 throttled."""
        series = _series([50, 40, 5, 5, 5, 5], [30, 20, 1, 1, 1, 1])
        steady = series.skip(1.0)
        assert (steady.start_s, steady.admitted) == (101.0, (5, 5, 5, 5))
        assert steady.admitted_rate() == pytest.approx(10.0)
        assert steady.throttled_share() == pytest.approx(1 / 6)

    def test_between_two_times(self) -> None:
        """`between` keeps the whole buckets inside the interval; the first arrival is the first non-empty bucket."""
        series = _series([0, 0, 4, 6, 8, 2], [0, 0, 1, 0, 0, 0])
        assert series.first_arrival_s() == 101.0
        inner = series.between(101.0, 102.4)  # buckets [101, 101.5), [101.5, 102); [102, 102.5) ends past 102.4
        assert (inner.start_s, inner.admitted, inner.throttled) == (101.0, (4, 6), (1, 0))
        assert inner.admitted_rate() == pytest.approx(10.0)
        assert series.between(104.0, 110.0).admitted == ()
        with pytest.raises(ValueError, match="nothing arrived"):
            _series([0, 0]).first_arrival_s()

    def test_empty_series(self) -> None:
        """Nothing arrived: zero rate, zero share, an all-zero spread; no throttled bucket to start from."""
        series = _series([0, 0]).skip(5)
        assert (series.admitted_rate(), series.throttled_share(), series.spread().total) == (0.0, 0.0, 0)
        with pytest.raises(ValueError, match="throttled"):
            _series([1, 1]).first_throttled_s()


class TestSpread:
    def test_a_wave_and_an_even_spread(self) -> None:
        """All retries in one of ten buckets peak at 10x the mean; an even spread peaks at the mean."""
        wave = _series([0, 0, 0, 40, 0, 0, 0, 0, 0, 0]).spread()
        even = _series([4] * 10).spread()
        assert (wave.peak_to_mean, wave.busiest_share, wave.cv) == (10.0, 1.0, pytest.approx(3.0))
        assert (even.peak_to_mean, even.busiest_share, even.cv) == (1.0, 0.1, 0.0)

    def test_after_the_first_429(self) -> None:
        """`after(first_throttled_s())` keeps the buckets that follow the first 429's bucket."""
        series = _series([9, 9, 0, 3, 3], [0, 6, 0, 0, 0])
        first = series.first_throttled_s()
        assert first == 100.5
        after = series.after(first)
        assert (after.start_s, after.arrivals()) == (101.0, (0, 3, 3))
        assert after.spread().peak_to_mean == pytest.approx(1.5)

    def test_reads_the_limiter_document(self) -> None:
        """A limiter's arrivals document becomes a series with the same buckets."""
        clock = FakeClock(now=10.0)
        limiter = RateLimiter(RateLimitSettings(rate=1.0, burst=1), clock=clock)
        clock.advance(0.5)
        limiter.admit("1")
        limiter.admit("1")
        clock.advance(0.75)  # the window is (10.25, 11.25]: the arrivals at 10.5 are in its first bucket
        series = ArrivalSeries.from_document(limiter.arrivals(window_s=1, bucket_s=0.5))
        assert (series.admitted, series.throttled, series.complete) == ((1, 0), (1, 0), True)
