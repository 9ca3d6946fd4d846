"""`dlq replay`: produce dead-lettered records again, each at most once per replay group.

It reads in its own consumer group (default ``<group>-dlq-replay``) from that group's committed position, up to the
watermarks seen at start (`worker.snapshot`), and commits a batch only after every record it produced from the batch
is acknowledged (idempotent producer, ``acks=all``), so a second run does not replay the same records. The group's
position moves over every record read, selected or not: to replay a different selection of records already passed,
use another ``--group``. Partitions are assigned, not subscribed, so two replays must not run at once in one group.

A replayed record keeps its key and value, gets the source record's headers back under their original names (the
DLQ writer escaped reserved ones to ``mics.original.<name>``), loses the dead-letter context headers, and carries
``mics.replay.count``. Sent back to its original topic, it goes to its original partition (so it keeps its place
among the same key's messages); elsewhere its key decides. Refused, counted and passed: a record already replayed
``max_replays`` times, and a record the DLQ holds only in reduced form (its first bytes, maybe none of its headers;
replaying that would send a broken message — the source position headers say where the whole record is).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from worker.dlq.selection import EVERY_RECORD, Selection
from worker.dlq.settings import DlqError, DlqSettings
from worker.dlq_format.headers import ESCAPED_REPLAY_COUNT_HEADER
from worker.dlq_format.reader import DeadLetterRecord
from worker.kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from worker.snapshot import SnapshotError, SnapshotReader

__all__ = ["ReplayOptions", "ReplayReport", "format_replay", "replay"]


@dataclass(frozen=True, slots=True)
class ReplayOptions:
    """What to replay and where; the defaults replay everything to its original topic."""

    selection: Selection = EVERY_RECORD
    to_topic: str | None = None
    dlq_topic: str | None = None
    group: str | None = None
    limit: int | None = None
    dry_run: bool = False
    max_replays: int = 3
    batch_size: int = 500
    timeout_s: float = 30.0


@dataclass(slots=True)
class ReplayReport:
    """What a replay did (or, in a dry run, would do)."""

    dry_run: bool
    group: str
    max_replays: int = 3
    read: int = 0
    selected: int = 0
    replayed: Counter[str] = field(default_factory=Counter)  # per destination topic
    refused_counts: Counter[int] = field(default_factory=Counter)  # replay count -> records refused at it
    failed: int = 0  # produced but not acknowledged (the replay stopped; their batch was not committed)
    no_destination: int = 0  # no --to and no original-topic header
    reduced: int = 0  # only a reduced form of the record is in the DLQ

    @property
    def replayed_total(self) -> int:
        return sum(self.replayed.values())

    @property
    def refused(self) -> int:
        """Records refused because their replay count reached `max_replays`."""
        return sum(self.refused_counts.values())


def replay(
    settings: DlqSettings,
    options: ReplayOptions = ReplayOptions(),
    *,
    progress: Callable[[int, int], None] | None = None,
) -> ReplayReport:
    """Replay the selected DLQ records; raise `DlqError` when it cannot go on (what was acknowledged is committed)."""
    group = options.group or f"{settings.group_id}-dlq-replay"
    report = ReplayReport(dry_run=options.dry_run, group=group, max_replays=options.max_replays)
    consumer = settings.consumer(group)
    producer = None if options.dry_run else settings.producer()
    try:
        reader = SnapshotReader(
            consumer, [options.dlq_topic or settings.dlq_topic], start="committed", timeout_s=options.timeout_s
        )
        batch_run = _ReplayBatch(consumer, producer, options, report)
        for batch in reader.batches(options.batch_size):
            done = batch_run.run(batch)
            if progress is not None:
                progress(report.read, reader.total)
            if done:
                break
    except DlqError as exc:
        exc.report = report
        raise
    except SnapshotError as exc:
        stopped = DlqError(str(exc))
        stopped.report = report
        raise stopped from exc
    finally:
        if producer is not None:
            producer.flush(options.timeout_s)
        consumer.close()
    return report


class _ReplayBatch:
    """Produce one batch, wait for every acknowledgement, then commit it (never in a dry run)."""

    def __init__(
        self, consumer: Consumer, producer: Producer | None, options: ReplayOptions, report: ReplayReport
    ) -> None:
        self._consumer = consumer
        self._producer = producer
        self._options = options
        self._report = report
        self._partition_counts: dict[str, int] = {}
        self._failures: list[str] = []

    def run(self, batch: list[Message]) -> bool:
        """Handle a batch; True when the limit is reached. What was handled is committed even when this raises."""
        next_offsets: dict[tuple[str, int], int] = {}
        limit = self._options.limit
        try:
            for message in batch:
                if limit is not None and self._report.replayed_total >= limit:
                    return True
                self._handle(DeadLetterRecord.from_message(message))
                next_offsets[(message.topic() or "", message.partition() or 0)] = (message.offset() or 0) + 1
            return limit is not None and self._report.replayed_total >= limit
        finally:
            self._acknowledge_and_commit(next_offsets)

    def _handle(self, record: DeadLetterRecord) -> None:
        report = self._report
        report.read += 1
        if not self._options.selection.matches(record):
            return
        report.selected += 1
        destination = self._options.to_topic or record.source_topic
        if not destination:
            report.no_destination += 1
            return
        if record.replay_count >= self._options.max_replays:
            report.refused_counts[record.replay_count] += 1
            return
        if record.reduced is not None:
            report.reduced += 1
            return
        partitions = self._partition_count(destination)
        if self._producer is not None:
            # Back where it came from keeps its place among the same key's messages; elsewhere the key decides.
            original = record.source_partition if destination == record.source_topic else None
            partition = original if original is not None and original < partitions else -1
            self._produce(self._producer, destination, partition, record)
        report.replayed[destination] += 1

    def _produce(self, producer: Producer, destination: str, partition: int, record: DeadLetterRecord) -> None:
        while True:
            try:
                producer.produce(
                    destination,
                    partition=partition,
                    value=record.value,
                    key=record.key,
                    headers=record.replay_headers(),
                    on_delivery=self._on_delivery,
                )
                return
            except BufferError:
                producer.poll(0.1)  # the local queue is full: let deliveries drain, then retry

    def _on_delivery(self, error: KafkaError | None, message: Message) -> None:
        if error is not None:
            self._failures.append(error.str())
            topic = message.topic() or ""
            self._report.replayed[topic] -= 1
            if self._report.replayed[topic] <= 0:
                del self._report.replayed[topic]
            self._report.failed += 1

    def _partition_count(self, topic: str) -> int:
        """The destination's partition count; a topic the cluster does not have stops the replay before producing."""
        count = self._partition_counts.get(topic)
        if count is None:
            metadata = self._consumer.list_topics(topic, timeout=self._options.timeout_s)
            found = metadata.topics.get(topic)
            if found is None or found.error is not None:
                raise DlqError(f"destination topic {topic!r} does not exist (use --to to choose another)")
            count = self._partition_counts[topic] = len(found.partitions)
        return count

    def _acknowledge_and_commit(self, next_offsets: dict[tuple[str, int], int]) -> None:
        if self._producer is None or not next_offsets:
            return
        remaining = self._producer.flush(self._options.timeout_s)
        if remaining or self._failures:
            why = self._failures[0] if self._failures else f"{remaining} records unacknowledged"
            raise DlqError(f"replay stopped: a produce failed ({why}); this batch is not committed")
        offsets = [TopicPartition(topic, partition, offset) for (topic, partition), offset in next_offsets.items()]
        try:
            self._consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            raise DlqError(f"replay stopped: the commit failed ({exc}); the batch may be replayed again") from exc


