"""The flow-control metric families (adaptive concurrency, shared backoff, circuit, halts, rate limits).

Registered by `WorkerMetrics` like every other family. The limit, the requests in flight and the gate states are read
at scrape time from the live objects (`bind`), so the hot path pays nothing for them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge

__all__ = ["HELD_REASONS", "ROUTE_EVENTS", "WAIT_REASONS", "TrafficMetrics"]

HELD_REASONS: Final = ("backoff", "circuit_open")
WAIT_REASONS: Final = ("backoff", "circuit", "halt", "rate_limit", "pace")
ROUTE_EVENTS: Final = ("backoff", "circuit_open", "circuit_close", "probe_failed", "halt", "halt_end")


class TrafficMetrics:
    """Per-route flow-control series; every route's series exist (at 0) from the start."""

    def __init__(self, registry: CollectorRegistry, routes: Iterable[str]) -> None:
        self.concurrency_limit = Gauge(
            "mics_worker_concurrency_limit",
            "The route's adaptive in-flight request limit (bounded by MAX_CONCURRENCY and <ROUTE>_CONCURRENCY).",
            ["route"],
            registry=registry,
        )
        self.pace = Gauge(
            "mics_worker_route_pace",
            "Requests/s the route paces itself to after 429s (learned: cut per throttling episode, grows while it "
            "binds); 0 while off.",
            ["route"],
            registry=registry,
        )
        self.requests_in_flight = Gauge(
            "mics_worker_requests_in_flight",
            "Requests of the route on the wire now (compare with its concurrency limit).",
            ["route"],
            registry=registry,
        )
        self.throttled = Counter(
            "mics_worker_http_throttled",
            "429 answers, by route; divided by mics_worker_http_requests_total it is the throttled share.",
            ["route"],
            registry=registry,
        )
        self.held = Gauge(
            "mics_worker_route_held",
            "1 while the route's senders wait: a shared backoff (429/Retry-After) or an open circuit.",
            ["route", "reason"],
            registry=registry,
        )
        self.halted = Gauge(
            "mics_worker_route_halted",
            "1 while the route is halted for this datamart: the API says the configuration (base URL, path) is wrong.",
            ["route", "datamart"],
            registry=registry,
        )
        self.waited = Counter(
            "mics_worker_route_wait_seconds",
            "Time messages spent waiting at the route's flow control (never counted against their retry budget).",
            ["route", "reason"],
            registry=registry,
        )
        self.events = Counter(
            "mics_worker_route_events",
            "Flow-control events: backoff (started or pushed back), circuit_open/close, probe_failed, halt, halt_end.",
            ["route", "event"],
            registry=registry,
        )
        self._routes = tuple(routes)
        self._throttled = {route: self.throttled.labels(route) for route in self._routes}
        self._events = {(r, e): self.events.labels(r, e) for r in self._routes for e in ROUTE_EVENTS}
        self._waited = {(r, w): self.waited.labels(r, w) for r in self._routes for w in WAIT_REASONS}
        for route in self._routes:
            self.concurrency_limit.labels(route)
            self.pace.labels(route)
            self.requests_in_flight.labels(route)
            for reason in HELD_REASONS:
                self.held.labels(route, reason)

    def bind(
        self,
        route: str,
        *,
        limit: Callable[[], float],
        pace: Callable[[], float],
        in_flight: Callable[[], float],
        backing_off: Callable[[], float],
        circuit_open: Callable[[], float],
    ) -> None:
        """Read the route's live state at scrape time."""
        self.concurrency_limit.labels(route).set_function(limit)
        self.pace.labels(route).set_function(pace)
        self.requests_in_flight.labels(route).set_function(in_flight)
        self.held.labels(route, "backoff").set_function(backing_off)
        self.held.labels(route, "circuit_open").set_function(circuit_open)

    def throttled_answer(self, route: str) -> None:
        self._throttled[route].inc()

    def event(self, route: str, event: str) -> None:
        self._events[(route, event)].inc()

    def wait(self, route: str, reason: str, seconds: float) -> None:
        self._waited[(route, reason)].inc(max(0.0, seconds))

    def set_halted(self, route: str, datamart: str, halted: bool) -> None:
        """Datamarts come from the allowed list (configuration), so the series stay bounded."""
        self.halted.labels(route, datamart).set(1 if halted else 0)

    def prepare_halts(self, routes: Iterable[str], datamarts: Iterable[str]) -> None:
        """Create every (route, allowed datamart) halt series at 0, so dashboards and rules see it before a halt."""
        for route in routes:
            for datamart in datamarts:
                self.set_halted(route, datamart, False)
