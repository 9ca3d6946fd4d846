"""The abnormal states with a real broker: a missing dead-letter topic named at start, the wait after a kill -9
explained, a broker outage as one condition from its start to its end."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import orjson
import pytest

from tests.support.kafka_broker import KafkaBroker
from tests.support.sandbox_process import SandboxProcess
from tests.support.scenario import Scenario
from tests.support.worker_process import WorkerProcess

pytestmark = [pytest.mark.integration]


def condition_lines(worker: WorkerProcess, condition: str) -> list[dict[str, Any]]:
    """The worker's JSON log lines about `condition`."""
    found = []
    for line in worker.stderr().splitlines():
        if line.startswith("{"):
            document = orjson.loads(line)
            if document.get("condition") == condition:
                found.append(document)
    return found


def readiness(worker: WorkerProcess) -> tuple[int, dict[str, Any]]:
    response = httpx.get(worker.url + "/readyz", timeout=5)
    details: dict[str, Any] = response.json()
    return response.status_code, details


def test_a_missing_dead_letter_topic_is_named_at_start(scenario: Scenario) -> None:
    """DLQ_TOPIC names a topic that does not exist: with no message consumed, one ERROR line names it (not a line
    30 s after the first dead letter), /readyz lists it, and the worker is still ready (nothing needs it yet)."""
    missing = f"missing-dlq-{uuid.uuid4()}"
    worker = scenario.start_worker(DLQ_TOPIC=missing)
    worker.wait_until(lambda: bool(condition_lines(worker, "dlq_unwritable")), 60, "the dlq_unwritable line")
    [line] = condition_lines(worker, "dlq_unwritable")
    assert line["level"] == "ERROR"
    assert line["subject"] == missing
    assert line["message"] == (
        f"the dead-letter topic cannot be written: {missing} (the topic {missing} does not exist (the worker never "
        "creates it): a dead letter holds the worker)"
    )
    worker.wait_until(lambda: readiness(worker)[0] == 200, 60, "readiness")
    assert readiness(worker)[1]["conditions"] == {"dlq_unwritable": [missing]}
    assert worker.metric_sum("mics_worker_condition", condition="dlq_unwritable") == 1
    assert worker.stop() == 0


@pytest.mark.timeout(180)
def test_after_a_kill_9_the_replacement_says_why_it_waits(scenario: Scenario) -> None:
    """A member is killed (no LeaveGroup); its replacement gets no partitions until the old session times out
    (10 s here): one line says so, naming the group and session.timeout.ms, and one says when it ended."""
    settings = {"KAFKA_SESSION_TIMEOUT_MS": "10000"}
    first = scenario.start_worker(**settings)
    first.wait_until(lambda: first.probe("/readyz") == 200, 60, "the first member to join")
    first.kill()
    second = scenario.start_worker(**settings)
    second.wait_until(lambda: bool(condition_lines(second, "group_join_waiting")), 60, "the waiting line")
    waiting = condition_lines(second, "group_join_waiting")[0]
    assert waiting["subject"] == scenario.group
    assert "after an unclean stop (kill -9)" in waiting["message"]
    assert "(session.timeout.ms=10000)" in waiting["message"]
    assert second.probe("/readyz") == 503
    second.wait_until(lambda: second.probe("/readyz") == 200, 60, "the replacement to join")
    second.wait_until(lambda: len(condition_lines(second, "group_join_waiting")) == 2, 30, "the end line")
    ended = condition_lines(second, "group_join_waiting")[-1]
    assert ended["message"].startswith("ended after ")
    assert ended["level"] == "INFO"
    assert second.stop() == 0


@pytest.mark.timeout(240)
def test_a_broker_outage_is_one_condition_from_start_to_end(restartable: KafkaBroker, sandbox: SandboxProcess) -> None:
    """The broker stops: one ERROR line says no broker is reachable and /readyz fails with broker_unreachable; it
    starts again: one INFO line ends it (with the connection errors counted) and the worker is ready again."""
    scenario = Scenario(restartable.bootstrap_servers, sandbox)
    try:
        worker = scenario.start_worker()
        worker.wait_until(lambda: worker.probe("/readyz") == 200, 60, "the worker to join")
        restartable.stop()
        worker.wait_until(lambda: bool(condition_lines(worker, "broker_unreachable")), 60, "the unreachable line")
        [started] = condition_lines(worker, "broker_unreachable")
        assert started["level"] == "ERROR"
        assert started["message"].startswith(f"no Kafka broker is reachable: {restartable.bootstrap_servers}")
        status, details = readiness(worker)
        assert status == 503
        assert "broker_unreachable" in details["reasons"]
        restartable.start()
        worker.wait_until(lambda: len(condition_lines(worker, "broker_unreachable")) == 2, 90, "the end line")
        ended = condition_lines(worker, "broker_unreachable")[-1]
        assert ended["level"] == "INFO"
        assert ended["message"].startswith("ended after ")
        worker.wait_until(lambda: worker.probe("/readyz") == 200, 60, "readiness after the outage")
        assert worker.stop() == 0
    finally:
        scenario.close()
