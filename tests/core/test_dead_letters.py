"""Dead letters in-process: bounded reduced forms, authoritative context headers, UTF-8 headers, fatal errors."""

from __future__ import annotations

import pytest

from tests.support.core_harness import TOPIC, CoreHarness, FakeApi, envelope_activity
from tests.support.fake_kafka import FakeProducer
from worker.dlq_format.headers import REDUCED_HEADER, TRUNCATED_HEADER
from worker.mics.transport import RawResponse
from worker.pipeline import WorkerCrashed


class TestTooLargeForTheDlq:
    async def test_a_huge_key_is_dead_lettered_reduced_and_the_worker_goes_on(self) -> None:
        """A 1,000,000-byte key with an undecodable value: the reduced record (key cut to 1 KiB) is written once,
        the offset moves on and the next message is delivered (it used to recurse until RecursionError)."""
        async with CoreHarness(producer=FakeProducer(local_limit=100_000)) as core:
            core.assign(0)
            core.consumer.append(TOPIC, 0, b"{bad", key=b"k" * 1_000_000)
            core.consumer.append(TOPIC, 0, envelope_activity("1509"))
            await core.until(lambda: len(core.api.writes()) == 1 and core.stored(0) == 2, "both outcomes")
        [record] = core.producer.acked
        assert len(record.key or b"") == 1024
        assert record.header(REDUCED_HEADER) == [b"key=1000000"]
        assert record.header("mics.dlq.reason") == [b"decode_error"]
        assert record.value == b"{bad"

    async def test_two_thousand_large_headers_are_dropped_with_their_count(self) -> None:
        """2,000 headers of 500 bytes: the reduced record keeps the context and says how many headers were cut."""
        headers = [(f"h{index}", b"x" * 500) for index in range(2000)]
        async with CoreHarness(producer=FakeProducer(broker_limit=100_000)) as core:
            core.assign(0)
            core.consumer.append(TOPIC, 0, b"{bad", headers=headers)
            await core.until(lambda: core.stored(0) == 1, "the dead letter")
        [record] = core.producer.acked
        assert not any(name.startswith("h") for name, _ in record.headers)
        [reduced] = record.header(REDUCED_HEADER)
        assert reduced is not None
        assert reduced.startswith(b"headers=2000/")
        assert record.header("__connect.errors.offset") == [b"0"]

    async def test_a_value_too_large_keeps_its_first_bytes_and_its_size(self) -> None:
        """The value is cut to 1 KiB and `mics.dlq.value.truncated` holds its full size."""
        async with CoreHarness(producer=FakeProducer(broker_limit=50_000)) as core:
            core.assign(0)
            core.consumer.append(TOPIC, 0, b"[" + b"1," * 100_000 + b"]")
            await core.until(lambda: core.stored(0) == 1, "the dead letter")
        [record] = core.producer.acked
        assert len(record.value or b"") == 1024
        assert record.header(TRUNCATED_HEADER) == [b"200002"]

    async def test_a_dlq_too_small_even_for_the_reduced_form_holds_instead_of_recursing(self) -> None:
        """When even the reduced record is refused, the worker holds (dlq_unavailable), keeps the offset open and
        retries; once the DLQ takes it, the offset moves and the hold ends."""
        producer = FakeProducer(broker_limit=500)
        async with CoreHarness(producer=producer) as core:
            core.assign(0)
            core.consumer.append(TOPIC, 0, b"{bad", key=b"k" * 5000)
            await core.until(lambda: core.sample("mics_worker_paused", {"reason": "dlq_unavailable"}) == 1, "a hold")
            assert core.stored(0) == 0
            assert not core.health.readiness()[0]
            producer.broker_limit = None
            await core.until(lambda: core.stored(0) == 1, "the dead letter after the DLQ accepts it")
            assert core.sample("mics_worker_paused", {"reason": "dlq_unavailable"}) == 0
        assert producer.acked[0].header(REDUCED_HEADER) == [b"key=5000"]


