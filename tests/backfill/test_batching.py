"""Batches per (datamart, document type), closed by record count or by body size."""

from __future__ import annotations

from worker.backfill.batching import Batcher
from worker.backfill.lines import Line
from worker.backfill.source import SourceRecord


def _record(offset: int) -> SourceRecord:
    return SourceRecord("t", 0, offset, None, b"{}", [])


class TestBatcher:
    def test_lines_of_different_datamarts_and_types_never_share_a_batch(self) -> None:
        """Each (datamart, type) pair has its own batch."""
        batcher = Batcher(max_records=10, max_bytes=10_000)
        for offset, (datamart, kind) in enumerate(
            [("1", "USER_ACTIVITY"), ("2", "USER_ACTIVITY"), ("1", "USER_CHOICE")]
        ):
            assert batcher.add(Line(datamart, kind, b"{}"), _record(offset)) == []  # type: ignore[arg-type]
        batches = batcher.drain()
        assert sorted((b.datamart_id, b.document_type, len(b.lines)) for b in batches) == [
            ("1", "USER_ACTIVITY", 1),
            ("1", "USER_CHOICE", 1),
            ("2", "USER_ACTIVITY", 1),
        ]

    def test_a_batch_closes_at_the_record_count(self) -> None:
        """The max_records-th line closes its batch; the next one opens a new batch."""
        batcher = Batcher(max_records=3, max_bytes=10_000)
        closed = [b for offset in range(7) for b in batcher.add(Line("1", "USER_ACTIVITY", b"{}"), _record(offset))]
        assert [len(b.lines) for b in closed] == [3, 3]
        assert [r.offset for r in closed[1].records] == [3, 4, 5]
        assert batcher.held() == 1

    def test_a_batch_never_exceeds_the_byte_limit(self) -> None:
        """A line that would push the body past max_bytes closes the batch before it; the body counts newlines."""
        batcher = Batcher(max_records=100, max_bytes=25)
        closed = [b for offset in range(5) for b in batcher.add(Line("1", "USER_ACTIVITY", b"x" * 9), _record(offset))]
        assert closed
        assert all(len(b.body()) <= 25 for b in closed + batcher.drain())
        assert closed[0].body() == b"x" * 9 + b"\n" + b"x" * 9 + b"\n"
