"""Real-world inputs and credentials end to end, on the real broker and the sandbox over HTTP, with exact ledgers:
Schema Registry framing (prefix and header forms, Avro refused, bad frames, an unreachable registry), a token
rotated by rewriting its file mid-stream, and two datamarts with a token each, one of them revoked."""

from __future__ import annotations

import os
import random
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import orjson
import pytest

from tests.integration.conftest import Stream
from tests.support.events import SampleMessage, activity
from tests.support.ledger import Ledger, read_dead_letters
from tests.support.scenario import PacedProducer, eventually, paused, produce_records
from tests.support.worker_process import WorkerProcess
from worker.framing import VALUE_SCHEMA_ID_HEADER

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

Running = Callable[[WorkerProcess], WorkerProcess]
ACTIVITY_SCHEMA = '{"type": "object", "required": ["$type", "$unique_key"]}'
AVRO_SCHEMA = '{"type": "record", "name": "Visit", "fields": [{"name": "id", "type": "string"}]}'


def activities(count: int, seed: int) -> list[SampleMessage]:
    rng = random.Random(seed)
    messages = []
    for index in range(count):
        ledger_id = str(uuid.UUID(int=rng.getrandbits(128)))
        value = orjson.dumps(activity(ledger_id, index % 50, rng))
        messages.append(SampleMessage(ledger_id, f"user-{index % 50}".encode(), value, "activity", "delivered"))
    return messages


def rewrite(path: Path, text: str) -> None:
    """Replace a token file as a Secret update does: a new file renamed over the old one."""
    fresh = path.with_suffix(".new")
    fresh.write_text(text)
    os.replace(fresh, path)


def ready(worker: WorkerProcess) -> dict[str, object]:
    document: dict[str, object] = httpx.get(worker.url + "/readyz", timeout=5).json()
    return document


class TestSchemaRegistryFraming:
    def test_prefix_and_header_framed_json_is_delivered_like_plain(self, stream: Stream, running: Running) -> None:
        """The same activities plain, prefix-framed and header-framed all arrive once and identical; an Avro-framed
        value is dead-lettered `unsupported_format` and a bad frame `decode_error`, each with its original bytes."""
        sandbox = stream.sandbox
        sandbox.register_schema(1, ACTIVITY_SCHEMA)
        guid = sandbox.register_schema(2, ACTIVITY_SCHEMA)
        sandbox.register_schema(3, AVRO_SCHEMA, schema_type="AVRO")
        plain, prefixed, headed = activities(40, 1), activities(40, 2), activities(40, 3)
        avro, bad_frame = activities(5, 4), activities(5, 5)
        records = [(m.key, m.value, []) for m in plain]
        records += [(m.key, b"\x00" + (1).to_bytes(4, "big") + m.value, []) for m in prefixed]
        header = [(VALUE_SCHEMA_ID_HEADER, b"\x01" + uuid.UUID(guid).bytes)]
        records += [(m.key, m.value, header) for m in headed]
        records += [(m.key, b"\x00" + (3).to_bytes(4, "big") + m.value, []) for m in avro]
        records += [(m.key, m.value, [(VALUE_SCHEMA_ID_HEADER, b"\x01\x02")]) for m in bad_frame]
        produce_records(stream.bootstrap_servers, stream.activities, records)
        expected = [
            *plain,
            *prefixed,
            *headed,
            *(SampleMessage(m.ledger_id, m.key, m.value, "activity", "unsupported_format") for m in avro),
            *(SampleMessage(m.ledger_id, m.key, m.value, "activity", "decode_error") for m in bad_frame),
        ]
        ledger = Ledger(expected)
        worker = running(
            stream.worker(FRAMING="auto", SCHEMA_REGISTRY_URL=sandbox.registry_url, SCHEMA_REGISTRY_VALIDATE="true")
        )
        settlement = stream.wait_settled(ledger, 120, worker)

        assert settlement.missing == set()
        assert settlement.duplicates == 0
        assert settlement.unknown == 0
        assert sum(settlement.delivered.values()) == 120
        assert settlement.reason_counts() == ledger.expected_reasons()
        stored = {d["body"]["$unique_key"]: d["body"] for d in sandbox.documents()["activities"]}
        for message in (*plain, *prefixed, *headed):
            assert stored[message.ledger_id] == orjson.loads(message.value)
        originals = {m.ledger_id: value for m, (_, value, _) in zip(expected[120:], records[120:], strict=True)}
        letters = read_dead_letters(stream.bootstrap_servers, stream.dlq)
        assert {letter.ledger_id: letter.value for letter in letters} == originals
        avro_letter = next(letter for letter in letters if letter.reason == "unsupported_format")
        assert b"Avro-framed value" in avro_letter.headers.get("__connect.errors.exception.message", b"")

    def test_an_unreachable_registry_and_an_unknown_id_hold_instead_of_dead_lettering(
        self, stream: Stream, running: Running
    ) -> None:
        """While the registry answers 503, and while an id is not registered yet, framed messages wait (nothing is
        dead-lettered); once the registry serves them, every message is delivered once."""
        sandbox = stream.sandbox
        sandbox.register_schema(1, ACTIVITY_SCHEMA)
        sandbox.set_registry_available(False)
        known, unknown = activities(30, 6), activities(10, 7)
        records = [(m.key, b"\x00" + (1).to_bytes(4, "big") + m.value, []) for m in known]
        records += [(m.key, b"\x00" + (77).to_bytes(4, "big") + m.value, []) for m in unknown]
        produce_records(stream.bootstrap_servers, stream.activities, records)
        ledger = Ledger([*known, *unknown])
        worker = running(stream.worker(FRAMING="confluent", SCHEMA_REGISTRY_URL=sandbox.registry_url))
        eventually(lambda: sandbox.set_registry_available(False) >= 3, 60, "the worker to ask the registry again")
        assert stream.arrived() == 0
        sandbox.set_registry_available(True)
        worker.wait_until(lambda: stream.delivered_count() >= 30, 90, "the known schema's messages")
        assert stream.dead_letter_count() == 0
        sandbox.register_schema(77, ACTIVITY_SCHEMA)  # registered late: the held messages go on
        settlement = stream.wait_settled(ledger, 120, worker)
        assert settlement.missing == set()
        assert settlement.duplicates == 0
        assert sum(settlement.delivered.values()) == 40
        assert stream.dead_letter_count() == 0


