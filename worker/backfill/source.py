"""Where a backfill reads: a range of Kafka topics (offsets or timestamps, per partition, or everything retained) or
NDJSON files. Both give `SourceRecord`s in position order per partition and the range they will cover, fixed when
the run first starts: a resumed run reads the same range, never what was produced since.

A file is one partition (0) of a source named by its path; a record's offset is its line number, counted from 0
(blank lines are skipped, and keep their numbers). Dead letters of file records carry that path and line number in
the usual position headers.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from worker.kafka import Consumer, KafkaError, KafkaException, TopicPartition

__all__ = ["FileSource", "Position", "Range", "SourceError", "SourceRecord", "TopicSource"]

log = logging.getLogger(__name__)

Position = tuple[str, int]
"""A source partition: (topic or file path, partition)."""
Range = tuple[int, int]
"""[start, end) offsets."""
Headers = list[tuple[str, str | bytes | None]]
_POLL_S = 0.5


class SourceError(RuntimeError):
    """The source cannot be read (a missing topic or file, an unreachable broker, no progress)."""


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """One record read, with what a dead letter needs to point back at it."""

    origin: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers


class TopicSource:
    """Reads [start, end) of each selected partition of the given topics with a consumer that never commits."""

    def __init__(
        self,
        consumer: Consumer,
        topics: Sequence[str],
        *,
        partitions: Sequence[int] = (),
        from_offset: int | None = None,
        to_offset: int | None = None,
        from_ms: int | None = None,
        to_ms: int | None = None,
        timeout_s: float = 30.0,
    ) -> None:
        self._consumer = consumer
        self._timeout_s = timeout_s
        self._topics = topics
        self._partitions = partitions
        self._bounds = (from_offset, to_offset, from_ms, to_ms)

    def ranges(self) -> dict[Position, Range]:
        """The [start, end) of every selected partition now: the watermarks bound both ends."""
        from_offset, to_offset, from_ms, to_ms = self._bounds
        found: dict[Position, Range] = {}
        for topic in self._topics:
            for partition in self._partition_ids(topic):
                tp = TopicPartition(topic, partition)
                low, high = self._consumer.get_watermark_offsets(tp, timeout=self._timeout_s, cached=False)
                start = max(low, from_offset if from_offset is not None else low, self._at(tp, from_ms, low))
                end = min(high, to_offset if to_offset is not None else high, self._at(tp, to_ms, high))
                found[(topic, partition)] = (start, max(start, end))
        return found

    def records(self, ranges: dict[Position, Range], batch_size: int = 1000) -> Iterator[list[SourceRecord]]:
        """Every record of `ranges`, in batches; stops when each partition reached its end."""
        open_ = {key for key, (start, end) in ranges.items() if start < end}
        self._consumer.assign([TopicPartition(t, p, ranges[(t, p)][0]) for t, p in sorted(open_)])
        idle_s = 0.0
        while open_:
            messages = self._consumer.consume(num_messages=batch_size, timeout=_POLL_S)
            idle_s = 0.0 if messages else idle_s + _POLL_S
            if idle_s >= self._timeout_s:
                raise SourceError(f"no progress for {self._timeout_s:.0f} s reading {sorted(open_)}")
            batch: list[SourceRecord] = []
            for message in messages:
                error = message.error()
                key = (message.topic() or "", message.partition() or 0)
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        open_.discard(key)
                    elif error.fatal():
                        raise SourceError(f"Kafka error: {error.str()}")
                    else:
                        log.warning("Kafka error while reading: %s", error.str())
                    continue
                offset = message.offset() or 0
                if key not in open_ or offset >= ranges[key][1]:
                    continue
                if offset + 1 >= ranges[key][1]:
                    open_.discard(key)
                found = message.headers() or []
                headers: Headers = list(found.items() if isinstance(found, dict) else found)
                batch.append(SourceRecord(key[0], key[1], offset, message.key(), message.value(), headers))
            if batch:
                yield batch

    def _at(self, tp: TopicPartition, epoch_ms: int | None, default: int) -> int:
        """The first offset whose timestamp is at or after `epoch_ms` (the end when there is none)."""
        if epoch_ms is None:
            return default
        try:
            (found,) = self._consumer.offsets_for_times(
                [TopicPartition(tp.topic, tp.partition, epoch_ms)], self._timeout_s
            )
        except KafkaException as exc:
            raise SourceError(f"cannot look up offsets by time: {exc}") from exc
        if found.offset < 0:  # no record at or after that time
            _, high = self._consumer.get_watermark_offsets(tp, timeout=self._timeout_s, cached=False)
            return int(high)
        return int(found.offset)

    def _partition_ids(self, topic: str) -> list[int]:
        try:
            metadata = self._consumer.list_topics(topic, timeout=self._timeout_s)
        except KafkaException as exc:
            raise SourceError(f"cannot read the metadata of topic {topic!r}: {exc}") from exc
        found = metadata.topics.get(topic)
        if found is None or found.error is not None:
            raise SourceError(f"topic {topic!r} does not exist")
        wanted = set(self._partitions) or set(found.partitions)
        missing = wanted - set(found.partitions)
        if missing:
            raise SourceError(f"topic {topic!r} has no partition {sorted(missing)}")
        return sorted(wanted)


class FileSource:
    """Reads NDJSON files, one record a non-blank line."""

    def __init__(self, paths: Sequence[str]) -> None:
        self._paths = paths

    def ranges(self) -> dict[Position, Range]:
        """[0, number of lines) of every file."""
        found: dict[Position, Range] = {}
        for path in self._paths:
            try:
                with open(path, "rb") as file:
                    count, last = 0, b"\n"
                    while chunk := file.read(1 << 20):
                        count, last = count + chunk.count(b"\n"), chunk[-1:]
                    count += 0 if last == b"\n" else 1  # a last line without its newline
            except OSError as exc:
                raise SourceError(f"cannot read {path!r}: {exc.strerror}") from exc
            found[(path, 0)] = (0, count)
        return found

    def records(self, ranges: dict[Position, Range], batch_size: int = 1000) -> Iterator[list[SourceRecord]]:
        """The non-blank lines of each file from its range's start, in batches."""
        for (path, _), (start, end) in sorted(ranges.items()):
            batch: list[SourceRecord] = []
            with open(path, "rb") as file:
                for number, line in enumerate(file):
                    if number < start or number >= end or not line.strip():
                        continue
                    batch.append(SourceRecord(path, 0, number, None, line.rstrip(b"\r\n"), []))
                    if len(batch) >= batch_size:
                        yield batch
                        batch = []
            if batch:
                yield batch


Source = TopicSource | FileSource
