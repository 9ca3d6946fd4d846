"""The assignment table: which partitions this member owns, what it took from each, and what may be committed.

Pure bookkeeping on the event loop, no Kafka and no clock. Each assigned partition gets a fresh `Partition`; a
message is *taken* (its offset tracked, its bytes counted) before any work starts and *finished* (completed or
abandoned) exactly once. What the window bounds is kept here, per partition and in total:

- `in_flight`: messages taken and not finished (each holds its record in memory: `held_bytes`);
- `uncommitted`: everything taken past the offset the group coordinator confirmed — what a crash now would repeat,
  finished-but-uncommitted messages included.

A partition is *released* on revoke, loss or shutdown: nothing new is taken from it, and completions no longer move
its offsets (its next owner reads again from the committed offset).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import TYPE_CHECKING

from worker.offsets import PartitionOffsets
from worker.tracing.noop import NO_TRACE, MessageTrace

if TYPE_CHECKING:
    from worker.framed_plan import AwaitingSchema
    from worker.kafka import Message
    from worker.routing import Job, Rejection

__all__ = ["Assignment", "Partition", "Pending", "TopicPartitionKey", "record_size"]

TopicPartitionKey = tuple[str, int]


class Partition:
    """One assigned partition; a new object each time the partition is assigned."""

    __slots__ = (
        "committed",
        "draining",
        "handed_over",
        "held_bytes",
        "in_flight",
        "key",
        "offsets",
        "released",
        "stored",
        "taken_until",
    )

    def __init__(self, key: TopicPartitionKey) -> None:
        self.key = key
        self.offsets = PartitionOffsets()
        self.released = False  # revoked or lost: nothing new is taken, its offsets are no longer stored
        self.draining = asyncio.Event()  # set on revoke, loss or stop: wakes retries and gates, starts no new retry
        self.handed_over = False  # the revoke's drain is over: the next owner has it, start no request at all
        self.stored: int | None = None  # the offset last handed to librdkafka to commit
        self.committed: int | None = None  # the offset the coordinator last confirmed (or where consumption began)
        self.taken_until: int | None = None  # one past the last offset taken
        self.in_flight = 0
        self.held_bytes = 0

    @property
    def uncommitted(self) -> int:
        """Messages a crash now would repeat: everything taken past the confirmed commit (gaps count, to be safe)."""
        if self.taken_until is None or self.committed is None:
            return 0
        return max(0, self.taken_until - self.committed)

    @property
    def finished_uncommitted(self) -> int:
        """Finished messages stored past the confirmed commit: what a commit request would secure."""
        if self.stored is None or self.committed is None:
            return 0
        return max(0, self.stored - self.committed)


class Pending:
    """One taken message between consume and its final outcome."""

    __slots__ = ("message", "offset", "partition", "plan", "size", "trace")

    def __init__(self, message: Message, offset: int, partition: Partition, size: int) -> None:
        self.message = message
        self.offset = offset
        self.partition = partition
        self.size = size
        self.plan: Job | Rejection | AwaitingSchema | None = None
        self.trace: MessageTrace = NO_TRACE  # its spans, when tracing is on


def record_size(message: Message) -> int:
    """The bytes a fetched record holds in memory: key, value and headers."""
    size = len(message.value() or b"") + len(message.key() or b"")
    headers = message.headers()
    if headers:
        pairs = headers.items() if isinstance(headers, dict) else headers
        size += sum(len(name) + len(value or b"") for name, value in pairs)
    return size


class Assignment:
    """The partitions this member owns, keyed by (topic, partition)."""

    __slots__ = ("_dirty", "_partitions", "held_bytes", "in_flight")

    def __init__(self) -> None:
        self._partitions: dict[TopicPartitionKey, Partition] = {}
        self._dirty: set[Partition] = set()
        self.in_flight = 0
        self.held_bytes = 0

    def __len__(self) -> int:
        return len(self._partitions)

    def partitions(self) -> list[Partition]:
        return list(self._partitions.values())

    def get(self, key: TopicPartitionKey) -> Partition | None:
        return self._partitions.get(key)

    @property
    def uncommitted(self) -> int:
        return sum(partition.uncommitted for partition in self._partitions.values())

    def assign(self, keys: Iterable[TopicPartitionKey]) -> None:
        """Own these partitions (an assignment callback); a partition assigned again starts afresh."""
        for key in keys:
            self._partitions[key] = Partition(key)

    def release(self, keys: Iterable[TopicPartitionKey]) -> list[Partition]:
        """Stop owning these partitions (revoke, loss); returns the ones that were owned, now released and draining."""
        released = []
        for key in keys:
            partition = self._partitions.pop(key, None)
            if partition is not None:
                partition.released = True
                partition.draining.set()
                self._dirty.discard(partition)
                released.append(partition)
        return released

    def take(self, key: TopicPartitionKey, offset: int, size: int) -> Partition | None:
        """Track one fetched message; None when it is not ours (not assigned, released, or already taken)."""
        partition = self._partitions.get(key)
        if partition is None or partition.released:
            return None
        if partition.committed is None:
            partition.committed = offset  # consumption starts at the committed position
        try:
            partition.offsets.track(offset)
        except ValueError:
            return None  # a redelivery of an offset already taken
        partition.taken_until = offset + 1
        partition.in_flight += 1
        partition.held_bytes += size
        self.in_flight += 1
        self.held_bytes += size
        return partition

    def complete(self, partition: Partition, offset: int, size: int) -> None:
        """The message has its final outcome (delivered, or its dead letter acknowledged).

        A released partition's offsets still move (a revoke commits them after its drain) but are not stored.
        """
        self._finish(partition, size)
        if partition.offsets.complete(offset) is not None and not partition.released:
            self._dirty.add(partition)

    def abandon(self, partition: Partition, size: int) -> None:
        """The message leaves memory without an outcome: it stays uncommitted and is read again by the next owner."""
        self._finish(partition, size)

    def _finish(self, partition: Partition, size: int) -> None:
        partition.in_flight -= 1
        partition.held_bytes -= size
        self.in_flight -= 1
        self.held_bytes -= size

    def to_store(self) -> list[tuple[TopicPartitionKey, int]]:
        """Offsets that moved since the last call, marked stored: hand them to librdkafka's offset store."""
        moved = []
        for partition in self._dirty:
            committable = partition.offsets.committable
            if committable is not None:
                partition.stored = committable
                moved.append((partition.key, committable))
        self._dirty.clear()
        return moved

    def confirm_commit(self, key: TopicPartitionKey, offset: int) -> None:
        """The group coordinator confirmed `offset` for this partition."""
        partition = self._partitions.get(key)
        if partition is not None:
            partition.committed = max(partition.committed or 0, offset)

    def start_draining(self) -> None:
        """Shutdown: every partition wakes its sleeping retries and starts no new one."""
        for partition in self._partitions.values():
            partition.draining.set()
