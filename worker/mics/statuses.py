"""The status table: what each HTTP status means for the message and the route, in one documented place.

| status | class | why |
|---|---|---|
| 2xx | success | delivered (not overridable) |
| 3xx | halt | the client never follows redirects: the base URL or path is wrong |
| 401, 403 | credentials | the datamart's token is refused: hold the datamart (`credentials`) |
| 404 on the activity POST | halt | a collection endpoint that cannot be missing: the base URL or path is wrong |
| 404 on the profile/choice PUT | permanent | the user point may not exist |
| 408, 425, 429, 500, 502, 503, 504, 520-524 | retry | transient (520-524: Cloudflare-style origin errors) |
| 413 | permanent | a body that is too large stays too large |
| any other status | permanent | dead-lettered with its status |

A **halt** never dead-letters: the route (for the datamart that answered) is held until a probe gets an answer that is
no longer a halt. `MICS_WORKER_HTTP_STATUS_CLASSES` overrides rows: comma-separated `[route:]status[-status]=class`,
classes `retry`, `permanent`, `credentials`, `halt`, statuses 100-599 outside 2xx (e.g. `404=permanent,418=retry`,
`activity:404=permanent`, `525-527=retry`). Later entries win; an entry without a route applies to every route.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Final

__all__ = ["CLASS_NAMES", "DEFAULT_TABLE", "ROUTES", "OutcomeKind", "StatusTable", "parse_status_classes"]

ROUTES: Final = ("activity", "profile", "choice")
_LOWEST, _HIGHEST = 100, 599


class OutcomeKind(enum.Enum):
    """What the caller should do with the message."""

    SUCCESS = "success"
    RETRYABLE = "retryable"
    PERMANENT = "permanent"
    AUTH = "auth"
    HALT = "halt"


CLASS_NAMES: Final[Mapping[str, OutcomeKind]] = {
    "retry": OutcomeKind.RETRYABLE,
    "permanent": OutcomeKind.PERMANENT,
    "credentials": OutcomeKind.AUTH,
    "halt": OutcomeKind.HALT,
}
"""The class names an override may use (success is fixed to 2xx)."""

RETRY_STATUSES: Final = frozenset({408, 425, 429, 500, 502, 503, 504, 520, 521, 522, 523, 524})
AUTH_STATUSES: Final = frozenset({401, 403})

Override = tuple[str | None, int, int, OutcomeKind]
"""(route or None for every route, first status, last status, class)."""


def _default(route: str, status: int) -> OutcomeKind:
    if 200 <= status < 300:
        return OutcomeKind.SUCCESS
    if 300 <= status < 400:
        return OutcomeKind.HALT
    if status in AUTH_STATUSES:
        return OutcomeKind.AUTH
    if status in RETRY_STATUSES:
        return OutcomeKind.RETRYABLE
    if status == 404 and route == "activity":
        return OutcomeKind.HALT
    return OutcomeKind.PERMANENT


class StatusTable:
    """One precomputed tuple per route, indexed by status: a lookup on the hot path, no branching."""

    __slots__ = ("_kinds", "overrides")

    def __init__(self, overrides: tuple[Override, ...] = ()) -> None:
        self.overrides = overrides
        self._kinds: dict[str, tuple[OutcomeKind, ...]] = {}
        for route in ROUTES:
            row = [_default(route, status) for status in range(_HIGHEST + 1)]
            for only, first, last, kind in overrides:
                if only is None or only == route:
                    row[first : last + 1] = [kind] * (last - first + 1)
            self._kinds[route] = tuple(row)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StatusTable) and other.overrides == self.overrides

    def __hash__(self) -> int:
        return hash(self.overrides)

    def __repr__(self) -> str:
        return f"StatusTable({self.overrides!r})"

    def for_route(self, route: str) -> tuple[OutcomeKind, ...]:
        """The route's row: `row[status]` for 0 <= status <= 599 (statuses below 100 read as permanent)."""
        return self._kinds[route]

    def kind(self, route: str, status: int) -> OutcomeKind:
        """The class of `status` on `route` (outside 100-599: permanent)."""
        if not _LOWEST <= status <= _HIGHEST:
            return OutcomeKind.PERMANENT
        return self._kinds[route][status]


def parse_status_classes(text: str) -> StatusTable:
    """The table with `[route:]status[-status]=class` overrides applied; ValueError names the bad entry."""
    overrides: list[Override] = []
    for raw in text.split(","):
        entry = raw.strip()
        if not entry:
            continue
        target, sep, class_name = entry.rpartition("=")
        kind = CLASS_NAMES.get(class_name.strip())
        if not sep or kind is None:
            classes = ", ".join(CLASS_NAMES)
            raise ValueError(f"{entry!r} is not [route:]status[-status]=class, class one of {classes}")
        route, colon, statuses = target.strip().rpartition(":")
        if colon and route not in ROUTES:
            raise ValueError(f"{entry!r}: route {route!r} is not one of {', '.join(ROUTES)}")
        first_text, dash, last_text = statuses.strip().partition("-")
        try:
            first = int(first_text)
            last = int(last_text) if dash else first
        except ValueError:
            raise ValueError(f"{entry!r}: {statuses.strip()!r} is not a status or a range of statuses") from None
        if not _LOWEST <= first <= last <= _HIGHEST:
            raise ValueError(f"{entry!r}: statuses must lie within {_LOWEST}-{_HIGHEST}, low to high")
        if first < 300 and last >= 200:
            raise ValueError(f"{entry!r}: 2xx always means success")
        overrides.append((route if colon else None, first, last, kind))
    return StatusTable(tuple(overrides))


DEFAULT_TABLE: Final = StatusTable()
