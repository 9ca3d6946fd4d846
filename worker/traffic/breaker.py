"""A breaker: closed, or open with one probe at a time at an interval that doubles after every failed probe.

The route's circuit (a run of transport errors or 5xx) and a route's halt (an answer saying the configuration is
wrong) are both breakers. While open, callers queue in `wait`. When the interval has passed, the caller at the head
of the queue becomes the probe (the others keep waiting) and its answer decides: `close()` lets everyone through,
`probe_failed()` keeps it open with the interval doubled up to the maximum. Probes go in queue order and a failed
prober queues again at the back, so a few messages the API always refuses cannot keep the probe for themselves while
the messages behind them would succeed. A probe given up before its answer (its partition drains) calls
`probe_released()` and the next caller probes at once. Every wait ends on the caller's turn, on a close, or when its
wake event is set.
"""

from __future__ import annotations

import asyncio
from collections import deque

__all__ = ["Breaker"]


class Breaker:
    """One breaker's state; `is_open` is a plain attribute so the closed case costs one attribute read."""

    __slots__ = ("_due", "_first_s", "_max_s", "_queue", "_timer", "interval_s", "is_open", "probing")

    def __init__(self, first_interval_s: float, max_interval_s: float) -> None:
        if not 0 < first_interval_s <= max_interval_s:
            raise ValueError("probe intervals must satisfy 0 < first <= max")
        self._first_s = first_interval_s
        self._max_s = max_interval_s
        self._queue: deque[asyncio.Future[bool]] = deque()
        self._timer: asyncio.TimerHandle | None = None
        self._due = False  # the probe time came with nobody waiting: the next caller probes
        self.interval_s = first_interval_s
        self.is_open = False
        self.probing = False

    @property
    def waiting(self) -> int:
        return sum(1 for waiter in self._queue if not waiter.done())

    def open(self) -> bool:
        """Open (the first probe one interval from now); False when it already was."""
        if self.is_open:
            return False
        self.is_open = True
        self.probing = False
        self.interval_s = self._first_s
        self._schedule(self.interval_s)
        return True

    def close(self) -> bool:
        """Close and let every waiter through; False when it already was closed."""
        if not self.is_open:
            return False
        self.is_open = self.probing = self._due = False
        self._cancel_timer()
        waiters, self._queue = self._queue, deque()
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(False)
        return True

    def probe_failed(self) -> None:
        """The probe's answer kept it open: the next probe comes after twice the interval (up to the maximum)."""
        if self.is_open:
            self.probing = False
            self.interval_s = min(self._max_s, self.interval_s * 2)
            self._schedule(self.interval_s)

    def probe_released(self) -> None:
        """The probe was given up before its answer: the next caller probes now."""
        if self.is_open and self.probing:
            self.probing = False
            self._schedule(0.0)

    async def wait(self, wake: asyncio.Event) -> bool | None:
        """Wait while open: True when the caller is now the probe, False when closed, None when `wake` came first."""
        if not self.is_open:
            return False
        if wake.is_set():
            return None
        if self._due and not self.probing:
            self._due, self.probing = False, True
            return True
        waiter: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._queue.append(waiter)
        woken = asyncio.ensure_future(_woken(wake))
        try:
            await asyncio.wait({waiter, woken}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            woken.cancel()
            if not waiter.done():
                waiter.cancel()  # skipped when its turn comes
        if waiter.cancelled():
            return None
        probe = waiter.result()
        if probe and wake.is_set():
            self.probe_released()
            return None
        return probe

    def _schedule(self, delay_s: float) -> None:
        self._cancel_timer()
        self._due = False
        self._timer = asyncio.get_running_loop().call_later(delay_s, self._probe_due)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _probe_due(self) -> None:
        self._timer = None
        if not self.is_open or self.probing:
            return
        while self._queue:
            waiter = self._queue.popleft()
            if not waiter.done():
                self.probing = True
                waiter.set_result(True)
                return
        self._due = True


async def _woken(wake: asyncio.Event) -> bool:
    await wake.wait()
    return False
