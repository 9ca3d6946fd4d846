"""Tracing end to end: a worker on the real broker and sandbox exports its spans over OTLP/HTTP, to a receiver the test
runs and through a real OpenTelemetry Collector built from source (tests/otelcol), and every message produced with a
`traceparent` arrives as one trace: consume, each HTTP attempt, delivery or dead letter."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.conftest import Stream, wait_for_outcomes
from tests.support.collector import CollectorRelay, build_collector, go_tool
from tests.support.events import MixSpec, generate
from tests.support.ledger import read_dead_letters
from tests.support.otlp_receiver import OtlpReceiver, ReceivedSpan
from tests.support.scenario import eventually, produce_records
from tests.support.worker_process import WorkerProcess

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

CLIENT, PRODUCER, CONSUMER = 3, 4, 5


@pytest.fixture(scope="session")
def collector_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The collector of tests/otelcol, built once per session (skipped where Go is not installed)."""
    go = go_tool()
    if go is None:
        pytest.skip("no `go` on PATH: the OpenTelemetry Collector cannot be built here")
    return build_collector(go, tmp_path_factory.mktemp("otelcol"))


def test_every_message_arrives_as_one_trace_at_an_otlp_receiver(
    stream: Stream, running: Callable[[WorkerProcess], WorkerProcess]
) -> None:
    """The worker exports straight to the test's OTLP/HTTP receiver."""
    with OtlpReceiver() as receiver:
        _run_and_check(stream, running, receiver, receiver.endpoint)


def test_every_message_arrives_as_one_trace_through_a_real_collector(
    stream: Stream, running: Callable[[WorkerProcess], WorkerProcess], collector_binary: Path
) -> None:
    """The worker exports to an OpenTelemetry Collector (OTLP receiver, OTLP/HTTP exporter), which forwards to the
    test's receiver: the collector accepted every span and passed on their ids, parents and links."""
    with OtlpReceiver() as receiver, CollectorRelay(collector_binary, receiver.endpoint) as relay:
        _run_and_check(stream, running, receiver, relay.endpoint)


def _run_and_check(
    stream: Stream, running: Callable[[WorkerProcess], WorkerProcess], receiver: OtlpReceiver, endpoint: str
) -> None:
    """60 messages (a few invalid), each with its own `traceparent`: after the run, the receiver holds for each one
    a `process` span under the producer's span, and under it the HTTP attempts (delivered) or the DLQ write (dead
    letter), whose context the DLQ record carries."""
    messages = list(generate(60, MixSpec(invalid=0.1), seed=17))
    producer_spans: dict[str, tuple[str, str]] = {}  # ledger id -> (trace id, span id)
    for topic in (stream.activities, stream.mixed):
        batch = [message for message in messages if stream.topic_for(message) == topic]
        records: list[tuple[bytes | None, bytes | None, list[tuple[str, str | bytes | None]]]] = []
        for message in batch:
            trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
            producer_spans[message.ledger_id] = (trace_id, span_id)
            records.append((message.key, message.value, [("traceparent", f"00-{trace_id}-{span_id}-01".encode())]))
        produce_records(stream.bootstrap_servers, topic, records)
    expected_dead = sum(message.expected != "delivered" for message in messages)
    assert 0 < expected_dead < len(messages)

    worker = WorkerProcess(
        {
            **stream.env(TRACING="on"),
            "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": "200",
            "OTEL_TRACES_SAMPLER": "parentbased_always_on",
        }
    )
    running(worker)
    wait_for_outcomes(worker, len(messages))
    assert worker.stop() == 0  # the shutdown flushes what is still buffered
    eventually(
        lambda: sum(span.kind == CONSUMER for span in receiver.received()) >= len(messages),
        60,
        "every process span at the receiver",
    )
    spans = receiver.received()

    by_trace: dict[str, list[ReceivedSpan]] = {}
    for span in spans:
        by_trace.setdefault(span.trace_id, []).append(span)
    dead_letters = {
        record.headers["traceparent"].decode(): record
        for record in read_dead_letters(stream.bootstrap_servers, stream.dlq)
    }
    assert len(dead_letters) == expected_dead

    for message in messages:
        trace_id, producer_span = producer_spans[message.ledger_id]
        trace = by_trace[trace_id]
        [process] = [span for span in trace if span.kind == CONSUMER]
        assert process.name.startswith("process t-")
        assert process.parent_span_id == producer_span
        assert process.links == ((trace_id, producer_span),)
        assert process.attributes["messaging.system"] == "kafka"
        assert process.attributes["messaging.consumer.group.name"] == stream.group
        assert process.resource["service.name"] == "mics-event-worker"
        children = [span for span in trace if span.parent_span_id == process.span_id]
        attempts = [span for span in children if span.kind == CLIENT]
        if message.expected == "delivered":
            assert process.attributes["mics.outcome"] == "delivered"
            assert attempts, message.ledger_id
            assert attempts[-1].attributes["http.response.status_code"] in (200, 201, 204)
            for attempt in attempts:
                template = str(attempt.attributes["url.template"])
                assert "{datamart_id}" in template
                assert message.ledger_id not in template
        else:
            assert process.attributes["mics.outcome"] == "dead_lettered"
            assert process.attributes["mics.dlq.reason"] == message.expected
            [send] = [span for span in children if span.kind == PRODUCER]
            assert send.name == f"send {stream.dlq}"
            record = dead_letters[f"00-{trace_id}-{send.span_id}-01"]
            assert record.headers["mics.original.traceparent"] == f"00-{trace_id}-{producer_span}-01".encode()
    assert len([span for span in spans if span.kind == CONSUMER]) == len(messages)
