"""Dead-letter records: the original message byte for byte, plus headers that say where it came from and why.

Header names follow Kafka Connect's `__connect.errors.*` where Connect has one (so existing DLQ tooling reads them);
the rest use the documented `mics.dlq.` prefix. Header values are UTF-8 text.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from worker import __version__

__all__ = [
    "CONNECT_PREFIX",
    "MICS_PREFIX",
    "TRUNCATED_HEADER",
    "DeadLetter",
    "context_headers",
    "is_context_header",
]

CONNECT_PREFIX = "__connect.errors."
MICS_PREFIX = "mics.dlq."
TRUNCATED_HEADER = MICS_PREFIX + "value.truncated"
"""Set (to the full size) when only the first bytes of a value too large for the DLQ were dead-lettered."""
_MAX_MESSAGE_CHARS = 1000

# Connect records a Java exception class; the worker records the failure kind under a stable class-like name.
_EXCEPTION_CLASS = {
    "decode_error": "worker.DecodeError",
    "schema_invalid": "worker.SchemaInvalid",
    "unroutable": "worker.Unroutable",
    "forbidden_datamart": "worker.ForbiddenDatamart",
    "retries_exhausted": "worker.RetriesExhausted",
}


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """Why a message is dead-lettered: a reason from a closed set, a one-line message, and what is known."""

    reason: str  # decode_error, schema_invalid, unroutable, forbidden_datamart, http_<status>, retries_exhausted
    message: str
    stage: str  # decode, validate, route, send
    route: str | None = None
    http_status: int | None = None
    attempts: int = 0
    schema_path: str | None = None
    schema_rule: str | None = None
    api_error_code: str | None = None
    api_error_id: str | None = None


def context_headers(topic: str, partition: int, offset: int, letter: DeadLetter) -> list[tuple[str, bytes]]:
    """The headers appended after the original ones on the DLQ record."""
    exception_class = _EXCEPTION_CLASS.get(letter.reason, "worker.HttpError")
    headers: list[tuple[str, str | None]] = [
        (CONNECT_PREFIX + "topic", topic),
        (CONNECT_PREFIX + "partition", str(partition)),
        (CONNECT_PREFIX + "offset", str(offset)),
        (CONNECT_PREFIX + "stage", letter.stage),
        (CONNECT_PREFIX + "exception.class.name", exception_class),
        (CONNECT_PREFIX + "exception.message", _one_line(letter.message)),
        (MICS_PREFIX + "reason", letter.reason),
        (MICS_PREFIX + "route", letter.route),
        (MICS_PREFIX + "http.status", None if letter.http_status is None else str(letter.http_status)),
        (MICS_PREFIX + "attempts", str(letter.attempts)),
        (MICS_PREFIX + "schema.path", letter.schema_path),
        (MICS_PREFIX + "schema.rule", letter.schema_rule),
        (MICS_PREFIX + "api.error.code", letter.api_error_code),
        (MICS_PREFIX + "api.error.id", letter.api_error_id),
        (MICS_PREFIX + "worker.version", __version__),
        (MICS_PREFIX + "time", str(int(time.time() * 1000))),
    ]
    return [(name, value.encode()) for name, value in headers if value is not None]


def is_context_header(name: str) -> bool:
    """Whether a header was added by a dead-lettering (so a replay strips it)."""
    return name.startswith((CONNECT_PREFIX, MICS_PREFIX))


def _one_line(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= _MAX_MESSAGE_CHARS else flat[: _MAX_MESSAGE_CHARS - 1] + "…"
