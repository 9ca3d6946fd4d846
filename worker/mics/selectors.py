"""User point selectors and the one function that turns any value into a single, inert path segment.

A value taken from a message must never change which resource, host or query the worker addresses.
:func:`encode_segment` percent-encodes every character outside ``A-Z a-z 0-9 _ ~ -`` (dots included,
so ``.`` and ``..`` can never act as dot-segments), which makes ``/ ? # % = , \\r \\n`` and all of
unicode inert. Selector forms follow the mediarithmics user point API::

    <UUID>                                    UserPointUuid
    user_point_id=<v>                         UserPointId
    user_agent_id=<v>                         UserAgentId      e.g. vec:289388396, mob:ios:raw:<IDFA>
    compartment_id=<c>,user_account_id=<u>    UserAccount
    email_hash=<v>                            EmailHash
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote

# The canonical, hyphenated textual form only: uuid.UUID also accepts braces, "urn:uuid:" and bare hex.
# Characters quote() never encodes, minus ".": a value made only of these is already one inert segment.
_UNRESERVED_ONLY = re.compile(r"[A-Za-z0-9_~-]+")
_UUID_TEXT = re.compile(r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}")


def check_id(value: object, what: str) -> str | int:
    """Return ``value`` as a usable id (a non-empty str or a non-negative int), else raise ValueError.

    An integral float (``1e3``, ``1.0``: JSON numbers the schemas accept as integers) is the integer it denotes,
    so every id field treats it the same way: ``1.0`` and ``1`` name the same resource. An empty segment would
    turn ``a/<id>/b`` into ``a//b``, which some proxies collapse into ``a/b``.
    """
    if isinstance(value, str):
        if value:
            return value
    elif isinstance(value, int) and not isinstance(value, bool):
        if value >= 0:
            return value
    elif isinstance(value, float) and math.isfinite(value) and value.is_integer() and value >= 0:
        return int(value)
    raise ValueError(f"{what} must be a non-empty string or a non-negative integer")


def id_text(value: object, what: str = "an id") -> str:
    """An id as its text in a URL or a comparison: ``1.0``, ``1`` and ``"1"`` are all ``"1"``."""
    return str(check_id(value, what))


def encode_segment(value: str | int) -> str:
    """Percent-encode ``value`` so that it is exactly one path segment: ``unquote(result) == str(value)``."""
    if type(value) is int and value >= 0:  # digits only; `type is` keeps bool out
        return str(value)
    text = str(check_id(value, "a path value"))
    if _UNRESERVED_ONLY.fullmatch(text):  # the common case, several times cheaper than quote()
        return text
    return quote(text, safe="").replace(".", "%2E")


@dataclass(frozen=True, slots=True)
class UserPointUuid:
    """The bare user point id form: a UUID, sent in canonical lower-case."""

    value: str

    def __post_init__(self) -> None:
        if not isinstance(self.value, str) or not _UUID_TEXT.fullmatch(self.value):
            raise ValueError("a bare user point selector must be a UUID (8-4-4-4-12 hex digits)")
        object.__setattr__(self, "value", str(uuid.UUID(self.value)))

    def path_segment(self) -> str:
        """The selector as one path segment."""
        return self.value


@dataclass(frozen=True, slots=True)
class UserPointId:
    """``user_point_id=<v>``."""

    value: str | int

    def __post_init__(self) -> None:
        object.__setattr__(self, "value", check_id(self.value, "user_point_id"))

    def path_segment(self) -> str:
        """The selector as one path segment."""
        return "user_point_id=" + encode_segment(self.value)


@dataclass(frozen=True, slots=True)
class UserAgentId:
    """``user_agent_id=<v>``, e.g. ``vec:289388396`` or ``mob:ios:raw:<IDFA>``."""

    value: str | int

    def __post_init__(self) -> None:
        object.__setattr__(self, "value", check_id(self.value, "user_agent_id"))

    def path_segment(self) -> str:
        """The selector as one path segment."""
        return "user_agent_id=" + encode_segment(self.value)


@dataclass(frozen=True, slots=True)
class UserAccount:
    """``compartment_id=<c>,user_account_id=<u>``."""

    compartment_id: str | int
    user_account_id: str | int

    def __post_init__(self) -> None:
        object.__setattr__(self, "compartment_id", check_id(self.compartment_id, "compartment_id"))
        object.__setattr__(self, "user_account_id", check_id(self.user_account_id, "user_account_id"))

    def path_segment(self) -> str:
        """The selector as one path segment."""
        return (
            "compartment_id="
            + encode_segment(self.compartment_id)
            + ",user_account_id="
            + encode_segment(self.user_account_id)
        )


@dataclass(frozen=True, slots=True)
class EmailHash:
    """``email_hash=<v>``."""

    value: str | int

    def __post_init__(self) -> None:
        object.__setattr__(self, "value", check_id(self.value, "email_hash"))

    def path_segment(self) -> str:
        """The selector as one path segment."""
        return "email_hash=" + encode_segment(self.value)


UserPointSelector = UserPointUuid | UserPointId | UserAgentId | UserAccount | EmailHash


def selector_from_envelope(value: object) -> UserPointSelector:
    """Build the selector named by an envelope's ``user_point``: a UUID string or an object with one form."""
    if isinstance(value, str):
        return UserPointUuid(value)
    if not isinstance(value, Mapping):
        raise ValueError("user_point must be a UUID string or an object")
    keys = set(value)
    if keys == {"user_point_id"}:
        return UserPointId(value["user_point_id"])
    if keys == {"user_agent_id"}:
        return UserAgentId(value["user_agent_id"])
    if keys == {"compartment_id", "user_account_id"}:
        return UserAccount(value["compartment_id"], value["user_account_id"])
    if keys == {"email_hash"}:
        return EmailHash(value["email_hash"])
    raise ValueError(
        "user_point must have exactly one of the forms user_point_id, user_agent_id, "
        "compartment_id + user_account_id, email_hash"
    )
