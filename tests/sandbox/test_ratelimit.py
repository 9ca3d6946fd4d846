"""The sandbox's rate limiter on an injected clock: buckets, Retry-After, scopes, live changes, arrival records."""

from __future__ import annotations

import pytest

from tests.support.clock import FakeClock
from worker.sandbox.ratelimit import (
    RateLimiter,
    RateLimitSettings,
    RateLimitSettingsError,
    TokenBucket,
    parse_rate,
    retry_after_s,
)


def _limiter(clock: FakeClock, **settings: object) -> RateLimiter:
    return RateLimiter(RateLimitSettings().with_changes(settings), clock=clock)


def _admit_all(limiter: RateLimiter, count: int, datamart: str | None = "1") -> list[bool]:
    return [limiter.admit(datamart) is None for _ in range(count)]


class TestParsing:
    @pytest.mark.parametrize(
        ("text", "rate"), [("500/s", 500.0), ("500", 500.0), (" 2.5 / s ", 2.5), ("30000/min", 500.0), (7, 7.0)]
    )
    def test_rates(self, text: object, rate: float) -> None:
        """Per second by default; `/min` divides by 60."""
        assert parse_rate(text) == rate

    @pytest.mark.parametrize("text", ["0/s", "-1/s", "fast", "5/h", True, float("inf"), "", None])
    def test_bad_rates(self, text: object) -> None:
        """Zero, negative, infinite, unknown units and non-rates are refused."""
        with pytest.raises(RateLimitSettingsError):
            parse_rate(text)

    @pytest.mark.parametrize(
        "changes",
        [{"rate": 0}, {"burst": 0}, {"burst": 1.5}, {"per_datamart_burst": "3"}, {"record": 1}, {"speed": 1}],
    )
    def test_bad_settings(self, changes: dict[str, object]) -> None:
        """Out-of-range, mistyped and unknown settings are refused."""
        with pytest.raises(RateLimitSettingsError):
            RateLimitSettings().with_changes(changes)

    def test_burst_defaults_to_one_second_of_the_rate(self) -> None:
        """No burst given: ceil(rate), at least 1; an explicit burst wins."""
        assert RateLimitSettings(rate=2.5).effective_burst == 3
        assert RateLimitSettings(rate=0.2).effective_burst == 1
        assert RateLimitSettings(rate=100.0, burst=7).effective_burst == 7
        assert RateLimitSettings(burst=7).effective_burst is None

    @pytest.mark.parametrize(("wait", "header"), [(0.001, 1), (1.0, 1), (1.0000000001, 1), (1.2, 2), (9.5, 10)])
    def test_retry_after_rounds_up_to_whole_seconds(self, wait: float, header: int) -> None:
        """Whole seconds, rounded up (float noise aside), at least 1."""
        assert retry_after_s(wait) == header


class TestTokenBucket:
    def test_burst_then_refill(self) -> None:
        """A full bucket gives `burst` tokens; then one more every 1/rate seconds, never above `burst`."""
        bucket = TokenBucket(rate=10.0, burst=3, now=0.0)
        for _ in range(3):
            assert bucket.wait_s(0.0) == 0.0
            bucket.take()
        assert bucket.wait_s(0.0) == pytest.approx(0.1)
        assert bucket.wait_s(0.05) == pytest.approx(0.05)
        assert bucket.wait_s(0.1) == 0.0
        assert bucket.wait_s(100.0) == 0.0
        for _ in range(3):
            bucket.take()
        assert bucket.wait_s(100.0) == pytest.approx(0.1)


