"""Wires one worker process together: configuration → logs, metrics, health, Kafka clients, API client, pipeline."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Callable

import confluent_kafka
from prometheus_client import CollectorRegistry

from worker.config import ENV_PREFIX, WorkerConfig
from worker.health import Health, HealthServer
from worker.kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
    make_consumer,
    make_dlq_producer,
)
from worker.logs import configure_logging, register_secret
from worker.metrics import WorkerMetrics
from worker.mics.client import ApiPaths, MicsClient
from worker.mics.transport import make_transport
from worker.pipeline import Pipeline, RunSummary
from worker.processes import watch_supervisor
from worker.rebalance import RebalanceBridge
from worker.registry import SchemaRegistry, make_registry
from worker.sensitive import MASK, is_secret_kafka_property
from worker.tracing import NO_TRACING, Tracing
from worker.validation import Validators

__all__ = ["StartupError", "format_summary", "run_worker"]

log = logging.getLogger(__name__)


class StartupError(RuntimeError):
    """The worker cannot start in this environment (the health port is taken, librdkafka refuses the settings)."""


def run_worker(config: WorkerConfig) -> RunSummary:
    """Run one consumer-group member until SIGTERM/SIGINT; a second SIGINT exits at once."""
    configure_logging(
        config.log_format,
        config.log_level,
        secrets=[config.api_token.header_value()],
        trace_ids=config.tracing.enabled,
    )
    log.info("starting with %r", config)
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        return runner.run(_run(config))


async def _run(config: WorkerConfig) -> RunSummary:
    tracing = _tracing(config)  # first: a bad OTEL_* setting stops the start before anything is opened
    registry = CollectorRegistry()
    metrics = WorkerMetrics(registry, librdkafka_version=confluent_kafka.libversion()[0])
    health = Health()
    server = HealthServer(health, registry, host=config.health_host, port=config.health_port)
    _start_health_server(server, config)
    log.info("metrics and health on port %d", server.port)
    try:
        validators = Validators.load(config.schemas_dir)
        callbacks = _KafkaCallbacks()
        consumer, producer = _kafka_clients(config, metrics, callbacks)
    except BaseException:
        server.stop()
        raise
    transport = make_transport(config.http_backend, config.timeouts, config.max_concurrency)
    tokens = config.tokens.source(config.api_token, register_secret)
    for token in tokens.all_current():
        register_secret(token.header_value())
    client = MicsClient(
        transport,
        config.api_base_url,
        tokens,
        decode_write_answers=False,
        statuses=config.status_classes,
    )
    pipeline = Pipeline(
        config,
        consumer=consumer,
        producer=producer,
        client=client,
        validators=validators,
        metrics=metrics,
        health=health,
        tracing=tracing,
        registry=_registry(config),
    )
    callbacks.bridge = bridge = pipeline.bridge()
    _install_signal_handlers(pipeline)
    if config.processes > 1:  # a member of `run --processes N`: stop with its supervisor
        watch_supervisor(os.getppid(), lambda: _supervisor_gone(pipeline))
    try:
        return await pipeline.run(bridge)
    finally:
        server.stop()
        await asyncio.get_running_loop().run_in_executor(None, tracing.shutdown)


def _tracing(config: WorkerConfig) -> Tracing:
    """The OpenTelemetry SDK when `MICS_WORKER_TRACING=on` (imported only then), else the no-op tracing."""
    if not config.tracing.enabled:
        return NO_TRACING
    from worker.tracing.setup import TracingSetupError, start_tracing  # noqa: PLC0415 - only when tracing is on

    paths = ApiPaths(config.api_base_url)
    endpoints = {route: paths.template(route) for route in ("activity", "profile", "choice")}
    try:
        tracing = start_tracing(config.tracing, group_id=config.group_id, endpoints=endpoints)
    except TracingSetupError as exc:
        raise StartupError(f"tracing: {exc}") from None
    log.info("tracing on (OpenTelemetry; OTEL_* variables configure the exporter and sampler)")
    return tracing


def _start_health_server(server: HealthServer, config: WorkerConfig) -> None:
    try:
        server.start()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise StartupError(
            f"cannot serve metrics and health on {config.health_host}:{config.health_port}: {reason} "
            f"(another process holds the port? set {ENV_PREFIX}HEALTH_PORT)"
        ) from None


def _kafka_clients(
    config: WorkerConfig, metrics: WorkerMetrics, callbacks: _KafkaCallbacks
) -> tuple[Consumer, Producer]:
    """The group consumer and the dead-letter producer; librdkafka's refusal of the settings is a `StartupError`."""
    try:
        consumer = make_consumer(
            config, on_stats=metrics.observe_kafka_stats, on_commit=callbacks.on_commit, on_error=callbacks.on_error
        )
        producer = make_dlq_producer(config, on_error=callbacks.on_error)
    except KafkaException as exc:
        error = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
        text = error.str() if error is not None else str(exc)
        raise StartupError(
            f"librdkafka refuses the Kafka settings ({ENV_PREFIX}KAFKA_*): {_without_secrets(text, config)}"
        ) from None
    return consumer, producer