class TestTokenRotation:
    def test_a_token_rewritten_mid_stream_is_picked_up_with_nothing_lost_or_repeated(
        self, stream: Stream, running: Running, tmp_path: Path
    ) -> None:
        """The API revokes the old token mid-stream and the Secret's file is rewritten: the worker re-reads it
        (on the 401, or at its datamart's probe) without a restart; every message is delivered exactly once."""
        sandbox = stream.sandbox
        token_file = tmp_path / "token"
        token_file.write_text(sandbox.token + "\n")
        messages = activities(600, 8)
        ledger = Ledger(messages)
        worker = running(stream.worker(API_TOKEN="", API_TOKEN_FILE=str(token_file), API_TOKEN_CHECK_INTERVAL_S="0.2"))
        producer = PacedProducer(stream.bootstrap_servers, lambda _: stream.activities, rate_per_s=150)
        producer.start(messages)
        worker.wait_until(lambda: stream.delivered_count() >= 150, 90, "the stream to flow")
        rotated = f"rotated-{uuid.uuid4().hex}"
        sandbox.set_token(rotated)  # the old token is revoked now
        rewrite(token_file, rotated)
        producer.join(60)
        settlement = stream.wait_settled(ledger, 120, worker)

        assert settlement.missing == set()
        assert settlement.duplicates == 0
        assert sum(settlement.delivered.values()) == 600
        assert stream.dead_letter_count() == 0
        assert worker.is_running()
        assert rotated not in worker.stderr()
        assert worker.stop() == 0


