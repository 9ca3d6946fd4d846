"""A monotonic clock for unit tests: it moves only when the test moves it, so time-based rules are checked exactly."""

from __future__ import annotations

__all__ = ["FakeClock"]


class FakeClock:
    """Call it for the time (monotonic seconds); set `now` or call `advance` to move it."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
