"""The worker end to end: a real Kafka broker, the sandbox API over real HTTP, the worker as its own OS process.

Every test checks exact counts: each produced message is delivered to the sandbox or dead-lettered with the
expected reason, nothing missing, nothing else.
"""

from __future__ import annotations

import random
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable

import orjson
import pytest

from tests.fixtures.kafka import KafkaService, TopicFactory
from tests.integration.conftest import OUTCOMES, Stream, wait_for_outcomes
from tests.support.events import MixSpec, SampleMessage, activity, generate
from tests.support.ledger import produce_all, read_dead_letters
from tests.support.sandbox_process import SandboxProcess
from tests.support.worker_process import WorkerProcess

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


class TestRoutes:
    def test_every_message_of_a_mixed_stream_is_delivered_or_dead_lettered_with_its_reason(
        self, stream: Stream, running: Callable[[WorkerProcess], WorkerProcess]
    ) -> None:
        """Activities, profiles and choices reach the sandbox; invalid ones reach the DLQ with the intended reason."""
        messages = list(generate(600, MixSpec(invalid=0.1), seed=11))
        ledger = stream.produce(messages)
        worker = running(stream.worker())
        wait_for_outcomes(worker, len(messages))
        assert worker.stop() == 0

        settlement = stream.settle(ledger)
        assert settlement.missing == set()
        assert settlement.unknown == 0
        assert settlement.duplicates == 0
        assert sum(settlement.delivered.values()) == ledger.expected_delivered()
        assert settlement.reason_counts() == ledger.expected_reasons()
        for ledger_id, reason in settlement.reasons.items():
            assert ledger.by_id[ledger_id].expected == reason
        routes = Counter(ledger.by_id[i].route for i in settlement.delivered)
        requests = stream.sandbox.stats()["requests"]
        assert requests.get("POST activity", 0) == routes["activity"]
        assert requests.get("PUT profile", 0) == routes["profile"]
        assert requests.get("PUT choice_put", 0) == routes["choice"]
        assert "consumed: 600" in worker.stdout()


