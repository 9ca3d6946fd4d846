"""Typed reads of `MICS_WORKER_*` variables that name the variable in every error, and remember what they read.

An `Env` collects problems instead of raising on the first, so one start-up attempt reports every mistake
(`raise_problems`). It records every key it is asked for, whether set or not: the keys no reader asked for are the
unknown variables (`worker.known_variables`). It also records each value's source for `mics-worker config`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from worker.sensitive import MASK, is_secret_variable

__all__ = ["ENV_PREFIX", "MAX_SECONDS", "ConfigError", "Env", "Reading"]

ENV_PREFIX = "MICS_WORKER_"


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names the variable (or every such variable, one a line)."""

    def __init__(self, message: str, problems: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.problems = problems or (message,)


# Durations beyond a day are mistakes, and timers cannot wait for unbounded ones.
MAX_SECONDS = 86_400.0


@dataclass(frozen=True, slots=True)
class Reading:
    """What one variable was read as (a secret as `***`), and from where: `default`, `env` or `file` (one it names)."""

    value: str
    source: str


class Env:
    """Typed reads of `MICS_WORKER_*` variables; a malformed value is a recorded problem and reads as the default."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ
        self.read: set[str] = set()
        self.readings: dict[str, Reading] = {}
        self.problems: list[str] = []
        # A reader stopped early (it raised): `read` is then not all it would ask for, so unknown names prove nothing.
        self.incomplete = False
        self._bad: set[str] = set()

    @property
    def environ(self) -> Mapping[str, str]:
        return self._environ

    def _raw(self, key: str) -> str | None:
        self.read.add(key)
        value = self._environ.get(ENV_PREFIX + key)
        return value.strip() if value is not None and value.strip() else None

    def _got(self, key: str, value: object, default: object) -> None:
        source = "env" if self._raw_present(key) else "default"
        shown = value if source == "env" else default
        text = "" if shown is None else str(shown)
        self.readings[key] = Reading(MASK if text and is_secret_variable(key) else text, source)

    def _raw_present(self, key: str) -> bool:
        value = self._environ.get(ENV_PREFIX + key)
        return value is not None and bool(value.strip())

    def note(self, key: str, value: str, source: str) -> None:
        """Record a reading made outside the typed reads (a file's content, a derived value)."""
        self.read.add(key)
        self.readings[key] = Reading(MASK if value and is_secret_variable(key) else value, source)

    def problem(self, message: str, *keys: str) -> None:
        """Record a problem about the variables `keys` (without the prefix)."""
        self._bad.update(keys)
        self.problems.append(message)

    def cross_problem(self, message: str, *keys: str) -> None:
        """Record a problem between variables, unless one of them has one already (this one would only echo it)."""
        if not self._bad.intersection(keys):
            self.problem(message, *keys)

    def raise_problems(self) -> None:
        """Raise one `ConfigError` listing every recorded problem, if any."""
        if len(self.problems) == 1:
            raise ConfigError(self.problems[0])
        if self.problems:
            listed = "".join(f"\n  - {problem}" for problem in self.problems)
            raise ConfigError(f"{len(self.problems)} configuration problems:{listed}", tuple(self.problems))

    def required(self, key: str) -> str:
        value = self._raw(key)
        self._got(key, value, None)
        if value is None:
            self.problem(f"{ENV_PREFIX}{key} is required", key)
            return ""
        return value

    def text(self, key: str, default: str) -> str:
        value = self._raw(key)
        result = default if value is None else value
        self._got(key, result, default)
        return result

    def text_or_none(self, key: str) -> str | None:
        value = self._raw(key)
        self._got(key, value, None)
        return value

    def csv(self, key: str) -> list[str]:
        value = self._raw(key)
        self._got(key, value, None)
        return [] if value is None else [item.strip() for item in value.split(",") if item.strip()]

    def choice(self, key: str, choices: tuple[str, ...], default: str, *, upper: bool = False) -> str:
        value = self._raw(key)
        self._got(key, value, default)
        if value is None:
            return default
        if upper:
            value = value.upper()
        if value not in choices:
            self.problem(f"{ENV_PREFIX}{key}={value!r} is not one of {', '.join(choices)}", key)
            return default
        return value

    def integer(self, key: str, default: int, *, minimum: int | None = 0, maximum: int | None = None) -> int:
        value = self._raw(key)
        self._got(key, value, default)
        if value is None:
            return default
        try:
            number = int(value)
        except ValueError:
            self.problem(f"{ENV_PREFIX}{key}={value!r} is not an integer", key)
            return default
        return number if self._in_range(key, number, minimum, maximum) else default

    def number(self, key: str, default: float, *, minimum: float = 0.0, maximum: float | None = MAX_SECONDS) -> float:
        value = self._raw(key)
        self._got(key, value, default)
        if value is None:
            return default
        try:
            number = float(value)
        except ValueError:
            self.problem(f"{ENV_PREFIX}{key}={value!r} is not a number", key)
            return default
        if not math.isfinite(number):
            self.problem(f"{ENV_PREFIX}{key} must be a finite number", key)
            return default
        return number if self._in_range(key, number, minimum, maximum) else default

    def _in_range(self, key: str, number: float, minimum: float | None, maximum: float | None) -> bool:
        if minimum is not None and number < minimum:
            self.problem(f"{ENV_PREFIX}{key}={number} is below the minimum {minimum}", key)
            return False
        if maximum is not None and number > maximum:
            self.problem(f"{ENV_PREFIX}{key}={number} is above the maximum {maximum}", key)
            return False
        return True
