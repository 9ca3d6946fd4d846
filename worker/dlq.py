"""`mics-worker dlq inspect` and `dlq replay`: look at the dead-letter topic without disturbing it, put records back.

Both read a snapshot (`worker.snapshot`): the high watermarks captured at start bound the read, so records
dead-lettered meanwhile (for instance a replayed message that fails again) wait for the next run instead of looping
within this one.

- inspect assigns the partitions itself under a throwaway group id, with auto-commit off, and never commits.
- replay reads in its own consumer group (default ``<group>-dlq-replay``) from that group's committed position, and
  commits a batch only after every record it produced from the batch is acknowledged (idempotent producer,
  ``acks=all``), so a second run does not replay the same records. The group's position moves over every record
  read, selected or not: to replay a different selection of records already passed, use another ``--group``.
  Partitions are assigned, not subscribed, so two replays must not run at once in the same group.

A replayed record keeps its key, value and headers, loses the dead-letter context headers, and carries
``mics.replay.count`` (1 on its first replay). Sent back to its original topic, it goes to its original partition
(so it keeps its place among the same key's messages); elsewhere its key decides. A record already replayed
``max_replays`` times is refused, and so is one whose value was truncated on its way to the DLQ (only its first
bytes are there: replaying them would send a broken message; the context headers say where the whole one is).
"""

from __future__ import annotations

import argparse
import fnmatch
import logging
import os
import re
import sys
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Final, Literal

from worker import __version__, codec
from worker.config import ENV_PREFIX, KAFKA_PREFIX, ConfigError, WorkerConfig
from worker.deadletter import CONNECT_PREFIX, MICS_PREFIX, TRUNCATED_HEADER, is_context_header
from worker.kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
    make_reader,
    make_replay_producer,
)
from worker.snapshot import SnapshotError, SnapshotReader

__all__ = [
    "REPLAY_COUNT_HEADER",
    "DeadLetterRecord",
    "DlqError",
    "DlqSettings",
    "InspectReport",
    "ReplayOptions",
    "ReplayReport",
    "Selection",
    "format_inspect",
    "format_replay",
    "inspect",
    "inspect_command",
    "parse_time_ms",
    "printable",
    "replay",
    "replay_command",
]

log = logging.getLogger(__name__)

REPLAY_COUNT_HEADER: Final = "mics.replay.count"
"""How many times a record was replayed; kept when it is dead-lettered again (it is not a context header)."""

_VALUE_PREVIEW_BYTES: Final = 200


class DlqError(RuntimeError):
    """The tool cannot go on (missing topic, unreachable broker, a produce that failed); the message says why.

    Raised by `replay`, it carries the report of what was done (and committed) before it stopped.
    """

    report: ReplayReport | None = None


@dataclass(frozen=True, slots=True)
class DlqSettings:
    """What the DLQ tools need from the worker's settings: no API token, routes or topics."""

    bootstrap_servers: str
    dlq_topic: str = WorkerConfig.dlq_topic
    group_id: str = WorkerConfig.group_id
    kafka_properties: Mapping[str, str] = field(default_factory=dict, repr=False)  # may hold SASL secrets

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> DlqSettings:
        """Read `MICS_WORKER_BOOTSTRAP_SERVERS`, `_DLQ_TOPIC`, `_GROUP_ID` and `_KAFKA_*`."""

        def value(name: str) -> str | None:
            return environ.get(ENV_PREFIX + name, "").strip() or None

        bootstrap = value("BOOTSTRAP_SERVERS")
        if bootstrap is None:
            raise ConfigError(f"{ENV_PREFIX}BOOTSTRAP_SERVERS is required")
        properties = {
            key[len(KAFKA_PREFIX) :].lower().replace("_", "."): text
            for key, text in environ.items()
            if key.startswith(KAFKA_PREFIX) and len(key) > len(KAFKA_PREFIX)
        }
        return cls(
            bootstrap_servers=bootstrap,
            dlq_topic=value("DLQ_TOPIC") or WorkerConfig.dlq_topic,
            group_id=value("GROUP_ID") or WorkerConfig.group_id,
            kafka_properties=properties,
        )

    @classmethod
    def from_config(cls, config: WorkerConfig) -> DlqSettings:
        """The same settings as a running worker's."""
        return cls(config.bootstrap_servers, config.dlq_topic, config.group_id, dict(config.kafka_properties))

    def consumer(self, group_id: str) -> Consumer:
        """A consumer that never commits on its own; replay commits explicitly, inspect not at all."""
        return make_reader(
            self.bootstrap_servers,
            self.kafka_properties,
            group_id=group_id,
            client_id=f"mics-worker-dlq-tool/{__version__}",
        )

    def producer(self) -> Producer:
        """The replay producer: idempotent and `acks=all`, like the worker's dead-letter producer."""
        return make_replay_producer(self.bootstrap_servers, self.kafka_properties)


