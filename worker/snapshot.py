"""Reading topics up to where they ended when the read began: the DLQ tools and the dry run share this.

Why a snapshot: a tool that reads "to the end" of a topic the worker is still writing (a replayed message that fails
again lands back in the DLQ) would never finish, or would loop. The high watermarks captured at start bound the read.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Literal

from worker.kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition, topic_partitions

__all__ = ["SnapshotError", "SnapshotReader"]

log = logging.getLogger(__name__)


class SnapshotError(RuntimeError):
    """The read cannot go on (a topic that does not exist, an unreachable broker, no progress); the message says why."""


class SnapshotReader:
    """Reads topics from a start position up to the high watermarks captured when it is built, then stops.

    `start="beginning"` reads everything retained; `start="committed"` resumes from the consumer group's committed
    offsets (the beginning where there are none). A partition is done when its last record below the captured
    watermark is read, or when librdkafka reports its end (offsets may have gaps: compaction, transaction markers).
    """

    def __init__(
        self,
        consumer: Consumer,
        topics: Sequence[str],
        *,
        start: Literal["beginning", "committed"],
        timeout_s: float = 30.0,
    ) -> None:
        self._consumer = consumer
        self._timeout_s = timeout_s
        partitions = [TopicPartition(topic, p) for topic in topics for p in self._partition_ids(topic)]
        self.ends: dict[tuple[str, int], int] = {}
        self.starts: dict[tuple[str, int], int] = {}
        committed = self._committed(partitions) if start == "committed" else {}
        for tp in partitions:
            low, high = consumer.get_watermark_offsets(tp, timeout=timeout_s, cached=False)
            key = (tp.topic, tp.partition)
            self.ends[key] = high
            self.starts[key] = max(low, committed.get(key, low))
        self._open = {key for key, begin in self.starts.items() if begin < self.ends[key]}
        consumer.assign([TopicPartition(topic, p, self.starts[(topic, p)]) for topic, p in sorted(self._open)])

    @property
    def total(self) -> int:
        """How many offsets lie between the start positions and the captured watermarks (an upper bound)."""
        return sum(max(0, self.ends[key] - begin) for key, begin in self.starts.items())

    def batches(self, batch_size: int = 500) -> Iterator[list[Message]]:
        """Yield the records below the captured watermarks in batches, in offset order per partition."""
        idle_s = 0.0
        poll_s = 0.5
        while self._open:
            messages = self._consumer.consume(num_messages=batch_size, timeout=poll_s)
            batch = [message for message in messages if self._keep(message)]
            idle_s = 0.0 if messages else idle_s + poll_s
            if idle_s >= self._timeout_s:
                waiting = ", ".join(f"{topic}[{p}]" for topic, p in sorted(self._open))
                raise SnapshotError(f"no progress for {self._timeout_s:.0f} s while reading {waiting}")
            if batch:
                yield batch

    def _keep(self, message: Message) -> bool:
        """Whether to hand the message on; also closes partitions that reached their captured end."""
        error = message.error()
        topic, partition = message.topic() or "", message.partition()
        key = (topic, -1 if partition is None else partition)
        if error is not None:
            if error.code() == KafkaError._PARTITION_EOF:
                self._open.discard(key)
            elif error.fatal():
                raise SnapshotError(f"Kafka error: {error.str()}")
            else:
                log.warning("Kafka error while reading: %s", error.str())
            return False
        offset = message.offset()
        end = self.ends.get(key)
        if offset is None or end is None or key not in self._open or offset >= end:
            return False
        if offset + 1 >= end:
            self._open.discard(key)
        return True

    def _partition_ids(self, topic: str) -> list[int]:
        try:
            return topic_partitions(self._consumer, topic, self._timeout_s)
        except LookupError as exc:
            raise SnapshotError(str(exc)) from exc

    def _committed(self, partitions: list[TopicPartition]) -> dict[tuple[str, int], int]:
        try:
            committed = self._consumer.committed(partitions, timeout=self._timeout_s)
        except KafkaException as exc:
            raise SnapshotError(f"cannot read the committed offsets: {exc}") from exc
        return {(tp.topic, tp.partition): tp.offset for tp in committed if tp.offset >= 0}
