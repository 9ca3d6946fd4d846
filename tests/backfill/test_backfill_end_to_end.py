"""`mics-worker backfill` end to end: a real Kafka broker, the sandbox's document imports, the backfill as an OS
process — killed mid-run and resumed — and a ledger that finds every produced record exactly where it must be."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.backfill.support import BackfillProcess, backfill_env, mixed_stream
from tests.fixtures.kafka import KafkaService
from tests.support.kafka_broker import create_topic
from tests.support.ledger import Ledger, produce_all, read_dead_letters
from tests.support.sandbox_process import SandboxProcess
from tests.support.scenario import eventually

pytestmark = pytest.mark.integration

RECORDS = 100_000


@pytest.fixture(scope="module")
def bulk_sandbox() -> Iterator[SandboxProcess]:
    """A sandbox whose executions reject 1 line in 5,000 (seeded) and stay PENDING 0.2 s."""
    process = SandboxProcess("--seed", "3", "--import-line-reject", "0.0002", "--import-delay-s", "0.2")
    try:
        yield process.start()
    finally:
        process.stop()


def _done_in_checkpoint(path: Path) -> int:
    """Records the checkpoint counts as done (0 before its first write)."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return 0
    done = 0
    for key, entry in document["done"].items():
        start = document["ranges"][key][0]
        done += entry["mark"] - start + sum(end - begin for begin, end in entry["above"])
    return int(done)


class TestCrashAndResume:
    @pytest.mark.timeout(900)
    def test_killed_backfill_resumes_and_every_record_is_accepted_once_or_dead_lettered(
        self, kafka_broker: KafkaService, bulk_sandbox: SandboxProcess, tmp_path: Path
    ) -> None:
        """100,000 records (two datamarts, three document types, ~1% invalid) are backfilled; the process is
        SIGKILLed after a fifth is done; the same command resumes; the sandbox holds each accepted record once,
        the DLQ every other one, and nothing is missing."""
        kafka_broker.ensure_running()
        bulk_sandbox.reset()
        bootstrap = kafka_broker.bootstrap_servers
        topic, dlq = f"bf-{uuid.uuid4().hex}", f"bf-dlq-{uuid.uuid4().hex}"
        create_topic(bootstrap, topic, 3)
        create_topic(bootstrap, dlq, 1)
        messages = list(mixed_stream(RECORDS))
        produce_all(bootstrap, topic, messages)
        env = backfill_env(
            bootstrap_servers=bootstrap,
            base_url=bulk_sandbox.base_url,
            token=bulk_sandbox.token,
            topic=topic,
            dlq_topic=dlq,
            BACKFILL_MAX_RECORDS="3000",
        )
        checkpoint = tmp_path / "checkpoint.json"
        args = ("--checkpoint", str(checkpoint), "--progress", "on")

        first = BackfillProcess(env, tmp_path, *args).start()
        try:
            eventually(
                lambda: _done_in_checkpoint(checkpoint) >= RECORDS // 5 or first.process.poll() is not None,  # type: ignore[union-attr]
                300,
                "a fifth of the records done",
                interval_s=0.05,
            )
            assert first.process is not None
            assert first.process.poll() is None, f"it ended before the kill: {first.stderr()[-2000:]}"
            first.kill()
        finally:
            first.close()
        done_at_kill = _done_in_checkpoint(checkpoint)
        assert done_at_kill < RECORDS

        second = BackfillProcess(env, tmp_path, *args).start()
        try:
            assert second.wait(600) == 0, second.stderr()[-3000:]
        finally:
            second.close()

        settlement = Ledger(messages).settle(bulk_sandbox, bootstrap, dlq)
        assert settlement.missing == set()
        assert settlement.unknown == 0
        assert [i for i, count in settlement.delivered.items() if count != 1] == []  # accepted once, never twice
        assert set(settlement.delivered).isdisjoint(settlement.dead_lettered)
        invalid = {m.ledger_id for m in messages if m.expected != "delivered"}
        assert {i for i in settlement.dead_lettered if settlement.reasons[i] == "schema_invalid"} == invalid
        rejected = set(settlement.dead_lettered) - invalid
        assert rejected, "the sandbox rejects about 1 line in 5,000: some must have been dead-lettered"
        assert {settlement.reasons[i] for i in rejected} == {"import_rejected"}
        assert len(settlement.delivered) + len(rejected) + len(invalid) == RECORDS

        report = second.report()
        assert report["skipped_done"] >= done_at_kill - 3000 * 6  # resumed from the checkpoint, not from the start
        assert 0 < report["accepted"] < RECORDS - len(invalid)
        assert "rec/s" in second.stderr()  # the progress bar's rate


class TestRejectedLines:
    def test_a_line_the_api_rejects_is_reported_and_dead_lettered_with_the_api_error(
        self, kafka_broker: KafkaService, tmp_path: Path
    ) -> None:
        """With 2% of lines rejected, the report names each rejected line with the API's message, and the DLQ
        record of that line carries reason import_rejected and the same message."""
        kafka_broker.ensure_running()
        bootstrap = kafka_broker.bootstrap_servers
        topic, dlq = f"bf-{uuid.uuid4().hex}", f"bf-dlq-{uuid.uuid4().hex}"
        create_topic(bootstrap, topic, 1)
        create_topic(bootstrap, dlq, 1)
        messages = list(mixed_stream(600, invalid_every=10_000))
        produce_all(bootstrap, topic, messages)
        with SandboxProcess("--seed", "5", "--import-line-reject", "0.02", "--import-delay-s", "0.01") as sandbox:
            env = backfill_env(
                bootstrap_servers=bootstrap, base_url=sandbox.base_url, token=sandbox.token, topic=topic, dlq_topic=dlq
            )
            run = BackfillProcess(env, tmp_path, "--checkpoint", str(tmp_path / "c.json")).start()
            try:
                assert run.wait(120) == 0, run.stderr()[-3000:]
            finally:
                run.close()
            report = run.report()
            documents = sandbox.documents()
            stored = sum(len(documents[kind]) for kind in ("activities", "profiles", "choices"))
        assert stored == report["accepted"]  # the report matches what the API stored, exactly
        errors = [line for execution in report["executions"] for line in execution["errors"]]
        rejected = sum(execution["rejected"] for execution in report["executions"])
        assert rejected > 0
        assert len(errors) == rejected
        assert all(line.endswith(": line rejected (sandbox fault)") and line.startswith("line ") for line in errors)
        letters = read_dead_letters(bootstrap, dlq)
        assert len(letters) == rejected == report["dead_lettered"]["import_rejected"]
        assert {letter.reason for letter in letters} == {"import_rejected"}
        assert {letter.headers["__connect.errors.exception.message"] for letter in letters} == {
            b"line rejected (sandbox fault)"
        }
        assert all(letter.headers["__connect.errors.topic"] == topic.encode() for letter in letters)
        assert report["accepted"] + rejected == len(messages)
