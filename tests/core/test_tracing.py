"""Tracing in-process: the real pipeline's spans in an in-memory exporter, one test per span kind and attribute set."""

from __future__ import annotations

import asyncio
from typing import cast

from opentelemetry.trace import SpanKind, StatusCode

from tests.support.core_harness import TOPIC, CoreHarness, FakeApi, envelope_activity
from tests.support.fake_kafka import FakeMessage
from tests.support.tracing import (
    PRODUCER_SPAN_ID,
    PRODUCER_TRACE_ID,
    TRACEPARENT,
    TracedSpans,
    hex_parent,
    hex_span,
    hex_trace,
)
from worker.dlq import DeadLetterRecord
from worker.kafka import Message
from worker.mics.transport import RawResponse, TransportTimeout

OK = RawResponse(200, {}, b'{"status":"ok","data":{}}')
UNAVAILABLE = RawResponse(503, {}, b'{"status":"error","error":"down"}')
SLOW_DOWN = RawResponse(429, {"retry-after": "1"}, b'{"status":"error","error":"slow down"}')
PROCESS = f"process {TOPIC}"
ACTIVITY_SPAN = "POST /v1/datamarts/{datamart_id}/user_activities"


def answers(*responses: RawResponse) -> FakeApi:
    """The API answers each write with the next response, then 200."""
    queue = list(responses)
    return FakeApi(lambda request: queue.pop(0) if queue and not request.is_probe else OK)


class TestProcessSpan:
    async def test_its_messaging_attributes(self) -> None:
        """`process <topic>`, a consumer span with the Kafka record's position, key, group and size."""
        traced = TracedSpans(group_id="shop-events")
        value = envelope_activity("1509")
        async with CoreHarness(tracing=traced.tracing, group_id="shop-events") as core:
            core.assign(3)
            core.consumer.append(TOPIC, 3, value, key=b"user-42")
            await core.until(lambda: core.stored(3) == 1, "the delivery")
        [span] = traced.named(PROCESS)
        assert span.kind is SpanKind.CONSUMER
        attributes = dict(span.attributes or {})
        assert attributes["messaging.system"] == "kafka"
        assert attributes["messaging.operation.type"] == "process"
        assert attributes["messaging.operation.name"] == "process"
        assert attributes["messaging.destination.name"] == TOPIC
        assert attributes["messaging.destination.partition.id"] == "3"
        assert attributes["messaging.kafka.offset"] == 0
        assert attributes["messaging.kafka.message.key"] == "user-42"
        assert attributes["messaging.consumer.group.name"] == "shop-events"
        assert attributes["messaging.message.body.size"] == len(value)
        assert attributes["mics.outcome"] == "delivered"
        assert span.status.status_code is StatusCode.UNSET

    async def test_the_producers_traceparent_is_its_parent_and_its_link(self) -> None:
        """A record produced with `traceparent` continues the producer's trace: same trace id, parent and link."""
        traced = TracedSpans()
        async with CoreHarness(tracing=traced.tracing) as core:
            core.assign(0)
            core.consumer.append(TOPIC, 0, envelope_activity("1509"), headers=[("traceparent", TRACEPARENT)])
            await core.until(lambda: core.stored(0) == 1, "the delivery")
        [span] = traced.named(PROCESS)
        assert hex_trace(span) == PRODUCER_TRACE_ID
        assert hex_parent(span) == PRODUCER_SPAN_ID
        assert span.parent is not None
        assert span.parent.is_remote
        [link] = span.links
        assert format(link.context.span_id, "016x") == PRODUCER_SPAN_ID

    async def test_without_trace_context_it_starts_a_trace(self) -> None:
        """No `traceparent` (or a malformed one): a new trace, no parent, no link."""
        traced = TracedSpans()
        async with CoreHarness(tracing=traced.tracing) as core:
            core.assign(0)
            core.consumer.append(TOPIC, 0, envelope_activity("1509"))
            core.consumer.append(TOPIC, 0, envelope_activity("1509"), headers=[("traceparent", b"00-nonsense-01")])
            await core.until(lambda: core.stored(0) == 2, "both deliveries")
        spans = traced.named(PROCESS)
        assert len(spans) == 2
        assert all(span.parent is None and not span.links for span in spans)
        assert hex_trace(spans[0]) != hex_trace(spans[1])


