"""Scenario 7: the bad-input corpus (`tests/corpus/`) through a real worker, and a 10 MB value.

Each case must end where `cases.json` says (the DLQ with its reason, or delivered with every value inside its own
path segment), the worker must keep running, and no request may go anywhere but the configured host, under
`/v1/datamarts/1509/`, without a query. The planner alone is checked on every case first (no broker), so a
mismatch there is reported without waiting for Kafka.
"""

from __future__ import annotations

import re
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import orjson
import pytest

from tests.support.core_harness import activity as activity_bytes
from tests.support.ledger import DeadLetterRecord, read_dead_letters
from tests.support.sandbox_process import SandboxProcess
from tests.support.scenario import Scenario, paused, produce_records
from tests.support.worker_process import WorkerProcess
from worker.config import RouteMode
from worker.dlq_writer import RETRY_DELAYS_S
from worker.routing import Job, Rejection, plan_message
from worker.validation import Validators

CORPUS = Path(__file__).resolve().parents[1] / "corpus"
DATAMART = "1509"
CASE_HEADER = "corpus-case"
TOPIC_MODES: dict[str, RouteMode | None] = {
    "activity": "activity",
    "envelope": "envelope",
    "choice": "choice",
    "unrouted": None,
}
# Path segments after /v1/datamarts/1509/ for each route, and what a segment may contain once encoded.
SEGMENTS_AFTER_DATAMART = {"activity": 1, "profile": 5, "choice": 4}
ENCODED_SEGMENT = re.compile(r"[A-Za-z0-9_~%=,-]+")
BIG_LIMIT = 20 * 1024 * 1024
TEN_MB = 10 * 1000 * 1000


@dataclass(frozen=True, slots=True)
class Case:
    """One corpus entry, with its value as the bytes to produce."""

    name: str
    topic: str
    key: bytes | None
    value: bytes | None
    expect: str
    schema_path: str | None
    route: str | None
    document: Any


def load_cases() -> list[Case]:
    cases = []
    for entry in orjson.loads((CORPUS / "cases.json").read_bytes()):
        if "file" in entry:
            value: bytes | None = (CORPUS / entry["file"]).read_bytes()
        elif "document" in entry:
            value = orjson.dumps(entry["document"])
        else:
            value = None
        key = entry["name"].encode() if entry.get("key", "") is not None else None
        cases.append(
            Case(
                name=entry["name"],
                topic=entry["topic"],
                key=key,
                value=value,
                expect=entry["expect"],
                schema_path=entry.get("schema_path"),
                route=entry.get("route"),
                document=entry.get("document"),
            )
        )
    return cases


CASES = load_cases()


class TestCorpusFiles:
    def test_names_are_unique_and_every_case_is_in_the_readme(self) -> None:
        """Each case name occurs once in cases.json and is listed in the corpus README."""
        names = [case.name for case in CASES]
        assert len(names) == len(set(names))
        readme = (CORPUS / "README.md").read_text(encoding="utf-8")
        assert [name for name in names if f"`{name}`" not in readme] == []

    def test_every_raw_file_belongs_to_a_case(self) -> None:
        """No file in raw/ is left out of cases.json."""
        listed = {entry.get("file") for entry in orjson.loads((CORPUS / "cases.json").read_bytes())}
        assert {f"raw/{path.name}" for path in (CORPUS / "raw").iterdir()} <= listed

    @pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
    def test_the_planner_gives_each_case_its_expected_outcome(self, case: Case, validators: Validators) -> None:
        """plan_message turns the case into a Job for its route, or a Rejection with its reason and schema path."""
        plan = plan_message(
            TOPIC_MODES[case.topic],
            case.value,
            validators=validators,
            default_datamart_id=DATAMART,
            allowed_datamarts=frozenset({DATAMART}),
            max_message_bytes=1_000_000,
        )
        if case.expect == "delivered":
            assert isinstance(plan, Job)
            assert plan.route == case.route
        else:
            assert isinstance(plan, Rejection)
            assert plan.reason == case.expect
            if case.schema_path is not None:
                assert plan.schema_error is not None
                assert plan.schema_error.path == case.schema_path


@pytest.fixture(scope="module")
def validators() -> Validators:
    return Validators.load()


