"""The dead-letter-rate guard: a bad deploy should halt the worker, not empty a topic into the DLQ."""

from __future__ import annotations

from collections import deque

from worker.config import DlqGuardSettings

__all__ = ["DeadLetterRateGuard"]


class DeadLetterRateGuard:
    """Watches the last `window` outcomes; trips when too large a share, or too many in a row, were dead-lettered."""

    __slots__ = ("_consecutive", "_dead", "_outcomes", "_settings")

    def __init__(self, settings: DlqGuardSettings) -> None:
        self._settings = settings
        self._outcomes: deque[bool] = deque(maxlen=settings.window)
        self._dead = 0
        self._consecutive = 0

    def record(self, dead_lettered: bool) -> bool:
        """Count one finished message; return True when this outcome makes the guard trip."""
        outcomes = self._outcomes
        if len(outcomes) == outcomes.maxlen and outcomes[0]:
            self._dead -= 1
        outcomes.append(dead_lettered)
        if dead_lettered:
            self._dead += 1
            self._consecutive += 1
        else:
            self._consecutive = 0
        return self.tripped

    @property
    def tripped(self) -> bool:
        """Whether the recent outcomes are over either limit."""
        settings = self._settings
        if self._consecutive >= settings.max_consecutive:
            return True
        samples = len(self._outcomes)
        return samples >= settings.min_samples and self._dead / samples > settings.max_ratio

    def reset(self) -> None:
        """Forget the history (after a cool-down, the worker gives the stream another chance)."""
        self._outcomes.clear()
        self._dead = 0
        self._consecutive = 0
