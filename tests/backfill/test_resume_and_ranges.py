"""Resume and range behaviour of `mics-worker backfill` on the real broker and sandbox: a rerun sends nothing twice,
an upload whose answer a crash lost is adopted, Ctrl-C resumes, a dry run sends nothing, offsets and times select."""

from __future__ import annotations

import signal
import uuid
from collections import Counter
from pathlib import Path

import pytest
from confluent_kafka import Producer

from tests.backfill.support import BackfillProcess, backfill_env, mixed_stream
from tests.fixtures.kafka import KafkaService
from tests.support.events import ledger_id_of
from tests.support.kafka_broker import create_topic
from tests.support.ledger import produce_all
from tests.support.sandbox_process import SandboxProcess
from tests.support.scenario import eventually
from worker.backfill.checkpoint import Checkpoint, encode_lines
from worker.backfill.client import ImportClient
from worker.backfill.lines import line_for
from worker.backfill.source import FileSource
from worker.mics.auth import ApiToken
from worker.retry import RetryPolicy
from worker.routing import Job, plan_message
from worker.validation import Validators

pytestmark = pytest.mark.integration


def _env(kafka: KafkaService, sandbox: SandboxProcess, tmp_path: Path, **extra: str) -> dict[str, str]:
    kafka.ensure_running()
    topic, dlq = f"bf-{uuid.uuid4().hex}", f"bf-dlq-{uuid.uuid4().hex}"
    create_topic(kafka.bootstrap_servers, topic, 3)
    create_topic(kafka.bootstrap_servers, dlq, 1)
    return backfill_env(
        bootstrap_servers=kafka.bootstrap_servers,
        base_url=sandbox.base_url,
        token=sandbox.token,
        topic=topic,
        dlq_topic=dlq,
        **extra,
    )


def _write_file(path: Path, count: int) -> list[str]:
    """An NDJSON file of valid envelopes, with a blank line after the first (a gap of positions); their ledger ids."""
    messages = list(mixed_stream(count, invalid_every=10**9))
    path.write_bytes(b"".join(m.value + (b"\n\n" if index == 0 else b"\n") for index, m in enumerate(messages)))
    return [m.ledger_id for m in messages]


def _stored_ids(sandbox: SandboxProcess) -> Counter[str]:
    documents = sandbox.documents()
    return Counter(
        str(ledger_id_of(stored["body"]))
        for kind in ("activities", "profiles", "choices")
        for stored in documents[kind]
    )


def _run(env: dict[str, str], tmp_path: Path, *args: str, timeout_s: float = 120) -> BackfillProcess:
    run = BackfillProcess(env, tmp_path, *args).start()
    try:
        code = run.wait(timeout_s)
    finally:
        run.close()
    assert code == 0, run.stderr()[-3000:]
    return run


class TestRerun:
    def test_a_rerun_of_a_completed_range_sends_nothing(
        self, kafka_broker: KafkaService, sandbox: SandboxProcess, tmp_path: Path
    ) -> None:
        """The checkpoint says every line is done: the second run reads nothing and uploads nothing."""
        env = _env(kafka_broker, sandbox, tmp_path, BACKFILL_MAX_RECORDS="100")
        ids = _write_file(tmp_path / "in.ndjson", 500)
        args = ("--file", str(tmp_path / "in.ndjson"), "--checkpoint", str(tmp_path / "c.json"))
        first = _run(env, tmp_path, *args).report()
        assert first["accepted"] == 500
        second = _run(env, tmp_path, *args).report()
        assert (second["read"], second["accepted"], second["executions"]) == (0, 0, [])
        assert _stored_ids(sandbox) == Counter(ids)


class TestCrashDuringUpload:
    def test_an_upload_whose_answer_was_lost_is_adopted_not_sent_again(
        self, kafka_broker: KafkaService, sandbox: SandboxProcess, tmp_path: Path
    ) -> None:
        """The checkpoint says an upload was under way and names the executions known before it; the import now has
        one more: the resumed run follows that one and does not upload its lines again."""
        env = _env(kafka_broker, sandbox, tmp_path)
        path = tmp_path / "in.ndjson"
        ids = _write_file(path, 60)
        source = FileSource([str(path)])
        ranges = source.ranges()
        validators = Validators.load()
        lines, positions = [], []
        for record in next(source.records(ranges)):
            job = plan_message(
                "envelope",
                record.value,
                validators=validators,
                default_datamart_id="1509",
                allowed_datamarts=frozenset({"1509", "2607"}),
                max_message_bytes=1_000_000,
            )
            assert isinstance(job, Job)
            line = line_for(job)
            if (line.datamart_id, line.document_type) == ("1509", "USER_PROFILE"):
                lines.append(line.data)
                positions.append(((record.origin, 0), record.offset))
        client = ImportClient(sandbox.base_url, ApiToken(sandbox.token), retry=RetryPolicy(), timeout_s=10)
        import_id = client.create_import("1509", "USER_PROFILE", "earlier run")
        client.upload("1509", import_id, b"\n".join(lines) + b"\n")  # the crash happened right after this
        client.close()
        spec = {
            "files": [str(path.resolve())],
            "mode": "envelope",
            "topics": [],
            "partitions": [],
            "from_offset": None,
            "to_offset": None,
            "from_ms": None,
            "to_ms": None,
        }
        checkpoint = Checkpoint(tmp_path / "c.json", spec, ranges, "earlier run")
        checkpoint.imports["1509|USER_PROFILE"] = import_id
        checkpoint.uploading = {"import": import_id, "datamart": "1509", "known": [], "lines": encode_lines(positions)}
        checkpoint.save()

        report = _run(env, tmp_path, "--file", str(path), "--checkpoint", str(tmp_path / "c.json")).report()
        adopted = [e for e in report["executions"] if e["resumed"]]
        assert [(e["import_id"], e["accepted"]) for e in adopted] == [(import_id, len(lines))]
        assert _stored_ids(sandbox) == Counter(ids)  # each line once: the adopted lines were not sent again