class CorpusWorld:
    """The scenario's topics plus a choice-routed and an unrouted topic, and one worker for all of them."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.topics = {
            "activity": scenario.activities,
            "envelope": scenario.mixed,
            "choice": scenario.new_topic(1),
            "unrouted": scenario.new_topic(1),
        }

    def start_worker(self) -> WorkerProcess:
        topics = self.topics
        routes = f"{topics['activity']}=activity,{topics['envelope']}=envelope,{topics['choice']}=choice"
        return self.scenario.start_worker(TOPICS=",".join(topics.values()), ROUTES=routes)


@pytest.fixture
def corpus_world(scenario: Scenario) -> CorpusWorld:
    return CorpusWorld(scenario)


@pytest.mark.integration
class TestCorpusEndToEnd:
    @pytest.mark.timeout(180)
    def test_every_case_ends_where_the_corpus_says_and_requests_stay_on_target(self, corpus_world: CorpusWorld) -> None:
        """Dead-lettered cases carry their reason and original bytes; delivered ones decode to their own values."""
        scenario = corpus_world.scenario
        for kind, topic in corpus_world.topics.items():
            batch = [(case.key, case.value, _case_header(case)) for case in CASES if case.topic == kind]
            produce_records(scenario.bootstrap_servers, topic, batch)
        worker = corpus_world.start_worker()
        expected_dead = sum(1 for case in CASES if case.expect != "delivered")
        expected_delivered = len(CASES) - expected_dead
        worker.wait_until(
            lambda: scenario.dead_letter_count() >= expected_dead and scenario.delivered_count() >= expected_delivered,
            120,
            "every corpus case to reach its end",
        )
        assert worker.is_running()
        assert worker.probe("/healthz") == 200
        assert worker.probe("/readyz") == 200

        by_case = {case.name: case for case in CASES}
        records = read_dead_letters(scenario.bootstrap_servers, scenario.dlq)
        dead = Counter(record.headers[CASE_HEADER].decode() for record in records)
        assert dead == Counter(case.name for case in CASES if case.expect != "delivered")
        for record in records:
            _check_dead_letter(record, by_case[record.headers[CASE_HEADER].decode()], corpus_world.topics)

        delivered = _delivered_cases(scenario.sandbox)
        assert set(delivered) == {case.name for case in CASES if case.expect == "delivered"}
        for name, stored in delivered.items():
            _check_stored_values(by_case[name], stored)
        _check_requests_stay_on_target(scenario.sandbox)
        assert worker.stop() == 0


def _case_header(case: Case) -> list[tuple[str, str | bytes | None]]:
    return [(CASE_HEADER, case.name.encode())]


def _check_dead_letter(record: DeadLetterRecord, case: Case, topics: dict[str, str]) -> None:
    assert record.reason == case.expect, case.name
    assert record.key == case.key, case.name
    assert record.value == case.value, case.name
    assert record.headers["__connect.errors.topic"] == topics[case.topic].encode()
    if case.schema_path is not None:
        assert record.headers["mics.dlq.schema.path"] == case.schema_path.encode(), case.name


def _delivered_cases(sandbox: SandboxProcess) -> dict[str, dict[str, Any]]:
    """Stored documents by the corpus case their body names (activities, profiles and choices)."""
    found: dict[str, dict[str, Any]] = {}
    for kind, documents in sandbox.documents().items():
        for stored in documents:
            body = stored["body"]
            name = body.get("corpus_case")
            assert name not in found, f"{name} stored twice"
            found[name] = {**stored, "kind": kind}
    return found


def _check_stored_values(case: Case, stored: dict[str, Any]) -> None:
    """The sandbox decoded the path back to exactly the envelope's values: each stayed in its own segment."""
    assert stored["datamart_id"] == DATAMART
    if case.route == "activity":
        assert stored["kind"] == "activities"
        return
    envelope = case.document
    user_point = envelope["user_point"]
    if isinstance(user_point, str):
        assert stored["user_point"] == user_point.lower()
    else:
        assert stored["user_point"] == {name: str(value) for name, value in user_point.items()}
    if case.route == "profile":
        assert stored["kind"] == "profiles"
        assert (stored["compartment_id"], stored["user_account_id"]) == (
            str(envelope["compartment_id"]),
            str(envelope["user_account_id"]),
        )
    else:
        assert stored["kind"] == "choices"
        assert stored["processing_id"] == str(envelope["processing_id"])


