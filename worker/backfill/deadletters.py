"""Dead letters of a backfill: the worker's record format (`worker.dlq_format`, the reduced form for a record too
large included) through the worker's idempotent DLQ producer (`worker.kafka.make_dlq_producer`), so `dlq inspect`
and `dlq replay` read them as usual.

Backfill-only reasons (next to the worker's `decode_error`, `schema_invalid`, …): `bulk_unsupported` (a record the
bulk format cannot express), `import_rejected` (the execution refused its line: the API's line error is the
message), `import_failed` (every attempt of its execution ended FAILED). A record is done only once its dead
letter is acknowledged: `flush` waits for every acknowledgement and says whether all succeeded.
"""

from __future__ import annotations

from worker.backfill.source import SourceRecord
from worker.config import WorkerConfig
from worker.dlq_format.full import dead_letter_record
from worker.dlq_format.letter import DeadLetter
from worker.dlq_format.reduced import reduced_record
from worker.kafka import KafkaError, KafkaException, Message, make_dlq_producer

__all__ = ["DeadLetterError", "DeadLetters"]


class DeadLetterError(RuntimeError):
    """A dead letter was not acknowledged: nothing past it may be marked done."""


class DeadLetters:
    """Produces dead letters and reports which were acknowledged."""

    def __init__(self, config: WorkerConfig, *, flush_timeout_s: float = 60.0) -> None:
        self._producer = make_dlq_producer(config)
        self._topic = config.dlq_topic
        self._flush_timeout_s = flush_timeout_s
        self._failures: list[str] = []
        self._pending: list[SourceRecord] = []
        self.written = 0

    def write(self, record: SourceRecord, letter: DeadLetter) -> None:
        """Queue one dead letter (acknowledged by the next `flush`)."""
        dead = dead_letter_record(
            letter,
            topic=record.origin,
            partition=record.partition,
            offset=record.offset,
            key=record.key,
            value=record.value,
            original_headers=record.headers,
        )
        while True:
            headers: list[tuple[str, str | bytes | None]] = list(dead.headers)
            try:
                self._producer.produce(
                    self._topic, value=dead.value, key=dead.key, headers=headers, on_delivery=self._acked
                )
                break
            except BufferError:
                self._producer.poll(0.1)
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.MSG_SIZE_TOO_LARGE or dead.reduced:
                    raise DeadLetterError(f"the dead-letter topic {self._topic!r} refused a record: {exc}") from None
                dead = reduced_record(dead)  # the worker's reduced form: bounded, says what was cut
        self._pending.append(record)

    def flush(self) -> list[SourceRecord]:
        """Wait for every queued dead letter; the records now done. Raises DeadLetterError on any failure."""
        left = self._producer.flush(self._flush_timeout_s)
        if left or self._failures:
            reason = self._failures[0] if self._failures else f"{left} not acknowledged in {self._flush_timeout_s} s"
            raise DeadLetterError(f"the dead-letter topic {self._topic!r} was not written: {reason}")
        done, self._pending = self._pending, []
        self.written += len(done)
        return done

    def _acked(self, error: KafkaError | None, _: Message) -> None:
        if error is not None:
            self._failures.append(error.str())
