"""Small Kafka helpers for the operator-tool tests: fill a topic, read it all back, build dead-letter records.

They use confluent-kafka directly and share no code with the tools under test, so a test's view of a topic
does not depend on the reader it checks. Dead-letter records are built by the worker's own writer
(`worker.dlq_format`), so the tools are tested against the format the worker produces.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from confluent_kafka import Consumer, Message, Producer, TopicPartition

from worker.dlq_format.full import dead_letter_record
from worker.dlq_format.letter import DeadLetter
from worker.dlq_format.reduced import reduced_record

Headers = Sequence[tuple[str, bytes | None]]


@dataclass(frozen=True, slots=True)
class Record:
    """What a test writes: key, value, headers and, optionally, the partition."""

    value: bytes | None
    key: bytes | None = None
    headers: Headers = ()
    partition: int | None = None


def dead_letter(
    letter: DeadLetter,
    value: bytes | None,
    *,
    key: bytes | None = None,
    source: tuple[str, int, int] = ("events", 0, 0),
    original: Headers = (),
    at_ms: int | None = None,
    partition: int | None = None,
    reduced: bool = False,
) -> Record:
    """A DLQ record as the worker writes it for a source record (`source`: topic, partition, offset) carrying
    `original` headers; `reduced` writes the bounded form; `at_ms` pins the `mics.dlq.time` header."""
    topic, source_partition, offset = source
    written = dead_letter_record(
        letter, topic=topic, partition=source_partition, offset=offset, key=key, value=value, original_headers=original
    )
    if reduced:
        written = reduced_record(written)
    headers = written.headers
    if at_ms is not None:
        headers = [(n, str(at_ms).encode() if n == "mics.dlq.time" else v) for n, v in headers]
    return Record(written.value, key=written.key, headers=headers, partition=partition)


def produce(bootstrap_servers: str, topic: str, records: Iterable[Record]) -> None:
    """Write the records and wait until every one is acknowledged."""
    producer = Producer({"bootstrap.servers": bootstrap_servers, "enable.idempotence": True, "acks": "all"})
    failures: list[str] = []

    def on_delivery(error: object, _message: Message) -> None:
        if error is not None:
            failures.append(str(error))

    for record in records:
        producer.produce(
            topic,
            value=record.value,
            key=record.key,
            headers=list(record.headers),
            partition=-1 if record.partition is None else record.partition,
            on_delivery=on_delivery,
        )
    assert producer.flush(30) == 0
    assert failures == []


def read_all(bootstrap_servers: str, topic: str, timeout_s: float = 20.0) -> list[Message]:
    """Every record of the topic up to its current end, partition by partition in offset order."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap_servers, "group.id": f"read-{uuid.uuid4()}", "enable.auto.commit": False}
    )
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions}
        wanted = {p: end for p, end in ends.items() if end > 0}
        consumer.assign([TopicPartition(topic, p, 0) for p in wanted])
        messages: list[Message] = []
        seen = dict.fromkeys(wanted, 0)
        polls = 0
        while any(seen[p] < end for p, end in wanted.items()):
            polls += 1
            assert polls < timeout_s * 2, f"could not read {topic} to its end"
            for message in consumer.consume(num_messages=500, timeout=0.5):
                assert message.error() is None, message.error()
                messages.append(message)
                seen[message.partition() or 0] = (message.offset() or 0) + 1
        return sorted(messages, key=lambda m: (m.partition() or 0, m.offset() or 0))
    finally:
        consumer.close()


def committed(bootstrap_servers: str, group: str, topic: str, partitions: int) -> list[int]:
    """The group's committed offset per partition (negative where it has none)."""
    consumer = Consumer({"bootstrap.servers": bootstrap_servers, "group.id": group, "enable.auto.commit": False})
    try:
        found = consumer.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
        return [tp.offset for tp in sorted(found, key=lambda tp: tp.partition)]
    finally:
        consumer.close()


def commit(bootstrap_servers: str, group: str, topic: str, offsets: dict[int, int]) -> None:
    """Commit offsets for a group, as a worker would have."""
    consumer = Consumer({"bootstrap.servers": bootstrap_servers, "group.id": group, "enable.auto.commit": False})
    try:
        consumer.commit(offsets=[TopicPartition(topic, p, o) for p, o in offsets.items()], asynchronous=False)
    finally:
        consumer.close()
