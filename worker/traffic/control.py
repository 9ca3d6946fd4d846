"""Traffic control towards the API: what a request passes before it is sent, and what its answer teaches.

Before each request, in this order (`admit`): the (route, datamart) halt (`halts`), the route's gate (shared backoff,
circuit: `gate`), the static rate limits (route, then datamart: `ratelimit`), and a slot under the route's adaptive
concurrency limit (`limiter`). Every wait ends when the message's partition drains. After the answer (`record`) the
slot is returned and each part learns from it; `record` says whether the attempt counts against the message's
retry budget (a failed probe and a halt answer do not).

A request that is given up after `admit` and before its answer calls `abandon`, so no slot or probe is kept.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Mapping
from functools import partial

from worker.conditions import Conditions
from worker.metrics_traffic import TrafficMetrics
from worker.mics.errors import ApiResult
from worker.mics.statuses import ROUTES, OutcomeKind
from worker.traffic.breaker import Breaker
from worker.traffic.gate import RouteGate
from worker.traffic.halts import Changed, Halts
from worker.traffic.limiter import AdaptiveLimit
from worker.traffic.ratelimit import TokenBucket
from worker.traffic.settings import TrafficSettings
from worker.waits import sleep_unless

__all__ = ["CIRCUIT_PROBE", "HALT_PROBE", "RouteTraffic", "Traffic"]

CIRCUIT_PROBE = 1
HALT_PROBE = 2
_THROTTLING = frozenset({429, 503})


class RouteTraffic:
    """One route's parts."""

    __slots__ = ("bucket", "gate", "limiter", "name")

    def __init__(self, name: str, gate: RouteGate, limiter: AdaptiveLimit, bucket: TokenBucket | None) -> None:
        self.name = name
        self.gate = gate
        self.limiter = limiter
        self.bucket = bucket


