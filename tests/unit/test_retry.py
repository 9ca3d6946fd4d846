"""RetryPolicy: capped exponential backoff with full jitter, Retry-After as a floor, and the retry budget."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from worker.retry import RetryPolicy

POLICY = RetryPolicy(max_attempts=5, max_elapsed_s=60.0, base_delay_s=0.5, max_delay_s=8.0)


class TestDelay:
    @settings(max_examples=200, deadline=None)
    @given(attempt=st.integers(min_value=1, max_value=200), seed=st.integers())
    def test_stays_within_the_capped_exponential_ceiling(self, attempt: int, seed: int) -> None:
        """The wait after attempt n lies in [0, min(cap, base * 2^(n-1))]."""
        delay = POLICY.delay_s(attempt, None, random.Random(seed))
        assert 0.0 <= delay <= min(POLICY.max_delay_s, POLICY.base_delay_s * 2 ** (attempt - 1))

    def test_ceiling_doubles_until_the_cap(self) -> None:
        """Over many draws, the largest wait per attempt approaches 0.5, 1, 2, 4, then stays at the 8 s cap."""
        rng = random.Random(1234)
        largest = [max(POLICY.delay_s(attempt, None, rng) for _ in range(2000)) for attempt in range(1, 8)]
        for observed, ceiling in zip(largest, [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0], strict=True):
            assert 0.95 * ceiling <= observed <= ceiling

    def test_jitter_spreads_the_waits(self) -> None:
        """Full jitter: waits for the same attempt differ from draw to draw and reach down towards zero."""
        rng = random.Random(7)
        delays = [POLICY.delay_s(4, None, rng) for _ in range(500)]
        assert len(set(delays)) == len(delays)
        assert min(delays) < 0.1 * 4.0

    def test_same_seed_same_waits(self) -> None:
        """The randomness comes only from the given Random, so a seed reproduces the waits."""
        first = [POLICY.delay_s(n, None, random.Random(99)) for n in range(1, 10)]
        second = [POLICY.delay_s(n, None, random.Random(99)) for n in range(1, 10)]
        assert first == second

    @settings(max_examples=200, deadline=None)
    @given(
        attempt=st.integers(min_value=1, max_value=50),
        retry_after=st.floats(min_value=0.0, max_value=3600.0),
        seed=st.integers(),
    )
    def test_retry_after_is_a_floor(self, attempt: int, retry_after: float, seed: int) -> None:
        """The wait is never shorter than Retry-After, and is the jittered wait when that is longer."""
        jittered = POLICY.delay_s(attempt, None, random.Random(seed))
        delay = POLICY.delay_s(attempt, retry_after, random.Random(seed))
        assert delay == max(jittered, retry_after)

    def test_retry_after_beyond_the_cap_is_honoured(self) -> None:
        """A server asking for more than the backoff cap gets exactly what it asked for."""
        assert POLICY.delay_s(1, 120.0, random.Random(0)) == 120.0

    def test_huge_attempt_numbers_do_not_overflow(self) -> None:
        """Attempt numbers far past any real budget still give a wait within the cap."""
        assert 0.0 <= POLICY.delay_s(10_000, None, random.Random(0)) <= POLICY.max_delay_s


class TestBudget:
    def test_allows_while_attempts_and_time_remain(self) -> None:
        """Another attempt is allowed below max_attempts when the wait still ends within max_elapsed_s."""
        assert POLICY.allows(attempts_made=1, elapsed_s=0.0, next_delay_s=1.0)
        assert POLICY.allows(attempts_made=4, elapsed_s=50.0, next_delay_s=10.0)

    def test_refuses_once_max_attempts_were_made(self) -> None:
        """After max_attempts requests no further attempt is allowed, whatever the time left."""
        assert not POLICY.allows(attempts_made=5, elapsed_s=0.0, next_delay_s=0.0)
        assert not POLICY.allows(attempts_made=6, elapsed_s=0.0, next_delay_s=0.0)

    def test_refuses_when_the_wait_would_end_past_the_deadline(self) -> None:
        """An attempt whose wait would end after max_elapsed_s is refused; ending exactly on it is allowed."""
        assert POLICY.allows(attempts_made=1, elapsed_s=59.0, next_delay_s=1.0)
        assert not POLICY.allows(attempts_made=1, elapsed_s=59.0, next_delay_s=1.5)
        assert not POLICY.allows(attempts_made=1, elapsed_s=61.0, next_delay_s=0.0)

    def test_a_single_attempt_policy_never_retries(self) -> None:
        """With max_attempts=1 the first request is also the last."""
        assert not RetryPolicy(max_attempts=1).allows(attempts_made=1, elapsed_s=0.0, next_delay_s=0.0)

    def test_defaults_are_a_valid_budget(self) -> None:
        """The default policy allows a first retry right away."""
        assert RetryPolicy().allows(attempts_made=1, elapsed_s=0.0, next_delay_s=RetryPolicy().base_delay_s)


class TestConstruction:
    @pytest.mark.parametrize(
        "arguments",
        [
            {"max_attempts": 0},
            {"base_delay_s": -0.1},
            {"base_delay_s": 2.0, "max_delay_s": 1.0},
            {"max_elapsed_s": -1.0},
        ],
        ids=["no attempts", "negative base", "cap below base", "negative budget"],
    )
    def test_refuses_an_impossible_policy(self, arguments: dict[str, float]) -> None:
        """A policy with no attempts, a negative delay or budget, or a cap below the base is refused."""
        with pytest.raises(ValueError, match="must"):
            RetryPolicy(**arguments)  # type: ignore[arg-type]

    def test_zero_delays_are_allowed(self) -> None:
        """A policy may retry immediately (base and cap zero): every wait is then zero."""
        policy = RetryPolicy(base_delay_s=0.0, max_delay_s=0.0)
        assert policy.delay_s(3, None, random.Random(0)) == 0.0
