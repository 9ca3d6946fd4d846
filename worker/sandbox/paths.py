"""Raw request paths → the API resource they name.

The sandbox reads the request target *before* any decoding: it splits the raw path on "/", and a selector
segment on unencoded "," and "=", and only then percent-decodes each value. That is how an encoded "/", "=",
",", "?" or "#" inside an id stays part of the id, and how a client that forgets to encode one is caught
(its request names another resource, or none).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from urllib.parse import unquote_to_bytes

_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_UUID = re.compile(r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}")

#: The selector forms of the documented user point selectors, as their ordered key sequences.
_SELECTOR_FORMS: dict[tuple[str, ...], str] = {
    ("user_point_id",): "user_point_id",
    ("user_agent_id",): "user_agent_id",
    ("email_hash",): "email_hash",
    ("compartment_id", "user_account_id"): "user_account",
}


class UnknownPath(Exception):
    """The path names no API resource: answered 404."""


class MalformedPath(Exception):
    """The path cannot be decoded (bad percent-escape or not UTF-8): answered 400."""


class Route(Enum):
    """The endpoint a request reached; its value is the name used in the sandbox's statistics."""

    ACTIVITY = "activity"
    PROFILE = "profile"
    CHOICE_PUT = "choice_put"
    CHOICE_GET = "choice_get"
    CHOICE_CHANGE_LOG = "choice_change_log"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class UserPointSelector:
    """One decoded user point selector; `form` is "uuid" for the bare UUID form.

    The sandbox treats every distinct selector as its own user point (it does not resolve identifiers
    to a shared user point the way the real datamart does).
    """

    form: str
    values: tuple[tuple[str, str], ...]

    def as_json(self) -> str | dict[str, str]:
        """The selector in the shape of the message envelope's `user_point`: a UUID string or one object."""
        if self.form == "uuid":
            return self.values[0][1]
        return dict(self.values)


@dataclass(frozen=True, slots=True)
class ActivityTarget:
    """`/v1/datamarts/{dm}/user_activities`."""

    datamart_id: str

    def route(self, method: str) -> Route | None:
        """The route for `method`, or None when the resource does not support it."""
        return Route.ACTIVITY if method == "POST" else None


@dataclass(frozen=True, slots=True)
class ProfileTarget:
    """`/v1/datamarts/{dm}/user_points/{selector}/user_profiles/compartment_id={c}/user_account_id={u}`."""

    datamart_id: str
    user_point: UserPointSelector
    compartment_id: str
    user_account_id: str

    def route(self, method: str) -> Route | None:
        """The route for `method`, or None when the resource does not support it."""
        return Route.PROFILE if method == "PUT" else None


@dataclass(frozen=True, slots=True)
class ChoiceTarget:
    """`/v1/datamarts/{dm}/user_points/{selector}/user_choices/processing_id={p}[/change_log]`."""

    datamart_id: str
    user_point: UserPointSelector
    processing_id: str
    change_log: bool

    def route(self, method: str) -> Route | None:
        """The route for `method`, or None when the resource does not support it."""
        if self.change_log:
            return Route.CHOICE_CHANGE_LOG if method == "GET" else None
        return {"PUT": Route.CHOICE_PUT, "GET": Route.CHOICE_GET}.get(method)


Target = ActivityTarget | ProfileTarget | ChoiceTarget


def allowed_methods(target: Target) -> tuple[str, ...]:
    """The methods `target` answers, for a 405's `Allow` header."""
    return tuple(m for m in ("GET", "POST", "PUT") if target.route(m) is not None)


def decode_segment(raw: str) -> str:
    """Percent-decode one raw path value strictly: a stray "%" or bytes that are not UTF-8 are malformed."""
    if "%" not in raw:
        return raw
    if _BAD_ESCAPE.search(raw):
        raise MalformedPath(f"malformed percent-escape in {raw!r}")
    try:
        return unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedPath(f"percent-escapes in {raw!r} are not UTF-8") from exc


def _value(raw: str, what: str) -> str:
    value = decode_segment(raw)
    if not value:
        raise UnknownPath(f"empty {what}")
    return value


def _keyed_value(raw_segment: str, key: str) -> str:
    """The value of a `key=value` segment; an unencoded "=" or "," inside the value is not accepted."""
    pieces = raw_segment.split("=")
    if len(pieces) != 2 or decode_segment(pieces[0]) != key or "," in pieces[1]:
        raise UnknownPath(f"expected one {key}=<value> segment")
    return _value(pieces[1], key)


def parse_selector(raw_segment: str) -> UserPointSelector:
    """Parse a raw user point selector segment into one of the documented forms."""
    if "=" not in raw_segment and "," not in raw_segment:
        candidate = _value(raw_segment, "user point selector")
        if not _UUID.fullmatch(candidate):
            raise UnknownPath("a bare user point selector must be a UUID")
        return UserPointSelector("uuid", (("user_point_id", candidate),))
    pairs: list[tuple[str, str]] = []
    for raw_pair in raw_segment.split(","):
        pieces = raw_pair.split("=")
        if len(pieces) != 2:
            raise UnknownPath("each selector part must be one key=value with its value percent-encoded")
        pairs.append((decode_segment(pieces[0]), _value(pieces[1], "selector value")))
    form = _SELECTOR_FORMS.get(tuple(key for key, _ in pairs))
    if form is None:
        raise UnknownPath("unknown user point selector form")
    return UserPointSelector(form, tuple(pairs))


def parse_target(raw_path: str) -> Target:
    """Map a raw path (no query string) to the resource it names; raise UnknownPath or MalformedPath."""
    segments = raw_path.split("/")
    if len(segments) < 5 or segments[:3] != ["", "v1", "datamarts"]:
        raise UnknownPath("not an API path")
    if any(s in {".", ".."} for s in segments):
        raise UnknownPath("dot segments are resolved by HTTP intermediaries: encode them")
    datamart_id = _value(segments[3], "datamart id")
    rest = segments[4:]
    if rest == ["user_activities"]:
        return ActivityTarget(datamart_id)
    if len(rest) < 4 or rest[0] != "user_points":
        raise UnknownPath("unknown datamart resource")
    user_point = parse_selector(rest[1])
    document = rest[2:]
    if document[0] == "user_profiles" and len(document) == 3:
        return ProfileTarget(
            datamart_id,
            user_point,
            _keyed_value(document[1], "compartment_id"),
            _keyed_value(document[2], "user_account_id"),
        )
    if document[0] == "user_choices" and len(document) in {2, 3}:
        change_log = len(document) == 3
        if change_log and document[2] != "change_log":
            raise UnknownPath("unknown user choice resource")
        return ChoiceTarget(datamart_id, user_point, _keyed_value(document[1], "processing_id"), change_log)
    raise UnknownPath("unknown user point resource")
