"""Shared pieces of the end-to-end tests: one test's topics and group (`stream`, the chaos suite's `Scenario` under
another name), and workers that never outlive their test (`running`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.fixtures.kafka import KafkaService
from tests.support.sandbox_process import SandboxProcess
from tests.support.scenario import OUTCOMES, Scenario
from tests.support.worker_process import WorkerProcess

__all__ = ["OUTCOMES", "Stream", "wait_for_outcomes"]


class Stream(Scenario):
    """The chaos suite's world (topics, DLQ, group, produce with positions) as the end-to-end tests use it: they start
    their workers through `running`."""

    def __init__(self, kafka: KafkaService, sandbox: SandboxProcess) -> None:
        kafka.ensure_running()
        super().__init__(kafka.bootstrap_servers, sandbox)

    def worker(self, **extra: str) -> WorkerProcess:
        """A worker of this stream's group, not started yet."""
        return WorkerProcess(self.env(**extra))

    def arrived(self) -> int:
        """Messages that reached an end: sandbox writes plus DLQ records."""
        return self.delivered_count() + self.dead_letter_count()


@pytest.fixture
def stream(kafka_broker: KafkaService, sandbox: SandboxProcess) -> Stream:
    return Stream(kafka_broker, sandbox)


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
