"""Dead-letter records: the original message, plus headers that say where it came from and why.

Header names follow Kafka Connect's `__connect.errors.*` where Connect has one (so existing DLQ tooling reads them);
the rest use the documented `mics.dlq.` prefix. Header values are UTF-8 text, whatever the API answered.

The worker's context is authoritative. A producer may send headers under the reserved prefixes (`__connect.errors.`,
`mics.`) too; those are kept, renamed to `mics.original.<name>`, so no header of the source record can ever be read as
the worker's own context, and `dlq replay` restores the original names. The same holds for the W3C trace context: a
source `traceparent` / `tracestate` (any case) is kept as `mics.original.traceparent`, and a `traceparent` on the DLQ
record is the worker's own (its dead-letter span, when tracing is on), which a replay carries on.

A record too large for the DLQ in any part (value, key or headers) is written once more in a *reduced* form whose
size is bounded by construction: value and key cut to their first bytes, the original headers dropped when they are
large, and `mics.dlq.reduced` saying what was cut from what size. The source position headers say where the whole
record still is.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

from worker import __version__
from worker.tracing.propagation import TRACE_HEADERS

__all__ = [
    "CONNECT_PREFIX",
    "ESCAPED_PREFIX",
    "MICS_PREFIX",
    "REDUCED_HEADER",
    "RESERVED_PREFIXES",
    "TRUNCATED_HEADER",
    "DeadLetter",
    "DeadLetterRecord",
    "Headers",
    "context_headers",
    "dead_letter_record",
    "escape_name",
    "header_text",
    "is_context_header",
    "reduced_record",
    "unescape_name",
]

Headers = list[tuple[str, bytes | None]]

CONNECT_PREFIX = "__connect.errors."
MICS_PREFIX = "mics.dlq."
RESERVED_PREFIXES = (CONNECT_PREFIX, "mics.")
"""Header names the worker and its tools write; a source record's headers under them are escaped."""
ESCAPED_PREFIX = "mics.original."
"""A source header under a reserved prefix is kept as `mics.original.<name>` (replay restores `<name>`)."""
TRUNCATED_HEADER = MICS_PREFIX + "value.truncated"
"""Set (to the full size) when only the first bytes of a value too large for the DLQ were dead-lettered."""
REDUCED_HEADER = MICS_PREFIX + "reduced"
"""Set on a record written in the reduced form: which parts were cut, from what size (`value=…;key=…;headers=…`)."""

REDUCED_VALUE_BYTES = 1024
REDUCED_KEY_BYTES = 1024
REDUCED_HEADERS_BYTES = 4096
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
class DeadLetter:
    """Why a message is dead-lettered: a reason from a closed set, a one-line message, and what is known."""

    reason: str  # see README "Dead letters": decode_error, schema_invalid, …, http_<status>, retries_exhausted
    message: str
    stage: str  # decode, validate, route, send
    route: str | None = None
    http_status: int | None = None
    attempts: int = 0
    schema_path: str | None = None
    schema_rule: str | None = None
    schema_errors: str | None = None  # every schema error of the message, one bounded line with their count
    api_error_code: str | None = None
    api_error_id: str | None = None


@dataclass(frozen=True, slots=True)
class DeadLetterRecord:
    """What is produced to the DLQ topic for one message."""

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
) -> DeadLetterRecord:
    """The full record: the source key and value byte for byte, its headers (reserved names escaped), the context
    and the worker's trace context (`traceparent` of its dead-letter span; none when tracing is off)."""
    headers: Headers = [(escape_name(name), _bytes(data)) for name, data in original_headers]
    headers.extend(context_headers(topic, partition, offset, letter))
    headers.extend(trace_headers)
    return DeadLetterRecord(key, value, headers)


def reduced_record(record: DeadLetterRecord) -> DeadLetterRecord:
    """The bounded form of a record the DLQ refused as too large: at most ~8 KiB whatever the source was.

    Value and key keep their first bytes, the source headers are kept only while small, and the context headers
    (bounded text) stay whole; `mics.dlq.reduced` lists each cut part with its original size.
    """
    context = [(name, data) for name, data in record.headers if is_context_header(name)]
    originals = [(name, data) for name, data in record.headers if not is_context_header(name)]
    cuts: list[str] = []
    value, key = record.value, record.key
    if value is not None and len(value) > REDUCED_VALUE_BYTES:
        cuts.append(f"value={len(value)}")
        context.append((TRUNCATED_HEADER, str(len(value)).encode()))
        value = value[:REDUCED_VALUE_BYTES]
    if key is not None and len(key) > REDUCED_KEY_BYTES:
        cuts.append(f"key={len(key)}")
        key = key[:REDUCED_KEY_BYTES]
    header_bytes = sum(len(name) + len(data or b"") for name, data in originals)
    if header_bytes > REDUCED_HEADERS_BYTES:
        cuts.append(f"headers={len(originals)}/{header_bytes}")
        originals = []
    context.append((REDUCED_HEADER, ";".join(cuts).encode() or b"none"))
    return DeadLetterRecord(key, value, [*originals, *context], reduced=True)


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


def header_text(text: str) -> bytes:
    """UTF-8 bytes of any text: a lone surrogate (an escaped one survives JSON decoding) becomes `\\udXXX`."""
    return text.encode("utf-8", "backslashreplace")


def is_context_header(name: str) -> bool:
    """Whether a header was added by a dead-lettering (so readers trust it; a replay strips it, but carries the
    worker's trace context on)."""
    return name.startswith((CONNECT_PREFIX, MICS_PREFIX)) or name in TRACE_HEADERS


def escape_name(name: str) -> str:
    """A source header's name as kept on the DLQ record: reserved names and the trace context's (any case) gain
    the `mics.original.` prefix."""
    if name.startswith(RESERVED_PREFIXES) or name.lower() in TRACE_HEADERS:
        return ESCAPED_PREFIX + name
    return name


def unescape_name(name: str) -> str:
    """The source header's name back from its DLQ form (the inverse of `escape_name`)."""
    return name[len(ESCAPED_PREFIX) :] if name.startswith(ESCAPED_PREFIX) else name


def _bytes(data: str | bytes | None) -> bytes | None:
    return header_text(data) if isinstance(data, str) else data


def _field(text: str | None) -> str | None:
    return None if text is None else _one_line(text, _MAX_FIELD_CHARS)


def _one_line(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
