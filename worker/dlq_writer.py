"""The dead-letter writer: produce, acknowledge, reduce what is too large, keep what the DLQ refused, retry it.

A message's offset may be committed only after its dead letter is acknowledged, so the writer reports each
acknowledged write (`on_written`); until then the message stays in flight. Every error path is bounded:

- too large (at produce time or in the acknowledgement): the record is written once more in its reduced form
  (`dlq_format.reduced.reduced_record`, bounded by construction); a reduced record that is still too large is a DLQ
  that cannot take this record — a failure like any other, never a third form;
- any other failure: the record joins a backlog, the worker holds (`dlq_unavailable`: every partition paused, not
  ready) and one task re-sends the backlog with a doubling delay; the backlog's messages are in the in-flight
  window, so it is bounded by the window;
- a fatal producer error (the idempotent producer cannot go on): `on_fatal`, and the worker exits non-zero so the
  orchestrator restarts it with a new producer — never a live but stuck process.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from functools import partial

from worker.assignment import Pending
from worker.dlq_format.full import OutgoingRecord, dead_letter_record
from worker.dlq_format.letter import DeadLetter
from worker.dlq_format.reduced import reduced_record
from worker.flow import FlowControl
from worker.kafka import KafkaError, KafkaException, Message, Producer
from worker.metrics import WorkerMetrics

__all__ = ["DeadLetterWriter"]

log = logging.getLogger(__name__)

_TIMESTAMP_NOT_AVAILABLE = 0
RETRY_DELAYS_S = (0.5, 30.0)


class DeadLetterWriter:
    """Writes dead letters for the pipeline; see the module docstring for the rules it keeps."""

    def __init__(
        self,
        producer: Producer,
        topic: str,
        flow: FlowControl,
        metrics: WorkerMetrics,
        *,
        on_written: Callable[[Pending, DeadLetter], None],
        on_abandoned: Callable[[Pending], None],
        on_fatal: Callable[[KafkaError], None],
        retry_delays_s: tuple[float, float] = RETRY_DELAYS_S,
    ) -> None:
        self._producer = producer
        self._topic = topic
        self._flow = flow
        self._metrics = metrics
        self._on_written = on_written
        self._on_abandoned = on_abandoned
        self._on_fatal = on_fatal
        self._delays = retry_delays_s
        self._backlog: deque[tuple[Pending, DeadLetter, OutgoingRecord]] = deque()
        self._retrying: asyncio.Task[None] | None = None

    @property
    def backlog(self) -> int:
        return len(self._backlog)

    def write(self, pending: Pending, letter: DeadLetter) -> None:
        """Dead-letter one message: the full record first."""
        message = pending.message
        topic, partition = pending.partition.key
        original = message.headers() or []
        pairs = original.items() if isinstance(original, dict) else original
        record = dead_letter_record(
            letter,
            topic=topic,
            partition=partition,
            offset=pending.offset,
            key=message.key(),
            value=message.value(),
            original_headers=pairs,
            trace_headers=pending.trace.dead_letter_started(self._topic, letter.reason),
        )
        self._produce(pending, letter, record)

    def _produce(self, pending: Pending, letter: DeadLetter, record: OutgoingRecord) -> None:
        for _form in ("full", "reduced"):
            try:
                self._send(pending, letter, record)
                return
            except BufferError:
                why = "the producer's queue is full"
            except KafkaException as exc:
                error: KafkaError = exc.args[0]
                if error.fatal():
                    self._on_fatal(error)
                    return
                if error.code() == KafkaError.MSG_SIZE_TOO_LARGE and not record.reduced:
                    record = self._reduced(pending, record)
                    continue
                why = error.str()
            break
        self._failed(pending, letter, record, why)

    def _send(self, pending: Pending, letter: DeadLetter, record: OutgoingRecord) -> None:
        timestamp_type, timestamp_ms = pending.message.timestamp()
        self._producer.produce(
            self._topic,
            value=record.value,
            key=record.key,
            headers=list(record.headers),
            timestamp=timestamp_ms if timestamp_type != _TIMESTAMP_NOT_AVAILABLE else 0,
            on_delivery=partial(self._on_ack, pending, letter, record),
        )

    def _reduced(self, pending: Pending, record: OutgoingRecord) -> OutgoingRecord:
        topic, partition = pending.partition.key
        pending.trace.dead_letter_event("reduced", "the record is too large for the dead-letter topic")
        log.warning(
            "the dead letter of %s[%d]@%d is too large for %s: writing its reduced form",
            topic,
            partition,
            pending.message.offset(),
            self._topic,
        )
        return reduced_record(record)

    def _on_ack(
        self, pending: Pending, letter: DeadLetter, record: OutgoingRecord, error: KafkaError | None, _: Message
    ) -> None:
        if error is None:
            self._metrics.dlq_write(True)
            if not self._backlog:
                self._flow.set_hold("dlq_unavailable", False)
                self._flow.conditions.set("dlq_unwritable", self._topic, False)  # its end line: writes pass again
            self._on_written(pending, letter)
        elif error.fatal():
            self._on_fatal(error)
        elif error.code() == KafkaError.MSG_SIZE_TOO_LARGE and not record.reduced:
            self._produce(pending, letter, self._reduced(pending, record))
        else:
            self._failed(pending, letter, record, error.str())

    def _failed(self, pending: Pending, letter: DeadLetter, record: OutgoingRecord, why: str) -> None:
        """Keep the record and its offset open; hold the worker until the DLQ takes writes again."""
        self._metrics.dlq_write(False)
        pending.trace.dead_letter_event("failed", why)
        conditions = self._flow.conditions
        conditions.set("dlq_unwritable", self._topic, True, f"{why}: holding, nothing is committed past it")
        conditions.count("dlq_unwritable", self._topic, "failed_writes")
        if not self._flow.held("dlq_unavailable"):
            self._flow.set_hold("dlq_unavailable", True)
        self._backlog.append((pending, letter, record))
        if self._retrying is None or self._retrying.done():
            self._retrying = asyncio.get_running_loop().create_task(self._retry(), name="dlq-retry")

    def drop_drained(self) -> None:
        """Give up the backlog's messages whose partition is draining (revoke, loss, shutdown)."""
        kept: deque[tuple[Pending, DeadLetter, OutgoingRecord]] = deque()
        for item in self._backlog:
            if item[0].partition.draining.is_set():
                self._on_abandoned(item[0])
            else:
                kept.append(item)
        self._backlog = kept

    async def _retry(self) -> None:
        """One task re-sends the backlog with a doubling delay; failures during a round join the next round."""
        delay, ceiling = self._delays
        while self._backlog:
            await asyncio.sleep(delay)
            delay = min(delay * 2, ceiling)
            self.drop_drained()
            batch, self._backlog = self._backlog, deque()
            for pending, letter, record in batch:
                self._produce(pending, letter, record)

    def poll(self) -> None:
        """Serve delivery callbacks (on the loop: they complete messages)."""
        self._producer.poll(0)

    def cancel(self) -> None:
        if self._retrying is not None:
            self._retrying.cancel()
