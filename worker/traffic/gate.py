"""One route's gate: the shared backoff and the circuit breaker every sender of the route passes before a request.

- **Shared backoff.** A 429, or any answer with `Retry-After`, slows the whole route, not one message: the route's
  `resume_at` moves to now + Retry-After (without one: the retry policy's base delay, doubled per 429 in a row up
  to its maximum). Every sender that reaches the gate before `resume_at + spread` resumes at its own
  `resume_at + uniform(0, spread)`, so retries arrive spread over the window, never in a wave.
- **Circuit breaker.** After `failures` transport errors or 5xx in a row (any other answer resets the run; 0
  disables it) the circuit opens: senders wait, one probe goes through at a time at a doubling interval
  (`breaker.Breaker`), and any answer that is not a failure closes it; senders then resume spread as above.

What the gate does not decide: whether the attempt counts (the sender's budget, with `counts` here saying that a
failed probe does not), and the concurrency limit (`limiter`).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable

from worker.mics.errors import ApiResult
from worker.traffic.breaker import Breaker
from worker.waits import sleep_unless

__all__ = ["RouteGate"]

_THROTTLED = 429
_SERVER_ERROR = 500

Event = Callable[[str], None]
Waited = Callable[[str, float], None]


class RouteGate:
    """Shared backoff and circuit breaker for one route."""

    __slots__ = (
        "_base_s",
        "_clock",
        "_event",
        "_failures",
        "_max_s",
        "_rng",
        "_spread_s",
        "_threshold",
        "_throttles",
        "_waited",
        "backoff_until",
        "circuit",
        "resume_at",
    )

    def __init__(
        self,
        backoff_base_s: float,
        backoff_max_s: float,
        spread_s: float,
        failures: int,
        circuit: Breaker,
        *,
        rng: random.Random,
        on_event: Event,
        on_waited: Waited,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._base_s = backoff_base_s
        self._max_s = backoff_max_s
        self._spread_s = spread_s
        self._threshold = failures
        self.circuit = circuit
        self._rng = rng
        self._event = on_event
        self._waited = on_waited
        self._clock = clock
        self.resume_at = 0.0
        self.backoff_until = 0.0  # resume_at + spread while a backoff may hold senders, else 0: the fast path
        self._throttles = 0
        self._failures = 0

    @property
    def backing_off(self) -> bool:
        """Whether the shared backoff is in force (read at scrape time)."""
        return self._clock() < self.resume_at

    async def admit(self, wake: asyncio.Event) -> bool | None:
        """Pass the gate: True when this request is the circuit's probe, else False; None when `wake` came first."""
        if self.backoff_until and not await self._sit_out_backoff(wake):
            return None
        if not self.circuit.is_open:
            return False
        started = self._clock()
        probe = await self.circuit.wait(wake)
        self._waited("circuit", self._clock() - started)
        return probe

    async def _sit_out_backoff(self, wake: asyncio.Event) -> bool:
        now = self._clock()
        while now < self.backoff_until:
            resume_at = self.resume_at
            target = resume_at + self._rng.uniform(0.0, self._spread_s)
            if target > now:
                slept = await sleep_unless(wake, target - now)
                self._waited("backoff", self._clock() - now)
                if not slept:
                    return False
            if self.resume_at == resume_at:  # not pushed back meanwhile: this sender's turn
                return True
            now = self._clock()
        self.backoff_until = 0.0
        return True

    def record(self, result: ApiResult, probe: bool) -> bool:
        """Learn from one request's result; False when it was a failed probe (which does not count as an attempt)."""
        status = result.status
        failure = status is None or status >= _SERVER_ERROR
        if status == _THROTTLED or result.retry_after_s is not None:
            self._throttle(result.retry_after_s)
        elif not failure:
            self._throttles = 0
        if not failure:
            self._failures = 0
            if self.circuit.close():
                self._event("circuit_close")
                self._spread_from_now()
            return True
        self._failures += 1
        if probe:
            self.circuit.probe_failed()
            self._event("probe_failed")
            return False
        if self._threshold and self._failures >= self._threshold and self.circuit.open():
            self._event("circuit_open")
        return True

    def release_probe(self) -> None:
        """The probe was given up before its answer."""
        self.circuit.probe_released()

    def _throttle(self, retry_after_s: float | None) -> None:
        self._throttles += 1
        if retry_after_s is None:
            retry_after_s = min(self._max_s, self._base_s * 2 ** min(self._throttles - 1, 32))
        resume_at = self._clock() + retry_after_s
        if resume_at > self.resume_at:
            self.resume_at = resume_at
            self.backoff_until = resume_at + self._spread_s
            self._event("backoff")

    def _spread_from_now(self) -> None:
        """After the circuit closes, waiters resume spread over the next `spread` seconds, not all at once."""
        now = self._clock()
        if now > self.resume_at:
            self.resume_at = now
            self.backoff_until = now + self._spread_s
