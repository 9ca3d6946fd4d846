"""Tracing's parts: off costs nothing, the settings, the SDK set-up from `OTEL_*`, trace ids in log lines."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
from typing import ClassVar

import orjson
import pytest
from opentelemetry.trace import use_span

from tests.support.fake_kafka import FakeMessage
from tests.support.tracing import TracedSpans
from tests.unit.test_config import build
from worker.config import ConfigError
from worker.logs import configure_logging
from worker.tracing import NO_ATTEMPT, NO_TRACE, NO_TRACING, TracingSettings, trace_id_of
from worker.tracing.logs import TraceIdFilter
from worker.tracing.setup import DEFAULT_SERVICE_NAME, TracingSetupError, start_tracing, tracer_provider
from worker.tracing.spans import RouteEndpoint


class TestOff:
    def test_every_message_shares_one_trace_object(self) -> None:
        """Off, `begin` returns the one shared no-op trace (no object per message), whose attempts are shared too."""
        message = FakeMessage("events", 0, 1, b"{}", headers=[("traceparent", b"x")])
        trace = NO_TRACING.begin(message, "events", 0, 1)  # type: ignore[arg-type]  # a named fake of a record
        assert trace is NO_TRACE
        assert not NO_TRACING.enabled
        assert not trace.recording
        assert trace.attempt("activity", 0) is NO_ATTEMPT
        assert NO_ATTEMPT.request_headers is None
        assert trace.dead_letter_started("dlq", "decode_error") == []

    def test_the_worker_does_not_load_the_sdk_when_off(self) -> None:
        """Importing the whole worker (app, pipeline, DLQ tools) loads no OpenTelemetry module at all."""
        code = (
            "import sys, worker.app, worker.cli, worker.dlq; "
            "print(sorted(name for name in sys.modules if name.startswith('opentelemetry')))"
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
        assert out.strip() == "[]"


class TestSettings:
    def test_off_by_default(self) -> None:
        config = build()
        assert not config.tracing.enabled
        assert not config.tracing.propagate_to_api

    def test_on_and_propagation(self) -> None:
        config = build(TRACING="on", TRACING_PROPAGATE_TO_API="on")
        assert config.tracing.enabled
        assert config.tracing.propagate_to_api

    def test_a_bad_value_names_the_variable(self) -> None:
        with pytest.raises(ConfigError, match="MICS_WORKER_TRACING"):
            build(TRACING="yes please")


class TestSetup:
    ENDPOINTS: ClassVar[dict[str, str]] = {
        "activity": "POST https://api.example/v1/datamarts/{datamart_id}/user_activities"
    }

    def test_an_unknown_exporter_is_refused(self) -> None:
        with pytest.raises(TracingSetupError, match="OTEL_TRACES_EXPORTER"):
            start_tracing(_on(), group_id="g", endpoints=self.ENDPOINTS, environ={"OTEL_TRACES_EXPORTER": "zipkin"})

    def test_otlp_over_grpc_is_refused_with_the_reason(self) -> None:
        with pytest.raises(TracingSetupError, match="http/protobuf"):
            start_tracing(
                _on(), group_id="g", endpoints=self.ENDPOINTS, environ={"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}
            )

    def test_the_service_name_defaults_to_the_workers(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
        monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
        provider = tracer_provider({"OTEL_TRACES_EXPORTER": "none"})
        assert provider.resource.attributes["service.name"] == DEFAULT_SERVICE_NAME

    def test_otel_service_name_and_resource_attributes_win(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("OTEL_SERVICE_NAME", "shop-worker")
        monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment.name=staging")
        attributes = tracer_provider({"OTEL_TRACES_EXPORTER": "none"}).resource.attributes
        assert attributes["service.name"] == "shop-worker"
        assert attributes["deployment.environment.name"] == "staging"

    def test_the_sampler_comes_from_otel_traces_sampler(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """`OTEL_TRACES_SAMPLER=parentbased_traceidratio` at 1%: the provider samples by trace id under a parent."""
        monkeypatch.setenv("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
        monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0.01")
        description = tracer_provider({"OTEL_TRACES_EXPORTER": "none"}).sampler.get_description()
        assert description.startswith("ParentBased{root:TraceIdRatioBased{0.01},")

    def test_the_otlp_exporter_is_batched(self) -> None:
        """The default exporter is OTLP over HTTP behind a batch processor (spans leave off the hot path)."""
        provider = tracer_provider({})
        try:
            processors = provider._active_span_processor._span_processors
            [processor] = processors
            assert type(processor).__name__ == "BatchSpanProcessor"
            assert type(processor._batch_processor._exporter).__name__ == "OTLPSpanExporter"  # type: ignore[attr-defined]
        finally:
            provider.shutdown()

    def test_a_route_endpoint_keeps_only_the_template(self) -> None:
        endpoint = RouteEndpoint("PUT https://api.example:8443/base/v1/datamarts/{datamart_id}/user_points/{selector}")
        assert endpoint.template == "/base/v1/datamarts/{datamart_id}/user_points/{selector}"
        assert (endpoint.address, endpoint.port, endpoint.method) == ("api.example", 8443, "PUT")
        assert endpoint.name == "PUT /base/v1/datamarts/{datamart_id}/user_points/{selector}"


class TestLogs:
    def test_a_line_logged_under_a_span_carries_its_ids(self) -> None:
        traced = TracedSpans()
        stream = io.StringIO()
        configure_logging("json", "INFO", stream=stream, trace_ids=True)
        try:
            span = traced.provider.get_tracer("t").start_span("work")
            with use_span(span, end_on_exit=True):
                logging.getLogger("worker.test").info("inside")
            logging.getLogger("worker.test").info("outside")
        finally:
            configure_logging("json", "INFO", stream=io.StringIO())
        inside, outside = (orjson.loads(line) for line in stream.getvalue().splitlines())
        assert inside["trace_id"] == format(span.get_span_context().trace_id, "032x")
        assert inside["span_id"] == format(span.get_span_context().span_id, "016x")
        assert "trace_id" not in outside

    def test_without_tracing_no_ids_are_added(self) -> None:
        record = logging.LogRecord("x", logging.INFO, "f", 1, "m", None, None)
        assert TraceIdFilter().filter(record)
        assert not hasattr(record, "trace_id")


class TestTraceIdOf:
    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            (b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "4bf92f3577b34da6a3ce929d0e0e4736"),
            ("00-00000000000000000000000000000000-00f067aa0ba902b7-01", None),
            (b"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", None),
            (b"\xff", None),
            (None, None),
        ],
    )
    def test_reads_version_00(self, value: str | bytes | None, expected: str | None) -> None:
        assert trace_id_of(value) == expected


def _on() -> TracingSettings:
    return TracingSettings(enabled=True)


class TestStart:
    def test_a_bad_otel_setting_stops_the_worker_before_it_opens_anything(self) -> None:
        """`mics-worker run` with tracing on and an exporter it cannot build exits 2 and names the variable,
        before connecting to Kafka (the bootstrap server here does not exist)."""
        env = {
            **{key: value for key, value in os.environ.items() if not key.startswith(("MICS_WORKER_", "OTEL_"))},
            "MICS_WORKER_BOOTSTRAP_SERVERS": "127.0.0.1:1",
            "MICS_WORKER_TOPICS": "events",
            "MICS_WORKER_ROUTES": "events=activity",
            "MICS_WORKER_DEFAULT_DATAMART_ID": "1509",
            "MICS_WORKER_API_TOKEN": "a-token-for-the-test",
            "MICS_WORKER_HEALTH_PORT": "0",
            "MICS_WORKER_TRACING": "on",
            "OTEL_TRACES_EXPORTER": "zipkin",
        }
        done = subprocess.run(
            [sys.executable, "-m", "worker", "run"], env=env, capture_output=True, text=True, timeout=60, check=False
        )
        assert done.returncode == 2
        assert "cannot start: tracing: OTEL_TRACES_EXPORTER='zipkin'" in done.stderr