class TestDeadLetterReasons:
    def test_each_reason_carries_its_context_headers_and_the_original_bytes(
        self, kafka_broker: KafkaService, running: Callable[[WorkerProcess], WorkerProcess]
    ) -> None:
        """decode_error, schema_invalid, forbidden_datamart and http_413 each land in the DLQ intact, with context."""
        valid = activity("00000000-0000-4000-8000-000000000001", 1, random.Random(1))
        no_events = dict(valid)
        del no_events["$events"]
        large = activity("00000000-0000-4000-8000-000000000005", 5, random.Random(5))
        large["padding"] = "x" * 6000  # over this sandbox's body cap (413), well under the worker's own limit
        with SandboxProcess("--max-body-bytes", "4000") as small_sandbox:
            stream = Stream(kafka_broker, small_sandbox)
            cases = {
                b"decode": (stream.activities, b'{"$type": "SITE_VISIT",', "decode_error"),
                b"schema": (stream.activities, orjson.dumps(no_events), "schema_invalid"),
                b"badbody": (
                    stream.mixed,
                    orjson.dumps({"type": "activity", "datamart_id": "1509", "body": 5}),
                    "schema_invalid",
                ),
                b"forbidden": (
                    stream.mixed,
                    orjson.dumps({"type": "activity", "datamart_id": "7", "body": valid}),
                    "forbidden_datamart",
                ),
                b"toolarge": (stream.activities, orjson.dumps(large), "http_413"),
            }
            for key, (topic, value, _) in cases.items():
                message = SampleMessage(key.decode(), key, value, "activity", "x")
                produce_all(stream.bootstrap_servers, topic, [message])
            worker = running(stream.worker())
            wait_for_outcomes(worker, len(cases))
            assert worker.stop() == 0
            assert small_sandbox.stats()["stored"]["activities"] == 0

        records = {record.key: record for record in read_dead_letters(stream.bootstrap_servers, stream.dlq)}
        assert set(records) == set(cases)
        for key, (topic, value, reason) in cases.items():
            record = records[key]
            assert record.reason == reason, key
            assert record.value == value
            assert record.headers["__connect.errors.topic"] == topic.encode()
            assert "__connect.errors.exception.message" in record.headers
        positions = {
            (r.headers["__connect.errors.topic"], int(r.headers["__connect.errors.partition"]),
             int(r.headers["__connect.errors.offset"]))
            for r in records.values()
        }  # fmt: skip
        assert len(positions) == len(cases)
        assert records[b"schema"].headers["mics.dlq.schema.path"] == b"$.$events"
        assert records[b"schema"].headers["mics.dlq.schema.rule"] == b"required"
        assert records[b"badbody"].headers["mics.dlq.schema.path"] == b"$.body"
        assert records[b"toolarge"].headers["mics.dlq.http.status"] == b"413"
        assert records[b"toolarge"].headers["mics.dlq.attempts"] == b"1"

    def test_a_topic_without_a_route_and_an_envelope_on_the_wrong_topic_are_unroutable(
        self, stream: Stream, topic_factory: TopicFactory, running: Callable[[WorkerProcess], WorkerProcess]
    ) -> None:
        """A subscribed topic with no route, and a profile envelope on a topic routed to activities, are unroutable."""
        unrouted = topic_factory(partitions=1)
        profile = {"type": "profile", "user_point": {"user_agent_id": "vec:1"}, "compartment_id": 1,
                   "user_account_id": "u", "body": {}}  # fmt: skip
        produce_all(stream.bootstrap_servers, unrouted, [SampleMessage("a", b"a", b"{}", "activity", "x")])
        produce_all(
            stream.bootstrap_servers,
            stream.activities,
            [SampleMessage("b", b"b", orjson.dumps(profile), "activity", "x")],
        )
        worker = running(stream.worker(TOPICS=f"{stream.activities},{unrouted}"))
        wait_for_outcomes(worker, 2)
        assert worker.stop() == 0
        reasons = {r.key: r.reason for r in read_dead_letters(stream.bootstrap_servers, stream.dlq)}
        assert reasons == {b"a": "unroutable", b"b": "unroutable"}

    def test_a_budget_spent_on_retryable_failures_ends_as_retries_exhausted(
        self, stream: Stream, running: Callable[[WorkerProcess], WorkerProcess]
    ) -> None:
        """With every answer a 503 and two attempts allowed, each message is dead-lettered after exactly two tries."""
        stream.sandbox.set_faults(p503=1.0)
        ledger = stream.produce(list(generate(20, MixSpec(profiles=0, choices=0, invalid=0), seed=3)))
        # No circuit: with it an outage holds the stream instead of running the retries out (issue 13).
        worker = running(stream.worker(RETRY_MAX_ATTEMPTS="2", RETRY_BASE_DELAY_S="0.01", CIRCUIT_FAILURES="0"))
        wait_for_outcomes(worker, 20)
        assert worker.stop() == 0
        records = read_dead_letters(stream.bootstrap_servers, stream.dlq)
        assert sorted(r.ledger_id or "" for r in records) == sorted(ledger.by_id)
        assert {r.reason for r in records} == {"retries_exhausted"}
        assert {r.headers["mics.dlq.http.status"] for r in records} == {b"503"}
        assert {r.headers["mics.dlq.attempts"] for r in records} == {b"2"}
        assert stream.sandbox.stats()["requests"]["POST activity"] == 40


class TestOrdering:
    def test_messages_with_the_same_key_reach_the_api_in_offset_order_under_concurrency(
        self, stream: Stream, running: Callable[[WorkerProcess], WorkerProcess]
    ) -> None:
        """Per key the sandbox sees the sequence numbers in order, while many keys run in parallel."""
        rng = random.Random(5)
        messages = []
        for seq in range(25):
            for user in range(16):
                ledger_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
                body = activity(ledger_id, user, rng)
                body["seq"] = seq
                messages.append(SampleMessage(ledger_id, f"user-{user}".encode(), orjson.dumps(body), "activity", "d"))
        produce_all(stream.bootstrap_servers, stream.activities, messages)
        stream.sandbox.set_faults(latency_ms=5, p503=0.2)
        worker = running(stream.worker(MAX_CONCURRENCY="32", RETRY_BASE_DELAY_S="0.01"))
        wait_for_outcomes(worker, len(messages))
        retried = worker.metric_sum("mics_worker_retries_total")
        assert worker.stop() == 0

        seen: dict[str, list[int]] = defaultdict(list)
        for stored in stream.sandbox.documents()["activities"]:
            body = stored["body"]
            seen[body["$user_identifiers"][1]["$user_account_id"]].append(body["seq"])
        assert len(seen) == 16
        for sequence in seen.values():
            assert sequence == list(range(25))
        assert retried > 0


