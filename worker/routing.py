"""From raw Kafka bytes to a request plan: decode, validate, pick the route, check the datamart.

`plan_message` is pure and synchronous (no I/O), so the pipeline, `run --dry-run` and the fuzz tests share it. It
never raises on input: every message ends as a `Job` (what to send) or a `Rejection` (why it goes to the DLQ).

On an `activity` topic a message is an envelope only when `is_envelope` says so: a JSON object with `type` and
`body` and no `$`-prefixed root key. A User Activity's own fields all start with `$`, so a valid bare activity
that also carries custom `type` and `body` fields is still read as an activity.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

from worker import codec
from worker.config import RouteMode, RouteRule
from worker.mics.selectors import UserPointSelector, id_text, selector_from_envelope
from worker.validation import SchemaError, SchemaErrors, Validators

__all__ = ["Job", "Rejection", "Route", "TopicRouter", "is_envelope", "plan_message"]

Route = Literal["activity", "profile", "choice"]
RejectReason = Literal[
    "decode_error", "schema_invalid", "unroutable", "forbidden_datamart", "unsupported_format", "writer_schema_invalid"
]


@dataclass(frozen=True, slots=True)
class Job:
    """One API call to make: the route, the URL's values (already validated) and the JSON body to send."""

    route: Route
    datamart_id: str
    body: bytes
    selector: UserPointSelector | None = None
    compartment_id: str | None = None
    user_account_id: str | None = None
    processing_id: str | None = None


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a message cannot be sent; becomes the DLQ record's reason and context headers."""

    reason: RejectReason
    message: str
    stage: Literal["route", "decode", "validate"]
    route: Route | None = None
    schema_error: SchemaError | None = None
    """The most useful schema error (what the DLQ's path and rule headers carry)."""
    schema_errors: SchemaErrors | None = None
    """Every schema error, bounded, with its count and `summary()`; `schema_errors.first` is `schema_error`."""


def _invalid(errors: SchemaErrors, route: Route | None) -> Rejection:
    """The rejection of a document that failed its schema, carrying the first error and the whole list."""
    return Rejection("schema_invalid", errors.first.message, "validate", route, errors.first, errors)


class TopicRouter:
    """Maps a topic to its route mode: exact names first, then patterns in configuration order; cached per topic."""

    def __init__(self, rules: tuple[RouteRule, ...]) -> None:
        self._exact = {rule.topic: rule.mode for rule in rules if not rule.is_pattern}
        self._patterns = [(re.compile(rule.topic), rule.mode) for rule in rules if rule.is_pattern]
        self.mode_for = lru_cache(maxsize=4096)(self._mode_for)

    def _mode_for(self, topic: str) -> RouteMode | None:
        mode = self._exact.get(topic)
        if mode is not None:
            return mode
        for pattern, pattern_mode in self._patterns:
            if pattern.search(topic):
                return pattern_mode
        return None


def plan_message(
    mode: RouteMode | None,
    value: bytes | None,
    *,
    validators: Validators,
    default_datamart_id: str | None,
    allowed_datamarts: frozenset[str],
    max_message_bytes: int,
) -> Job | Rejection:
    """Decide what one message becomes. `mode` is the topic's route mode (None: the topic has no route)."""
    if mode is None:
        return Rejection("unroutable", "no route is configured for this topic", "route")
    try:
        document = codec.decode(value, max_message_bytes)
    except codec.DecodeError as exc:
        return Rejection("decode_error", str(exc), "decode")
    if mode == "activity" and not is_envelope(document):
        return _plan_bare_activity(document, value, validators, default_datamart_id, allowed_datamarts)
    return _plan_envelope(mode, document, validators, default_datamart_id, allowed_datamarts)


def is_envelope(document: Any) -> bool:
    """Whether a message on an `activity` topic is an envelope: `type` and `body` and no `$`-prefixed root key.

    Every User Activity field starts with `$` (and `$type`, `$session_status`, `$events` are required), while no
    envelope field does, so the rule never reads a valid activity as an envelope, whatever custom keys it carries.
    """
    if not (isinstance(document, dict) and "type" in document and "body" in document):
        return False
    return not any(isinstance(key, str) and key.startswith("$") for key in document)


def _plan_bare_activity(
    document: Any,
    value: bytes | None,
    validators: Validators,
    default_datamart_id: str | None,
    allowed_datamarts: frozenset[str],
) -> Job | Rejection:
    errors = validators.check_all("activity", document)
    if errors is not None:
        return _invalid(errors, "activity")
    datamart = _datamart(None, default_datamart_id, allowed_datamarts)
    if isinstance(datamart, Rejection):
        return datamart
    # The bytes were validated exactly as they are (strict decode), so they are forwarded without re-encoding.
    assert value is not None
    return Job("activity", datamart, value)


def _plan_envelope(  # noqa: PLR0911 - one early return per way an envelope can fail
    mode: RouteMode,
    document: Any,
    validators: Validators,
    default_datamart_id: str | None,
    allowed_datamarts: frozenset[str],
) -> Job | Rejection:
    errors = validators.check_all("envelope", document)
    if errors is not None:
        return _invalid(errors, None)
    route: Route = document["type"]
    if mode not in ("envelope", route):
        message = f"an envelope of type {route!r} on a topic routed to {mode!r}"
        return Rejection("unroutable", message, "route", route)
    body = document["body"]
    errors = validators.check_all(route, body)
    if errors is not None:
        return _invalid(errors.under("$.body"), route)
    datamart = _datamart(document.get("datamart_id"), default_datamart_id, allowed_datamarts, route)
    if isinstance(datamart, Rejection):
        return datamart
    if route == "activity":
        return Job("activity", datamart, codec.encode(body))
    try:
        selector = selector_from_envelope(document["user_point"])
    except ValueError as exc:
        return _invalid(SchemaErrors((SchemaError("$.user_point", "format", str(exc)),), 1), route)
    if route == "profile":
        return Job(
            "profile",
            datamart,
            codec.encode(body),
            selector=selector,
            compartment_id=id_text(document["compartment_id"]),
            user_account_id=id_text(document["user_account_id"]),
        )
    return Job(
        "choice", datamart, codec.encode(body), selector=selector, processing_id=id_text(document["processing_id"])
    )


def _datamart(
    named: object,
    default_datamart_id: str | None,
    allowed_datamarts: frozenset[str],
    route: Route = "activity",
) -> str | Rejection:
    if named is None:
        if default_datamart_id is None:
            return Rejection("forbidden_datamart", "no datamart_id and no default datamart", "route", route)
        return default_datamart_id
    datamart = id_text(named)
    if datamart not in allowed_datamarts:
        return Rejection("forbidden_datamart", "the datamart is not in the allowed list", "route", route)
    return datamart
