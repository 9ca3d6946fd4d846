"""Outcomes: where each message's fate is recorded — the run's ledger, the metrics, the rate guard, the offsets.

A message ends delivered, dead-lettered (once the DLQ acknowledged it) or given up (left uncommitted for the next
owner); each path completes or abandons it in the assignment table exactly once. Dead letters are judged by the
rate guard when they are decided, not when acknowledged: a batch of bad messages must not all spill before it trips.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from worker.assignment import Assignment, Pending
from worker.config import DlqGuardSettings
from worker.dlq_format.letter import DeadLetter
from worker.dlq_writer import DeadLetterWriter
from worker.flow import FlowControl
from worker.guard import DeadLetterRateGuard
from worker.kafka import KafkaError, Producer
from worker.metrics import WorkerMetrics
from worker.routing import Rejection
from worker.sender import rejection_dead_letter

__all__ = ["Outcomes", "RunSummary"]

log = logging.getLogger(__name__)

_TIMESTAMP_NOT_AVAILABLE = 0


@dataclass(slots=True)
class RunSummary:
    """What one run did: the ledger the CLI prints at the end."""

    consumed: int = 0
    delivered: Counter[str] = field(default_factory=Counter)  # route -> count
    dead_lettered: Counter[str] = field(default_factory=Counter)  # reason -> count

    @property
    def finished(self) -> int:
        return sum(self.delivered.values()) + sum(self.dead_lettered.values())


class Outcomes:
    """Completes, dead-letters or abandons messages; owns the dead-letter writer and the rate guard."""

    def __init__(
        self,
        *,
        producer: Producer,
        dlq_topic: str,
        guard: DlqGuardSettings,
        assignment: Assignment,
        flow: FlowControl,
        metrics: WorkerMetrics,
        on_fatal: Callable[[KafkaError], None],
    ) -> None:
        self.summary = RunSummary()
        self._assignment = assignment
        self._flow = flow
        self._metrics = metrics
        self._guard = DeadLetterRateGuard(guard)
        self._cooldown_s = guard.cooldown_s
        self.writer = DeadLetterWriter(
            producer,
            dlq_topic,
            flow,
            metrics,
            on_written=self._dead_lettered,
            on_abandoned=self.abandon,
            on_fatal=on_fatal,
        )

    def delivered(self, pending: Pending, route: str) -> None:
        self.summary.delivered[route] += 1
        self._metrics.delivered(route)
        timestamp_type, timestamp_ms = pending.message.timestamp()
        if timestamp_type != _TIMESTAMP_NOT_AVAILABLE:
            self._metrics.end_to_end(route, max(0.0, time.time() - timestamp_ms / 1000))
        self._guard.record(False)
        self._assignment.complete(pending.partition, pending.offset, pending.size)
        pending.trace.finish("delivered")

    def reject(self, pending: Pending, rejection: Rejection) -> None:
        if rejection.reason == "schema_invalid":
            self._metrics.validation_failed(rejection.route or "unknown")
        self.dead_letter(pending, rejection_dead_letter(rejection))

    def dead_letter(self, pending: Pending, letter: DeadLetter) -> None:
        if self._guard.record(True) and not self._flow.held("dlq_rate"):
            log.error("dead-letter rate over the guard's limit: holding for %.0f s", self._cooldown_s)
            self._flow.set_hold("dlq_rate", True)
            asyncio.get_running_loop().call_later(self._cooldown_s, self._end_guard_cooldown)
        self.writer.write(pending, letter)

    def _end_guard_cooldown(self) -> None:
        self._guard.reset()
        self._flow.set_hold("dlq_rate", False)

    def _dead_lettered(self, pending: Pending, letter: DeadLetter) -> None:
        self.summary.dead_lettered[letter.reason] += 1
        self._metrics.dead_lettered(letter.route or "unknown", letter.reason)
        self._assignment.complete(pending.partition, pending.offset, pending.size)
        pending.trace.finish("dead_lettered", letter.reason)

    def abandon(self, pending: Pending) -> None:
        """The partition goes to another member, or the worker stops: the message stays uncommitted."""
        self._assignment.abandon(pending.partition, pending.size)
        pending.trace.finish("abandoned")
