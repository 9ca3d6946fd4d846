"""One end-to-end test's world: fresh topics and a consumer group, the sandbox API, workers as OS processes, the ledger.

Why a module of its own: every chaos test and every end-to-end pipeline test needs the same plumbing (produce a
stream with ledger ids, start and crash workers, wait until everything arrived, settle the ledger), and none of it
should hide the scenario itself. The integration suite uses it as its `Stream`.
The topics are created on whatever broker the scenario is given, so a test may use the session broker or its own.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from tests.support.events import SampleMessage, ledger_id_of
from tests.support.kafka_broker import create_topic
from tests.support.ledger import Ledger, Settlement, read_dead_letters
from tests.support.sandbox_process import SandboxProcess
from tests.support.worker_process import WorkerProcess, worker_env

__all__ = [
    "ARRIVAL_KINDS",
    "OUTCOMES",
    "ArrivalMark",
    "PacedProducer",
    "Produced",
    "Scenario",
    "committed_offsets",
    "eventually",
    "produce_records",
]

OUTCOMES = "mics_worker_messages_outcome_total"
PAUSED = "mics_worker_paused"
RETRIES = "mics_worker_retries_total"

# For scenarios that kill workers: a killed member must leave the group in seconds, not after the 45 s default
# session, or every restart waits for it.
FAST_GROUP = {"KAFKA_SESSION_TIMEOUT_MS": "6000", "KAFKA_HEARTBEAT_INTERVAL_MS": "1000"}


Headers = list[tuple[str, str | bytes | None]]

ARRIVAL_KINDS = ("activities", "profiles", "choices")


@dataclass(frozen=True, slots=True)
class ArrivalMark:
    """How many writes of each kind the sandbox had, and how many records the DLQ had, at one moment."""

    delivered: dict[str, int]
    dead_lettered: int


@dataclass(frozen=True, slots=True)
class Produced:
    """Where one produced record landed."""

    partition: int
    offset: int


def produce_records(
    bootstrap_servers: str,
    topic: str,
    records: Iterable[tuple[bytes | None, bytes | None, Headers]],
    *,
    producer_config: Mapping[str, Any] | None = None,
) -> list[Produced]:
    """Produce (key, value, headers) records in order and return each one's partition and offset."""
    config: dict[str, Any] = {"bootstrap.servers": bootstrap_servers, "linger.ms": 5, "enable.idempotence": True}
    config.update(producer_config or {})
    producer = Producer(config)
    landed: list[Produced | None] = []
    failures: list[str] = []

    def on_delivery(index: int, error: Any, message: Any) -> None:
        if error is not None:
            failures.append(str(error))
        else:
            landed[index] = Produced(message.partition(), message.offset())

    for index, (key, value, headers) in enumerate(records):
        landed.append(None)
        producer.produce(
            topic,
            key=key,
            value=value,
            headers=headers,
            on_delivery=partial(on_delivery, index),
        )
        producer.poll(0)
    producer.flush(60)
    if failures or any(item is None for item in landed):
        raise RuntimeError(f"records were not acknowledged: {failures[:3]}")
    return [item for item in landed if item is not None]


class PacedProducer:
    """Produces messages at a fixed rate on a background thread, as a live stream arrives (not a backlog)."""

    def __init__(self, bootstrap_servers: str, routes: Callable[[SampleMessage], str], rate_per_s: float) -> None:
        self._producer = Producer({"bootstrap.servers": bootstrap_servers, "linger.ms": 5, "enable.idempotence": True})
        self._routes = routes
        self._interval_s = 1.0 / rate_per_s
        self._failures: list[str] = []
        self._thread: threading.Thread | None = None

    def start(self, messages: list[SampleMessage]) -> None:
        self._thread = threading.Thread(target=self._run, args=(messages,), name="paced-producer", daemon=True)
        self._thread.start()

    def _run(self, messages: list[SampleMessage]) -> None:
        began = time.monotonic()
        for index, message in enumerate(messages):
            delay = began + index * self._interval_s - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            self._producer.produce(
                self._routes(message), key=message.key, value=message.value, on_delivery=self._on_delivery
            )
            self._producer.poll(0)
        self._producer.flush(60)

    def _on_delivery(self, error: Any, _message: Any) -> None:
        if error is not None:
            self._failures.append(str(error))

    def join(self, timeout_s: float) -> None:
        """Wait until every message is produced and acknowledged."""
        assert self._thread is not None
        self._thread.join(timeout_s)
        if self._thread.is_alive() or self._failures:
            raise RuntimeError(f"the paced producer did not finish cleanly: {self._failures[:3]}")


def committed_offsets(bootstrap_servers: str, group: str, topic: str, partitions: int) -> dict[int, int]:
    """The group's committed offset per partition (-1001: nothing committed), read without joining the group."""
    consumer = Consumer({"bootstrap.servers": bootstrap_servers, "group.id": group, "enable.auto.commit": False})
    try:
        wanted = [TopicPartition(topic, partition) for partition in range(partitions)]
        return {tp.partition: tp.offset for tp in consumer.committed(wanted, timeout=10)}
    finally:
        consumer.close()


