"""Lines grouped into executions: one open batch per (datamart, document type), closed by count or size.

A batch holds its records until its execution ends, so a rejected line can be dead-lettered with the record it came
from. `max_bytes` counts the NDJSON body (lines and their newlines); the documentation asks for files of at most
100 MB [DOC /data-ingestion/bulk-processing], and every open batch is held in memory, so the default is lower.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from worker.backfill.lines import DocumentType, Line
from worker.backfill.source import SourceRecord

__all__ = ["Batch", "Batcher"]


@dataclass(slots=True)
class Batch:
    """The lines of one execution to be, with the record of each line (same index)."""

    datamart_id: str
    document_type: DocumentType
    lines: list[bytes] = field(default_factory=list)
    records: list[SourceRecord] = field(default_factory=list)
    size: int = 0

    def body(self) -> bytes:
        """The execution's NDJSON body."""
        return b"\n".join(self.lines) + b"\n"


class Batcher:
    """Adds lines to their batch and hands back the batches that are full."""

    def __init__(self, max_records: int, max_bytes: int) -> None:
        self._max_records = max_records
        self._max_bytes = max_bytes
        self._open: dict[tuple[str, DocumentType], Batch] = {}

    def add(self, line: Line, record: SourceRecord) -> list[Batch]:
        """Add one line; return the batches this closed (the one that had no room for it, and/or a full one)."""
        key = (line.datamart_id, line.document_type)
        closed: list[Batch] = []
        needed = len(line.data) + 1
        batch = self._open.get(key)
        if batch is not None and batch.size + needed > self._max_bytes:
            closed.append(self._open.pop(key))
        batch = self._open.get(key)
        if batch is None:
            batch = self._open[key] = Batch(line.datamart_id, line.document_type)
        batch.lines.append(line.data)
        batch.records.append(record)
        batch.size += needed
        if len(batch.lines) >= self._max_records or batch.size >= self._max_bytes:
            closed.append(self._open.pop(key))
        return closed

    def drain(self) -> list[Batch]:
        """Close every open batch (end of the source, or too many done records held back)."""
        batches = list(self._open.values())
        self._open.clear()
        return batches

    def held(self) -> int:
        """Records in open batches."""
        return sum(len(batch.lines) for batch in self._open.values())
