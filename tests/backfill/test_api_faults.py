"""The backfill against a misbehaving bulk API (the sandbox's faults): retried without double uploads, stopped
without spilling into the DLQ, failed executions retried then dead-lettered, a stuck execution bounded in time."""

from __future__ import annotations

import uuid
from collections import Counter
from pathlib import Path

import pytest

from tests.backfill.support import BackfillProcess, backfill_env, mixed_stream
from tests.fixtures.kafka import KafkaService
from tests.support.events import ledger_id_of
from tests.support.kafka_broker import create_topic
from tests.support.ledger import read_dead_letters
from tests.support.sandbox_process import SandboxProcess

pytestmark = pytest.mark.integration


def _setup(
    kafka: KafkaService, sandbox: SandboxProcess, tmp_path: Path, count: int, **extra: str
) -> tuple[dict[str, str], list[str], tuple[str, ...]]:
    kafka.ensure_running()
    topic, dlq = f"bf-{uuid.uuid4().hex}", f"bf-dlq-{uuid.uuid4().hex}"
    create_topic(kafka.bootstrap_servers, topic, 1)
    create_topic(kafka.bootstrap_servers, dlq, 1)
    env = backfill_env(
        bootstrap_servers=kafka.bootstrap_servers,
        base_url=sandbox.base_url,
        token=sandbox.token,
        topic=topic,
        dlq_topic=dlq,
        **extra,
    )
    messages = list(mixed_stream(count, invalid_every=10**9))
    (tmp_path / "in.ndjson").write_bytes(b"".join(m.value + b"\n" for m in messages))
    args = ("--file", str(tmp_path / "in.ndjson"), "--checkpoint", str(tmp_path / "c.json"))
    return env, [m.ledger_id for m in messages], args


def _finish(run: BackfillProcess, timeout_s: float = 180) -> int:
    try:
        return run.wait(timeout_s)
    finally:
        run.close()


def _stored(sandbox: SandboxProcess) -> Counter[str]:
    documents = sandbox.documents()
    return Counter(
        str(ledger_id_of(d["body"])) for kind in ("activities", "profiles", "choices") for d in documents[kind]
    )


class TestTransientFaults:
    @pytest.mark.timeout(300)
    def test_503s_and_resets_on_every_request_still_store_each_line_once(
        self, kafka_broker: KafkaService, tmp_path: Path
    ) -> None:
        """20% of requests answered 503 and 5% reset, uploads included: retried, resolved through the import's list
        of executions, and every line ends stored exactly once."""
        with SandboxProcess("--seed", "2", "--p503", "0.2", "--p-reset", "0.05", "--import-delay-s", "0.01") as sandbox:
            env, ids, args = _setup(kafka_broker, sandbox, tmp_path, 900, BACKFILL_MAX_RECORDS="50")
            run = BackfillProcess(env, tmp_path, *args).start()
            assert _finish(run) == 0, run.stderr()[-3000:]
            assert _stored(sandbox) == Counter(ids)
            assert run.report()["accepted"] == len(ids)
            assert sandbox.stats()["responses"].get("503", 0) > 0  # the faults did happen


class TestStopDontSpill:
    def test_a_refused_token_stops_the_run_and_dead_letters_nothing(
        self, kafka_broker: KafkaService, sandbox: SandboxProcess, tmp_path: Path
    ) -> None:
        """A 401 is the configuration's problem, not the records': exit 1, the reason said, the DLQ empty."""
        env, _, args = _setup(kafka_broker, sandbox, tmp_path, 30)
        env["MICS_WORKER_API_TOKEN"] = "not-the-token"
        run = BackfillProcess(env, tmp_path, *args).start()
        assert _finish(run) == 1
        assert "HTTP 401" in run.stderr()
        assert "rerun to resume" in run.stderr()
        assert "not-the-token" not in run.stderr() + run.stdout()
        assert read_dead_letters(kafka_broker.bootstrap_servers, env["MICS_WORKER_DLQ_TOPIC"]) == []

    def test_an_execution_that_never_ends_stops_the_run_after_its_timeout(
        self, kafka_broker: KafkaService, tmp_path: Path
    ) -> None:
        """BACKFILL_EXECUTION_TIMEOUT_S bounds the wait for one execution: exit 1 naming it, nothing dead-lettered."""
        with SandboxProcess("--import-delay-s", "600") as stuck:
            env, _, args = _setup(kafka_broker, stuck, tmp_path, 20, BACKFILL_EXECUTION_TIMEOUT_S="1")
            run = BackfillProcess(env, tmp_path, *args).start()
            assert _finish(run, 120) == 1
            assert "still PENDING after 1 s" in run.stderr()
            assert read_dead_letters(kafka_broker.bootstrap_servers, env["MICS_WORKER_DLQ_TOPIC"]) == []


class TestFailedExecutions:
    def test_lines_of_executions_that_keep_failing_are_dead_lettered_after_the_attempts(
        self, kafka_broker: KafkaService, tmp_path: Path
    ) -> None:
        """Every execution ends FAILED: each batch is uploaded BACKFILL_EXECUTION_ATTEMPTS times, then its lines
        are dead-lettered `import_failed` with the API's error, each once."""
        with SandboxProcess("--import-failure", "1", "--import-delay-s", "0") as failing:
            env, ids, args = _setup(kafka_broker, failing, tmp_path, 60, BACKFILL_EXECUTION_ATTEMPTS="2")
            run = BackfillProcess(env, tmp_path, *args).start()
            assert _finish(run) == 0, run.stderr()[-3000:]
            report = run.report()
        batches = 6  # two datamarts x three document types
        assert [e["status"] for e in report["executions"]] == ["FAILED"] * (2 * batches)
        letters = read_dead_letters(kafka_broker.bootstrap_servers, env["MICS_WORKER_DLQ_TOPIC"])
        assert sorted(letter.ledger_id or "" for letter in letters) == sorted(ids)
        assert {letter.reason for letter in letters} == {"import_failed"}
        assert {letter.headers["__connect.errors.exception.message"] for letter in letters} == {
            b"execution failed (sandbox fault)"
        }