class TestContextHeaders:
    async def test_a_producers_forged_context_is_kept_under_another_name(self) -> None:
        """Forged `mics.dlq.*`, `__connect.errors.*`, `mics.replay.count` and trace context (`traceparent`, any
        case) headers become `mics.original.*`; the worker's own headers appear once each, and with tracing off the
        worker writes no `traceparent` of its own."""
        forged = [
            ("mics.dlq.reason", b"forged"),
            ("mics.dlq.http.status", b"999"),
            ("__connect.errors.topic", b"elsewhere"),
            ("mics.replay.count", b"99"),
            ("traceparent", b"00-abc-def-01"),
            ("TraceState", b"k=v"),
        ]
        async with CoreHarness() as core:
            core.assign(0)
            core.consumer.append(TOPIC, 0, b"{bad", headers=forged)
            await core.until(lambda: core.stored(0) == 1, "the dead letter")
        [record] = core.producer.acked
        assert record.header("mics.dlq.reason") == [b"decode_error"]
        assert record.header("mics.dlq.http.status") == []
        assert record.header("__connect.errors.topic") == [TOPIC.encode()]
        assert record.header("mics.original.mics.dlq.reason") == [b"forged"]
        assert record.header("mics.original.__connect.errors.topic") == [b"elsewhere"]
        assert record.header("mics.original.mics.replay.count") == [b"99"]
        assert record.header("mics.original.traceparent") == [b"00-abc-def-01"]
        assert record.header("mics.original.TraceState") == [b"k=v"]
        assert record.header("traceparent") == []

    async def test_an_api_error_text_with_a_lone_surrogate_becomes_valid_utf8(self) -> None:
        """An escaped lone surrogate in the API's error survives JSON decoding; its header is still UTF-8."""
        body = b'{"status":"error","error":"bad \\ud800 value","error_code":"\\udfff"}'
        api = FakeApi(lambda _request: RawResponse(400, {}, body))
        async with CoreHarness(api=api) as core:
            core.assign(0)
            core.consumer.append(TOPIC, 0, envelope_activity("1509"))
            await core.until(lambda: core.stored(0) == 1, "the dead letter")
        [record] = core.producer.acked
        for _name, value in record.headers:
            (value or b"").decode("utf-8")  # raises if any header is not UTF-8
        assert record.header("__connect.errors.exception.message") == [b"bad \\ud800 value"]


class TestFatalProducerError:
    async def test_a_fatal_producer_error_stops_the_worker_with_an_error(self) -> None:
        """A fatal error in a DLQ acknowledgement is not a DLQ outage to wait out: run() raises WorkerCrashed."""
        async with CoreHarness(producer=FakeProducer(fatal=True)) as core:
            core.assign(0)
            core.consumer.append(TOPIC, 0, b"{bad")
            assert core.task is not None
            with pytest.raises(WorkerCrashed):
                await core.task
        assert core.consumer.closed
        assert core.stored(0) == 0


class TestSchemaErrors:
    async def test_every_schema_error_is_named_in_one_header(self) -> None:
        """A body with two defects: the first in `schema.path`/`schema.rule`, both in `mics.dlq.schema.errors`."""
        body = envelope_activity("1509").replace(b'"$ts":1764000000000,"$type"', b'"$ts":"soon","$type"')
        body = body.replace(b'"$session_status":"NO_SESSION"', b'"$session_status":7')
        async with CoreHarness() as core:
            core.assign(0)
            core.consumer.append(TOPIC, 0, body)
            await core.until(lambda: core.stored(0) == 1, "the dead letter")
        [record] = core.producer.acked
        [summary] = record.header("mics.dlq.schema.errors")
        assert summary is not None
        assert summary.startswith(b"2 errors: ")
        assert b"$.body.$ts" in summary
        assert b"$.body.$session_status" in summary
        assert record.header("mics.dlq.schema.path")[0] in (b"$.body.$ts", b"$.body.$session_status")