# -- one dead-letter record ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeadLetterRecord:
    """A DLQ record with its context headers read once (values as text)."""

    partition: int
    offset: int
    timestamp_ms: int | None
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...]
    context: Mapping[str, str]

    @classmethod
    def from_message(cls, message: Message) -> DeadLetterRecord:
        raw = message.headers() or []
        pairs = raw.items() if isinstance(raw, dict) else raw
        headers = tuple((name, value.encode() if isinstance(value, str) else value) for name, value in pairs)
        context = {name: _text(value) for name, value in headers if is_context_header(name)}
        timestamp_type, timestamp_ms = message.timestamp()
        return cls(
            partition=message.partition() or 0,
            offset=message.offset() or 0,
            timestamp_ms=timestamp_ms if timestamp_type != 0 else None,  # 0: TIMESTAMP_NOT_AVAILABLE
            key=message.key(),
            value=message.value(),
            headers=headers,
            context=context,
        )

    @property
    def reason(self) -> str:
        return self.context.get(MICS_PREFIX + "reason", "unknown")

    @property
    def source_topic(self) -> str | None:
        return self.context.get(CONNECT_PREFIX + "topic")

    @property
    def source_partition(self) -> int | None:
        return _integer(self.context.get(CONNECT_PREFIX + "partition"))

    @property
    def source_offset(self) -> int | None:
        return _integer(self.context.get(CONNECT_PREFIX + "offset"))

    @property
    def http_status(self) -> str | None:
        return self.context.get(MICS_PREFIX + "http.status")

    @property
    def dead_lettered_at_ms(self) -> int | None:
        """When it was dead-lettered: the `mics.dlq.time` header, else the record's timestamp."""
        at = _integer(self.context.get(MICS_PREFIX + "time"))
        return self.timestamp_ms if at is None else at

    @property
    def truncated_from_bytes(self) -> int | None:
        """The original value's size when the DLQ holds only its first bytes, else None."""
        if TRUNCATED_HEADER not in self.context:
            return None
        size = _integer(self.context[TRUNCATED_HEADER])
        return -1 if size is None else size

    @property
    def replay_count(self) -> int:
        """Times replayed so far; a missing or malformed header counts as 0 (the next replay writes a good one)."""
        for name, value in reversed(self.headers):
            if name == REPLAY_COUNT_HEADER:
                count = _integer(_text(value))
                return count if count is not None and count >= 0 else 0
        return 0

    def replay_headers(self) -> list[tuple[str, str | bytes | None]]:
        """The original headers without the dead-letter context, with the replay count incremented."""
        kept: list[tuple[str, str | bytes | None]] = []
        for name, value in self.headers:
            if not is_context_header(name) and name != REPLAY_COUNT_HEADER:
                kept.append((name, value))
        kept.append((REPLAY_COUNT_HEADER, str(self.replay_count + 1).encode()))
        return kept


def _text(value: bytes | None) -> str:
    return "" if value is None else value.decode("utf-8", errors="replace")


def _integer(text: str | None) -> int | None:
    if text is None or not text.strip().isdigit():
        return None
    return int(text)


@dataclass(frozen=True, slots=True)
class Selection:
    """Which records to act on; every given criterion must hold. Reasons are glob patterns (`http_5*`)."""

    reasons: tuple[str, ...] = ()
    source_topics: frozenset[str] = frozenset()
    source_partitions: frozenset[int] = frozenset()
    offset_from: int | None = None  # source offsets, inclusive
    offset_to: int | None = None
    since_ms: int | None = None  # dead-letter time, since <= t < until
    until_ms: int | None = None

    def matches(self, record: DeadLetterRecord) -> bool:
        if self.reasons and not any(fnmatch.fnmatchcase(record.reason, pattern) for pattern in self.reasons):
            return False
        if self.source_topics and record.source_topic not in self.source_topics:
            return False
        if self.source_partitions and record.source_partition not in self.source_partitions:
            return False
        if not _within(record.source_offset, self.offset_from, None if self.offset_to is None else self.offset_to + 1):
            return False
        return _within(record.dead_lettered_at_ms, self.since_ms, self.until_ms)


def _within(value: int | None, low: int | None, high: int | None) -> bool:
    """`low <= value < high`, each bound optional; an unknown value is outside any bound."""
    if low is None and high is None:
        return True
    if value is None:
        return False
    return (low is None or value >= low) and (high is None or value < high)


