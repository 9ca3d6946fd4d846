"""W3C trace context on Kafka records: the header names, and reading a trace id without the SDK (for the tools)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final

__all__ = ["MAX_HEADER_BYTES", "TRACEPARENT", "TRACESTATE", "TRACE_HEADERS", "trace_headers_of", "trace_id_of"]

TRACEPARENT: Final = "traceparent"
TRACESTATE: Final = "tracestate"
TRACE_HEADERS: Final = (TRACEPARENT, TRACESTATE)
MAX_HEADER_BYTES: Final = 1024
"""A longer value is no trace context (W3C: tracestate is at most 32 entries of ~256 characters; kept tight)."""

_TRACEPARENT: Final = re.compile(r"[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}")


def trace_headers_of(headers: Iterable[tuple[str, str | bytes | None]]) -> dict[str, str]:
    """`traceparent` / `tracestate` of a record (names in any case, the last of each, ASCII and bounded), as text."""
    found: dict[str, str] = {}
    for name, value in headers:
        key = name.lower()
        if key not in TRACE_HEADERS or value is None or len(value) > MAX_HEADER_BYTES:
            continue
        try:
            found[key] = value if isinstance(value, str) else value.decode("ascii")
        except UnicodeDecodeError:
            continue
    return found


def trace_id_of(traceparent: str | bytes | None) -> str | None:
    """The trace id of a `traceparent` value (version 00 layout), or None when it is not one (or all zeros)."""
    if traceparent is None:
        return None
    text = traceparent.decode("ascii", "replace") if isinstance(traceparent, bytes) else traceparent
    match = _TRACEPARENT.fullmatch(text.strip())
    if match is None or match.group(1) == "0" * 32:
        return None
    return match.group(1)
