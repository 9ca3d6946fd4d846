"""Start the OpenTelemetry SDK the standard way: `OTEL_*` variables choose the exporter, endpoint, sampler, resource.

Imported only when `MICS_WORKER_TRACING=on`. Supported: `OTEL_TRACES_EXPORTER` `otlp` (the default; OTLP over HTTP
with protobuf — `OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT`, `_HEADERS`, `_TIMEOUT` are read by the exporter), `console`
or `none`; `OTEL_TRACES_SAMPLER[_ARG]` (default `parentbased_always_on`); `OTEL_SERVICE_NAME` /
`OTEL_RESOURCE_ATTRIBUTES` (the service name defaults to `mics-event-worker`); `OTEL_BSP_*` for the batch processor.
Propagation is W3C trace context (`traceparent`, `tracestate`) whatever `OTEL_PROPAGATORS` says.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

from worker import __version__
from worker.tracing.settings import TracingSettings
from worker.tracing.spans import OtelTracing

__all__ = ["DEFAULT_SERVICE_NAME", "TracingSetupError", "start_tracing", "tracer_provider"]

DEFAULT_SERVICE_NAME = "mics-event-worker"
_SHUTDOWN_FLUSH_MS = 5000
"""At exit, buffered spans get this long to be exported (then the exporter's own timeout bounds the last batch)."""


class TracingSetupError(ValueError):
    """An `OTEL_*` setting the worker cannot honour; the message names the variable."""


def start_tracing(
    settings: TracingSettings,
    *,
    group_id: str,
    endpoints: Mapping[str, str],
    environ: Mapping[str, str] | None = None,
) -> OtelTracing:
    """The worker's tracing over `tracer_provider(environ)`; its `shutdown` flushes and stops the provider."""
    provider = tracer_provider(environ)

    def shutdown() -> None:
        provider.force_flush(_SHUTDOWN_FLUSH_MS)
        provider.shutdown()

    return OtelTracing(
        provider.get_tracer("mics-event-worker", __version__),
        group_id=group_id,
        endpoints=endpoints,
        propagate_to_api=settings.propagate_to_api,
        on_shutdown=shutdown,
    )


def tracer_provider(environ: Mapping[str, str] | None = None) -> TracerProvider:
    """A tracer provider with the resource, sampler and (batched) exporter the `OTEL_*` variables ask for."""
    env = os.environ if environ is None else environ
    resource = Resource.create({"service.version": __version__})  # reads OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: DEFAULT_SERVICE_NAME}))
    provider = TracerProvider(resource=resource)  # the sampler comes from OTEL_TRACES_SAMPLER[_ARG]
    exporter = _exporter(env)
    if exporter is not None:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def _exporter(env: Mapping[str, str]) -> SpanExporter | None:
    names = [name.strip() for name in env.get("OTEL_TRACES_EXPORTER", "otlp").split(",") if name.strip()]
    if len(names) != 1:
        raise TracingSetupError("OTEL_TRACES_EXPORTER: name exactly one of otlp, console, none")
    name = names[0]
    if name == "none":
        return None
    if name == "console":
        return ConsoleSpanExporter()
    if name != "otlp":
        raise TracingSetupError(f"OTEL_TRACES_EXPORTER={name!r} is not one of otlp, console, none")
    protocol = (
        env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "http/protobuf"
    )
    if protocol.strip() != "http/protobuf":
        raise TracingSetupError(
            f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r}: only http/protobuf is installed (the collector's port 4318)"
        )
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter  # noqa: PLC0415 - only if used

    return OTLPSpanExporter()
