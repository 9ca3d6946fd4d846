"""Small named fakes of confluent-kafka's consumer, producer and message, for driving the real core in-process.

They keep only what the pipeline relies on: a consumer hands out each assigned, unpaused partition's records in
offset order and runs rebalance callbacks inside `consume()` (on the caller's thread, as librdkafka does); a producer
acknowledges on `poll()` with what the test scripted. Nothing here sleeps: `consume` waits on a condition that the
test's `append` or `rebalance` notifies, bounded by the timeout the pipeline passes.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from confluent_kafka import KafkaError, KafkaException, TopicPartition

Key = tuple[str, int]
Headers = list[tuple[str, bytes | None]]


class FakeMessage:
    """A consumed record (or, with `error`, an error in its place)."""

    def __init__(  # noqa: PLR0917 - mirrors the record's fields
        self,
        topic: str,
        partition: int,
        offset: int,
        value: bytes | None,
        key: bytes | None = None,
        headers: Headers | None = None,
        timestamp_ms: int = 1_764_000_000_000,
        error: KafkaError | None = None,
    ) -> None:
        self._topic, self._partition, self._offset = topic, partition, offset
        self._value, self._key, self._headers = value, key, headers
        self._timestamp_ms = timestamp_ms
        self._error = error

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def value(self) -> bytes | None:
        return self._value

    def key(self) -> bytes | None:
        return self._key

    def headers(self) -> Headers | None:
        return None if self._headers is None else list(self._headers)

    def timestamp(self) -> tuple[int, int]:
        return (1, self._timestamp_ms)

    def error(self) -> KafkaError | None:
        return self._error


class FakeConsumer:
    """A consumer of in-memory partition logs; `rebalance` schedules callbacks for the next `consume`."""

    def __init__(self, queue_bytes: int = 16 * 1024 * 1024) -> None:
        self.queue_bytes = queue_bytes  # like queued.max.messages.kbytes: what one consume() can return at most
        self.logs: dict[Key, list[FakeMessage]] = {}
        self.next_offset: dict[Key, int] = {}  # where each partition's next consume() reads
        self.seeks: list[tuple[Key, int]] = []
        self.assigned: list[Key] = []
        self.paused: set[Key] = set()
        self.pause_calls: list[list[Key]] = []
        self.poll_timeouts: list[float] = []  # what each consume() was allowed to wait, in order
        self.stored: dict[Key, int] = {}
        self.committed: dict[Key, int] = {}
        self.commit_history: list[dict[Key, int]] = []
        self.on_commit: Callable[[KafkaError | None, list[TopicPartition]], None] | None = None
        self.errors: deque[KafkaError] = deque()
        self.closed = False
        self._callbacks: dict[str, Any] = {}
        self._events: deque[tuple[str, list[Key]]] = deque()
        self._wakeup = threading.Condition()

    # -- test side ------------------------------------------------------------------------------------------

    def append(self, topic: str, partition: int, value: bytes | None, **fields: Any) -> FakeMessage:
        with self._wakeup:
            log = self.logs.setdefault((topic, partition), [])
            message = FakeMessage(topic, partition, len(log), value, **fields)
            log.append(message)
            self._wakeup.notify_all()
        return message

    def rebalance(self, event: str, keys: list[Key]) -> None:
        """Schedule `assign`, `revoke` or `lost` for the next consume() call."""
        with self._wakeup:
            self._events.append((event, keys))
            self._wakeup.notify_all()

    def inject_error(self, error: KafkaError) -> None:
        with self._wakeup:
            self.errors.append(error)
            self._wakeup.notify_all()

    # -- confluent-kafka's surface ---------------------------------------------------------------------------

    def subscribe(self, _topics: list[str], **callbacks: Any) -> None:
        self._callbacks = callbacks

    def consume(self, num_messages: int, timeout: float) -> list[FakeMessage]:
        with self._wakeup:
            self.poll_timeouts.append(timeout)
            if not self._events and not self.errors and not self._available():
                self._wakeup.wait(timeout)
            events = list(self._events)
            self._events.clear()
        for event, keys in events:
            self._run_callback(event, keys)
        with self._wakeup:
            taken: list[FakeMessage] = []
            while self.errors and len(taken) < num_messages:
                error = self.errors.popleft()
                taken.append(FakeMessage("", -1, -1, None, error=error))
            progress, size = True, 0
            while len(taken) < num_messages and progress and (size < self.queue_bytes or not taken):
                progress = False
                for key in self.assigned:  # round robin, one record per partition per turn
                    log, at = self.logs.get(key, []), self.next_offset.get(key, 0)
                    if key not in self.paused and at < len(log) and len(taken) < num_messages:
                        taken.append(log[at])
                        size += len(log[at].value() or b"")
                        self.next_offset[key] = at + 1
                        progress = True
            return taken

    def _available(self) -> bool:
        return any(
            key not in self.paused and self.next_offset.get(key, 0) < len(self.logs.get(key, []))
            for key in self.assigned
        )

    def _run_callback(self, event: str, keys: list[Key]) -> None:
        tps = [TopicPartition(topic, partition) for topic, partition in keys]
        if event == "assign":
            for key in keys:
                self.next_offset[key] = self.committed.get(key, 0)
            self.assigned.extend(key for key in keys if key not in self.assigned)
            self._callbacks["on_assign"](self, tps)
        else:
            self._callbacks["on_revoke" if event == "revoke" else "on_lost"](self, tps)
            self.assigned = [key for key in self.assigned if key not in keys]

    def assignment(self) -> list[TopicPartition]:
        return [TopicPartition(topic, partition) for topic, partition in self.assigned]

    def pause(self, partitions: list[TopicPartition]) -> None:
        keys = [(tp.topic, tp.partition) for tp in partitions]
        with self._wakeup:
            self.pause_calls.append(keys)
            self.paused.update(keys)

    def resume(self, partitions: list[TopicPartition]) -> None:
        with self._wakeup:
            self.paused.difference_update((tp.topic, tp.partition) for tp in partitions)
            self._wakeup.notify_all()

    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        """The offset after the last message consumed, or -1001 (librdkafka's invalid offset) before any."""
        with self._wakeup:
            return [
                TopicPartition(tp.topic, tp.partition, self.next_offset.get((tp.topic, tp.partition), -1001))
                for tp in partitions
            ]

    def seek(self, partition: TopicPartition) -> None:
        with self._wakeup:
            key = (partition.topic, partition.partition)
            self.seeks.append((key, partition.offset))
            self.next_offset[key] = partition.offset
            self._wakeup.notify_all()

    def store_offsets(self, offsets: list[TopicPartition]) -> None:
        for tp in offsets:
            self.stored[(tp.topic, tp.partition)] = tp.offset

    def commit(
        self, offsets: list[TopicPartition] | None = None, asynchronous: bool = True
    ) -> list[TopicPartition] | None:
        chosen = {(tp.topic, tp.partition): tp.offset for tp in offsets} if offsets else dict(self.stored)
        if not chosen:
            raise KafkaException(KafkaError(KafkaError._NO_OFFSET))
        self.committed.update(chosen)
        self.commit_history.append(dict(chosen))
        result = [TopicPartition(topic, partition, offset) for (topic, partition), offset in chosen.items()]
        if self.on_commit is not None:
            self.on_commit(None, result)
        return None if asynchronous else result

    def close(self) -> None:
        self.closed = True


@dataclass
class Produced:
    """One record the fake producer acknowledged."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: Headers

    def header(self, name: str) -> list[bytes | None]:
        return [value for header, value in self.headers if header == name]


@dataclass
class FakeProducer:
    """Acknowledges on poll(). `local_limit` refuses larger records at produce() (librdkafka's message.max.bytes);
    `broker_limit` refuses them in the acknowledgement (the topic's max.message.bytes); `down` fails every write;
    `fatal` fails the next acknowledgement with a fatal error; `missing_topics` are topics the "broker" says do not
    exist when asked for metadata (`list_topics`)."""

    local_limit: int | None = None
    broker_limit: int | None = None
    down: bool = False
    fatal: bool = False
    acked: list[Produced] = field(default_factory=list)
    attempts: int = 0
    missing_topics: set[str] = field(default_factory=set)
    _queue: deque[tuple[Produced, Any]] = field(default_factory=deque)

    def produce(self, topic: str, value: bytes | None = None, key: bytes | None = None, **kw: Any) -> None:
        self.attempts += 1
        headers = [
            (name, data if data is None or isinstance(data, bytes) else data.encode()) for name, data in kw["headers"]
        ]
        record = Produced(topic, key, value, headers)
        if self.local_limit is not None and size_of(record) > self.local_limit:
            raise KafkaException(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE))
        self._queue.append((record, kw["on_delivery"]))

    def poll(self, _timeout: float = 0) -> int:
        served = 0
        while self._queue:
            record, on_delivery = self._queue.popleft()
            on_delivery(self._verdict(record), None)
            served += 1
        return served

    def _verdict(self, record: Produced) -> KafkaError | None:
        if self.fatal:
            return KafkaError(KafkaError._FATAL, "fenced", fatal=True)
        if self.down:
            return KafkaError(KafkaError._MSG_TIMED_OUT)
        if self.broker_limit is not None and size_of(record) > self.broker_limit:
            return KafkaError(KafkaError.MSG_SIZE_TOO_LARGE)
        self.acked.append(record)
        return None

    def flush(self, _timeout: float = 0) -> int:
        self.poll()
        return 0

    def list_topics(self, topic: str, timeout: float = -1) -> SimpleNamespace:
        """Metadata of one topic, shaped like librdkafka's (`.topics[name].error`)."""
        error = KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART) if topic in self.missing_topics else None
        return SimpleNamespace(topics={topic: SimpleNamespace(error=error)})


def size_of(record: Produced) -> int:
    """The bytes a record takes (key, value, header names and values), close to what Kafka counts."""
    headers = sum(len(name) + len(value or b"") for name, value in record.headers)
    return len(record.key or b"") + len(record.value or b"") + headers