class TestHttpAttemptSpans:
    async def test_one_client_span_per_attempt_with_the_route_template(self) -> None:
        """A 503 then a 200: two client spans under the process span, named by the URL template (no ids), with
        status, retry number and error type; the retry is an event of the process span."""
        traced = TracedSpans()
        api = answers(UNAVAILABLE)
        async with CoreHarness(api=api, tracing=traced.tracing) as core:
            core.assign(0)
            core.consumer.append(TOPIC, 0, envelope_activity("2000"))
            await core.until(lambda: core.stored(0) == 1, "the delivery")
        [process] = traced.named(PROCESS)
        first, second = traced.named(ACTIVITY_SPAN)
        for span in (first, second):
            assert span.kind is SpanKind.CLIENT
            assert hex_parent(span) == hex_span(process)
            attributes = dict(span.attributes or {})
            assert attributes["http.request.method"] == "POST"
            assert attributes["url.template"] == "/v1/datamarts/{datamart_id}/user_activities"
            assert attributes["server.address"] == "api.test"
            assert attributes["server.port"] == 80
            assert "2000" not in str(attributes)  # the datamart from the message is nowhere
        assert first.attributes is not None
        assert second.attributes is not None
        assert first.attributes["http.response.status_code"] == 503
        assert first.attributes["error.type"] == "503"
        assert first.status.status_code is StatusCode.ERROR
        assert "http.request.resend_count" not in first.attributes
        assert second.attributes["http.response.status_code"] == 200
        assert second.attributes["http.request.resend_count"] == 1
        assert "error.type" not in second.attributes
        [retry] = [event for event in process.events if event.name == "retry"]
        assert retry.attributes is not None
        assert retry.attributes["mics.retry.attempts"] == 1
        assert retry.attributes["mics.retry.reason"] == "http_503"

    async def test_retry_after_and_the_routes_pause(self) -> None:
        """A 429 with `Retry-After: 1`: the attempt span holds it; the route's shared backoff (a second, far longer
        than the message's own 5 ms backoff) is waited at the route's gate: a `flow_control` pause event."""
        traced = TracedSpans()
        api = answers(SLOW_DOWN)
        async with CoreHarness(api=api, tracing=traced.tracing) as core:
            core.assign(0)
            core.consumer.append(TOPIC, 0, envelope_activity("1509"))
            await core.until(lambda: core.stored(0) == 1, "the delivery")
        first, _second = traced.named(ACTIVITY_SPAN)
        assert first.attributes is not None
        assert first.attributes["mics.http.retry_after_s"] == 1.0
        assert first.attributes["http.response.status_code"] == 429
        [process] = traced.named(PROCESS)
        pauses = [event for event in process.events if event.name == "pause"]
        assert [event.attributes["mics.pause.reason"] for event in pauses if event.attributes] == ["flow_control"]
        assert pauses[0].attributes is not None
        assert float(pauses[0].attributes["mics.pause.duration_s"]) >= 0.5  # type: ignore[arg-type]

    async def test_a_transport_failure_is_its_error_type(self) -> None:
        """No HTTP answer: no status code, `error.type` names the failure."""
        failures = [TransportTimeout("slow")]
        api = FakeApi(lambda request: failures.pop() if failures else OK)
        traced = TracedSpans()
        async with CoreHarness(api=api, tracing=traced.tracing) as core:
            core.assign(0)
            core.consumer.append(TOPIC, 0, envelope_activity("1509"))
            await core.until(lambda: core.stored(0) == 1, "the delivery")
        first, _second = traced.named(ACTIVITY_SPAN)
        assert first.attributes is not None
        assert first.attributes["error.type"] == "timeout"
        assert "http.response.status_code" not in first.attributes


