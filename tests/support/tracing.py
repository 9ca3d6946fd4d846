"""Tracing for tests: the worker's spans into an in-memory exporter, and a producer's `traceparent` to send."""

from __future__ import annotations

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import Sampler

from tests.support.core_harness import BASE_URL, FakeApi
from worker.mics.auth import ApiToken
from worker.mics.client import MicsClient
from worker.tracing.spans import OtelTracing

PRODUCER_TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PRODUCER_SPAN_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{PRODUCER_TRACE_ID}-{PRODUCER_SPAN_ID}-01".encode()


class TracedSpans:
    """An `OtelTracing` whose finished spans land in `exporter` (synchronously, as each ends)."""

    def __init__(
        self, *, group_id: str = "mics-worker", propagate_to_api: bool = False, sampler: Sampler | None = None
    ) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider(sampler=sampler)
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        client = MicsClient(FakeApi(), BASE_URL, ApiToken("unused-token"))  # only its endpoint templates are read
        self.tracing = OtelTracing(
            self.provider.get_tracer("tests"),
            group_id=group_id,
            endpoints={route: client.endpoint(route) for route in ("activity", "profile", "choice")},
            propagate_to_api=propagate_to_api,
        )

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def named(self, name: str) -> list[ReadableSpan]:
        return [span for span in self.spans() if span.name == name]


def hex_trace(span: ReadableSpan) -> str:
    assert span.context is not None
    return format(span.context.trace_id, "032x")


def hex_span(span: ReadableSpan) -> str:
    assert span.context is not None
    return format(span.context.span_id, "016x")


def hex_parent(span: ReadableSpan) -> str | None:
    return None if span.parent is None else format(span.parent.span_id, "016x")
