"""The no-loss ledger: every produced id must end delivered at the sandbox or in the DLQ with a reason.

`Ledger.settle()` reads both ends and returns exact counts: what is missing, what arrived where, and duplicates.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition

from tests.support.events import SampleMessage, ledger_id_of
from tests.support.sandbox_process import SandboxProcess

__all__ = ["DeadLetterRecord", "Ledger", "Settlement", "produce_all", "read_topic"]

_ID_IN_BYTES = re.compile(rb'"(?:\$unique_key|event_id)":"([0-9a-f-]{36})"')


CLIENT_LOG = logging.getLogger("tests.support.ledger.librdkafka")
"""The ledger's Kafka clients log here, not in librdkafka's raw `%4|…` form on stderr: the demo shows these lines
only with `--verbose`, and pytest captures them like any other log."""


@dataclass(frozen=True, slots=True)
class DeadLetterRecord:
    """One DLQ record: its bytes and headers as stored."""

    key: bytes | None
    value: bytes | None
    headers: dict[str, bytes]
    timestamp_ms: int

    @property
    def reason(self) -> str:
        return self.headers.get("mics.dlq.reason", b"").decode()

    @property
    def ledger_id(self) -> str | None:
        match = _ID_IN_BYTES.search(self.value or b"")
        return match.group(1).decode() if match else None


@dataclass
class Settlement:
    """Where each produced id ended, counted."""

    produced: int
    delivered: Counter[str] = field(default_factory=Counter)  # id -> times delivered
    dead_lettered: Counter[str] = field(default_factory=Counter)  # id -> times dead-lettered
    reasons: dict[str, str] = field(default_factory=dict)  # id -> DLQ reason
    missing: set[str] = field(default_factory=set)
    unknown: int = 0  # arrivals whose id was never produced

    @property
    def duplicates(self) -> int:
        """Extra arrivals beyond one per id (at-least-once after a crash allows a bounded number)."""
        arrivals = self.delivered + self.dead_lettered
        return sum(count - 1 for count in arrivals.values() if count > 1)

    def reason_counts(self) -> Counter[str]:
        return Counter(self.reasons.values())


class Ledger:
    """The produced messages of one scenario, and how to check where they went."""

    def __init__(self, messages: Iterable[SampleMessage]) -> None:
        self.messages = list(messages)
        self.by_id = {message.ledger_id: message for message in self.messages}

    def settle(self, sandbox: SandboxProcess, bootstrap_servers: str, dlq_topic: str) -> Settlement:
        """Count every produced id at the sandbox (delivered) and in the DLQ (dead-lettered)."""
        settlement = Settlement(produced=len(self.messages))
        documents = sandbox.documents()
        for kind in ("activities", "profiles", "choices"):
            for stored in documents.get(kind, []):
                self._arrive(settlement, ledger_id_of(stored.get("body")), settlement.delivered)
        for record in read_dead_letters(bootstrap_servers, dlq_topic):
            ledger_id = record.ledger_id
            self._arrive(settlement, ledger_id, settlement.dead_lettered)
            if ledger_id is not None:
                settlement.reasons[ledger_id] = record.reason
        arrived = set(settlement.delivered) | set(settlement.dead_lettered)
        settlement.missing = set(self.by_id) - arrived
        return settlement

    def _arrive(self, settlement: Settlement, ledger_id: str | None, counter: Counter[str]) -> None:
        if ledger_id is None or ledger_id not in self.by_id:
            settlement.unknown += 1
        else:
            counter[ledger_id] += 1

    def expected_reasons(self) -> Counter[str]:
        return Counter(m.expected for m in self.messages if m.expected != "delivered")

    def expected_delivered(self) -> int:
        return sum(1 for m in self.messages if m.expected == "delivered")


def produce_all(bootstrap_servers: str, topic: str, messages: Iterable[SampleMessage]) -> int:
    """Produce every message (keyed) and wait for all acknowledgements; returns the count."""
    producer = Producer(
        {"bootstrap.servers": bootstrap_servers, "linger.ms": 20, "enable.idempotence": True}, logger=CLIENT_LOG
    )
    failures: list[str] = []

    def on_delivery(error: Any, _message: Any) -> None:
        if error is not None:
            failures.append(str(error))

    count = 0
    for message in messages:
        while True:
            try:
                producer.produce(topic, key=message.key, value=message.value, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.1)
        count += 1
        producer.poll(0)
    producer.flush(60)
    if failures:
        raise RuntimeError(f"{len(failures)} messages were not acknowledged: {failures[:3]}")
    return count


def read_topic(bootstrap_servers: str, topic: str, timeout_s: float = 30.0) -> list[Any]:
    """Every record of `topic` up to the high watermarks at call time, read by a throwaway consumer."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap_servers,
            "group.id": f"ledger-{uuid.uuid4()}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        },
        logger=CLIENT_LOG,
    )
    try:
        metadata = consumer.list_topics(topic, timeout=10)
        topic_metadata = metadata.topics.get(topic)
        if topic_metadata is None or topic_metadata.error is not None:
            return []
        ends: dict[int, int] = {}
        for partition in topic_metadata.partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
            if high > low:
                ends[partition] = high
        consumer.assign([TopicPartition(topic, partition, 0) for partition in ends])
        records: list[Any] = []
        remaining = dict(ends)
        deadline = time.monotonic() + timeout_s
        while remaining and time.monotonic() < deadline:
            for message in consumer.consume(500, 0.5):
                if message.error() is not None:
                    continue
                records.append(message)
                partition, offset = message.partition(), message.offset()
                if partition in remaining and offset is not None and offset + 1 >= remaining[partition]:
                    del remaining[partition]
        if remaining:
            raise TimeoutError(f"could not read {topic} to its end: {remaining}")
        return records
    finally:
        consumer.close()


def read_dead_letters(bootstrap_servers: str, dlq_topic: str) -> list[DeadLetterRecord]:
    """The DLQ's records with their headers decoded into a dict (the last value of a repeated name wins)."""
    records = []
    for message in read_topic(bootstrap_servers, dlq_topic):
        headers = {name: value or b"" for name, value in (message.headers() or [])}
        records.append(DeadLetterRecord(message.key(), message.value(), headers, message.timestamp()[1]))
    return records
