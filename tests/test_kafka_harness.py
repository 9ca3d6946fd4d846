"""The real Kafka harness: the broker is a 4.x KRaft broker, and consumer-group commits behave as the worker needs.

The commit test is the guarantee the worker's "commit only what is done" rests on: a consumer group resumes exactly
at the committed offsets, with no re-delivery of committed messages and nothing remaining skipped.
"""

from __future__ import annotations

import re
import time
from collections import Counter

import pytest
from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition

from tests.fixtures.kafka import KafkaService, TopicFactory

pytestmark = pytest.mark.integration

MESSAGES = 10_000
COMMITTED = 6_000
PARTITIONS = 3
KEYS = 500
CONSUME_DEADLINE_S = 90.0

Position = tuple[int, int]  # (partition, offset)


def _produce(bootstrap: str, topic: str) -> dict[Position, tuple[bytes, bytes]]:
    """Produce MESSAGES keyed messages in order; return where each landed, mapped to its (key, value)."""
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5})
    landed: dict[Position, tuple[bytes, bytes]] = {}
    failures: list[KafkaError] = []

    def on_delivery(error: KafkaError | None, message: Message) -> None:
        if error is not None:
            failures.append(error)
            return
        landed[_message_position(message)] = (message.key() or b"", message.value() or b"")

    for index in range(MESSAGES):
        key = f"user-{index % KEYS}".encode()
        producer.produce(topic, key=key, value=f"{index}".encode(), on_delivery=on_delivery)
        producer.poll(0)
    assert producer.flush(30) == 0
    assert failures == []
    assert len(landed) == MESSAGES
    return landed


def _consumer(bootstrap: str, group: str) -> Consumer:
    """A KIP-848 ('consumer' protocol) group member that commits only when told to."""
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "group.protocol": "consumer",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )


def _message_position(message: Message) -> Position:
    error = message.error()
    assert error is None, f"consumer error: {error}"
    partition, offset = message.partition(), message.offset()
    assert partition is not None
    assert offset is not None
    return partition, offset


def _consume_until(consumer: Consumer, expected: int) -> list[Message]:
    """Consume until `expected` messages arrived (or give up at a generous deadline; the caller checks counts)."""
    received: list[Message] = []
    deadline = time.monotonic() + CONSUME_DEADLINE_S
    while len(received) < expected and time.monotonic() < deadline:
        received.extend(consumer.consume(num_messages=1000, timeout=1.0))
    return received


def test_a_group_resumes_exactly_at_its_committed_offsets(
    kafka_broker: KafkaService, topic_factory: TopicFactory, group_id: str
) -> None:
    """After committing the first 6,000 produced messages, a new group member gets exactly the other 4,000."""
    topic = topic_factory(partitions=PARTITIONS)
    landed = _produce(kafka_broker.bootstrap_servers, topic)

    # Production order is offset order within a partition (one idempotent producer), so "the first COMMITTED
    # produced" is a per-partition prefix: partition p is committed up to quota[p].
    produced_order = sorted(landed, key=lambda position: int(landed[position][1]))
    quota = Counter(partition for partition, _ in produced_order[:COMMITTED])
    end = Counter(partition for partition, _ in landed)
    assert set(end) == set(range(PARTITIONS)), "keys should spread over every partition"

    first = _consumer(kafka_broker.bootstrap_servers, group_id)
    try:
        first.subscribe([topic])
        consumed = [_message_position(m) for m in _consume_until(first, MESSAGES)]
        assert sorted(consumed) == sorted(landed), "the first member should see every message exactly once"
        first.commit(offsets=[TopicPartition(topic, p, quota[p]) for p in range(PARTITIONS)], asynchronous=False)
        committed = first.committed([TopicPartition(topic, p) for p in range(PARTITIONS)], timeout=10)
        assert {tp.partition: tp.offset for tp in committed} == {p: quota[p] for p in range(PARTITIONS)}
    finally:
        first.close()

    second = _consumer(kafka_broker.bootstrap_servers, group_id)
    try:
        second.subscribe([topic])
        remaining = MESSAGES - COMMITTED
        messages = _consume_until(second, remaining)
        # Every partition is now read to its end: a late duplicate could only come from a rebalance rewind.
        messages.extend(second.consume(num_messages=1000, timeout=1.0))
        positions = [_message_position(m) for m in messages]
    finally:
        second.close()

    expected = {(p, offset) for p in range(PARTITIONS) for offset in range(quota[p], end[p])}
    assert len(positions) == len(set(positions)) == remaining, "no committed message may come back"
    assert set(positions) == expected, "every uncommitted message, and only those, arrives"
    assert all((m.key(), m.value()) == landed[_message_position(m)] for m in messages)


def test_the_broker_is_kafka_4(kafka_broker: KafkaService) -> None:
    """The harness runs an Apache Kafka 4.x broker (KRaft only, KIP-848 groups by default)."""
    if kafka_broker.version is None:
        pytest.skip("external broker (KAFKA_BOOTSTRAP_SERVERS): its version is not known to the harness")
    assert re.fullmatch(r"4\.\d+\.\d+(-\S+)?", kafka_broker.version)


def test_a_killed_broker_comes_back_with_its_address_and_data(
    kafka_broker: KafkaService, topic_factory: TopicFactory, group_id: str
) -> None:
    """After a hard kill and a start, the broker listens on the same address and still holds what it acknowledged."""
    broker = kafka_broker.broker
    if broker is None:
        pytest.skip("external broker (KAFKA_BOOTSTRAP_SERVERS): the harness cannot restart it")
    topic = topic_factory(partitions=1)
    producer = Producer({"bootstrap.servers": kafka_broker.bootstrap_servers, "acks": "all"})
    for index in range(100):
        producer.produce(topic, value=f"{index}".encode())
    assert producer.flush(30) == 0

    broker.kill()
    assert not broker.is_running()
    broker.start()
    assert broker.bootstrap_servers == kafka_broker.bootstrap_servers

    consumer = _consumer(kafka_broker.bootstrap_servers, group_id)
    try:
        consumer.subscribe([topic])
        messages = _consume_until(consumer, 100)
    finally:
        consumer.close()
    assert [m.value() for m in messages] == [f"{index}".encode() for index in range(100)]
