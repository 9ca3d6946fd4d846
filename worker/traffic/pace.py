"""A route's pace learned from 429s: what keeps a worker just under an API's requests-per-second limit.

Concurrency does not bound the request rate when answers are fast: 5 slots at 2 ms are 2,500 requests a second. So
against an API that limits requests per second, a worker steered only by its concurrency limit and the shared
backoff bursts after every backoff until the API's bucket is dry, and meets 429s on every Retry-After cycle.

The pace is off (one attribute test per request) until the route's first 429. Then:
- **cut**: the first 429 sets the pace to `CUT` x the rate of answered requests over the last `WINDOW_S` (when at
  least `MIN_EVIDENCE` were answered there; before that the shared backoff alone slows the route); each later
  throttling episode (429s at least `EPISODE_S` apart) multiplies it by `CUT` — one cut per episode, not per answer;
- **grow**: every `GROWTH_INTERVAL_S` in which requests queued for the pace and left at (`BINDING` of) it, it grows
  by `GROWTH` (it probes upwards, and follows a limit that was raised: x2 in about 7 s); a pace the worker cannot
  reach (a busy loop) does not grow;
- **off**: after `OFF_AFTER_S` without a 429 and without a queue, the pace is dropped and the queue let go.
Requests queue in arrival order and leave one every 1/pace seconds (after a quiet spell up to `BURST_S` worth at
once); a new pace applies to the queue at once, and a request whose partition drains leaves the queue without
leaving a gap. The pace is per process: N members (or pods) each learn their own share of the API's limit.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable

__all__ = ["CUT", "EPISODE_S", "GROWTH", "OFF_AFTER_S", "WINDOW_S", "Pace"]

CUT = 0.9
GROWTH = 0.1
EPISODE_S = 1.0
GROWTH_INTERVAL_S = 1.0
OFF_AFTER_S = 30.0
WINDOW_S = 2.0
BURST_S = 0.25
BINDING = 0.8  # the pace grows only when requests left at this share of it: it, not the loop, held them
MIN_RATE = 1.0
MIN_EVIDENCE = 20  # answers in the window before a first pace is set: a 429 among a handful teaches no rate
_SLOTS = 8
_SLOT_S = WINDOW_S / _SLOTS


class Pace:
    """One route's learned pace (requests per second, None while off), its queue, and the answers it learns from."""

    __slots__ = (
        "_clock",
        "_counts",
        "_departed",
        "_last_throttled",
        "_next_at",
        "_next_cut",
        "_next_growth",
        "_queue",
        "_queued",
        "_slot",
        "_slot_end",
        "_started",
        "_timer",
        "rate",
    )

    def __init__(self, clock: Callable[[], float] = time.monotonic, *, rate: float | None = None) -> None:
        """Off, or (`rate`) paced from the start as if a 429 had just set it."""
        self._clock = clock
        self.rate = rate
        now = clock()
        self._started = now
        self._counts = [0] * _SLOTS
        self._slot = 0
        self._slot_end = now + _SLOT_S
        self._next_cut = 0.0
        self._next_growth = 0.0
        self._last_throttled = now if rate is not None else 0.0
        self._next_at = 0.0  # when the next request may leave
        self._queue: deque[asyncio.Future[None]] = deque()
        self._queued = False  # a request queued since the last growth decision
        self._departed = 0  # requests that left at the pace since the last growth decision
        self._timer: asyncio.TimerHandle | None = None

    @property
    def waiting(self) -> int:
        return len(self._queue)

    async def wait(self, wake: asyncio.Event) -> bool:
        """Leave at the pace: True when it is this request's turn (at once while off), False when `wake` came first."""
        now = self._clock()
        self._tick(now)
        if self.rate is None:
            return True
        if not self._queue and now >= self._next_at:
            self._depart(now)
            return True
        if wake.is_set():
            return False
        self._queued = True
        loop = asyncio.get_running_loop()
        turn: asyncio.Future[None] = loop.create_future()
        self._queue.append(turn)
        self._schedule(loop, now)
        woken = asyncio.ensure_future(wake.wait())
        try:
            await asyncio.wait((turn, woken), return_when=asyncio.FIRST_COMPLETED)
        finally:
            woken.cancel()
            if not turn.done():
                turn.cancel()  # the dispatcher skips it: no gap is left in the queue
        return not turn.cancelled() and not wake.is_set()

    def answered(self, throttled: bool) -> None:
        """Learn from one answer of the API."""
        now = self._clock()
        if throttled:
            self._throttled(now)
        else:
            self._advance(now)
            self._counts[self._slot] += 1
        if self.rate is not None:
            self._tick(now)

    def _depart(self, now: float) -> None:
        """One request leaves now: the next may leave 1/pace later (after a quiet spell, up to `BURST_S` sooner)."""
        assert self.rate is not None
        self._next_at = max(self._next_at, now - BURST_S) + 1.0 / self.rate
        self._departed += 1

    def _schedule(self, loop: asyncio.AbstractEventLoop, now: float) -> None:
        if self._timer is None and self._queue:
            self._timer = loop.call_later(max(0.0, self._next_at - now), self._release)

    def _release(self) -> None:
        """The timer: let go every queued request whose turn has come (all of them when the pace is off).

        A timer that fires late (a busy loop) lets the turns it missed go together, up to `BURST_S` worth: the pace
        is a rate, not one request per timer."""
        self._timer = None
        now = self._clock()
        while self._queue:
            head = self._queue[0]
            if head.done():
                self._queue.popleft()
                continue
            if self.rate is not None and now < self._next_at:
                break
            self._queue.popleft()
            head.set_result(None)
            if self.rate is not None:
                self._depart(now)
        if self._queue:
            self._schedule(asyncio.get_running_loop(), now)

    def _advance(self, now: float) -> None:
        """Move the ring of answer counts up to `now`, emptying the slots it passes."""
        if now >= self._slot_end:
            behind = int((now - self._slot_end) / _SLOT_S) + 1
            for _ in range(min(behind, _SLOTS)):
                self._slot = (self._slot + 1) % _SLOTS
                self._counts[self._slot] = 0
            self._slot_end += behind * _SLOT_S

    def _throttled(self, now: float) -> None:
        self._last_throttled = now
        if now < self._next_cut:
            return
        if self.rate is None:
            self._advance(now)
            answered = sum(self._counts)
            if answered < MIN_EVIDENCE:
                return
            base = answered / min(WINDOW_S, max(now - self._started, _SLOT_S))
        else:
            base = self.rate
        self._next_cut = now + EPISODE_S
        self.rate = max(MIN_RATE, base * CUT)
        if self._next_growth <= now:
            self._next_growth = now + GROWTH_INTERVAL_S

    def _tick(self, now: float) -> None:
        if self.rate is None or now < self._next_growth:
            return
        elapsed = now - self._next_growth + GROWTH_INTERVAL_S
        self._next_growth = now + GROWTH_INTERVAL_S
        queued, departed = self._queued, self._departed
        self._queued, self._departed = False, 0
        if queued:
            if departed >= BINDING * self.rate * elapsed:
                self.rate *= 1.0 + GROWTH
        elif now - self._last_throttled >= OFF_AFTER_S:
            self.rate = None
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            for turn in self._queue:
                if not turn.done():
                    turn.set_result(None)
            self._queue.clear()