class TestInterrupt:
    @pytest.mark.timeout(300)
    def test_ctrl_c_stops_with_130_and_the_same_command_resumes(
        self, kafka_broker: KafkaService, tmp_path: Path
    ) -> None:
        """SIGINT while executions are under way: exit 130, then the rerun completes with every line stored once."""
        with SandboxProcess("--import-delay-s", "0.5") as slow:
            env = _env(kafka_broker, slow, tmp_path, BACKFILL_MAX_RECORDS="200", BACKFILL_MAX_PENDING_EXECUTIONS="1")
            ids = _write_file(tmp_path / "in.ndjson", 3000)
            checkpoint = tmp_path / "c.json"
            args = ("--file", str(tmp_path / "in.ndjson"), "--checkpoint", str(checkpoint))
            first = BackfillProcess(env, tmp_path, *args).start()
            try:
                eventually(lambda: len(slow.documents()["activities"]) > 0, 120, "a first execution processed")
                assert first.process is not None
                first.process.send_signal(signal.SIGINT)
                assert first.wait(60) == 130
            finally:
                first.close()
            assert "rerun the same command to resume" in first.stderr()
            stored_before = sum(_stored_ids(slow).values())
            assert stored_before < len(ids)
            second = _run(env, tmp_path, *args, timeout_s=240).report()
            assert second["skipped_done"] > 0
            assert _stored_ids(slow) == Counter(ids)


class TestRangesAndDryRun:
    def test_a_dry_run_counts_and_sizes_without_sending_or_writing(
        self, kafka_broker: KafkaService, sandbox: SandboxProcess, tmp_path: Path
    ) -> None:
        """Counts per document type, bytes, dead letters by reason, executions it would upload; the sandbox and the
        DLQ stay empty and no checkpoint is needed."""
        env = _env(kafka_broker, sandbox, tmp_path, BACKFILL_MAX_RECORDS="100")
        messages = list(mixed_stream(970, invalid_every=97))
        produce_all(kafka_broker.bootstrap_servers, env["MICS_WORKER_TOPICS"], messages)
        report = _run(env, tmp_path, "--dry-run").report()
        expected = Counter(m.route for m in messages if m.expected == "delivered")
        assert report["planned"] == {
            "USER_ACTIVITY": expected["activity"],
            "USER_PROFILE": expected["profile"],
            "USER_CHOICE": expected["choice"],
        }
        assert report["dead_lettered"] == {"schema_invalid": 10}
        assert report["executions_planned"] >= sum(expected.values()) // 100
        assert sum(report["planned_bytes"].values()) > 0
        assert sandbox.stats()["stored"] == {"activities": 0, "profiles": 0, "choices": 0}

    def test_offsets_and_partitions_select_the_range(
        self, kafka_broker: KafkaService, sandbox: SandboxProcess, tmp_path: Path
    ) -> None:
        """--partition 1 --from-offset 5 --to-offset 25 reads exactly those 20 records of that partition."""
        env = _env(kafka_broker, sandbox, tmp_path)
        topic = env["MICS_WORKER_TOPICS"]
        values = [m.value for m in mixed_stream(40, invalid_every=10**9)]
        producer = Producer({"bootstrap.servers": kafka_broker.bootstrap_servers})
        for value in values:
            producer.produce(topic, value=value, partition=1)
        assert producer.flush(30) == 0
        args = ("--partition", "1", "--from-offset", "5", "--to-offset", "25", "--checkpoint", str(tmp_path / "c"))
        report = _run(env, tmp_path, *args).report()
        assert (report["read"], report["accepted"]) == (20, 20)
        assert sum(_stored_ids(sandbox).values()) == 20

    def test_times_select_the_range(self, kafka_broker: KafkaService, sandbox: SandboxProcess, tmp_path: Path) -> None:
        """--from-time and --to-time keep the records whose timestamps fall in [from, to)."""
        env = _env(kafka_broker, sandbox, tmp_path)
        topic = env["MICS_WORKER_TOPICS"]
        values = [m.value for m in mixed_stream(30, invalid_every=10**9)]
        producer = Producer({"bootstrap.servers": kafka_broker.bootstrap_servers})
        base = 1_764_000_000_000
        for index, value in enumerate(values):
            producer.produce(topic, value=value, partition=0, timestamp=base + index * 1000)
        assert producer.flush(30) == 0
        args = ("--from-time", str(base + 10_000), "--to-time", "2025-11-24T16:00:20Z", "--dry-run")
        report = _run(env, tmp_path, *args).report()
        assert report["read"] == 10  # 16:00:10 to 16:00:20 (base is 2025-11-24T16:00:00Z)