def parse_time_ms(text: str) -> int:
    """Epoch milliseconds from digits, or from an ISO 8601 time (UTC when it names no offset)."""
    text = text.strip()
    if text.isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is neither epoch milliseconds nor an ISO 8601 time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


# -- inspect -------------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class InspectReport:
    """Counts over the records read, and the first selected ones to show."""

    topic: str
    read: int = 0
    selected: int = 0
    by_reason: Counter[str] = field(default_factory=Counter)
    by_source_topic: Counter[str] = field(default_factory=Counter)
    by_http_status: Counter[str] = field(default_factory=Counter)
    shown: list[DeadLetterRecord] = field(default_factory=list)


def inspect(
    settings: DlqSettings,
    *,
    topic: str | None = None,
    selection: Selection = Selection(),
    limit: int | None = None,
    show: int = 5,
    timeout_s: float = 30.0,
) -> InspectReport:
    """Read the DLQ from the beginning (at most `limit` records) and summarise the selected ones; commits nothing."""
    report = InspectReport(topic or settings.dlq_topic)
    consumer = settings.consumer(f"mics-worker-dlq-inspect-{uuid.uuid4().hex}")
    try:
        reader = SnapshotReader(consumer, [report.topic], start="beginning", timeout_s=timeout_s)
        for batch in reader.batches():
            for message in batch:
                if limit is not None and report.read >= limit:
                    return report
                report.read += 1
                record = DeadLetterRecord.from_message(message)
                if not selection.matches(record):
                    continue
                report.selected += 1
                report.by_reason[record.reason] += 1
                report.by_source_topic[record.source_topic or "unknown"] += 1
                report.by_http_status[record.http_status or "none"] += 1
                if len(report.shown) < show:
                    report.shown.append(record)
    except SnapshotError as exc:
        raise DlqError(str(exc)) from exc
    finally:
        consumer.close()
    return report


def format_inspect(report: InspectReport, output_format: Literal["text", "json"]) -> str:
    """The inspect report as text for a terminal, or as one JSON object."""
    if output_format == "json":
        document = {
            "topic": report.topic,
            "read": report.read,
            "selected": report.selected,
            "by_reason": dict(report.by_reason.most_common()),
            "by_source_topic": dict(report.by_source_topic.most_common()),
            "by_http_status": dict(report.by_http_status.most_common()),
            "shown": [_record_json(record) for record in report.shown],
        }
        return codec.encode(document).decode()
    lines = [
        f"dead-letter topic {report.topic}: {report.read} records read, {report.selected} selected",
        "by reason:       " + _counts(report.by_reason),
        "by source topic: " + _counts(report.by_source_topic),
        "by HTTP status:  " + _counts(report.by_http_status),
    ]
    for record in report.shown:
        lines.append(f"--- partition {record.partition} offset {record.offset}, {_when(record.dead_lettered_at_ms)}")
        lines.append(f"key: {_preview(record.key)}")
        lines.append(f"value: {_preview(record.value)}")
        lines.extend(f"  {name}: {value}" for name, value in record.context.items())
        if record.replay_count:
            lines.append(f"  {REPLAY_COUNT_HEADER}: {record.replay_count}")
    return "\n".join(printable(line) for line in lines)


def _record_json(record: DeadLetterRecord) -> dict[str, object]:
    return {
        "partition": record.partition,
        "offset": record.offset,
        "timestamp_ms": record.timestamp_ms,
        "key": None if record.key is None else _text(record.key[:_VALUE_PREVIEW_BYTES]),
        "value": None if record.value is None else _text(record.value[:_VALUE_PREVIEW_BYTES]),
        "value_bytes": None if record.value is None else len(record.value),
        "context": dict(record.context),
        "replay_count": record.replay_count,
    }


def _counts(counter: Counter[str]) -> str:
    return ", ".join(f"{name}={count}" for name, count in counter.most_common()) or "-"