def _check_requests_stay_on_target(sandbox: SandboxProcess) -> None:
    netloc = urlsplit(sandbox.base_url).netloc
    requests = sandbox.requests()
    assert requests
    for request in requests:
        assert request["host"] == netloc, request
        assert request["query"] == "", request
        path = request["raw_path"]
        assert path.startswith(f"/v1/datamarts/{DATAMART}/"), request
        segments = path.split("/")[4:]
        route = {"user_activities": "activity", "user_profiles": "profile", "user_choices": "choice"}[
            segments[0] if len(segments) == 1 else segments[2]
        ]
        assert len(segments) == SEGMENTS_AFTER_DATAMART[route], request
        for segment in segments:
            assert ENCODED_SEGMENT.fullmatch(segment), request
            assert unquote(segment) not in (".", ".."), request


@pytest.mark.integration
class TestTenMegabyteValue:
    def _produce_big(self, scenario: Scenario) -> tuple[str, bytes]:
        topic = scenario.new_topic(1, {"max.message.bytes": str(BIG_LIMIT)})
        value = b'{"padding":"' + b"x" * TEN_MB + b'"}'
        produce_records(
            scenario.bootstrap_servers,
            topic,
            [(b"big", value, []), (b"after", b"{", [])],
            producer_config={"message.max.bytes": BIG_LIMIT},
        )
        return topic, value

    @pytest.mark.timeout(120)
    def test_a_10_mb_value_is_dead_lettered_by_size_when_the_dlq_can_hold_it(self, scenario: Scenario) -> None:
        """Refused by MAX_MESSAGE_BYTES, the 10 MB record reaches a DLQ sized for it, intact, and the next follows."""
        scenario.dlq = scenario.new_topic(1, {"max.message.bytes": str(BIG_LIMIT)})
        topic, value = self._produce_big(scenario)
        worker = scenario.start_worker(TOPICS=topic, ROUTES=f"{topic}=activity", KAFKA_MESSAGE_MAX_BYTES=str(BIG_LIMIT))
        worker.wait_until(lambda: scenario.dead_letter_count() >= 2, 90, "both records in the DLQ")
        records = {record.key: record for record in read_dead_letters(scenario.bootstrap_servers, scenario.dlq)}
        assert worker.stop() == 0
        assert records[b"big"].reason == "decode_error"
        assert records[b"big"].value == value
        assert b"exceeds" in records[b"big"].headers["__connect.errors.exception.message"]
        assert records[b"after"].reason == "decode_error"

    @pytest.mark.timeout(120)
    def test_a_value_too_large_for_the_dlq_is_dead_lettered_truncated_and_the_partition_moves_on(
        self, scenario: Scenario
    ) -> None:
        """With default DLQ limits the 10 MB record is dead-lettered cut short, size in a header; the next follows."""
        topic, value = self._produce_big(scenario)
        worker = scenario.start_worker(TOPICS=topic, ROUTES=f"{topic}=activity")
        worker.wait_until(lambda: scenario.dead_letter_count() >= 2, 60, "both records to be dead-lettered")
        records = {record.key: record for record in read_dead_letters(scenario.bootstrap_servers, scenario.dlq)}
        assert not paused(worker, "dlq_unavailable")
        assert worker.stop() == 0
        big = records[b"big"]
        assert big.reason == "decode_error"
        assert big.headers["mics.dlq.value.truncated"] == str(len(value)).encode()
        assert big.value is not None
        assert 0 < len(big.value) < 1_000_000
        assert value.startswith(big.value)
        assert records[b"after"].reason == "decode_error"
        assert "mics.dlq.value.truncated" not in records[b"after"].headers


def dlq_retry_delay_s(round_number: int) -> float:
    """The dead-letter writer's wait before retry round `round_number` (1-based): 0.5, 1, 2, 4 s… up to the cap."""
    first, ceiling = RETRY_DELAYS_S
    return min(first * 2.0 ** (round_number - 1), ceiling)


def dlq_rounds_within(seconds: float) -> int:
    """How many retry rounds can have started within `seconds` of the first refused write."""
    rounds, waited = 0, dlq_retry_delay_s(1)
    while waited <= seconds:
        rounds += 1
        waited += dlq_retry_delay_s(rounds + 1)
    return rounds