def _without_secrets(text: str, config: WorkerConfig) -> str:
    """`text` with every secret Kafka property value replaced by ***: librdkafka may quote a value it refuses."""
    for name, value in config.kafka_properties.items():
        if value and is_secret_kafka_property(name):
            text = text.replace(value, MASK)
    return text


def _registry(config: WorkerConfig) -> SchemaRegistry | None:
    framing = config.framing
    if framing.registry_url is None or not framing.rules.uses_registry:
        return None
    return make_registry(framing.registry_url, cache_size=framing.cache_size, timeout_s=framing.timeout_s)


class _KafkaCallbacks:
    """The clients are made before the pipeline; their callbacks reach its bridge once it exists."""

    bridge: RebalanceBridge | None = None

    def on_commit(self, error: KafkaError | None, partitions: list[TopicPartition]) -> None:
        if self.bridge is not None:
            self.bridge.on_commit(error, partitions)

    def on_error(self, error: KafkaError) -> None:
        if self.bridge is not None:
            self.bridge.on_error(error)


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop when installed (a locked dependency on Linux): measurably cheaper per request (bench/RESULTS.md)."""
    try:
        import uvloop  # noqa: PLC0415 - optional: absent on platforms without a wheel
    except ImportError:  # pragma: no cover
        return None
    return uvloop.new_event_loop


def _supervisor_gone(pipeline: Pipeline) -> None:
    log.warning("the supervising `run --processes` process is gone: draining in-flight messages, committing, leaving")
    pipeline.request_stop()


def _install_signal_handlers(pipeline: Pipeline) -> None:
    loop = asyncio.get_running_loop()
    interrupted = False

    def on_interrupt() -> None:
        nonlocal interrupted
        if interrupted:
            log.warning("second interrupt: exiting now without draining")
            logging.shutdown()
            os._exit(130)
        interrupted = True
        log.info("interrupt: draining (interrupt again to exit at once)")
        pipeline.request_stop()

    def on_terminate() -> None:
        log.info("SIGTERM: draining in-flight messages, committing, leaving the group")
        pipeline.request_stop()

    loop.add_signal_handler(signal.SIGINT, on_interrupt)
    loop.add_signal_handler(signal.SIGTERM, on_terminate)


def format_summary(summary: RunSummary) -> str:
    """The end-of-run ledger: consumed, delivered per route, dead-lettered per reason."""
    lines = [f"consumed: {summary.consumed}"]
    lines.append("delivered: " + _counts(summary.delivered))
    lines.append("dead-lettered: " + _counts(summary.dead_lettered))
    in_flight = summary.consumed - summary.finished
    if in_flight:
        lines.append(f"left in flight (uncommitted, redelivered on restart): {in_flight}")
    return "\n".join(lines)


def _counts(counter: dict[str, int]) -> str:
    total = sum(counter.values())
    parts = ", ".join(f"{name}={count}" for name, count in sorted(counter.items()))
    return f"{total}" + (f" ({parts})" if parts else "")
