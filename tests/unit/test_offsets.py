"""PartitionOffsets: out-of-order completion in, the highest contiguous committable offset out."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from worker.offsets import PartitionOffsets


def tracking(*offsets: int) -> PartitionOffsets:
    """A tracker that has handed out `offsets`, in that order."""
    tracker = PartitionOffsets()
    for offset in offsets:
        tracker.track(offset)
    return tracker


def expected_committable(tracked: list[int], completed: set[int]) -> int | None:
    """The reference rule: one past the last offset of the longest fully completed prefix, None if empty."""
    committable = None
    for offset in tracked:
        if offset not in completed:
            break
        committable = offset + 1
    return committable


class TestPartitionOffsets:
    def test_starts_with_nothing_to_commit(self) -> None:
        """A fresh tracker has no committable offset and nothing in flight."""
        tracker = PartitionOffsets()
        assert tracker.committable is None
        assert tracker.in_flight == 0

    def test_in_order_completion_advances_one_by_one(self) -> None:
        """Completing offsets in order releases each one: the committable offset is the next to read."""
        tracker = tracking(0, 1, 2)
        assert [tracker.complete(0), tracker.complete(1), tracker.complete(2)] == [1, 2, 3]
        assert tracker.committable == 3
        assert tracker.in_flight == 0

    def test_out_of_order_completion_waits_for_the_oldest(self) -> None:
        """Later offsets finishing first release nothing until the oldest finishes, then all at once."""
        tracker = tracking(5, 6, 7)
        assert tracker.complete(7) is None
        assert tracker.complete(6) is None
        assert tracker.committable is None
        assert tracker.in_flight == 3
        assert tracker.complete(5) == 8
        assert tracker.in_flight == 0

    def test_committable_stops_at_the_first_incomplete_offset(self) -> None:
        """Completions after an unfinished offset are held back; only the contiguous prefix is released."""
        tracker = tracking(0, 1, 2, 3)
        tracker.complete(0)
        tracker.complete(2)
        tracker.complete(3)
        assert tracker.committable == 1
        assert tracker.in_flight == 3  # 1 is pending; 2 and 3 wait behind it
        assert tracker.complete(1) == 4

    def test_gaps_between_offsets_are_fine(self) -> None:
        """Offsets missing from the partition (compaction, transaction markers) do not block the commit."""
        tracker = tracking(10, 12, 15)
        assert tracker.complete(10) == 11
        assert tracker.complete(15) is None
        assert tracker.complete(12) == 16

    def test_returns_none_when_a_completion_does_not_advance(self) -> None:
        """`complete` returns the new offset only when it moved; the property keeps the last value."""
        tracker = tracking(0, 1, 2)
        tracker.complete(0)
        assert tracker.complete(2) is None
        assert tracker.committable == 1

    def test_tracking_continues_after_a_release(self) -> None:
        """New offsets tracked after everything was released are handled like the first ones."""
        tracker = tracking(0)
        tracker.complete(0)
        tracker.track(1)
        tracker.track(4)
        assert tracker.complete(4) is None
        assert tracker.complete(1) == 5

    def test_refuses_a_double_completion(self) -> None:
        """Completing an offset twice is an error, whether or not it was already released."""
        tracker = tracking(0, 1)
        tracker.complete(1)
        with pytest.raises(ValueError, match="not in flight"):
            tracker.complete(1)
        tracker.complete(0)
        with pytest.raises(ValueError, match="not in flight"):
            tracker.complete(0)

    @pytest.mark.parametrize("offset", [3, 0, -1, 100])
    def test_refuses_an_offset_that_was_never_tracked(self, offset: int) -> None:
        """Completing an offset that was not handed out (in a gap, or outside the range) is an error."""
        tracker = tracking(1, 2, 4)
        with pytest.raises(ValueError, match="not in flight"):
            tracker.complete(offset)
        assert tracker.committable is None

    def test_refuses_completion_on_an_empty_tracker(self) -> None:
        """With nothing tracked, any completion is an error."""
        with pytest.raises(ValueError, match="not in flight"):
            PartitionOffsets().complete(0)

    @pytest.mark.parametrize("offset", [7, 6])
    def test_refuses_a_non_increasing_track(self, offset: int) -> None:
        """Tracking an offset equal to or below the last tracked one is an error."""
        tracker = tracking(5, 7)
        with pytest.raises(ValueError, match="must increase"):
            tracker.track(offset)

    def test_refuses_tracking_below_the_committable_offset(self) -> None:
        """Once offsets are released, tracking an older offset again is an error (it was committed)."""
        tracker = tracking(5)
        tracker.complete(5)
        with pytest.raises(ValueError, match="below the committable offset 6"):
            tracker.track(5)
        with pytest.raises(ValueError, match="below the committable offset 6"):
            tracker.track(2)

    @settings(max_examples=150, deadline=None)
    @given(
        st.lists(st.integers(min_value=0, max_value=3), min_size=1, max_size=30).flatmap(
            lambda gaps: st.tuples(st.just(gaps), st.permutations(range(len(gaps))))
        )
    )
    def test_any_completion_order_commits_only_the_contiguous_prefix(
        self, gaps_and_order: tuple[list[int], list[int]]
    ) -> None:
        """For any permutation of completions, committable is one past the longest completed prefix."""
        gaps, order = gaps_and_order
        tracked = []
        offset = -1
        for gap in gaps:
            offset += 1 + gap
            tracked.append(offset)
        tracker = tracking(*tracked)
        completed: set[int] = set()
        for index in order:
            tracker.complete(tracked[index])
            completed.add(tracked[index])
            assert tracker.committable == expected_committable(tracked, completed)
        assert tracker.committable == tracked[-1] + 1
        assert tracker.in_flight == 0


class PartitionOffsetsMachine(RuleBasedStateMachine):
    """Interleaves tracking (with gaps) and completions in any order, against the reference rule."""

    def __init__(self) -> None:
        super().__init__()
        self.tracker = PartitionOffsets()
        self.tracked: list[int] = []
        self.completed: set[int] = set()
        self.next_offset = 0

    def pending(self) -> list[int]:
        return [offset for offset in self.tracked if offset not in self.completed]

    @rule(gap=st.integers(min_value=0, max_value=3))
    def track(self, gap: int) -> None:
        """Hand out the next offset, possibly after a gap."""
        offset = self.next_offset + gap
        self.tracker.track(offset)
        self.tracked.append(offset)
        self.next_offset = offset + 1

    @precondition(lambda self: bool(self.pending()))
    @rule(data=st.data())
    def complete(self, data: st.DataObject) -> None:
        """Finish any in-flight offset; the return value says whether the commit point moved."""
        offset = data.draw(st.sampled_from(self.pending()))
        before = self.tracker.committable
        returned = self.tracker.complete(offset)
        self.completed.add(offset)
        after = expected_committable(self.tracked, self.completed)
        assert returned == (after if after != before else None)

    @precondition(lambda self: bool(self.completed))
    @rule(data=st.data())
    def complete_again(self, data: st.DataObject) -> None:
        """Finishing an offset twice is refused and changes nothing."""
        offset = data.draw(st.sampled_from(sorted(self.completed)))
        with pytest.raises(ValueError, match="not in flight"):
            self.tracker.complete(offset)

    @invariant()
    def committable_is_one_past_the_contiguous_prefix(self) -> None:
        """The commit point is always one past the longest completed prefix."""
        assert self.tracker.committable == expected_committable(self.tracked, self.completed)

    @invariant()
    def never_skips_an_incomplete_offset(self) -> None:
        """Every tracked offset below the commit point is completed."""
        committable = self.tracker.committable
        if committable is not None:
            assert all(offset in self.completed for offset in self.tracked if offset < committable)

    @invariant()
    def in_flight_counts_everything_not_released(self) -> None:
        """In flight is every tracked offset at or above the commit point."""
        committable = self.tracker.committable
        released = sum(1 for offset in self.tracked if committable is not None and offset < committable)
        assert self.tracker.in_flight == len(self.tracked) - released


TestPartitionOffsetsMachine = PartitionOffsetsMachine.TestCase
TestPartitionOffsetsMachine.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)
