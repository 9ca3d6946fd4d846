"""Fault injection: the misbehaviour the worker must survive, chosen per request from a seeded RNG.

One uniform draw per API request picks at most one fault, so a given seed and request sequence always
misbehave the same way. The fractions are cumulative slices of [0, 1): reset, hang, 429, 500, 503, in
that order; their sum may not exceed 1. An outage is not random: from the moment it is set, every API
request is answered 503 for `outage_s` seconds. Latency is added to every API request, faulty or not.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields, replace
from enum import Enum


class FaultSettingsError(ValueError):
    """A fault setting is unknown, of the wrong type or out of range."""


class Fault(Enum):
    """What the sandbox does to one API request instead of answering it normally."""

    NONE = "none"
    OUTAGE = "outage"
    RESET = "reset"
    HANG = "hang"
    TOO_MANY_REQUESTS = "429"
    INTERNAL_ERROR = "500"
    UNAVAILABLE = "503"


_FRACTIONS = ("p_reset", "p_hang", "p429", "p500", "p503")
_FAULT_OF_FRACTION = {
    "p_reset": Fault.RESET,
    "p_hang": Fault.HANG,
    "p429": Fault.TOO_MANY_REQUESTS,
    "p500": Fault.INTERNAL_ERROR,
    "p503": Fault.UNAVAILABLE,
}


@dataclass(frozen=True, slots=True)
class FaultSettings:
    """The standing fault configuration (the outage window is an event, kept by FaultInjector)."""

    latency_ms: float = 0.0
    p429: float = 0.0
    retry_after_s: int = 1
    p500: float = 0.0
    p503: float = 0.0
    p_reset: float = 0.0
    p_hang: float = 0.0
    hang_s: float = 30.0

    def __post_init__(self) -> None:
        for name in (*_FRACTIONS, "latency_ms", "hang_s"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise FaultSettingsError(f"{name} must be a finite number >= 0")
        for name in _FRACTIONS:
            if getattr(self, name) > 1:
                raise FaultSettingsError(f"{name} must be a fraction between 0 and 1")
        if sum(getattr(self, name) for name in _FRACTIONS) > 1 + 1e-9:
            raise FaultSettingsError(f"the fractions {', '.join(_FRACTIONS)} must add up to at most 1")
        if self.retry_after_s < 0:
            raise FaultSettingsError("retry_after_s must be an integer >= 0")

    def with_changes(self, changes: Mapping[str, object]) -> FaultSettings:
        """A copy with `changes` applied; every value is type- and range-checked."""
        typed: dict[str, float | int] = {}
        for name, value in changes.items():
            if name not in _SETTING_NAMES:
                raise FaultSettingsError(f"unknown fault setting {name!r}")
            typed[name] = _checked_number(name, value)
        return replace(self, **typed)  # type: ignore[arg-type]  # names and types were checked above


_SETTING_NAMES = frozenset(f.name for f in fields(FaultSettings))


def _checked_number(name: str, value: object) -> float | int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FaultSettingsError(f"{name} must be a number")
    if name == "retry_after_s":
        if isinstance(value, float) and not value.is_integer():
            raise FaultSettingsError("retry_after_s must be a whole number of seconds")
        return int(value)
    try:
        return float(value)
    except OverflowError:  # an integer too large for a float
        raise FaultSettingsError(f"{name} is out of range") from None


class FaultInjector:
    """Holds the fault settings and the outage window, and decides each API request's fate."""

    def __init__(
        self,
        settings: FaultSettings,
        seed: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._initial = settings
        self._seed = seed
        self._clock = clock
        self._rng = random.Random(seed)
        self._outage_until = 0.0
        self.settings = settings

    @property
    def settings(self) -> FaultSettings:
        """The standing fault settings."""
        return self._settings

    @settings.setter
    def settings(self, settings: FaultSettings) -> None:
        self._settings = settings
        edges: list[tuple[float, Fault]] = []
        edge = 0.0
        for name in _FRACTIONS:
            fraction = getattr(settings, name)
            if fraction > 0:
                edge += fraction
                edges.append((edge, _FAULT_OF_FRACTION[name]))
        self._edges = tuple(edges)  # the cumulative slices of [0, 1), computed once per change

    def update(self, changes: Mapping[str, object]) -> None:
        """Apply a partial update; `outage_s` (re)starts the outage window now (0 ends it)."""
        rest = dict(changes)
        outage = rest.pop("outage_s", None)
        if outage is not None:
            outage_s = _checked_number("outage_s", outage)
            if not math.isfinite(outage_s) or outage_s < 0:
                raise FaultSettingsError("outage_s must be a finite number >= 0")
        settings = self.settings.with_changes(rest)
        self.settings = settings
        if outage is not None:
            self._outage_until = self._clock() + outage_s

    def describe(self) -> dict[str, float | int]:
        """The settings as JSON, with `outage_s` the seconds left in the outage window."""
        remaining = max(0.0, self._outage_until - self._clock())
        return {**asdict(self.settings), "outage_s": round(remaining, 3)}

    def decide(self) -> Fault:
        """The fault for the next API request (one RNG draw per call, outage or not)."""
        draw = self._rng.random()
        if self._outage_until and self._clock() < self._outage_until:
            return Fault.OUTAGE
        for edge, fault in self._edges:
            if draw < edge:
                return fault
        return Fault.NONE

    def reset(self) -> None:
        """Back to the settings and RNG state the injector started with; no outage."""
        self.settings = self._initial
        self._rng = random.Random(self._seed)
        self._outage_until = 0.0
