"""The active tracing: a `process <topic>` consumer span per message, a client span per HTTP attempt, a producer
span for the dead-letter write; retries and pauses are events of the message's span.

The process span's parent is the producer's context from the record's `traceparent` / `tracestate` (and it links to
it too, as the messaging conventions ask of process spans), so a message produced with a `traceparent` is one trace
from the producer to the API call or the dead letter. The DLQ record carries the dead-letter span's context as its
own `traceparent` (the source's is kept escaped: `worker.dlq_format.headers`), so a replayed message continues
that trace.
HTTP spans name the route's URL template, never the URL itself (it holds ids from the message).

A message whose trace is not sampled costs as little as the SDK allows: its span is created (its context still goes
on the DLQ record and, when asked, to the API) but no attribute is built, and no HTTP span is made under it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from urllib.parse import urlsplit

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from worker.kafka import Message
from worker.mics.errors import ApiResult
from worker.tracing import semconv as sc
from worker.tracing.noop import NO_ATTEMPT, AttemptTrace, MessageTrace, TraceHeaders, Tracing
from worker.tracing.propagation import trace_headers_of

__all__ = ["OtelTracing", "RouteEndpoint"]

_PROPAGATOR = TraceContextTextMapPropagator()
_MAX_KEY_CHARS = 256
_MIN_WAIT_S = 0.001
"""Shorter pauses (a free slot, an open gate) are not worth an event."""
_TIMESTAMP_NOT_AVAILABLE = 0
AttrValue = str | int | bool


def _context_headers(span: Span) -> dict[str, str]:
    """`traceparent` (and `tracestate`) naming `span`."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, trace.set_span_in_context(span))
    return carrier


class RouteEndpoint:
    """What an HTTP span says about a route: method, URL template under the base, server address and port."""

    __slots__ = ("address", "method", "name", "port", "template")

    def __init__(self, endpoint: str) -> None:
        """`endpoint` as `MicsClient.endpoint` gives it: `POST https://host/base/v1/datamarts/{datamart_id}/…`."""
        self.method, url = endpoint.split(" ", 1)
        parts = urlsplit(url)
        self.template = parts.path
        self.address = parts.hostname or ""
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.name = f"{self.method} {self.template}"


class OtelTracing(Tracing):
    """Starts a message trace per consumed record with an OpenTelemetry tracer."""

    __slots__ = ("_endpoints", "_group", "_on_shutdown", "_propagate", "_tracer")
    enabled = True

    def __init__(
        self,
        tracer: trace.Tracer,
        *,
        group_id: str,
        endpoints: Mapping[str, str],
        propagate_to_api: bool = False,
        on_shutdown: Callable[[], None] | None = None,
    ) -> None:
        self._tracer = tracer
        self._group = group_id
        self._endpoints = {route: RouteEndpoint(endpoint) for route, endpoint in endpoints.items()}
        self._propagate = propagate_to_api
        self._on_shutdown = on_shutdown

    def begin(self, message: Message, topic: str, partition: int, offset: int) -> MessageTrace:
        raw = message.headers()
        carrier = trace_headers_of(raw.items() if isinstance(raw, dict) else raw) if raw else None
        parent = _PROPAGATOR.extract(carrier) if carrier else None
        producer = trace.get_current_span(parent).get_span_context() if parent is not None else None
        links = [Link(producer)] if producer is not None and producer.is_valid else None
        span = self._tracer.start_span(f"process {topic}", context=parent, kind=SpanKind.CONSUMER, links=links)
        if span.is_recording():
            span.set_attributes(self._process_attributes(message, topic, partition, offset))
        return _OtelMessageTrace(self, span)

    def _process_attributes(self, message: Message, topic: str, partition: int, offset: int) -> dict[str, AttrValue]:
        value, key = message.value(), message.key()
        attributes: dict[str, AttrValue] = {
            sc.MESSAGING_SYSTEM: "kafka",
            sc.MESSAGING_OPERATION_TYPE: "process",
            sc.MESSAGING_OPERATION_NAME: "process",
            sc.MESSAGING_DESTINATION_NAME: topic,
            sc.MESSAGING_DESTINATION_PARTITION_ID: str(partition),
            sc.MESSAGING_KAFKA_OFFSET: offset,
            sc.MESSAGING_CONSUMER_GROUP_NAME: self._group,
            sc.MESSAGING_MESSAGE_BODY_SIZE: len(value) if value is not None else 0,
        }
        if key is not None:
            attributes[sc.MESSAGING_KAFKA_MESSAGE_KEY] = key[: _MAX_KEY_CHARS * 4].decode("utf-8", "replace")[
                :_MAX_KEY_CHARS
            ]
        if value is None:
            attributes[sc.MESSAGING_KAFKA_MESSAGE_TOMBSTONE] = True
        timestamp_type, timestamp_ms = message.timestamp()
        if timestamp_type != _TIMESTAMP_NOT_AVAILABLE:
            attributes[sc.MESSAGE_AGE_MS] = max(0, int(time.time() * 1000) - timestamp_ms)
        return attributes

    def shutdown(self) -> None:
        if self._on_shutdown is not None:
            self._on_shutdown()