class TestGlobalLimit:
    def test_burst_admitted_then_429_with_retry_after(self) -> None:
        """burst=5 at 2/s: five pass at once, the sixth is refused with 0.5 s to wait (Retry-After 1)."""
        clock = FakeClock()
        limiter = _limiter(clock, rate=2, burst=5)
        assert _admit_all(limiter, 5) == [True] * 5
        refusal = limiter.admit("1")
        assert refusal is not None
        wait, scope = refusal
        assert (wait, scope, retry_after_s(wait)) == (pytest.approx(0.5), "global", 1)

    def test_retry_after_counts_whole_seconds_at_slow_rates(self) -> None:
        """At 0.4/s an empty bucket needs 2.5 s for a token: Retry-After 3, then 2 after one more second."""
        clock = FakeClock()
        limiter = _limiter(clock, rate=0.4, burst=1)
        assert limiter.admit(None) is None
        first = limiter.admit(None)
        clock.advance(1.0)
        second = limiter.admit(None)
        assert first is not None
        assert second is not None
        assert (retry_after_s(first[0]), retry_after_s(second[0])) == (3, 2)

    def test_refill_over_time(self) -> None:
        """Empty at 10/s: after 0.1 s exactly one more passes; after 10 s only `burst` do."""
        clock = FakeClock()
        limiter = _limiter(clock, rate=10, burst=4)
        assert _admit_all(limiter, 5) == [True] * 4 + [False]
        clock.advance(0.1)
        assert _admit_all(limiter, 2) == [True, False]
        clock.advance(10)
        assert _admit_all(limiter, 5) == [True] * 4 + [False]

    def test_steady_rate(self) -> None:
        """Offered 1 request per ms for 10 s against 100/s with burst 10: exactly 10 + 100 x 10 are admitted."""
        clock = FakeClock(now=0.0)
        limiter = _limiter(clock, rate=100, burst=10)
        admitted = 0
        for step in range(10_000):
            clock.now = step / 1000
            admitted += limiter.admit("1") is None
        assert admitted == pytest.approx(10 + 100 * 9.999, abs=1)

    def test_refusals_count_and_cost_nothing(self) -> None:
        """Refused requests take no token: the next one is admitted as soon as the refill allows."""
        clock = FakeClock()
        limiter = _limiter(clock, rate=1, burst=1)
        assert _admit_all(limiter, 50) == [True] + [False] * 49
        clock.advance(1.0)
        assert limiter.admit("1") is None
        counts = limiter.describe()
        assert (counts["admitted"], counts["throttled"], counts["throttled_by"]) == (
            2,
            49,
            {"global": 49, "datamart": 0},
        )


class TestPerDatamartLimit:
    def test_each_datamart_has_its_own_bucket(self) -> None:
        """Datamart 1 exhausted does not throttle datamart 2; requests with no datamart are not limited by it."""
        clock = FakeClock()
        limiter = _limiter(clock, per_datamart_rate=1, per_datamart_burst=2)
        assert _admit_all(limiter, 3, "1") == [True, True, False]
        assert _admit_all(limiter, 3, "2") == [True, True, False]
        assert _admit_all(limiter, 5, None) == [True] * 5
        refusal = limiter.admit("1")
        assert refusal == (pytest.approx(1.0), "datamart 1")
        assert limiter.describe()["datamarts"] == {
            "1": {"admitted": 2, "throttled": 2},
            "2": {"admitted": 2, "throttled": 1},
        }

    def test_global_and_per_datamart_together(self) -> None:
        """Both apply: the global bucket caps the sum; a refusal by either takes no token from the other."""
        clock = FakeClock()
        limiter = _limiter(clock, rate=10, burst=3, per_datamart_rate=10, per_datamart_burst=2)
        assert _admit_all(limiter, 3, "1") == [True, True, False]  # datamart 1's bucket refuses
        assert _admit_all(limiter, 2, "2") == [True, False]  # the global bucket is empty
        refusal = limiter.admit("1")
        assert refusal is not None
        assert refusal[1] == "global and datamart"
        described = limiter.describe()
        assert (described["admitted"], described["throttled"]) == (3, 3)
        assert described["throttled_by"] == {"global": 2, "datamart": 2}


