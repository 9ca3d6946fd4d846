"""Static rate limits: the setting's syntax, the split among processes, and the token bucket's spacing."""

from __future__ import annotations

import pytest

from tests.support.clock import FakeClock
from worker.traffic.ratelimit import RateLimits, TokenBucket, parse_rate_limits


class TestSyntax:
    def test_routes_and_datamarts_per_second_and_per_minute(self) -> None:
        limits = parse_rate_limits(" activity:500/s , datamart=1509:100/s,profile:120/min,")
        assert limits == RateLimits({"activity": 500.0, "profile": 2.0}, {"1509": 100.0})

    def test_processes_share_the_budget(self) -> None:
        """`run --processes 4`: each member takes a quarter of every limit."""
        limits = parse_rate_limits("activity:500/s,datamart=1509:100/s", processes=4)
        assert limits == RateLimits({"activity": 125.0}, {"1509": 25.0})

    def test_empty_means_no_limit(self) -> None:
        assert parse_rate_limits("") == RateLimits()

    @pytest.mark.parametrize(
        ("text", "fragment"),
        [
            ("activity", "is not <scope>:<rate>"),
            (":5/s", "is not <scope>:<rate>"),
            ("search:5/s", "scope must be one of"),
            ("datamart=:5/s", "datamart id is empty"),
            ("activity:5", "positive <number>/s"),
            ("activity:0/s", "positive <number>/s"),
            ("activity:-2/s", "positive <number>/s"),
            ("activity:nan/s", "positive <number>/s"),
            ("activity:5/h", "positive <number>/s"),
            ("activity:5/s,activity:6/s", "already set"),
        ],
    )
    def test_bad_entries_are_refused_naming_them(self, text: str, fragment: str) -> None:
        with pytest.raises(ValueError, match=fragment):
            parse_rate_limits(text)

    def test_processes_must_be_positive(self) -> None:
        with pytest.raises(ValueError, match="at least 1"):
            parse_rate_limits("activity:1/s", processes=0)


class TestBucket:
    def test_a_burst_of_one_second_then_one_token_every_1_over_rate(self) -> None:
        clock = FakeClock()
        bucket = TokenBucket(10.0, clock)
        assert [bucket.reserve() for _ in range(10)] == [0.0] * 10
        delays = [bucket.reserve() for _ in range(5)]
        assert delays == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.5])

    def test_a_returned_reservation_shortens_the_queue(self) -> None:
        clock = FakeClock()
        bucket = TokenBucket(10.0, clock)
        for _ in range(10):
            bucket.reserve()
        assert bucket.reserve() == pytest.approx(0.1)
        bucket.give_back()
        assert bucket.reserve() == pytest.approx(0.1)

    def test_tokens_refill_with_time_up_to_the_burst(self) -> None:
        clock = FakeClock()
        bucket = TokenBucket(2.0, clock)
        bucket.reserve()
        bucket.reserve()
        clock.advance(100.0)
        assert [bucket.reserve() for _ in range(3)] == pytest.approx([0.0, 0.0, 0.5])

    def test_a_slow_rate_bursts_one(self) -> None:
        clock = FakeClock()
        bucket = TokenBucket(1 / 60, clock)
        assert bucket.reserve() == 0.0
        assert bucket.reserve() == pytest.approx(60.0)
