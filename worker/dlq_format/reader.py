"""A dead-letter record read back, as `dlq inspect` and `dlq replay` see it.

Only the worker's own headers are read as context: the writer (`worker.dlq_format.full`) escapes every source header
under a reserved prefix to `mics.original.<name>`, so `__connect.errors.*` and `mics.dlq.*` on a DLQ record are the
worker's. The replay count is the exception that proves the rule: replay writes `mics.replay.count` on the record it
sends, so when that record fails again the count comes back escaped, as a header the source record carried.
A bare `traceparent` on a DLQ record is the worker's too (its dead-letter span): a replay carries it on, so the
replayed message continues the trace; the source's own trace context is kept escaped and restored only when the
worker wrote none (tracing was off).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from worker.dlq_format.headers import (
    CONNECT_PREFIX,
    ESCAPED_REPLAY_COUNT_HEADER,
    MICS_PREFIX,
    REDUCED_HEADER,
    REPLAY_COUNT_HEADER,
    TRUNCATED_HEADER,
    escape_name,
    is_context_header,
    text_of,
    unescape_name,
)
from worker.kafka import Message
from worker.tracing.propagation import TRACE_HEADERS, TRACEPARENT, trace_id_of

__all__ = ["DeadLetterRecord"]

_DIGITS: Final = re.compile(r"[0-9]{1,18}")


@dataclass(frozen=True, slots=True)
class DeadLetterRecord:
    """A DLQ record with its context headers read once (values as text)."""

    partition: int
    offset: int
    timestamp_ms: int | None
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...]
    context: Mapping[str, str]

    @classmethod
    def from_message(cls, message: Message) -> DeadLetterRecord:
        raw = message.headers() or []
        pairs = raw.items() if isinstance(raw, dict) else raw
        headers = tuple((name, value.encode() if isinstance(value, str) else value) for name, value in pairs)
        context = {name: text_of(value) for name, value in headers if is_context_header(name)}
        timestamp_type, timestamp_ms = message.timestamp()
        return cls(
            partition=message.partition() or 0,
            offset=message.offset() or 0,
            timestamp_ms=timestamp_ms if timestamp_type != 0 else None,  # 0: TIMESTAMP_NOT_AVAILABLE
            key=message.key(),
            value=message.value(),
            headers=headers,
            context=context,
        )

    @property
    def reason(self) -> str:
        return self.context.get(MICS_PREFIX + "reason", "unknown")

    @property
    def source_topic(self) -> str | None:
        return self.context.get(CONNECT_PREFIX + "topic")

    @property
    def source_partition(self) -> int | None:
        return _integer(self.context.get(CONNECT_PREFIX + "partition"))

    @property
    def source_offset(self) -> int | None:
        return _integer(self.context.get(CONNECT_PREFIX + "offset"))

    @property
    def http_status(self) -> str | None:
        return self.context.get(MICS_PREFIX + "http.status")

    @property
    def dead_lettered_at_ms(self) -> int | None:
        """When it was dead-lettered: the `mics.dlq.time` header, else the record's timestamp."""
        at = _integer(self.context.get(MICS_PREFIX + "time"))
        return self.timestamp_ms if at is None else at

    @property
    def reduced(self) -> str | None:
        """What was cut when the DLQ holds only a reduced form of the record (`value=…;key=…;headers=…`), else None.

        A record from a worker that only truncated values (`mics.dlq.value.truncated`, no `mics.dlq.reduced`) reads
        as `value=<size>`.
        """
        if REDUCED_HEADER in self.context:
            return self.context[REDUCED_HEADER]
        if TRUNCATED_HEADER in self.context:
            return f"value={self.context[TRUNCATED_HEADER]}"
        return None

    @property
    def replay_count(self) -> int:
        """Times replayed so far, from the escaped count the source record carried; missing or malformed: 0.

        A bare `mics.replay.count` is read only when no escaped one is there: a DLQ record written before the worker
        escaped reserved source headers carried the count under its own name.
        """
        found: dict[str, bytes | None] = {}
        for name, value in self.headers:
            if name in (ESCAPED_REPLAY_COUNT_HEADER, REPLAY_COUNT_HEADER):
                found[name] = value  # the last one of each name
        raw = found.get(ESCAPED_REPLAY_COUNT_HEADER, found.get(REPLAY_COUNT_HEADER))
        count = _integer(None if raw is None else text_of(raw))
        return 0 if count is None else count

    @property
    def trace_id(self) -> tuple[str, str] | None:
        """(trace id, whose): the worker's `traceparent` ("worker"), else the source record's ("source"), else None."""
        worker = trace_id_of(self.context.get(TRACEPARENT))
        if worker is not None:
            return worker, "worker"
        escaped = escape_name(TRACEPARENT)
        source = [value for name, value in self.headers if name.lower() == escaped]
        found = trace_id_of(source[-1]) if source else None
        return None if found is None else (found, "source")

    def replay_headers(self) -> list[tuple[str, str | bytes | None]]:
        """The source record's headers under their original names, without the context, with the count incremented;
        the worker's trace context replaces the source's, so the replayed message continues the dead letter's trace."""
        worker_trace = any(name in TRACE_HEADERS for name, _ in self.headers)
        kept: list[tuple[str, str | bytes | None]] = []
        for name, value in self.headers:
            if name in TRACE_HEADERS:
                kept.append((name, value))
                continue
            if is_context_header(name):
                continue
            original = unescape_name(name)  # one level: a source `mics.original.x` was kept as `mics.original.mics…`
            if worker_trace and original.lower() in TRACE_HEADERS:
                continue
            if original != REPLAY_COUNT_HEADER:
                kept.append((original, value))
        kept.append((REPLAY_COUNT_HEADER, str(self.replay_count + 1).encode()))
        return kept


def _integer(text: str | None) -> int | None:
    """A non-negative integer of at most 18 ASCII digits, else None (a header is data anyone could have written)."""
    if text is None or _DIGITS.fullmatch(text.strip()) is None:
        return None
    return int(text)
