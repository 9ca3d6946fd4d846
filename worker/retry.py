"""How long to wait before the next attempt, and when to give up: capped exponential backoff with full jitter."""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["RetryPolicy"]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """A per-message retry budget: `max_attempts` requests within `max_elapsed_s` seconds of the first one."""

    max_attempts: int = 20
    max_elapsed_s: float = 600.0
    base_delay_s: float = 0.2
    max_delay_s: float = 30.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.base_delay_s < 0 or self.max_delay_s < self.base_delay_s or self.max_elapsed_s < 0:
            raise ValueError("retry delays must satisfy 0 <= base_delay_s <= max_delay_s and max_elapsed_s >= 0")

    def delay_s(self, attempt: int, retry_after_s: float | None, rng: random.Random) -> float:
        """The wait after failed attempt number `attempt` (1-based): full jitter, never below Retry-After."""
        ceiling = min(self.max_delay_s, self.base_delay_s * (2 ** min(attempt - 1, 32)))
        delay = rng.uniform(0.0, ceiling)
        if retry_after_s is not None:
            delay = max(delay, retry_after_s)
        return delay

    def allows(self, attempts_made: int, elapsed_s: float, next_delay_s: float) -> bool:
        """Whether one more attempt fits the budget after waiting `next_delay_s`."""
        return attempts_made < self.max_attempts and elapsed_s + next_delay_s <= self.max_elapsed_s
