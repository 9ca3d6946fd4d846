"""Flow-control scenario fixtures: a fresh `Scenario` per test on the session broker and the session sandbox."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fixtures.kafka import KafkaService
from tests.support.sandbox_process import SandboxProcess
from tests.support.scenario import Scenario


@pytest.fixture
def scenario(kafka_broker: KafkaService, sandbox: SandboxProcess) -> Iterator[Scenario]:
    """Topics, DLQ and group of one test; every worker it started is killed at teardown."""
    kafka_broker.ensure_running()
    world = Scenario(kafka_broker.bootstrap_servers, sandbox)
    try:
        yield world
    finally:
        world.close()
        sandbox.set_rate_limit(rate=None, per_datamart_rate=None, record=False)