def eventually(condition: Callable[[], bool], timeout_s: float, what: str, interval_s: float = 0.5) -> None:
    """Poll `condition` until true; fail naming `what` when it does not come within `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


class Scenario:
    """An activity topic and a mixed envelope topic, a DLQ, a consumer group, and the workers started for them."""

    def __init__(self, bootstrap_servers: str, sandbox: SandboxProcess, *, partitions: int = 3) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.sandbox = sandbox
        self.partitions = partitions
        self.activities = self.new_topic(partitions)
        self.mixed = self.new_topic(partitions)
        self.dlq = self.new_topic(1)
        self.group = f"g-{uuid.uuid4()}"
        self.positions: dict[str, tuple[str, int, int]] = {}  # ledger id -> (topic, partition, offset)
        self._workers: list[WorkerProcess] = []

    def new_topic(self, partitions: int, config: Mapping[str, str] | None = None) -> str:
        name = f"t-{uuid.uuid4()}"
        create_topic(self.bootstrap_servers, name, partitions, config)
        return name

    def env(self, **extra: str) -> dict[str, str]:
        return worker_env(
            bootstrap_servers=self.bootstrap_servers,
            api_base_url=self.sandbox.base_url,
            api_token=self.sandbox.token,
            topics=f"{self.activities},{self.mixed}",
            routes=f"{self.activities}=activity,{self.mixed}=envelope",
            dlq_topic=self.dlq,
            group_id=self.group,
            **extra,
        )

    def start_worker(self, **extra: str) -> WorkerProcess:
        """Start one member of the scenario's group; it is killed at teardown if still running."""
        worker = WorkerProcess(self.env(**extra))
        self._workers.append(worker.start())
        return worker

    def produce(self, messages: list[SampleMessage]) -> Ledger:
        """Bare activities to the activity topic, envelopes to the mixed one; remembers where each id landed."""
        for topic in (self.activities, self.mixed):
            batch = [m for m in messages if self.topic_for(m) == topic]
            landed = produce_records(self.bootstrap_servers, topic, [(m.key, m.value, []) for m in batch])
            for message, where in zip(batch, landed, strict=True):
                self.positions[message.ledger_id] = (topic, where.partition, where.offset)
        return Ledger(messages)

    def topic_for(self, message: SampleMessage) -> str:
        """Bare activities go to the activity topic, envelopes to the mixed one."""
        bare = message.route == "activity" and not message.value.startswith(b'{"type"')
        return self.activities if bare else self.mixed

    def committed(self) -> dict[tuple[str, int], int]:
        """The group's committed offset of every partition of both topics (negative: nothing committed)."""
        return {
            (topic, partition): offset
            for topic in (self.activities, self.mixed)
            for partition, offset in committed_offsets(
                self.bootstrap_servers, self.group, topic, self.partitions
            ).items()
        }

    def arrival_mark(self) -> ArrivalMark:
        """Where the arrival records end now (the sandbox keeps writes in arrival order; the DLQ is one partition)."""
        documents = self.sandbox.documents()
        return ArrivalMark(
            delivered={kind: len(documents.get(kind, [])) for kind in ARRIVAL_KINDS},
            dead_lettered=len(read_dead_letters(self.bootstrap_servers, self.dlq)),
        )

    def arrived_since(self, mark: ArrivalMark) -> set[str]:
        """Ledger ids that arrived (delivered or dead-lettered) after `mark`, however often they arrived before."""
        documents = self.sandbox.documents()
        arrived = {
            ledger_id_of(stored.get("body"))
            for kind in ARRIVAL_KINDS
            for stored in documents.get(kind, [])[mark.delivered.get(kind, 0) :]
        }
        arrived.update(
            record.ledger_id for record in read_dead_letters(self.bootstrap_servers, self.dlq)[mark.dead_lettered :]
        )
        return {ledger_id for ledger_id in arrived if ledger_id is not None and ledger_id in self.positions}

    def arrived_uncommitted(self, since: ArrivalMark) -> int:
        """Ids that arrived after `since` at or beyond their partition's committed offset.

        Taken with `since` marking a worker's start and no worker running, this is exactly what that worker leaves
        to be processed a second time. Arrivals from earlier members are not its doing: a partition the killed
        worker never reached may still hold an earlier crash's leftovers, which that earlier crash already counted.
        """
        committed = self.committed()
        return sum(
            1
            for ledger_id in self.arrived_since(since)
            if self.positions[ledger_id][2] >= committed[self.positions[ledger_id][:2]]
        )

    def settle(self, ledger: Ledger) -> Settlement:
        return ledger.settle(self.sandbox, self.bootstrap_servers, self.dlq)

    def wait_settled(self, ledger: Ledger, timeout_s: float, worker: WorkerProcess | None = None) -> Settlement:
        """Wait until no produced id is missing (checking the worker is alive meanwhile); return the settlement."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                settlement = self.settle(ledger)
            except KafkaException:  # a broker that just came back may not lead its partitions yet
                settlement = Settlement(produced=len(ledger.messages), missing=set(ledger.by_id))
            if not settlement.missing:
                return settlement
            if worker is not None and not worker.is_running():
                raise AssertionError(f"the worker exited with {len(settlement.missing)} ids missing:\n{tail(worker)}")
            if time.monotonic() > deadline:
                where = f":\n{tail(worker)}" if worker is not None else ""
                raise AssertionError(f"{len(settlement.missing)} of {settlement.produced} ids still missing{where}")
            time.sleep(1.0)

    def delivered_count(self) -> int:
        """Writes the sandbox accepted so far (duplicates included)."""
        documents = self.sandbox.documents()
        return sum(len(documents.get(kind, [])) for kind in ARRIVAL_KINDS)

    def delivered_at_least(self, count: int) -> bool:
        return self.delivered_count() >= count

    def dead_letter_count(self) -> int:
        return len(read_dead_letters(self.bootstrap_servers, self.dlq))

    def close(self) -> None:
        for worker in self._workers:
            worker.close()


def tail(worker: WorkerProcess, lines: int = 30) -> str:
    """The last lines of a worker's stderr, for failure messages."""
    return "\n".join(worker.stderr().splitlines()[-lines:])


def paused(worker: WorkerProcess, reason: str) -> bool:
    """Whether the worker reports consumption paused for `reason`."""
    return worker.metric_sum(PAUSED, reason=reason) == 1.0
