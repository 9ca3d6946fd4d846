"""Outcome classification: every API call ends as one :class:`ApiResult`, never as an exception.

The kinds drive what the pipeline does next: SUCCESS → commit, RETRYABLE → back off and retry
(``Retry-After`` slows the whole route), PERMANENT → dead-letter the message, AUTH → hold the datamart,
HALT → hold the route: its configuration is wrong. Which status is which kind is the table of
:mod:`worker.mics.statuses` (per route, configurable).

The error body is ``{"status": "error", "error": ..., "error_code": ..., "error_id": ...}``. Bodies are
decoded with the standard library: they are small and this is not the cost that matters next to
an HTTP round trip.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Final

from worker.mics.statuses import AUTH_STATUSES, DEFAULT_TABLE, RETRY_STATUSES, OutcomeKind
from worker.mics.transport import TransportError

__all__ = [
    "AUTH_STATUSES",
    "MAX_ERROR_TEXT",
    "MAX_RETRY_AFTER_S",
    "RETRYABLE_STATUSES",
    "ApiResult",
    "OutcomeKind",
    "classify",
    "parse_retry_after",
    "rejected_request",
    "transport_failure",
]

RETRYABLE_STATUSES: Final = RETRY_STATUSES
GENERIC_KINDS: Final = DEFAULT_TABLE.for_route("choice")
"""The row `classify` uses when the caller names none: the PUT routes' (404 permanent, 3xx halt)."""
# An API asking for longer than this is treated as asking for this long; the pipeline re-asks anyway.
MAX_RETRY_AFTER_S: Final = 300.0
# Error texts go into DLQ headers and logs: keep them bounded.
MAX_ERROR_TEXT: Final = 1000

_DELTA_SECONDS = re.compile(r"[0-9]{1,12}(?:\.[0-9]{1,9})?")


@dataclass(frozen=True, slots=True)
class ApiResult:
    """The outcome of one API call; ``status`` is None when no HTTP response arrived."""

    kind: OutcomeKind
    status: int | None
    reason: str
    retry_after_s: float | None
    error_code: str | None
    error_id: str | None
    error_message: str | None
    data: object | None
    elapsed_s: float


def parse_retry_after(value: str, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta-seconds or HTTP-date), in [0, MAX_RETRY_AFTER_S].

    None when the value is neither form. ``now`` (epoch seconds) defaults to the wall clock.
    """
    text = value.strip()
    if _DELTA_SECONDS.fullmatch(text):
        return min(float(text), MAX_RETRY_AFTER_S)
    if len(text) > 64 or not text:
        return None
    try:
        when = parsedate_to_datetime(text)
        if when.tzinfo is None:  # "-0000": UTC, not the machine's local time
            when = when.replace(tzinfo=UTC)
        delay = when.timestamp() - (time.time() if now is None else now)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return min(max(delay, 0.0), MAX_RETRY_AFTER_S)


def _decode_json(body: bytes) -> object | None:
    if not body:
        return None
    try:
        document: object = json.loads(body)
    except (ValueError, RecursionError):
        return None
    return document


def _text(value: object) -> str | None:
    if isinstance(value, str):
        return value[:MAX_ERROR_TEXT]
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def classify(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    elapsed_s: float,
    *,
    keep_data: bool = True,
    kinds: Sequence[OutcomeKind] = GENERIC_KINDS,
) -> ApiResult:
    """Turn one HTTP response into an ApiResult; ``headers`` are keyed in lower case.

    ``kinds`` is the route's row of the status table. ``keep_data=False`` leaves a success body undecoded
    (``data`` None), for callers that never read it.
    """
    if 200 <= status < 300:
        if not keep_data:
            return ApiResult(OutcomeKind.SUCCESS, status, "ok", None, None, None, None, None, elapsed_s)
        document = _decode_json(body)
        data = document.get("data") if isinstance(document, dict) else None
        return ApiResult(OutcomeKind.SUCCESS, status, "ok", None, None, None, None, data, elapsed_s)
    kind = kinds[status] if 0 <= status < len(kinds) else OutcomeKind.PERMANENT
    retry_after = headers.get("retry-after")
    document = _decode_json(body)
    fields = document if isinstance(document, dict) else {}
    return ApiResult(
        kind,
        status,
        f"http_{status}",
        None if retry_after is None else parse_retry_after(retry_after),
        _text(fields.get("error_code")),
        _text(fields.get("error_id")),
        _text(fields.get("error")),
        None,
        elapsed_s,
    )


def transport_failure(error: TransportError, elapsed_s: float) -> ApiResult:
    """A request that got no HTTP response: always retryable, ``reason`` from the error's type."""
    return ApiResult(OutcomeKind.RETRYABLE, None, error.reason, None, None, None, None, None, elapsed_s)


def rejected_request(reason: str) -> ApiResult:
    """A request the client refused to send (a value that cannot form a safe URL): permanent."""
    return ApiResult(OutcomeKind.PERMANENT, None, reason, None, None, None, None, None, 0.0)