class TestTokenPerDatamart:
    def test_a_revoked_datamart_holds_alone_and_resumes_when_its_token_works_again(
        self, stream: Stream, running: Running, tmp_path: Path
    ) -> None:
        """Datamart 1510 has its own token (API_TOKENS_FILE) and it is revoked: 1509 keeps flowing to the end while
        1510's messages wait, /readyz and mics_worker_credentials_held name 1510; once the API takes its token again,
        everything is delivered, once."""
        sandbox = stream.sandbox
        (tmp_path / "default").write_text(sandbox.token)
        token_1510 = f"dm1510-{uuid.uuid4().hex}"
        (tmp_path / "dm1510").write_text(token_1510)
        tokens_file = tmp_path / "tokens.json"
        tokens_file.write_bytes(orjson.dumps({"default": "default", "datamarts": {"1510": "dm1510"}}))
        sandbox.set_datamart_token("1510", f"revoked-{uuid.uuid4().hex}")  # the API no longer takes token_1510
        for_1509 = activities(200, 9)
        for_1510 = activities(60, 10)
        produce_records(stream.bootstrap_servers, stream.activities, [(m.key, m.value, []) for m in for_1509])
        envelopes = [
            (m.key, orjson.dumps({"type": "activity", "datamart_id": "1510", "body": orjson.loads(m.value)}), [])
            for m in for_1510
        ]
        produce_records(stream.bootstrap_servers, stream.mixed, envelopes)
        ledger = Ledger([*for_1509, *for_1510])
        worker = running(stream.worker(API_TOKEN="", API_TOKENS_FILE=str(tokens_file), ALLOWED_DATAMARTS="1509,1510"))
        worker.wait_until(
            lambda: worker.metric_sum("mics_worker_credentials_held", datamart="1510") == 1.0, 60, "1510 held"
        )
        worker.wait_until(lambda: stream.delivered_count() >= 200, 90, "datamart 1509's messages")
        readiness = ready(worker)
        assert readiness["held_datamarts"] == ["1510"]
        assert worker.probe("/readyz") == 503
        assert worker.metric_sum("mics_worker_credentials_held", datamart="1509") == 0.0
        stored = sandbox.documents()["activities"]
        assert {d["datamart_id"] for d in stored} == {"1509"}
        assert stream.dead_letter_count() == 0

        sandbox.set_datamart_token("1510", token_1510)  # the API takes 1510's own token again
        settlement = stream.wait_settled(ledger, 120, worker)
        assert settlement.missing == set()
        assert settlement.duplicates == 0
        assert stream.dead_letter_count() == 0
        by_datamart = [d["datamart_id"] for d in sandbox.documents()["activities"]]
        assert (by_datamart.count("1509"), by_datamart.count("1510")) == (200, 60)
        worker.wait_until(lambda: worker.probe("/readyz") == 200, 30, "ready again")
        assert token_1510 not in worker.stderr()

    def test_sharing_partitions_the_held_datamart_stops_the_stream_once_the_window_is_full(
        self, stream: Stream, running: Running, tmp_path: Path
    ) -> None:
        """Both datamarts interleaved on the same partitions, 1510's token revoked: 1509's messages flow until the
        waiting 1510 messages fill each partition's share of the in-flight window (nothing past the window is taken),
        /readyz names 1510; once its token works again, all are delivered, once."""
        sandbox = stream.sandbox
        (tmp_path / "dm1510").write_text(f"dm1510-{uuid.uuid4().hex}")
        tokens_file = tmp_path / "tokens.json"
        tokens_file.write_bytes(orjson.dumps({"datamarts": {"1510": "dm1510"}}))
        sandbox.set_datamart_token("1510", f"revoked-{uuid.uuid4().hex}")
        messages = activities(240, 11)
        datamarts = ["1510" if index % 4 == 0 else "1509" for index in range(len(messages))]
        envelopes = [
            (m.key, orjson.dumps({"type": "activity", "datamart_id": dm, "body": orjson.loads(m.value)}), [])
            for m, dm in zip(messages, datamarts, strict=True)
        ]
        produce_records(stream.bootstrap_servers, stream.mixed, envelopes)
        ledger = Ledger(messages)
        window = 30
        worker = running(
            stream.worker(API_TOKENS_FILE=str(tokens_file), ALLOWED_DATAMARTS="1509,1510", MAX_IN_FLIGHT=str(window))
        )
        worker.wait_until(lambda: paused(worker, "backpressure"), 90, "the window to fill")
        worker.wait_until(lambda: ready(worker)["held_datamarts"] == ["1510"], 30, "/readyz naming 1510")
        assert worker.metric_sum("mics_worker_credentials_held", datamart="1510") == 1.0
        assert worker.metric_sum("mics_worker_in_flight_messages") <= window
        assert 0 < stream.delivered_count() <= window  # 1509 flowed, but only within the window
        assert stream.dead_letter_count() == 0

        sandbox.set_datamart_token("1510", (tmp_path / "dm1510").read_text())
        settlement = stream.wait_settled(ledger, 120, worker)
        assert settlement.missing == set()
        assert settlement.duplicates == 0
        assert stream.dead_letter_count() == 0
        by_datamart = [d["datamart_id"] for d in sandbox.documents()["activities"]]
        assert (by_datamart.count("1509"), by_datamart.count("1510")) == (180, 60)
