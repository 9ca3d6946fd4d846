"""Abnormal states, named: one log line when each starts, one every `repeat_s` while it lasts, one when it ends.

A state that lasts (the API failing, the broker unreachable, the group not joined, the DLQ unwritable, a datamart's
credentials refused) used to be either silent or a line per event. Each is now a *condition* on a *subject* (a
route, a topic, a datamart, the group): the component that knows it calls `set` when it starts and ends and `count`
for each event meanwhile; `tick` (the poll loop, several times a second) writes the "still" lines with the counts
since the last line. The API's states end once they have stayed off for `settle_s` (`SETTLING`): a route that backs
off once a second in a 429 storm is one throttling episode, not a start and an end line a second. Each condition is
also the gauge `mics_worker_condition{condition}` (subjects in it, settling ones included) and the counter
`mics_worker_condition_starts_total{condition}`, and a readiness detail (`Health.set_conditions`).

Which conditions make the worker not ready is decided in `health.UNREADY_CONDITIONS` (README, Observability).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge

__all__ = ["CONDITIONS", "ConditionMetrics", "Conditions", "ConditionsSink"]

log = logging.getLogger("worker.conditions")

CONDITIONS: Final = {
    "api_failing": "the API fails (5xx or no answer): the route's circuit is open",
    "api_throttled": "the API throttles (429 or Retry-After): the route backs off",
    "broker_unreachable": "no Kafka broker is reachable",
    "group_join_waiting": "waiting to join the consumer group",
    "dlq_unwritable": "the dead-letter topic cannot be written",
    "credentials_held": "the API refuses the token for a datamart (401/403)",
}
"""Every condition, with what its start line says first. Labels of the metrics: a fixed, bounded set."""

NEEDS_ACTION: Final = frozenset({"broker_unreachable", "dlq_unwritable", "credentials_held"})
"""States an operator must act on (the worker cannot get out of them alone): their lines are ERROR, not WARNING."""

SETTLING: Final = frozenset({"api_failing", "api_throttled"})
"""States sampled from the route gates, which flip on and off within one episode; the others end when they end."""

DEFAULT_REPEAT_S: Final = 30.0
DEFAULT_SETTLE_S: Final = 5.0


class ConditionsSink(Protocol):
    """Where the active conditions are published (the health state's readiness details)."""

    def set_conditions(self, active: dict[str, list[str]]) -> None: ...


class ConditionMetrics:
    """The conditions' two families; every condition's series exists (at 0) from the start."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.active = Gauge(
            "mics_worker_condition",
            "Subjects (routes, topics, datamarts, the group) in an abnormal state now; 0 when all is well.",
            ["condition"],
            registry=registry,
        )
        self.starts = Counter(
            "mics_worker_condition_starts",
            "Times an abnormal state started, by condition.",
            ["condition"],
            registry=registry,
        )
        for name in CONDITIONS:
            self.active.labels(name)
            self.starts.labels(name)


@dataclass(slots=True)
class _Active:
    started: float
    detail: str
    last_line: float
    counts: dict[str, int] = field(default_factory=dict)
    totals: dict[str, int] = field(default_factory=dict)
    ended_at: float | None = None


class Conditions:
    """The abnormal states in force, their log lines, gauges and readiness details. Used from the event loop only.

    The clock is injectable (monotonic seconds) so tests move time by hand.
    """

    def __init__(
        self,
        metrics: ConditionMetrics | None = None,
        sink: ConditionsSink | None = None,
        *,
        repeat_s: float = DEFAULT_REPEAT_S,
        settle_s: float = DEFAULT_SETTLE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if repeat_s <= 0 or settle_s < 0:
            raise ValueError("repeat_s must be positive and settle_s not negative")
        self._settle_s = settle_s
        self._metrics = metrics
        self._sink = sink
        self._repeat_s = repeat_s
        self._clock = clock
        self._active: dict[tuple[str, str], _Active] = {}

    def set(self, name: str, subject: str, on: bool, detail: str = "") -> None:
        """Start (with what is known of why, `detail`) or end the condition `name` for `subject`; repeats are no-ops
        except that a new detail replaces the old one."""
        if name not in CONDITIONS:
            raise ValueError(f"unknown condition {name!r}")
        key = (name, subject)
        current = self._active.get(key)
        if on and current is None:
            now = self._clock()
            self._active[key] = _Active(started=now, detail=detail, last_line=now)
            log.log(
                _level(name), "%s: %s%s", CONDITIONS[name], _named(subject), _tail(detail), extra=_fields(name, subject)
            )
            if self._metrics is not None:
                self._metrics.starts.labels(name).inc()
            self._publish(name)
        elif on and current is not None:
            current.ended_at = None  # back before it settled: the same episode goes on
            if detail:
                current.detail = detail
        elif not on and current is not None and current.ended_at is None:
            current.ended_at = self._clock()
            if self._settle_s == 0 or name not in SETTLING:
                self._end(key, current)

    def count(self, name: str, subject: str, what: str, n: int = 1) -> None:
        """Count an event of an active condition (a failed probe, a 429, a refused write); ignored when inactive."""
        current = self._active.get((name, subject))
        if current is not None:
            current.counts[what] = current.counts.get(what, 0) + n
            current.totals[what] = current.totals.get(what, 0) + n

    def active(self, name: str, subject: str) -> bool:
        return (name, subject) in self._active

    def subjects(self, name: str) -> list[str]:
        """The subjects in condition `name` now, sorted."""
        return sorted(subject for condition, subject in self._active if condition == name)

    def tick(self) -> None:
        """Write a "still" line for each condition whose last line is `repeat_s` old, with the counts since it, and
        the end line of each that stayed off for `settle_s`."""
        now = self._clock()
        for key, current in list(self._active.items()):
            if current.ended_at is not None:
                if now - current.ended_at >= self._settle_s:
                    self._end(key, current)
                continue
            if now - current.last_line < self._repeat_s:
                continue
            name, subject = key
            since = now - current.last_line
            current.last_line = now
            lasted = now - current.started
            log.log(
                _level(name),
                "still, for %.0f s: %s: %s%s%s",
                lasted,
                CONDITIONS[name],
                _named(subject),
                _tail(current.detail),
                _counts(current.counts, f"in the last {since:.0f} s"),
                extra={**_fields(name, subject), "lasted_s": round(lasted, 3), **current.counts},
            )
            current.counts.clear()

    def _end(self, key: tuple[str, str], current: _Active) -> None:
        name, subject = key
        del self._active[key]
        lasted = (current.ended_at or self._clock()) - current.started
        log.info(
            "ended after %.0f s: %s: %s%s",
            lasted,
            CONDITIONS[name],
            _named(subject),
            _counts(current.totals, "in all"),
            extra={**_fields(name, subject), "lasted_s": round(lasted, 3), **current.totals},
        )
        self._publish(name)

    def _publish(self, name: str) -> None:
        if self._metrics is not None:
            self._metrics.active.labels(name).set(len(self.subjects(name)))
        if self._sink is not None:
            active: dict[str, list[str]] = {}
            for condition, subject in sorted(self._active):
                active.setdefault(condition, []).append(subject)
            self._sink.set_conditions(active)


def _level(name: str) -> int:
    return logging.ERROR if name in NEEDS_ACTION else logging.WARNING


def _named(subject: str) -> str:
    return subject or "-"


def _tail(detail: str) -> str:
    return f" ({detail})" if detail else ""


def _counts(counts: dict[str, int], span: str) -> str:
    if not counts:
        return ""
    listed = ", ".join(f"{what} {n}" for what, n in sorted(counts.items()))
    return f"; {span}: {listed}"


def _fields(name: str, subject: str) -> dict[str, object]:
    return {"condition": name, "subject": subject}