class TestGroupMembership:
    def test_a_slow_api_does_not_get_the_worker_evicted_from_its_group(
        self, stream: Stream, running: Callable[[WorkerProcess], WorkerProcess]
    ) -> None:
        """With requests slower than max.poll.interval.ms in total, polling goes on and no partition is revoked."""
        stream.sandbox.set_faults(latency_ms=2000)
        ledger = stream.produce(list(generate(8, MixSpec(profiles=0, choices=0, invalid=0), seed=4)))
        worker = running(
            stream.worker(
                MAX_CONCURRENCY="1",
                HTTP_READ_TIMEOUT_S="10",
                KAFKA_MAX_POLL_INTERVAL_MS="7000",
                KAFKA_SESSION_TIMEOUT_MS="6000",
            )
        )
        wait_for_outcomes(worker, 8, timeout_s=120)
        revoked = worker.metric_sum("mics_worker_rebalances_total", event="revoke")
        lost = worker.metric_sum("mics_worker_rebalances_total", event="lost")
        assert worker.stop() == 0
        assert (revoked, lost) == (0, 0)
        settlement = stream.settle(ledger)
        assert (len(settlement.missing), settlement.duplicates, sum(settlement.delivered.values())) == (0, 0, 8)

    def test_a_restart_mid_stream_resumes_from_committed_offsets_without_loss(
        self, stream: Stream, running: Callable[[WorkerProcess], WorkerProcess]
    ) -> None:
        """SIGTERM mid-stream drains and commits; a new process finishes the rest with no loss and no duplicate."""
        messages = list(generate(3000, MixSpec(invalid=0.02), seed=21))
        ledger = stream.produce(messages)
        stream.sandbox.set_faults(latency_ms=1)
        # A window far below the stream: the stop drains only what was taken, so it lands mid-stream (the default
        # window, 10,000, takes all 3,000 at once and the drain would finish them).
        first = running(stream.worker(MAX_IN_FLIGHT="300"))
        wait_for_outcomes(first, 500)
        assert first.stop() == 0
        assert stream.arrived() < len(messages)
        second = running(stream.worker())
        second.wait_until(lambda: stream.arrived() >= len(messages), 180, "the rest of the stream")
        assert second.stop() == 0
        settlement = stream.settle(ledger)
        assert settlement.missing == set()
        assert settlement.duplicates == 0
        assert settlement.reason_counts() == ledger.expected_reasons()

    def test_a_second_worker_joining_the_group_loses_nothing(
        self, stream: Stream, running: Callable[[WorkerProcess], WorkerProcess]
    ) -> None:
        """A rebalance mid-stream hands partitions over after draining them: everything arrives, nothing twice."""
        messages = list(generate(3000, MixSpec(invalid=0.02), seed=22))
        ledger = stream.produce(messages)
        # ~130 messages/s (4 requests at a time, 30 ms each): the join lands mid-stream. A window of 200 keeps the
        # revoke's drain short, well within DRAIN_TIMEOUT_S, so the hand-over finishes every taken message.
        stream.sandbox.set_faults(latency_ms=30)
        first = running(stream.worker(MAX_CONCURRENCY="4", MAX_IN_FLIGHT="200"))
        wait_for_outcomes(first, 300)
        second = running(stream.worker(MAX_CONCURRENCY="4", MAX_IN_FLIGHT="200"))
        second.wait_until(lambda: stream.arrived() >= len(messages), 180, "the whole stream")
        assert second.metric_sum(OUTCOMES) > 0, "the second member never got a partition"
        assert first.metric_sum("mics_worker_rebalances_total", event="revoke") >= 1
        assert first.stop() == 0
        assert second.stop() == 0
        settlement = stream.settle(ledger)
        assert settlement.missing == set()
        assert settlement.duplicates == 0


