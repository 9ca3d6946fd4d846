"""Which dead-letter records an operator asks for (`--reason`, `--source-topic`, offsets, times) and reading times."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from worker.dlq_format.reader import DeadLetterRecord

__all__ = ["EVERY_RECORD", "Selection", "parse_time_ms"]


@dataclass(frozen=True, slots=True)
class Selection:
    """Which records to act on; every given criterion must hold. Reasons are glob patterns (`http_5*`)."""

    reasons: tuple[str, ...] = ()
    source_topics: frozenset[str] = frozenset()
    source_partitions: frozenset[int] = frozenset()
    offset_from: int | None = None  # source offsets, inclusive
    offset_to: int | None = None
    since_ms: int | None = None  # dead-letter time, since <= t < until
    until_ms: int | None = None

    def matches(self, record: DeadLetterRecord) -> bool:
        if self.reasons and not any(fnmatch.fnmatchcase(record.reason, pattern) for pattern in self.reasons):
            return False
        if self.source_topics and record.source_topic not in self.source_topics:
            return False
        if self.source_partitions and record.source_partition not in self.source_partitions:
            return False
        if not _within(record.source_offset, self.offset_from, None if self.offset_to is None else self.offset_to + 1):
            return False
        return _within(record.dead_lettered_at_ms, self.since_ms, self.until_ms)


EVERY_RECORD: Final = Selection()
"""The selection without criteria."""


def _within(value: int | None, low: int | None, high: int | None) -> bool:
    """`low <= value < high`, each bound optional; an unknown value is outside any bound."""
    if low is None and high is None:
        return True
    if value is None:
        return False
    return (low is None or value >= low) and (high is None or value < high)


def parse_time_ms(text: str) -> int:
    """Epoch milliseconds from digits, or from an ISO 8601 time (UTC when it names no offset)."""
    text = text.strip()
    if text.isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is neither epoch milliseconds nor an ISO 8601 time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)