@pytest.mark.integration
class TestDeadLetterRetries:
    ROUNDS = 4

    @pytest.mark.timeout(150)
    def test_dead_letters_that_keep_failing_are_retried_with_backoff_by_one_task(self, scenario: Scenario) -> None:
        """With the DLQ missing and a one-record producer queue, the refused dead letter is retried in rounds after
        0.5, 1, 2, 4 s… (RETRY_DELAYS_S): the rounds keep coming, none sooner than its delay, and each refuses one
        write (the hold stops every other message before it writes), so no round runs twice."""
        scenario.dlq = f"t-missing-{uuid.uuid4()}"  # never created; the test broker does not auto-create topics
        invalid: list[tuple[bytes | None, bytes | None, list[tuple[str, str | bytes | None]]]] = [
            (f"bad-{index}".encode(), b"{", []) for index in range(20)
        ]
        produce_records(scenario.bootstrap_servers, scenario.activities, invalid)
        started = time.monotonic()  # before the worker exists: before its first refused write
        worker = scenario.start_worker(KAFKA_QUEUE_BUFFERING_MAX_MESSAGES="1", KAFKA_MESSAGE_TIMEOUT_MS="60000")

        def refused() -> int:
            return int(worker.metric_sum("mics_worker_dlq_writes_total", result="error"))

        # No wait for /readyz first: the pause can come within the same poll as the join, so ready may never show.
        worker.wait_until(partial(paused, worker, "dlq_unavailable"), 30, "the dlq_unavailable pause")
        # One record waits in the one-slot queue (until the message timeout, far off); the next is refused at once.
        # Refusals so far: that first one and one per round already run. Taken before the read, `mark` precedes
        # the next round, so the ROUNDS rounds after it span at least the delays before all but the first.
        mark = time.monotonic()
        rounds_before = refused() - 1
        assert rounds_before >= 0
        later = range(rounds_before + 1, rounds_before + self.ROUNDS + 1)
        worker.wait_until(
            lambda: refused() >= rounds_before + 1 + self.ROUNDS,
            sum(map(dlq_retry_delay_s, later)) + 30,
            f"{self.ROUNDS} more rounds of dead-letter retries",
        )
        waited = time.monotonic() - mark
        rounds = refused() - 1
        since_start = time.monotonic() - started

        assert rounds >= rounds_before + self.ROUNDS  # the retries keep coming
        assert waited >= sum(dlq_retry_delay_s(n) for n in later[1:])  # and wait out their delays
        # Never more rounds than fit since the worker started (+1: the queued record may fail once by itself).
        assert rounds <= dlq_rounds_within(since_start) + 1, (rounds, since_start)
        assert worker.is_running()


@pytest.mark.integration
class TestRecordsTooLargeForTheDlqInKeyOrHeaders:
    @pytest.mark.timeout(120)
    def test_a_huge_key_and_many_headers_are_dead_lettered_reduced_and_the_worker_keeps_running(
        self, scenario: Scenario
    ) -> None:
        """A 1,000,000-byte key, and 2,000 headers of 500 bytes, both with value `{bad`, against a DLQ topic of
        100 kB: each is dead-lettered once in its reduced form (what was cut named in `mics.dlq.reduced`), the
        partition moves on to a valid message, and the worker is still running (these records used to recurse
        until RecursionError and crash-loop every worker that read them)."""
        scenario.dlq = scenario.new_topic(1, {"max.message.bytes": "100000"})
        topic = scenario.new_topic(1, {"max.message.bytes": str(BIG_LIMIT)})
        many_headers: list[tuple[str, str | bytes | None]] = [(f"h{index}", b"x" * 500) for index in range(2000)]
        produce_records(
            scenario.bootstrap_servers,
            topic,
            [(b"k" * 1_000_000, b"{bad", []), (b"headers", b"{bad", many_headers), (b"valid", activity_bytes(), [])],
            producer_config={"message.max.bytes": BIG_LIMIT},
        )
        worker = scenario.start_worker(TOPICS=topic, ROUTES=f"{topic}=activity")
        worker.wait_until(lambda: scenario.dead_letter_count() >= 2, 90, "both records in the DLQ")
        worker.wait_until(lambda: scenario.delivered_count() >= 1, 60, "the valid message after them")
        records = read_dead_letters(scenario.bootstrap_servers, scenario.dlq)
        assert worker.is_running()
        assert worker.stop() == 0
        by_reduced = {record.headers["mics.dlq.reduced"].split(b"=")[0]: record for record in records}
        assert sorted(by_reduced) == [b"headers", b"key"]
        assert len(by_reduced[b"key"].key or b"") == 1024
        assert by_reduced[b"headers"].headers["mics.dlq.reduced"].startswith(b"headers=2000/")
        assert all(record.reason == "decode_error" for record in records)
        assert len(records) == 2
