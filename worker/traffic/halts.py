"""Halts: the API answered a status of the halt class (a redirect, a 404 on the activity collection), so the
configuration is wrong (base URL, path) and nothing the worker sends on that route will succeed.

Dead-lettering would empty the stream into the DLQ, so the route is held instead, per datamart (one datamart missing
from the API must not stop the others): its messages wait, the worker is not ready (`misconfigured`), one ERROR line
names the method, the URL template under the configured base and the status, and one message at a time probes at a
doubling interval (`breaker.Breaker`). The first answer that is no longer a halt resumes the route. A halt answer is
never counted as one of the message's attempts: the message is not what is wrong.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from worker.mics.errors import ApiResult
from worker.mics.statuses import OutcomeKind
from worker.traffic.breaker import Breaker

__all__ = ["Halts"]

log = logging.getLogger(__name__)

Changed = Callable[[str, str, bool], None]


class Halts:
    """The (route, datamart) pairs held for a halt answer, each with its own probe."""

    __slots__ = ("_breakers", "_clock", "_describe", "_first_s", "_max_s", "_on_change", "_on_waited", "count")

    def __init__(
        self,
        first_interval_s: float,
        max_interval_s: float,
        *,
        describe: Callable[[str], str],
        on_change: Changed,
        on_waited: Callable[[str, float], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._first_s = first_interval_s
        self._max_s = max_interval_s
        self._describe = describe
        self._on_change = on_change
        self._on_waited = on_waited
        self._clock = clock
        self._breakers: dict[tuple[str, str], Breaker] = {}  # bounded: routes x allowed datamarts
        self.count = 0  # halts in force: the fast path's test

    def is_halted(self, route: str, datamart: str) -> bool:
        breaker = self._breakers.get((route, datamart))
        return breaker is not None and breaker.is_open

    async def admit(self, route: str, datamart: str, wake: asyncio.Event) -> bool | None:
        """Wait while held: True when this request is the probe, False when not held, None when `wake` came first."""
        breaker = self._breakers.get((route, datamart))
        if breaker is None or not breaker.is_open:
            return False
        started = self._clock()
        probe = await breaker.wait(wake)
        self._on_waited(route, self._clock() - started)
        return probe

    def record(self, route: str, datamart: str, result: ApiResult, probe: bool) -> None:
        """Hold on a halt answer; resume on any other answer while held."""
        key = (route, datamart)
        breaker = self._breakers.get(key)
        if result.kind is OutcomeKind.HALT:
            if breaker is None:
                breaker = self._breakers[key] = Breaker(self._first_s, self._max_s)
            if probe:
                breaker.probe_failed()
            elif breaker.open():
                self.count += 1
                log.error(
                    "the API answered HTTP %s to %s (datamart %s): the API base URL or path is wrong; holding this "
                    "route for this datamart (nothing is dead-lettered) and probing at a doubling interval",
                    result.status,
                    self._describe(route),
                    datamart,
                )
                self._on_change(route, datamart, True)
            return
        if breaker is not None and breaker.close():
            self.count -= 1
            log.info("the %s route answers again (HTTP %s, datamart %s): resuming it", route, result.status, datamart)
            self._on_change(route, datamart, False)

    def release_probe(self, route: str, datamart: str) -> None:
        """The probe was given up before its answer."""
        breaker = self._breakers.get((route, datamart))
        if breaker is not None:
            breaker.probe_released()