def _when(epoch_ms: int | None) -> str:
    if epoch_ms is None:
        return "time unknown"
    return datetime.fromtimestamp(epoch_ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _preview(data: bytes | None) -> str:
    if data is None:
        return "(null)"
    text = _text(data[:_VALUE_PREVIEW_BYTES])
    return text if len(data) <= _VALUE_PREVIEW_BYTES else f"{text}... ({len(data)} bytes)"


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """Escape control characters: message data must not drive the operator's terminal."""
    return _CONTROL.sub(lambda match: f"\\x{ord(match.group()):02x}", text)


# -- replay --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReplayOptions:
    """What to replay and where; the defaults replay everything to its original topic."""

    selection: Selection = Selection()
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
    read: int = 0
    selected: int = 0
    replayed: Counter[str] = field(default_factory=Counter)  # per destination topic
    refused: int = 0  # already replayed max_replays times
    failed: int = 0  # produced but not acknowledged (the replay stopped; their batch was not committed)
    no_destination: int = 0  # no --to and no original-topic header
    truncated: int = 0  # only the value's first bytes are in the DLQ

    @property
    def replayed_total(self) -> int:
        return sum(self.replayed.values())


def replay(
    settings: DlqSettings,
    options: ReplayOptions = ReplayOptions(),
    *,
    progress: Callable[[int, int], None] | None = None,
) -> ReplayReport:
    """Replay the selected DLQ records; raise `DlqError` when it cannot go on (what was acknowledged is committed)."""
    group = options.group or f"{settings.group_id}-dlq-replay"
    report = ReplayReport(dry_run=options.dry_run, group=group)
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
            report.refused += 1
            return
        if record.truncated_from_bytes is not None:
            report.truncated += 1
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
    """The replay ledger, one fact per line."""
    verb = "would replay" if report.dry_run else "replayed"
    destinations = ", ".join(f"{topic}={count}" for topic, count in report.replayed.most_common())
    lines = [
        f"read {report.read} dead-letter records (group {report.group}), {report.selected} selected",
        f"{verb}: {report.replayed_total}" + (f" ({destinations})" if destinations else ""),
    ]
    if report.refused:
        lines.append(f"refused, already replayed the maximum number of times: {report.refused}")
    if report.failed:
        lines.append(f"failed to produce (not committed, replayed again next run): {report.failed}")
    if report.no_destination:
        lines.append(f"skipped, no original topic recorded (use --to): {report.no_destination}")
    if report.truncated:
        lines.append(
            f"refused, value truncated in the DLQ (replay it from its source position headers): {report.truncated}"
        )
    if report.dry_run:
        lines.append("dry run: nothing produced, nothing committed")
    return "\n".join(lines)


# -- command line --------------------------------------------------------------------------------------------------


def inspect_command(args: argparse.Namespace) -> int:
    """`mics-worker dlq inspect`: 0 on success, 1 when the DLQ cannot be read, 2 on a usage error."""
    try:
        settings = DlqSettings.from_env(os.environ)
        report = inspect(
            settings,
            topic=args.topic,
            selection=Selection(reasons=tuple(args.reason or ())),
            limit=args.limit,
            show=args.show,
        )
    except ConfigError as exc:
        sys.stderr.write(f"mics-worker dlq inspect: configuration error: {exc}\n")
        return 2
    except (DlqError, KafkaException) as exc:
        sys.stderr.write(f"mics-worker dlq inspect: {exc}\n")
        return 1
    sys.stdout.write(format_inspect(report, args.format) + "\n")
    return 0


def replay_command(args: argparse.Namespace) -> int:
    """`mics-worker dlq replay`: 0 on success (refusals included), 1 when it stopped on an error, 2 on a usage error."""
    try:
        settings = DlqSettings.from_env(os.environ)
        options = ReplayOptions(
            selection=Selection(
                reasons=tuple(args.reason or ()),
                source_topics=frozenset(args.source_topic or ()),
                source_partitions=frozenset(args.partition or ()),
                offset_from=args.offset_from,
                offset_to=args.offset_to,
                since_ms=None if args.since is None else parse_time_ms(args.since),
                until_ms=None if args.until is None else parse_time_ms(args.until),
            ),
            to_topic=args.to,
            dlq_topic=args.topic,
            group=args.group,
            limit=args.limit,
            dry_run=args.dry_run,
            max_replays=args.max_replays,
        )
    except (ConfigError, ValueError) as exc:
        sys.stderr.write(f"mics-worker dlq replay: {exc}\n")
        return 2
    bar = _ProgressBar(sys.stderr) if sys.stderr.isatty() else None
    try:
        report = replay(settings, options, progress=bar)
    except (DlqError, KafkaException) as exc:
        sys.stderr.write(f"\nmics-worker dlq replay: {exc}\n")
        if isinstance(exc, DlqError) and exc.report is not None:
            sys.stdout.write("before stopping:\n" + format_replay(exc.report) + "\n")
        return 1
    finally:
        if bar is not None:
            bar.finish()
    sys.stdout.write(format_replay(report) + "\n")
    return 0


class _ProgressBar:
    """`[#####.....] 120/450` redrawn in place on a terminal."""

    _WIDTH = 30

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self._drawn = False

    def __call__(self, done: int, total: int) -> None:
        filled = self._WIDTH if total <= 0 else min(self._WIDTH, self._WIDTH * done // total)
        self._stream.write(f"\r[{'#' * filled}{'.' * (self._WIDTH - filled)}] {done}/{total}")
        self._stream.flush()
        self._drawn = True

    def finish(self) -> None:
        if self._drawn:
            self._stream.write("\n")