class TestPropagationToTheApi:
    async def test_off_by_default(self) -> None:
        """Tracing on, propagation not asked for: the API sees no trace header."""
        traced = TracedSpans()
        async with CoreHarness(tracing=traced.tracing) as core:
            core.assign(0)
            core.consumer.append(TOPIC, 0, envelope_activity("1509"), headers=[("traceparent", TRACEPARENT)])
            await core.until(lambda: core.stored(0) == 1, "the delivery")
        [request] = core.api.writes()
        assert "traceparent" not in request.headers

    async def test_on_the_request_carries_its_attempt_spans_context(self) -> None:
        """With propagation on, each request's `traceparent` is its own attempt span (same trace as the producer)."""
        traced = TracedSpans(propagate_to_api=True)
        async with CoreHarness(tracing=traced.tracing) as core:
            core.assign(0)
            core.consumer.append(TOPIC, 0, envelope_activity("1509"), headers=[("traceparent", TRACEPARENT)])
            await core.until(lambda: core.stored(0) == 1, "the delivery")
        [request] = core.api.writes()
        [attempt] = traced.named(ACTIVITY_SPAN)
        assert request.headers["traceparent"] == f"00-{PRODUCER_TRACE_ID}-{hex_span(attempt)}-01"
        assert request.headers["Authorization"].endswith("harness-token")  # the worker's own headers still win


class TestDeadLetterSpan:
    async def test_the_dlq_write_is_a_producer_span_whose_context_the_record_carries(self) -> None:
        """An undecodable message: `send <dlq>` under the process span; the DLQ record's `traceparent` is that
        span's, the source's is kept escaped; the process span ends in error with the reason."""
        traced = TracedSpans()
        async with CoreHarness(tracing=traced.tracing) as core:
            core.assign(0)
            core.consumer.append(TOPIC, 0, b"{bad", headers=[("traceparent", TRACEPARENT)])
            await core.until(lambda: core.stored(0) == 1, "the dead letter")
        [process] = traced.named(PROCESS)
        [send] = traced.named(f"send {core.config.dlq_topic}")
        assert send.kind is SpanKind.PRODUCER
        assert hex_parent(send) == hex_span(process)
        assert hex_trace(send) == PRODUCER_TRACE_ID
        attributes = dict(send.attributes or {})
        assert attributes["messaging.system"] == "kafka"
        assert attributes["messaging.operation.type"] == "send"
        assert attributes["messaging.destination.name"] == core.config.dlq_topic
        assert attributes["mics.dlq.reason"] == "decode_error"
        assert process.status.status_code is StatusCode.ERROR
        assert dict(process.attributes or {})["error.type"] == "decode_error"
        [record] = core.producer.acked
        assert record.header("traceparent") == [f"00-{PRODUCER_TRACE_ID}-{hex_span(send)}-01".encode()]
        assert record.header("mics.original.traceparent") == [TRACEPARENT]

    async def test_a_replayed_dead_letter_continues_the_same_trace(self) -> None:
        """The DLQ record, replayed (the `dlq replay` headers) and consumed again, is processed under the dead
        letter's span: one trace from the producer through the dead letter to the second delivery."""
        traced = TracedSpans()
        api = answers(RawResponse(400, {}, b'{"status":"error","error":"bad"}'))
        async with CoreHarness(api=api, tracing=traced.tracing) as core:
            core.assign(0)
            core.consumer.append(TOPIC, 0, envelope_activity("1509"), headers=[("traceparent", TRACEPARENT)])
            await core.until(lambda: core.stored(0) == 1, "the dead letter")
            [written] = core.producer.acked
            read_back = FakeMessage(core.config.dlq_topic, 0, 0, written.value, headers=written.headers)
            dead = DeadLetterRecord.from_message(cast(Message, read_back))  # a named fake of a consumed record
            replayed = [
                (name, value.encode() if isinstance(value, str) else value) for name, value in dead.replay_headers()
            ]
            core.consumer.append(TOPIC, 0, written.value, headers=replayed)
            await core.until(lambda: core.stored(0) == 2, "the replayed delivery")
        first, second = traced.named(PROCESS)
        [send] = traced.named(f"send {core.config.dlq_topic}")
        assert hex_trace(first) == hex_trace(send) == hex_trace(second) == PRODUCER_TRACE_ID
        assert hex_parent(second) == hex_span(send)
        assert dict(second.attributes or {})["mics.outcome"] == "delivered"
        assert dead.trace_id == (PRODUCER_TRACE_ID, "worker")

    async def test_an_abandoned_message_ends_its_span(self) -> None:
        """A message still retrying at shutdown is given up: its span ends with `mics.outcome=abandoned`."""
        traced = TracedSpans()
        api = FakeApi(lambda request: UNAVAILABLE)
        async with CoreHarness(api=api, tracing=traced.tracing) as core:
            core.assign(0)
            core.consumer.append(TOPIC, 0, envelope_activity("1509"))
            await core.until(lambda: len(core.api.writes()) >= 2, "a retry")
            await core.stop()
        [process] = traced.named(PROCESS)
        assert dict(process.attributes or {})["mics.outcome"] == "abandoned"
        assert core.stored(0) == 0


