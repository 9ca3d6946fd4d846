"""Adaptive concurrency: how many requests one route may have in flight, found from the API's own answers.

An AIMD limit steered by round-trip times, in the spirit of Netflix's concurrency-limits and Envoy's adaptive
concurrency filter:

- the baseline RTT is the minimum seen over the current and the previous window of `BASELINE_WINDOW_S`, so it
  follows an API that became slower within two windows, and one lucky fast answer does not stay the baseline;
- the limit is decided once per interval of about one mean RTT (at least `MIN_INTERVAL_S`): it changes at most once
  per round trip, so one burst of 429s shrinks it once, not once per answer;
- an interval with a 429 or a 503 multiplies it by `THROTTLE_DECREASE`; one whose mean RTT exceeds
  `max(baseline, RTT_FLOOR_S) * tolerance` multiplies it by `LATENCY_DECREASE` (the floor: on a loopback API the
  worker's own event loop adds milliseconds that say nothing about the API); otherwise, if the limit was in use
  (requests in flight reached half of it), it grows by `sqrt(limit)` (at least 1): 20 to 256 in about 23 RTTs;
- it stays within [1, maximum].

On the hot path a free slot costs a comparison and an increment; `observe` a few float operations and one clock read;
nothing allocates and nothing is logged. Waiting for a slot allocates one future. A slot wait ends when a slot is
granted or when `recheck()` is called (the pipeline calls it when partitions start draining): each waiter then looks
at its own wake event and leaves if it is set, so no drain waits for the API to make room.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable

__all__ = ["BASELINE_WINDOW_S", "LATENCY_DECREASE", "MIN_INTERVAL_S", "THROTTLE_DECREASE", "AdaptiveLimit"]

BASELINE_WINDOW_S = 10.0
MIN_INTERVAL_S = 0.01
THROTTLE_DECREASE = 0.7
LATENCY_DECREASE = 0.9
RTT_FLOOR_S = 0.005


class AdaptiveLimit:
    """One route's in-flight limit and the requests waiting for a slot."""

    __slots__ = (
        "_adaptive",
        "_clock",
        "_interval_end",
        "_limit",
        "_maximum",
        "_peak",
        "_previous_min",
        "_rtt_sum",
        "_samples",
        "_throttled",
        "_tolerance",
        "_waiters",
        "_window_end",
        "_window_min",
        "in_flight",
        "limit",
    )

    def __init__(
        self,
        initial: int,
        maximum: int,
        *,
        tolerance: float = 2.0,
        adaptive: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if maximum < 1 or tolerance <= 1.0:
            raise ValueError("the maximum must be at least 1 and the latency tolerance above 1")
        self._adaptive = adaptive
        self._maximum = float(maximum)
        self._limit = float(min(max(1, initial), maximum)) if adaptive else float(maximum)
        self.limit = int(self._limit)
        self._tolerance = tolerance
        self._clock = clock
        self._waiters: deque[asyncio.Future[bool]] = deque()
        self.in_flight = 0
        self._peak = 0
        self._samples = 0
        self._rtt_sum = 0.0
        self._throttled = False
        self._window_min = math.inf
        self._previous_min = math.inf
        now = clock()
        self._window_end = now + BASELINE_WINDOW_S
        self._interval_end = now + MIN_INTERVAL_S

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    async def acquire(self, wake: asyncio.Event) -> bool:
        """Take a slot; False (and no slot) when `wake` is set before one is granted."""
        if self.in_flight < self.limit and not self._waiters:
            self.in_flight += 1
            self._peak = max(self._peak, self.in_flight)
            return True
        loop = asyncio.get_running_loop()
        while not wake.is_set():
            waiter: asyncio.Future[bool] = loop.create_future()
            self._waiters.append(waiter)
            try:
                granted = await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled() and waiter.result():
                    self.release()  # granted, then cancelled before it could be used
                raise
            if granted:
                if wake.is_set():
                    self.release()
                    return False
                return True
        return False

    def release(self) -> None:
        """Give a slot back (after the answer, or unused)."""
        self.in_flight -= 1
        if self._waiters:
            self._grant()

    def recheck(self) -> None:
        """Wake every waiter without a slot, so each looks at its own wake event (drains must not wait here)."""
        waiters, self._waiters = self._waiters, deque()
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(False)

    def _grant(self) -> None:
        while self._waiters and self.in_flight < self.limit:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self.in_flight += 1
                waiter.set_result(True)
        self._peak = max(self._peak, self.in_flight)

    def observe(self, rtt_s: float, throttled: bool) -> None:
        """One answer (or transport failure) and how long it took; decides the limit once per interval."""
        if not self._adaptive:
            return
        self._samples += 1
        self._rtt_sum += rtt_s
        self._window_min = min(self._window_min, rtt_s)
        if throttled:
            self._throttled = True
        now = self._clock()
        if now >= self._interval_end:
            self._decide(now)

    def _decide(self, now: float) -> None:
        mean = self._rtt_sum / self._samples
        baseline = min(self._window_min, self._previous_min)
        if now >= self._window_end:
            self._previous_min, self._window_min = self._window_min, math.inf
            self._window_end = now + BASELINE_WINDOW_S
        limit = self._limit
        if self._throttled:
            limit *= THROTTLE_DECREASE
        elif mean > max(baseline, RTT_FLOOR_S) * self._tolerance:
            limit *= LATENCY_DECREASE
        elif 2 * self._peak >= limit:
            limit += max(1.0, math.sqrt(limit))
        self._limit = min(max(limit, 1.0), self._maximum)
        self.limit = int(self._limit)
        self._samples = 0
        self._rtt_sum = 0.0
        self._throttled = False
        self._peak = self.in_flight
        self._interval_end = now + max(MIN_INTERVAL_S, mean)
        if self._waiters:
            self._grant()
