"""Optional static rate limits, for users who know their quota: a token bucket per route and per datamart.

`MICS_WORKER_RATE_LIMIT` is a comma-separated list of `<scope>:<rate>`, scope `activity`, `profile`, `choice` or
`datamart=<id>`, rate `<number>/s` or `<number>/min` (e.g. `activity:500/s,datamart=1509:100/s`). A request takes
one token from its route's bucket and one from its datamart's. Each bucket holds at most one second's worth of
tokens (at least one), so a quiet spell allows a burst of that size and no more.

The members of `run --processes N` share the budget: each one gets rate/N (the supervisor passes N down as
`MICS_WORKER_PROCESSES`). Separate pods or replicas do not know of each other: split the quota yourself.

Waiters reserve their token in turn (the bucket may go below zero), so they leave spaced 1/rate apart instead of
waking together; a reservation given up (its partition drains) is returned.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

__all__ = ["RateLimits", "TokenBucket", "parse_rate_limits"]

_ROUTES = ("activity", "profile", "choice")
_UNITS = {"s": 1.0, "min": 60.0}


@dataclass(frozen=True, slots=True)
class RateLimits:
    """Requests per second for this member (already divided among the processes), per route and per datamart."""

    routes: Mapping[str, float] = field(default_factory=dict)
    datamarts: Mapping[str, float] = field(default_factory=dict)


def parse_rate_limits(text: str, processes: int = 1) -> RateLimits:
    """Parse the setting's value; each rate is divided by `processes`. ValueError names the bad entry."""
    if processes < 1:
        raise ValueError("the number of processes must be at least 1")
    routes: dict[str, float] = {}
    datamarts: dict[str, float] = {}
    for raw in text.split(","):
        entry = raw.strip()
        if not entry:
            continue
        scope, sep, rate_text = entry.rpartition(":")
        scope = scope.strip()
        if not sep or not scope:
            raise ValueError(f"{entry!r} is not <scope>:<rate>, e.g. activity:500/s or datamart=1509:100/s")
        rate = _rate(entry, rate_text.strip()) / processes
        if scope.startswith("datamart="):
            datamart = scope.removeprefix("datamart=").strip()
            if not datamart:
                raise ValueError(f"{entry!r}: the datamart id is empty")
            target = datamarts
            scope = datamart
        elif scope in _ROUTES:
            target = routes
        else:
            raise ValueError(f"{entry!r}: the scope must be one of {', '.join(_ROUTES)} or datamart=<id>")
        if scope in target:
            raise ValueError(f"{entry!r}: a limit for {scope} is already set")
        target[scope] = rate
    return RateLimits(routes, datamarts)


def _rate(entry: str, text: str) -> float:
    number, slash, unit = text.partition("/")
    try:
        value = float(number)
    except ValueError:
        value = math.nan
    if not slash or unit not in _UNITS or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{entry!r}: the rate must be a positive <number>/s or <number>/min")
    return value / _UNITS[unit]


class TokenBucket:
    """`rate` tokens a second, at most `burst` saved; `reserve` says how long until the caller's token is due."""

    __slots__ = ("_burst", "_clock", "_stamp", "_tokens", "rate")

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0:
            raise ValueError("a rate must be positive")
        self.rate = rate
        self._burst = max(1.0, rate)
        self._tokens = self._burst
        self._clock = clock
        self._stamp = clock()

    def reserve(self) -> float:
        """Take a token: 0 when one is there now, else the seconds until the one reserved is."""
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        self._tokens -= 1.0
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    def give_back(self) -> None:
        """Return a reserved token that was not used."""
        self._tokens = min(self._burst, self._tokens + 1.0)