class Traffic:
    """Every route's flow control, the datamarts' rate limits and the halts."""

    def __init__(
        self,
        settings: TrafficSettings,
        *,
        max_concurrency: int,
        route_concurrency: Mapping[str, int],
        backoff_base_s: float,
        backoff_max_s: float,
        metrics: TrafficMetrics,
        describe: Callable[[str], str],
        on_halt: Changed,
        rng: random.Random,
        conditions: Conditions | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._metrics = metrics
        self._conditions = conditions
        self._clock = clock
        self.routes: dict[str, RouteTraffic] = {}
        limits = settings.rate_limits
        for name in ROUTES:
            maximum = min(max_concurrency, route_concurrency.get(name, max_concurrency))
            limiter = AdaptiveLimit(
                settings.initial_concurrency,
                maximum,
                tolerance=settings.latency_tolerance,
                adaptive=settings.adaptive,
                clock=clock,
            )
            gate = RouteGate(
                backoff_base_s,
                backoff_max_s,
                settings.backoff_spread_s,
                settings.circuit_failures,
                Breaker(settings.probe_interval_s, settings.probe_max_interval_s),
                rng=rng,
                on_event=partial(metrics.event, name),
                on_waited=partial(metrics.wait, name),
                clock=clock,
            )
            rate = limits.routes.get(name)
            self.routes[name] = RouteTraffic(name, gate, limiter, None if rate is None else TokenBucket(rate, clock))
            _bind_metrics(metrics, name, limiter, gate)
        self._datamarts = {datamart: TokenBucket(rate, clock) for datamart, rate in limits.datamarts.items()}

        def halted(route: str, datamart: str, on: bool) -> None:
            metrics.set_halted(route, datamart, on)
            metrics.event(route, "halt" if on else "halt_end")
            on_halt(route, datamart, on)

        self.halts = Halts(
            settings.probe_interval_s,
            settings.probe_max_interval_s,
            describe=describe,
            on_change=halted,
            on_waited=lambda route, seconds: metrics.wait(route, "halt", seconds),
            clock=clock,
        )

    async def admit(
        self, lane: RouteTraffic, datamart: str, wake: asyncio.Event, pace_wake: asyncio.Event
    ) -> int | None:
        """Pass every wait and take a slot; the ticket says which probes this request is, None when a wake won.

        Holds and slow pacing (a halt, the shared backoff, the circuit, the static rate limits) end on `wake` (the
        partition drains: the message is given up); a free slot under the concurrency limit is waited for until
        `pace_wake`, so a graceful drain still sends what was queued for a slot, as it sends what was queued behind
        a key (giving those up made a restart repeat them). A request that got its slot after
        the route closed meanwhile (a 429, the circuit, a halt) gives the slot back and waits again: the requests
        queued for slots must not slip through as a wave.
        """
        while True:
            ticket = await self._pass(lane, datamart, wake)
            if ticket is None:
                return None
            if not await lane.limiter.acquire(pace_wake):
                self._release_probes(lane, datamart, ticket)
                return None
            if not self._closed_since(lane, datamart, ticket):
                return ticket
            lane.limiter.release()
            self._release_probes(lane, datamart, ticket)

    async def _pass(self, lane: RouteTraffic, datamart: str, wake: asyncio.Event) -> int | None:
        ticket = 0
        if self.halts.count:
            probe = await self.halts.admit(lane.name, datamart, wake)
            if probe is None:
                return None
            ticket = HALT_PROBE if probe else 0
        gate = lane.gate
        if gate.backoff_until or gate.circuit.is_open:
            probe = await gate.admit(wake)
            if probe is None:
                self._release_probes(lane, datamart, ticket)
                return None
            ticket |= CIRCUIT_PROBE if probe else 0
        buckets_passed = await self._take(lane, lane.bucket, wake) and await self._take(
            lane, self._datamarts.get(datamart), wake
        )
        if not buckets_passed:
            self._release_probes(lane, datamart, ticket)
            return None
        return ticket

    def _closed_since(self, lane: RouteTraffic, datamart: str, ticket: int) -> bool:
        gate = lane.gate
        if gate.circuit.is_open and not ticket & CIRCUIT_PROBE:
            return True
        if gate.backoff_until and self._clock() < gate.resume_at:
            return True
        return bool(self.halts.count and not ticket & HALT_PROBE and self.halts.is_halted(lane.name, datamart))

    def record(self, lane: RouteTraffic, datamart: str, ticket: int, result: ApiResult) -> bool:
        """Return the slot and learn from the answer; False when the attempt does not count (failed probe, halt)."""
        lane.limiter.release()
        status = result.status
        if status is None and result.kind is not OutcomeKind.RETRYABLE:  # refused before sending: nothing to learn
            self._release_probes(lane, datamart, ticket)
            return True
        lane.limiter.observe(result.elapsed_s, status in _THROTTLING)
        if status == 429:
            self._metrics.throttled_answer(lane.name)
        if self._conditions is not None:
            self._count(lane.name, status, result.kind)
        halt = result.kind is OutcomeKind.HALT
        if halt or self.halts.count:
            self.halts.record(lane.name, datamart, result, bool(ticket & HALT_PROBE))
        counted = lane.gate.record(result, bool(ticket & CIRCUIT_PROBE))
        return counted and not halt

    def _count(self, route: str, status: int | None, kind: OutcomeKind) -> None:
        """The answers behind an active `api_throttled` / `api_failing` condition, for its periodic line."""
        assert self._conditions is not None
        if status in _THROTTLING:
            self._conditions.count("api_throttled", route, f"answers_{status}")
        if kind is OutcomeKind.RETRYABLE and (status is None or status >= 500):
            self._conditions.count("api_failing", route, "no_answer" if status is None else "answers_5xx")

    def abandon(self, lane: RouteTraffic, datamart: str, ticket: int) -> None:
        """The request was given up after `admit` and before its answer."""
        lane.limiter.release()
        self._release_probes(lane, datamart, ticket)

    def recheck(self) -> None:
        """Partitions started draining: slot waiters look at their wake events (the other waits watch them)."""
        for lane in self.routes.values():
            lane.limiter.recheck()

    def _release_probes(self, lane: RouteTraffic, datamart: str, ticket: int) -> None:
        if ticket & HALT_PROBE:
            self.halts.release_probe(lane.name, datamart)
        if ticket & CIRCUIT_PROBE:
            lane.gate.release_probe()

    async def _take(self, lane: RouteTraffic, bucket: TokenBucket | None, wake: asyncio.Event) -> bool:
        if bucket is None:
            return True
        delay = bucket.reserve()
        if delay <= 0:
            return True
        started = self._clock()
        slept = await sleep_unless(wake, delay)
        self._metrics.wait(lane.name, "rate_limit", self._clock() - started)
        if not slept:
            bucket.give_back()
        return slept


def _bind_metrics(metrics: TrafficMetrics, route: str, limiter: AdaptiveLimit, gate: RouteGate) -> None:
    """The limit, the requests in flight and the gate's state, read at scrape time."""
    metrics.bind(
        route,
        limit=lambda: limiter.limit,
        in_flight=lambda: limiter.in_flight,
        backing_off=lambda: 1.0 if gate.backing_off else 0.0,
        circuit_open=lambda: 1.0 if gate.circuit.is_open else 0.0,
    )