def format_replay(report: ReplayReport) -> str:
    """The replay ledger, one fact per line; each refusal says why and what to do about it."""
    verb = "would replay" if report.dry_run else "replayed"
    destinations = ", ".join(f"{topic}={count}" for topic, count in report.replayed.most_common())
    lines = [
        f"read {report.read} dead-letter records (group {report.group}), {report.selected} selected",
        f"{verb}: {report.replayed_total}" + (f" ({destinations})" if destinations else ""),
    ]
    if report.refused:
        counts = ", ".join(f"count {count}: {records}" for count, records in sorted(report.refused_counts.items()))
        lines.append(
            f"refused, already replayed --max-replays={report.max_replays} times or more ({counts}; the count is read "
            f"from each record's {ESCAPED_REPLAY_COUNT_HEADER} header; a higher --max-replays replays them): "
            f"{report.refused}"
        )
    if report.failed:
        lines.append(f"failed to produce (not committed, replayed again next run): {report.failed}")
    if report.no_destination:
        lines.append(f"skipped, no original topic recorded (use --to): {report.no_destination}")
    if report.reduced:
        lines.append(
            "refused, reduced in the DLQ (only the first bytes of its value or key, or none of its headers, are there; "
            f"its __connect.errors.topic/partition/offset headers say where the whole record is): {report.reduced}"
        )
    if report.dry_run:
        lines.append("dry run: nothing produced, nothing committed")
    return "\n".join(lines)