class TestSubscription:
    @pytest.mark.parametrize(
        "settings",
        [
            pytest.param({"GROUP_PROTOCOL": "consumer"}, id="kip-848-consumer-protocol"),
            pytest.param({"GROUP_INSTANCE_ID": "member-a"}, id="static-membership"),
        ],
    )
    def test_the_group_protocol_and_membership_options_deliver_everything(
        self, stream: Stream, running: Callable[[WorkerProcess], WorkerProcess], settings: dict[str, str]
    ) -> None:
        """The KIP-848 group protocol and static membership join, consume and commit like the default."""
        ledger = stream.produce(list(generate(150, MixSpec(invalid=0.05), seed=41)))
        worker = running(stream.worker(**settings))
        wait_for_outcomes(worker, 150)
        assert worker.stop() == 0
        settlement = stream.settle(ledger)
        assert (len(settlement.missing), settlement.duplicates) == (0, 0)
        assert settlement.reason_counts() == ledger.expected_reasons()

    def test_a_topic_pattern_subscribes_to_every_matching_topic(
        self, stream: Stream, running: Callable[[WorkerProcess], WorkerProcess]
    ) -> None:
        """With TOPIC_PATTERN both matching topics are consumed; an exact route beats the `^t-` pattern route."""
        ledger = stream.produce(list(generate(100, MixSpec(invalid=0), seed=42)))
        worker = running(
            stream.worker(
                TOPICS="",
                TOPIC_PATTERN=f"^({stream.activities}|{stream.mixed})$",
                ROUTES=f"^t-=envelope,{stream.activities}=activity",
            )
        )
        wait_for_outcomes(worker, 100)
        assert worker.stop() == 0
        settlement = stream.settle(ledger)
        assert (len(settlement.missing), sum(settlement.delivered.values())) == (0, 100)


class TestStopDontSpill:
    def test_the_dead_letter_rate_guard_halts_the_worker_instead_of_emptying_the_topic(
        self, stream: Stream, running: Callable[[WorkerProcess], WorkerProcess]
    ) -> None:
        """After 20 dead letters in a row the worker holds, unready, with exactly 20 in the DLQ; the rest waits
        (taken messages wait in memory, uncommitted) and a stop leaves them for the next worker."""
        bad = [SampleMessage(f"bad-{i}", f"k{i % 7}".encode(), b'{"$type":', "activity", "x") for i in range(200)]
        produce_all(stream.bootstrap_servers, stream.activities, bad)
        guarded = running(stream.worker(DLQ_GUARD_MAX_CONSECUTIVE="20", DLQ_GUARD_COOLDOWN_S="3600"))
        guarded.wait_until(lambda: guarded.metric_sum("mics_worker_paused", reason="dlq_rate") == 1, 60, "the guard")
        guarded.wait_until(lambda: guarded.probe("/readyz") == 503, 30, "not ready")
        guarded.wait_until(lambda: guarded.metric_sum(OUTCOMES) >= 20, 30, "the 20 acknowledged dead letters")
        assert guarded.metric_sum(OUTCOMES) == 20
        consumed = guarded.metric_sum("mics_worker_messages_consumed_total")
        assert guarded.metric_sum("mics_worker_in_flight_messages") == consumed - 20
        assert guarded.stop() == 0
        assert stream.dead_letter_count() == 20

        relaxed = running(stream.worker(DLQ_GUARD_MAX_CONSECUTIVE="1000", DLQ_GUARD_MAX_RATIO="1"))
        wait_for_outcomes(relaxed, 180)
        assert relaxed.stop() == 0
        records = read_dead_letters(stream.bootstrap_servers, stream.dlq)
        assert sorted(record.key or b"" for record in records) == sorted(m.key for m in bad)
