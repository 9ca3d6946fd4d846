"""Typed reads of `MICS_WORKER_*` variables whose errors name the variable (used by `config` only)."""

from __future__ import annotations

import math
from collections.abc import Mapping

__all__ = ["ENV_PREFIX", "MAX_SECONDS", "ConfigError", "Env"]

ENV_PREFIX = "MICS_WORKER_"


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


# Durations beyond a day are mistakes, and timers cannot wait for unbounded ones.
MAX_SECONDS = 86_400.0


class Env:
    """Typed reads of `MICS_WORKER_*` variables with errors that name the variable."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def _raw(self, key: str) -> str | None:
        value = self._environ.get(ENV_PREFIX + key)
        return value.strip() if value is not None and value.strip() else None

    def required(self, key: str) -> str:
        value = self._raw(key)
        if value is None:
            raise ConfigError(f"{ENV_PREFIX}{key} is required")
        return value

    def text(self, key: str, default: str) -> str:
        value = self._raw(key)
        return default if value is None else value

    def text_or_none(self, key: str) -> str | None:
        return self._raw(key)

    def csv(self, key: str) -> list[str]:
        value = self._raw(key)
        return [] if value is None else [item.strip() for item in value.split(",") if item.strip()]

    def choice(self, key: str, choices: tuple[str, ...], default: str, *, upper: bool = False) -> str:
        value = self._raw(key)
        if value is None:
            return default
        if upper:
            value = value.upper()
        if value not in choices:
            raise ConfigError(f"{ENV_PREFIX}{key}={value!r} is not one of {', '.join(choices)}")
        return value

    def integer(self, key: str, default: int, *, minimum: int | None = 0, maximum: int | None = None) -> int:
        value = self._raw(key)
        if value is None:
            return default
        try:
            number = int(value)
        except ValueError:
            raise ConfigError(f"{ENV_PREFIX}{key}={value!r} is not an integer") from None
        self._check_range(key, number, minimum, maximum)
        return number

    def number(self, key: str, default: float, *, minimum: float = 0.0, maximum: float | None = MAX_SECONDS) -> float:
        value = self._raw(key)
        if value is None:
            return default
        try:
            number = float(value)
        except ValueError:
            raise ConfigError(f"{ENV_PREFIX}{key}={value!r} is not a number") from None
        if not math.isfinite(number):
            raise ConfigError(f"{ENV_PREFIX}{key} must be a finite number")
        self._check_range(key, number, minimum, maximum)
        return number

    @staticmethod
    def _check_range(key: str, number: float, minimum: float | None, maximum: float | None) -> None:
        if minimum is not None and number < minimum:
            raise ConfigError(f"{ENV_PREFIX}{key}={number} is below the minimum {minimum}")
        if maximum is not None and number > maximum:
            raise ConfigError(f"{ENV_PREFIX}{key}={number} is above the maximum {maximum}")
