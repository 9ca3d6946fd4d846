"""The DLQ record's header names and the rule that keeps a source record's headers apart from the worker's context.

The worker's context is authoritative. A producer may send headers under the reserved prefixes (`__connect.errors.`,
`mics.`) too; those are kept, renamed to `mics.original.<name>`, so no header of the source record can ever be read as
the worker's own context, and `dlq replay` restores the original names. The same holds for the W3C trace context: a
source `traceparent` / `tracestate` (any case) is kept as `mics.original.traceparent`, and a `traceparent` on the DLQ
record is the worker's own (its dead-letter span, when tracing is on), which a replay carries on.
"""

from __future__ import annotations

from typing import Final

from worker.tracing.propagation import TRACE_HEADERS

__all__ = [
    "CONNECT_PREFIX",
    "ESCAPED_PREFIX",
    "ESCAPED_REPLAY_COUNT_HEADER",
    "MICS_PREFIX",
    "REDUCED_HEADER",
    "REPLAY_COUNT_HEADER",
    "RESERVED_PREFIXES",
    "TRUNCATED_HEADER",
    "Headers",
    "escape_name",
    "header_text",
    "is_context_header",
    "text_of",
    "unescape_name",
]

Headers = list[tuple[str, bytes | None]]

CONNECT_PREFIX: Final = "__connect.errors."
MICS_PREFIX: Final = "mics.dlq."
RESERVED_PREFIXES: Final = (CONNECT_PREFIX, "mics.")
"""Header names the worker and its tools write; a source record's headers under them are escaped."""
ESCAPED_PREFIX: Final = "mics.original."
"""A source header under a reserved prefix is kept as `mics.original.<name>` (replay restores `<name>`)."""
TRUNCATED_HEADER: Final = MICS_PREFIX + "value.truncated"
"""Set (to the full size) when only the first bytes of a value too large for the DLQ were dead-lettered."""
REDUCED_HEADER: Final = MICS_PREFIX + "reduced"
"""Set on a record written in the reduced form: which parts were cut, from what size (`value=…;key=…;headers=…`)."""
REPLAY_COUNT_HEADER: Final = "mics.replay.count"
"""How many times a record was replayed: written by replay on the record it sends."""


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


ESCAPED_REPLAY_COUNT_HEADER: Final = escape_name(REPLAY_COUNT_HEADER)
"""The count as a DLQ record carries it when a replayed record failed again (the worker escapes it)."""


def header_text(text: str) -> bytes:
    """UTF-8 bytes of any text: a lone surrogate (an escaped one survives JSON decoding) becomes `\\udXXX`."""
    return text.encode("utf-8", "backslashreplace")


def text_of(value: bytes | None) -> str:
    """A header value (or a preview of data) as text; bytes that are not UTF-8 become U+FFFD."""
    return "" if value is None else value.decode("utf-8", errors="replace")