class TestLiveChanges:
    def test_halving_and_restoring_the_rate_takes_effect_at_once(self) -> None:
        """100/s halved to 50/s mid-run admits 50 per second from that instant; restored, 100 again."""
        clock = FakeClock(now=0.0)
        limiter = _limiter(clock, rate=100, burst=1)

        def admitted_in_one_second() -> int:
            start, count = clock.now, 0
            for step in range(1, 1001):  # one offer per ms, beyond any of the rates
                clock.now = start + step / 1000
                count += limiter.admit("1") is None
            return count

        assert admitted_in_one_second() == pytest.approx(100, abs=1)
        limiter.update({"rate": 50})
        assert admitted_in_one_second() == pytest.approx(50, abs=1)
        limiter.update({"rate": 100})
        assert admitted_in_one_second() == pytest.approx(100, abs=1)

    def test_tokens_accrued_before_a_change_are_kept_up_to_the_new_burst(self) -> None:
        """Shrinking the burst clamps the tokens held; what accrued before the change accrued at the old rate."""
        clock = FakeClock()
        limiter = _limiter(clock, rate=10, burst=10)
        assert _admit_all(limiter, 10) == [True] * 10
        clock.advance(0.5)  # 5 tokens at 10/s
        limiter.update({"rate": 1, "burst": 3})
        assert _admit_all(limiter, 4) == [True, True, True, False]

    def test_the_default_burst_follows_the_rate(self) -> None:
        """Without an explicit burst, halving the rate halves the bucket."""
        clock = FakeClock()
        limiter = _limiter(clock, rate=8)
        limiter.update({"rate": 4})
        assert limiter.describe()["burst"] == 4
        assert _admit_all(limiter, 5) == [True] * 4 + [False]

    def test_removing_the_limit_makes_the_limiter_inactive(self) -> None:
        """rate=None ends throttling; with nothing left to enforce or record the limiter is inactive."""
        clock = FakeClock()
        limiter = _limiter(clock, rate=1, burst=1)
        assert _admit_all(limiter, 2) == [True, False]
        limiter.update({"rate": None})
        described = limiter.describe()
        assert not limiter.active
        assert (described["rate"], described["burst"], described["active"]) == (None, None, False)

    def test_a_new_per_datamart_limit_starts_with_full_buckets(self) -> None:
        """Adding a per-datamart limit mid-run gives each datamart its burst first."""
        clock = FakeClock()
        limiter = _limiter(clock, record=True)
        assert _admit_all(limiter, 10) == [True] * 10
        limiter.update({"per_datamart_rate": 1, "per_datamart_burst": 2})
        assert _admit_all(limiter, 3) == [True, True, False]

    def test_reset_restores_the_startup_limits_and_clears_the_counters(self) -> None:
        """reset(): startup settings, full buckets, zero counters."""
        clock = FakeClock()
        limiter = _limiter(clock, rate=1, burst=2)
        _admit_all(limiter, 3)
        limiter.update({"rate": 100})
        limiter.reset()
        described = limiter.describe()
        assert (described["rate"], described["admitted"], described["throttled"], described["datamarts"]) == (
            1.0,
            0,
            0,
            {},
        )
        assert _admit_all(limiter, 3) == [True, True, False]


class TestInactive:
    def test_no_limit_means_inactive_and_nothing_counted(self) -> None:
        """The default settings enforce and record nothing: the API skips the limiter entirely."""
        limiter = RateLimiter(RateLimitSettings(), clock=FakeClock())
        assert not limiter.active
        assert limiter.arrivals(10, 1)["complete"] is False


class TestArrivals:
    def test_buckets_count_admitted_and_throttled_arrivals(self) -> None:
        """Arrivals land in the bucket of their time, oldest bucket first, admitted and throttled apart."""
        clock = FakeClock(now=100.0)
        limiter = _limiter(clock, rate=2, burst=2)
        clock.advance(0.05)
        _admit_all(limiter, 3)  # 2 admitted, 1 throttled in the first 0.1 s
        clock.advance(0.2)
        _admit_all(limiter, 1)  # 0.4 token: throttled, in the third bucket
        clock.advance(0.7)
        _admit_all(limiter, 1)  # 1.8 tokens: admitted, in the last bucket
        clock.advance(0.05)
        found = limiter.arrivals(window_s=1.0, bucket_s=0.1)
        assert found["admitted"] == [2, 0, 0, 0, 0, 0, 0, 0, 0, 1]
        assert found["throttled"] == [1, 0, 1, 0, 0, 0, 0, 0, 0, 0]
        assert found["complete"] is True
        assert (found["now_s"], found["start_s"]) == (pytest.approx(101.0), pytest.approx(100.0))

    def test_a_window_longer_than_the_recording_is_incomplete(self) -> None:
        """Recording that started inside the window, or a ring that dropped arrivals of it, is flagged."""
        clock = FakeClock()
        limiter = _limiter(clock, record=True, arrivals_kept=3)
        clock.advance(1.0)
        _admit_all(limiter, 2)
        assert limiter.arrivals(window_s=5, bucket_s=1)["complete"] is False
        assert limiter.arrivals(window_s=1, bucket_s=1)["complete"] is True
        _admit_all(limiter, 2)  # 4 arrivals in a ring of 3
        found = limiter.arrivals(window_s=1, bucket_s=1)
        assert (found["admitted"], found["complete"]) == ([3], False)

    def test_recording_without_a_limit_admits_everything(self) -> None:
        """record=true counts and records arrivals but throttles nothing."""
        clock = FakeClock()
        limiter = _limiter(clock, record=True)
        assert _admit_all(limiter, 1000) == [True] * 1000
        assert limiter.describe()["admitted"] == 1000

    def test_resizing_the_rings_keeps_the_newest(self) -> None:
        """A smaller `arrivals_kept` keeps the most recent arrivals."""
        clock = FakeClock()
        limiter = _limiter(clock, record=True)
        clock.advance(1.0)
        _admit_all(limiter, 10)
        limiter.update({"arrivals_kept": 4})
        assert limiter.arrivals(window_s=1, bucket_s=1)["admitted"] == [4]
