"""Shared pieces of the end-to-end tests: one test's topics and group (`stream`), and workers that never outlive
their test (`running`)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest

from tests.fixtures.kafka import KafkaService, TopicFactory
from tests.support.events import SampleMessage
from tests.support.ledger import Ledger, produce_all, read_dead_letters
from tests.support.sandbox_process import SandboxProcess
from tests.support.worker_process import WorkerProcess, worker_env

OUTCOMES = "mics_worker_messages_outcome_total"


class Stream:
    """One test's topics (an activity topic and a mixed envelope topic), DLQ and consumer group."""

    def __init__(self, kafka: KafkaService, sandbox: SandboxProcess, topic_factory: TopicFactory) -> None:
        self.kafka = kafka
        self.sandbox = sandbox
        self.activities = topic_factory(partitions=3)
        self.mixed = topic_factory(partitions=3)
        self.dlq = topic_factory(partitions=1)
        self.group = f"g-{uuid.uuid4()}"

    def env(self, **extra: str) -> dict[str, str]:
        return worker_env(
            bootstrap_servers=self.kafka.bootstrap_servers,
            api_base_url=self.sandbox.base_url,
            api_token=self.sandbox.token,
            topics=f"{self.activities},{self.mixed}",
            routes=f"{self.activities}=activity,{self.mixed}=envelope",
            dlq_topic=self.dlq,
            group_id=self.group,
            **extra,
        )

    def produce(self, messages: list[SampleMessage]) -> Ledger:
        """Bare activities to the activity topic, envelopes to the mixed one."""
        bare = [m for m in messages if m.route == "activity" and not m.value.startswith(b'{"type"')]
        bare_ids = {m.ledger_id for m in bare}
        produce_all(self.kafka.bootstrap_servers, self.activities, bare)
        produce_all(self.kafka.bootstrap_servers, self.mixed, [m for m in messages if m.ledger_id not in bare_ids])
        return Ledger(messages)

    def worker(self, **extra: str) -> WorkerProcess:
        return WorkerProcess(self.env(**extra))

    def arrived(self) -> int:
        """Messages that reached an end: sandbox documents plus DLQ records."""
        documents = self.sandbox.documents()
        delivered = sum(len(documents.get(kind, [])) for kind in ("activities", "profiles", "choices"))
        return delivered + len(read_dead_letters(self.kafka.bootstrap_servers, self.dlq))


@pytest.fixture
def stream(kafka_broker: KafkaService, sandbox: SandboxProcess, topic_factory: TopicFactory) -> Stream:
    return Stream(kafka_broker, sandbox, topic_factory)


@pytest.fixture
def running() -> Iterator[Callable[[WorkerProcess], WorkerProcess]]:
    """Start workers through this so none outlives its test."""
    started: list[WorkerProcess] = []

    def start(worker: WorkerProcess) -> WorkerProcess:
        started.append(worker.start())
        return worker

    yield start
    for worker in started:
        worker.close()


def wait_for_outcomes(worker: WorkerProcess, count: int, timeout_s: float = 120) -> None:
    worker.wait_until(lambda: worker.metric_sum(OUTCOMES) >= count, timeout_s, f"{count} outcomes")
