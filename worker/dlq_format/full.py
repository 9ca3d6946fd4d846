"""The full dead-letter record: the source key and value byte for byte, its headers escaped, the worker's context."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

from worker import __version__
from worker.dlq_format.headers import CONNECT_PREFIX, MICS_PREFIX, Headers, escape_name, header_text
from worker.dlq_format.letter import DeadLetter

__all__ = ["OutgoingRecord", "context_headers", "dead_letter_record"]

_MAX_MESSAGE_CHARS = 1000
_MAX_FIELD_CHARS = 256

# Connect records a Java exception class; the worker records the failure kind under a stable class-like name.
_EXCEPTION_CLASS = {
    "decode_error": "worker.DecodeError",
    "schema_invalid": "worker.SchemaInvalid",
    "unroutable": "worker.Unroutable",
    "forbidden_datamart": "worker.ForbiddenDatamart",
    "unsupported_format": "worker.UnsupportedFormat",
    "writer_schema_invalid": "worker.WriterSchemaInvalid",
    "invalid_path_value": "worker.InvalidPathValue",
    "retries_exhausted": "worker.RetriesExhausted",
}


@dataclass(frozen=True, slots=True)
class OutgoingRecord:
    """What is produced to the DLQ topic for one message (full or reduced)."""

    key: bytes | None
    value: bytes | None
    headers: Headers
    reduced: bool = False


def dead_letter_record(
    letter: DeadLetter,
    *,
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes | None,
    original_headers: Iterable[tuple[str, str | bytes | None]],
    trace_headers: Iterable[tuple[str, bytes | None]] = (),
) -> OutgoingRecord:
    """The full record: the source key and value byte for byte, its headers (reserved names escaped), the context
    and the worker's trace context (`traceparent` of its dead-letter span; none when tracing is off)."""
    headers: Headers = [(escape_name(name), _bytes(data)) for name, data in original_headers]
    headers.extend(context_headers(topic, partition, offset, letter))
    headers.extend(trace_headers)
    return OutgoingRecord(key, value, headers)


def context_headers(topic: str, partition: int, offset: int, letter: DeadLetter) -> Headers:
    """The headers appended after the original ones on the DLQ record."""
    exception_class = _EXCEPTION_CLASS.get(letter.reason, "worker.HttpError")
    headers: list[tuple[str, str | None]] = [
        (CONNECT_PREFIX + "topic", topic),
        (CONNECT_PREFIX + "partition", str(partition)),
        (CONNECT_PREFIX + "offset", str(offset)),
        (CONNECT_PREFIX + "stage", letter.stage),
        (CONNECT_PREFIX + "exception.class.name", exception_class),
        (CONNECT_PREFIX + "exception.message", _one_line(letter.message, _MAX_MESSAGE_CHARS)),
        (MICS_PREFIX + "reason", letter.reason),
        (MICS_PREFIX + "route", letter.route),
        (MICS_PREFIX + "http.status", None if letter.http_status is None else str(letter.http_status)),
        (MICS_PREFIX + "attempts", str(letter.attempts)),
        (MICS_PREFIX + "schema.path", _field(letter.schema_path)),
        (MICS_PREFIX + "schema.rule", _field(letter.schema_rule)),
        (
            MICS_PREFIX + "schema.errors",
            None if letter.schema_errors is None else _one_line(letter.schema_errors, _MAX_MESSAGE_CHARS),
        ),
        (MICS_PREFIX + "api.error.code", _field(letter.api_error_code)),
        (MICS_PREFIX + "api.error.id", _field(letter.api_error_id)),
        (MICS_PREFIX + "worker.version", __version__),
        (MICS_PREFIX + "time", str(int(time.time() * 1000))),
    ]
    return [(name, header_text(text)) for name, text in headers if text is not None]


def _bytes(data: str | bytes | None) -> bytes | None:
    return header_text(data) if isinstance(data, str) else data


def _field(text: str | None) -> str | None:
    return None if text is None else _one_line(text, _MAX_FIELD_CHARS)


def _one_line(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
