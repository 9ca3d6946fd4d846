"""Why a message is dead-lettered: what the pipeline, the senders and backfill hand to the DLQ writer."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DeadLetter"]


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
