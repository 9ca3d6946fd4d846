"""DeadLetterRateGuard: trip on a high dead-letter share (after enough samples) or a long dead-letter run."""

from __future__ import annotations

from collections import deque

from hypothesis import given, settings
from hypothesis import strategies as st

from worker.config import DlqGuardSettings
from worker.guard import DeadLetterRateGuard

DEAD, DELIVERED = True, False


def guard(**overrides: float) -> DeadLetterRateGuard:
    """A guard with small numbers; the consecutive limit is out of reach unless a test lowers it."""
    values: dict[str, float] = {"window": 10, "max_ratio": 0.5, "min_samples": 4, "max_consecutive": 1000}
    values.update(overrides)
    return DeadLetterRateGuard(DlqGuardSettings(**values))  # type: ignore[arg-type]


def feed(rate_guard: DeadLetterRateGuard, outcomes: list[bool]) -> list[bool]:
    """Record each outcome; return what each `record` call answered."""
    return [rate_guard.record(outcome) for outcome in outcomes]


class TestRatioLimit:
    def test_does_not_trip_before_min_samples(self) -> None:
        """Even an all-dead history is not judged until min_samples outcomes were seen."""
        rate_guard = guard()
        assert feed(rate_guard, [DEAD] * 3) == [False, False, False]
        assert not rate_guard.tripped

    def test_trips_at_min_samples_when_over_the_ratio(self) -> None:
        """The first outcome that reaches min_samples with too large a dead share trips the guard."""
        rate_guard = guard()
        assert feed(rate_guard, [DEAD] * 4) == [False, False, False, True]
        assert rate_guard.tripped

    def test_a_share_equal_to_the_ratio_does_not_trip(self) -> None:
        """The limit is strict: exactly max_ratio dead is still acceptable."""
        rate_guard = guard()
        feed(rate_guard, [DEAD, DELIVERED, DEAD, DELIVERED])
        assert not rate_guard.tripped
        assert rate_guard.record(DEAD)

    def test_mostly_delivered_traffic_never_trips(self) -> None:
        """A steady one-in-three dead-letter share stays under a 0.5 limit for as long as it lasts."""
        rate_guard = guard()
        assert not any(feed(rate_guard, [DEAD, DELIVERED, DELIVERED] * 20))

    def test_old_dead_letters_slide_out_of_the_window(self) -> None:
        """Only the last `window` outcomes count: an old burst no longer weighs once delivered ones replace it."""
        rate_guard = guard(window=4, min_samples=4)
        assert feed(rate_guard, [DEAD, DEAD, DEAD, DELIVERED])[-1]  # 3 of 4
        assert feed(rate_guard, [DELIVERED] * 3) == [False, False, False]  # 2 of 4 (not over 0.5), 1, 0
        # The window is now all delivered: one dead letter makes a 1/4 share, not (3 + 1)/4.
        assert not rate_guard.record(DEAD)
        assert not rate_guard.record(DEAD)
        assert rate_guard.record(DEAD)  # 3 of the last 4


class TestConsecutiveLimit:
    def test_trips_on_a_run_of_dead_letters(self) -> None:
        """max_consecutive dead letters in a row trip the guard even before min_samples."""
        rate_guard = guard(max_consecutive=3, min_samples=100, window=200)
        assert feed(rate_guard, [DEAD, DEAD, DEAD]) == [False, False, True]

    def test_a_delivery_breaks_the_run(self) -> None:
        """One delivered message resets the run, so interleaved dead letters do not trip it."""
        rate_guard = guard(max_consecutive=3, min_samples=100, window=200)
        assert not any(feed(rate_guard, [DEAD, DEAD, DELIVERED] * 10))

    def test_a_run_longer_than_the_window_still_counts(self) -> None:
        """The run is counted over the whole stream, not only the window."""
        rate_guard = guard(window=2, max_consecutive=5, min_samples=100)
        assert feed(rate_guard, [DEAD] * 5)[-1]


class TestReset:
    def test_reset_clears_a_tripped_guard(self) -> None:
        """After reset the guard is no longer tripped."""
        rate_guard = guard()
        feed(rate_guard, [DEAD] * 4)
        rate_guard.reset()
        assert not rate_guard.tripped

    def test_reset_forgets_the_history(self) -> None:
        """After reset, min_samples and the run start from zero again."""
        rate_guard = guard(max_consecutive=5)
        feed(rate_guard, [DEAD] * 4)
        rate_guard.reset()
        assert feed(rate_guard, [DEAD] * 3) == [False, False, False]
        assert rate_guard.record(DEAD)  # four samples again, all dead


class TestAgainstReference:
    @settings(max_examples=150, deadline=None)
    @given(
        outcomes=st.lists(st.booleans(), max_size=60),
        window=st.integers(min_value=1, max_value=12),
        min_samples=st.integers(min_value=1, max_value=12),
        max_consecutive=st.integers(min_value=1, max_value=15),
        max_ratio=st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0]),
    )
    def test_matches_the_windowed_definition(
        self, outcomes: list[bool], window: int, min_samples: int, max_consecutive: int, max_ratio: float
    ) -> None:
        """After every outcome, tripped equals the definition computed afresh from the recorded history."""
        rate_guard = guard(window=window, min_samples=min_samples, max_consecutive=max_consecutive, max_ratio=max_ratio)
        recent: deque[bool] = deque(maxlen=window)
        run = 0
        for outcome in outcomes:
            recent.append(outcome)
            run = run + 1 if outcome else 0
            by_ratio = len(recent) >= min_samples and sum(recent) / len(recent) > max_ratio
            assert rate_guard.record(outcome) == (run >= max_consecutive or by_ratio)
