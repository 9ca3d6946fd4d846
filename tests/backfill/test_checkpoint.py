"""The checkpoint: done marks with done offsets above them, line positions kept in order, one source per file."""

from __future__ import annotations

from pathlib import Path

import pytest

from worker.backfill.checkpoint import Checkpoint, CheckpointError, PositionSet, decode_lines, encode_lines

P = ("topic-a", 0)
Q = ("topic-a", 1)


class TestPositionSet:
    def test_the_mark_advances_only_over_contiguous_done_offsets(self) -> None:
        """Done offsets above a gap wait above the mark until the gap is done."""
        done = PositionSet({P: 10})
        for offset in (12, 13, 10):
            done.add(P, offset)
        assert done.marks[P] == 11
        assert (P, 12) in done
        assert (P, 11) not in done
        done.add(P, 11)
        assert done.marks[P] == 14
        assert done.held_above() == 0

    def test_a_gap_of_offsets_that_do_not_exist_moves_the_mark_past_it(self) -> None:
        """Compaction, retention or blank lines leave gaps; marking them done keeps the mark moving."""
        done = PositionSet({P: 0})
        done.add(P, 0)
        done.add(P, 9)  # a record beyond the gap, done first
        done.add_range(P, 1, 9)
        assert done.marks[P] == 10
        assert done.held_above() == 0
        done.add_range(P, 20, 25)  # a gap above the mark waits above it
        assert (P, 22) in done
        assert done.marks[P] == 10

    def test_it_survives_a_round_trip_through_json(self) -> None:
        """Marks and the ranges above them come back the same."""
        done = PositionSet({P: 0, Q: 5})
        for offset in (2, 3, 7):
            done.add(P, offset)
        back = PositionSet.from_json(done.to_json())
        assert back.marks == done.marks
        assert back.above == done.above


class TestLines:
    def test_positions_come_back_in_line_order(self) -> None:
        """Interleaved partitions and gaps: line n is still the n-th position."""
        positions = [(P, 4), (P, 5), (Q, 9), (P, 6), (Q, 10), (P, 8)]
        assert decode_lines(encode_lines(positions)) == positions


class TestFile:
    def test_a_saved_checkpoint_loads_with_everything_it_held(self, tmp_path: Path) -> None:
        """Ranges, done offsets, imports, executions and an upload under way are all kept."""
        path = tmp_path / "c.json"
        checkpoint = Checkpoint(path, {"topics": ["topic-a"]}, {P: (0, 100), Q: (5, 6)}, "run")
        checkpoint.done.add(P, 0)
        checkpoint.done.add(P, 3)
        checkpoint.imports["1509|USER_ACTIVITY"] = "12"
        checkpoint.executions["40"] = {"import": "12", "lines": encode_lines([(P, 1)])}
        checkpoint.uploading = {"import": "12", "known": ["40"]}
        checkpoint.save()
        loaded = Checkpoint.load(path, {"topics": ["topic-a"]})
        assert loaded is not None
        assert loaded.ranges == checkpoint.ranges
        assert (P, 3) in loaded.done
        assert loaded.imports == checkpoint.imports
        assert loaded.executions == checkpoint.executions
        assert loaded.uploading == checkpoint.uploading
        assert loaded.remaining() == 100 - 2 + 1
        assert not path.with_name("c.json.tmp").exists()

    def test_a_checkpoint_of_another_source_is_refused(self, tmp_path: Path) -> None:
        """Resuming with other source options would mix two ranges: the file is refused."""
        path = tmp_path / "c.json"
        Checkpoint(path, {"topics": ["topic-a"]}, {P: (0, 1)}, "run").save()
        with pytest.raises(CheckpointError, match="another source"):
            Checkpoint.load(path, {"topics": ["topic-b"]})

    def test_no_file_means_a_new_run(self, tmp_path: Path) -> None:
        """A missing file is not an error: the run starts."""
        assert Checkpoint.load(tmp_path / "none.json", {}) is None