class _PropagatingAttempt(AttemptTrace):
    """An attempt of an unsampled message with propagation on: no span, the message's (unsampled) context sent."""

    __slots__ = ("_headers",)

    def __init__(self, headers: dict[str, str]) -> None:
        self._headers = headers

    @property
    def request_headers(self) -> Mapping[str, str] | None:
        return self._headers


class _OtelAttemptTrace(AttemptTrace):
    __slots__ = ("_headers", "_span")

    def __init__(self, span: Span, propagate: bool) -> None:
        self._span = span
        self._headers: dict[str, str] | None = None
        if propagate:
            self._headers = _context_headers(span)

    @property
    def request_headers(self) -> Mapping[str, str] | None:
        return self._headers

    def end(self, result: ApiResult) -> None:
        span = self._span
        if result.status is not None:
            span.set_attribute(sc.HTTP_RESPONSE_STATUS_CODE, result.status)
        if result.retry_after_s is not None:
            span.set_attribute(sc.RETRY_AFTER_S, result.retry_after_s)
        error_type = result.reason if result.status is None else (str(result.status) if result.status >= 400 else None)
        if error_type is not None:
            span.set_attribute(sc.ERROR_TYPE, error_type)
            span.set_status(Status(StatusCode.ERROR))
        span.end()


class _OtelMessageTrace(MessageTrace):
    __slots__ = ("_dead_letter", "_owner", "_span", "recording")

    def __init__(self, owner: OtelTracing, span: Span) -> None:
        self._owner = owner
        self._span = span
        self._dead_letter: Span | None = None
        self.recording = span.is_recording()

    def activate(self) -> object:
        return otel_context.attach(trace.set_span_in_context(self._span))

    def deactivate(self, token: object) -> None:
        otel_context.detach(token)  # type: ignore[arg-type]  # the token `activate` returned

    def attempt(self, route: str, resend_count: int) -> AttemptTrace:
        if not self.recording:
            return _PropagatingAttempt(_context_headers(self._span)) if self._owner._propagate else NO_ATTEMPT
        endpoint = self._owner._endpoints[route]
        attributes: dict[str, str | int] = {
            sc.HTTP_REQUEST_METHOD: endpoint.method,
            sc.URL_TEMPLATE: endpoint.template,
            sc.SERVER_ADDRESS: endpoint.address,
            sc.SERVER_PORT: endpoint.port,
            sc.ROUTE: route,
        }
        if resend_count:
            attributes[sc.HTTP_REQUEST_RESEND_COUNT] = resend_count
        span = self._owner._tracer.start_span(
            endpoint.name, context=trace.set_span_in_context(self._span), kind=SpanKind.CLIENT, attributes=attributes
        )
        return _OtelAttemptTrace(span, self._owner._propagate)

    def waited(self, reason: str, started: float) -> None:
        waited_s = time.monotonic() - started
        if waited_s >= _MIN_WAIT_S:
            self._span.add_event("pause", {"mics.pause.reason": reason, "mics.pause.duration_s": waited_s})

    def retry_scheduled(self, attempts: int, delay_s: float, reason: str) -> None:
        self._span.add_event(
            "retry", {"mics.retry.attempts": attempts, "mics.retry.delay_s": delay_s, "mics.retry.reason": reason}
        )

    def dead_letter_started(self, dlq_topic: str, reason: str) -> TraceHeaders:
        span = self._dead_letter = self._owner._tracer.start_span(
            f"send {dlq_topic}",
            context=trace.set_span_in_context(self._span),
            kind=SpanKind.PRODUCER,
            attributes={
                sc.MESSAGING_SYSTEM: "kafka",
                sc.MESSAGING_OPERATION_TYPE: "send",
                sc.MESSAGING_OPERATION_NAME: "send",
                sc.MESSAGING_DESTINATION_NAME: dlq_topic,
                sc.DLQ_REASON: reason,
            },
        )
        return [(name, value.encode("ascii")) for name, value in _context_headers(span).items()]

    def dead_letter_event(self, name: str, detail: str) -> None:
        if self._dead_letter is not None:
            self._dead_letter.add_event(name, {"mics.detail": detail})

    def finish(self, outcome: str, reason: str | None = None) -> None:
        span = self._span
        if self._dead_letter is not None:
            if outcome != "dead_lettered":
                self._dead_letter.set_status(Status(StatusCode.ERROR, "not acknowledged"))
            self._dead_letter.end()
            self._dead_letter = None
        span.set_attribute(sc.OUTCOME, outcome)
        if reason is not None:
            span.set_attribute(sc.DLQ_REASON, reason)
            span.set_attribute(sc.ERROR_TYPE, reason)
            span.set_status(Status(StatusCode.ERROR, reason))
        span.end()