class TestSpansAlwaysEnd:
    async def test_a_request_cut_by_the_drain_deadline_ends_abandoned(self) -> None:
        """The API never answers and the drain runs out: the task is cancelled, yet its attempt span and its
        process span end (`abandoned`, `error.type=cancelled`), so no span stays open for ever."""
        never = asyncio.Event()

        async def hang(_request: object) -> RawResponse:
            await never.wait()
            return OK

        traced = TracedSpans()
        async with CoreHarness(api=FakeApi(hang), tracing=traced.tracing, drain_timeout_s=0.2) as core:
            core.assign(0)
            core.consumer.append(TOPIC, 0, envelope_activity("1509"))
            await core.until(lambda: len(core.api.writes()) == 1, "the request on the wire")
            await core.stop()
        [process] = traced.named(PROCESS)
        [attempt] = traced.named(ACTIVITY_SPAN)
        assert dict(process.attributes or {})["mics.outcome"] == "abandoned"
        assert dict(attempt.attributes or {})["error.type"] == "cancelled"
        assert core.stored(0) == 0


class TestUnsampled:
    UNSAMPLED = f"00-{PRODUCER_TRACE_ID}-{PRODUCER_SPAN_ID}-00".encode()

    async def test_an_unsampled_trace_exports_nothing_but_still_propagates(self) -> None:
        """The producer did not sample its trace (flags 00; the default sampler follows the parent): no span is
        exported, no HTTP span is made, yet the API (propagation on) and the DLQ record get the trace's context
        with its unsampled flag, so the trace stays one trace downstream."""
        traced = TracedSpans(propagate_to_api=True)
        api = answers(RawResponse(400, {}, b'{"status":"error","error":"bad"}'))
        async with CoreHarness(api=api, tracing=traced.tracing) as core:
            core.assign(0)
            core.consumer.append(TOPIC, 0, envelope_activity("1509"), headers=[("traceparent", self.UNSAMPLED)])
            await core.until(lambda: core.stored(0) == 1, "the dead letter")
        assert traced.spans() == []
        [request] = core.api.writes()
        assert request.headers["traceparent"].startswith(f"00-{PRODUCER_TRACE_ID}-")
        assert request.headers["traceparent"].endswith("-00")
        [record] = core.producer.acked
        [traceparent] = record.header("traceparent")
        assert traceparent is not None
        assert traceparent.startswith(f"00-{PRODUCER_TRACE_ID}-".encode())
        assert traceparent.endswith(b"-00")
