"""Prometheus metrics of the worker, on an injected registry.

Every family the dashboard and the alert rules read is declared here, and nowhere else. Label values come from
closed sets (routes, outcome reasons, retry reasons, pause reasons, rebalance events) or from configuration
(topics, partitions): a message can never mint a new series, so a hostile or malformed stream cannot blow up
Prometheus. Anything outside a closed set is counted under ``other`` (or route ``unknown``).

The hot path is cheap: label children are bound once and cached per (route, reason), so recording an outcome
is a dict lookup and an ``inc()`` - no string formatting per message.
"""

from __future__ import annotations

import contextlib
import platform
import threading
import time
from collections.abc import Collection
from typing import Final

import orjson
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector

from worker import __version__
from worker.conditions import ConditionMetrics
from worker.metrics_traffic import TrafficMetrics

ROUTES: Final = frozenset({"activity", "profile", "choice"})
"""The API routes; any other value is recorded as ``unknown``."""
UNKNOWN_ROUTE: Final = "unknown"

OTHER: Final = "other"
"""The label value for a reason outside its closed set."""

DEAD_LETTER_REASONS: Final = frozenset(
    {
        "decode_error",
        "schema_invalid",
        "unroutable",
        "forbidden_datamart",
        "unsupported_format",
        "writer_schema_invalid",
        "invalid_path_value",
        "unsafe_url",
        "retries_exhausted",
        OTHER,
    }
)
"""Why a message went to the DLQ; ``http_<status>`` (100..599) is accepted too."""

RETRY_REASONS: Final = frozenset({"timeout", "connect_error", "connection_reset", "transport_error", OTHER})
"""Why a request was retried; ``http_<status>`` (100..599) is accepted too."""

PAUSE_REASONS: Final = frozenset({"credentials", "dlq_unavailable", "dlq_rate", "misconfigured", "backpressure"})
"""Why consumption is paused; each has its own 0/1 series, present from the start."""

REBALANCE_EVENTS: Final = frozenset({"assign", "revoke", "lost"})

HTTP_DURATION_BUCKETS: Final = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)
"""1 ms (loopback) to 30 s (the longest sensible request timeout)."""

END_TO_END_BUCKETS: Final = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
    900.0,
    3600.0,
)
"""Kafka timestamp to API ack: milliseconds when caught up, up to an hour while a backlog drains."""

_STATUS_CLASSES: Final = ("error", "1xx", "2xx", "3xx", "4xx", "5xx")
_MIN_STATUS: Final = 100
_MAX_STATUS: Final = 599
_UNASSIGNED_PARTITION: Final = -1
_CACHE_LIMIT: Final = 4096
"""Entries kept in a raw-key child cache; past it, recording still works, just without the cache."""


def http_reason(status: int) -> str:
    """The reason label for an HTTP status (``http_503``), as dead_lettered() and retry() accept it."""
    return f"http_{status}"


_HTTP_REASONS: Final = frozenset(http_reason(status) for status in range(_MIN_STATUS, _MAX_STATUS + 1))


def bounded_route(route: str) -> str:
    """The route label for ``route``: itself when it is a known route, else ``unknown``."""
    return route if route in ROUTES else UNKNOWN_ROUTE


def bounded_reason(reason: str, allowed: frozenset[str]) -> str:
    """The reason label for ``reason``: itself when in ``allowed`` or ``http_100..599``, else ``other``."""
    if reason in allowed or reason in _HTTP_REASONS:
        return reason
    return OTHER


def status_class(status: int | None) -> str:
    """``1xx``..``5xx`` for an HTTP status; ``error`` when no response arrived (or its status was bogus)."""
    if status is None or not _MIN_STATUS <= status <= _MAX_STATUS:
        return "error"
    return _STATUS_CLASSES[status // 100]


class WorkerMetrics:
    """The worker's metric families and the small recording methods the pipeline calls.

    Safe to call from any thread (prometheus_client values are locked; the few caches here are filled under a
    lock or tolerate a benign race that binds the same child twice).
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        librdkafka_version: str = "unknown",
        process_metrics: bool = True,
    ) -> None:
        self.registry = registry
        if process_metrics:
            # process_cpu_seconds_total, process_resident_memory_bytes, open fds...: read from /proc per scrape.
            ProcessCollector(registry=registry)
        self._lock = threading.Lock()
        self.messages_consumed = Counter(
            "mics_worker_messages_consumed",
            "Messages polled from Kafka, by topic.",
            ["topic"],
            registry=registry,
        )
        self.messages_outcome = Counter(
            "mics_worker_messages_outcome",
            "Final fate of each message: delivered (reason none) or dead_lettered (with a bounded reason).",
            ["route", "outcome", "reason"],
            registry=registry,
        )
        self.validation_failures = Counter(
            "mics_worker_validation_failures",
            "Messages whose document failed JSON Schema validation, by route.",
            ["route"],
            registry=registry,
        )
        self.http_requests = Counter(
            "mics_worker_http_requests",
            "HTTP requests to the mediarithmics API, by route and status class (error: no response).",
            ["route", "status_class"],
            registry=registry,
        )
        self.http_request_duration = Histogram(
            "mics_worker_http_request_duration_seconds",
            "Duration of one HTTP request to the mediarithmics API, response or error.",
            ["route"],
            buckets=HTTP_DURATION_BUCKETS,
            registry=registry,
        )
        self.retries = Counter(
            "mics_worker_retries",
            "Requests retried after a transient failure, by route and reason.",
            ["route", "reason"],
            registry=registry,
        )
        self.in_flight = Gauge(
            "mics_worker_in_flight_messages",
            "Messages polled but neither delivered nor dead-lettered yet.",
            registry=registry,
        )
        self.in_flight_bytes = Gauge(
            "mics_worker_in_flight_bytes",
            "Bytes of the records (key, value, headers, re-encoded body) held by messages in flight.",
            registry=registry,
        )
        self.partitions_paused = Gauge(
            "mics_worker_partitions_paused",
            "Partitions paused for backpressure (their share of the in-flight window is used).",
            registry=registry,
        )
        self.credentials_held = Gauge(
            "mics_worker_credentials_held",
            "1 while the API rejects the credentials for this datamart (its messages wait).",
            ["datamart"],
            registry=registry,
        )
        self.consume_errors = Counter(
            "mics_worker_consume_errors",
            "Errors librdkafka returned in place of a message, by error name (nothing was taken).",
            ["error"],
            registry=registry,
        )
        self.paused = Gauge(
            "mics_worker_paused",
            "1 while consumption is paused for this reason.",
            ["reason"],
            registry=registry,
        )
        self.consumer_lag = Gauge(
            "mics_worker_consumer_lag",
            "Messages between the partition's high watermark and the consumer's position (librdkafka stats).",
            ["topic", "partition"],
            registry=registry,
        )
        self.committed_offset = Gauge(
            "mics_worker_committed_offset",
            "Last committed offset (the next offset to read) of each assigned partition.",
            ["topic", "partition"],
            registry=registry,
        )
        self.assigned_partitions = Gauge(
            "mics_worker_assigned_partitions",
            "Partitions currently assigned to this worker.",
            registry=registry,
        )
        self.rebalances = Counter(
            "mics_worker_rebalances",
            "Consumer group rebalance callbacks, by event.",
            ["event"],
            registry=registry,
        )
        self.dlq_writes = Counter(
            "mics_worker_dlq_writes",
            "Dead-letter records acknowledged (ok) or refused (error) by Kafka.",
            ["result"],
            registry=registry,
        )
        self.end_to_end_latency = Histogram(
            "mics_worker_end_to_end_latency_seconds",
            "From the Kafka message timestamp to the API acknowledgement.",
            ["route"],
            buckets=END_TO_END_BUCKETS,
            registry=registry,
        )
        self.build_info = Gauge(
            "mics_worker_build_info",
            "Always 1; the labels say which build is running.",
            ["version", "python", "librdkafka"],
            registry=registry,
        )
        self.build_info.labels(
            version=__version__, python=platform.python_version(), librdkafka=librdkafka_version
        ).set(1)
        self.traffic = TrafficMetrics(registry, sorted(ROUTES))
        self.conditions = ConditionMetrics(registry)
        self.brokers_seen: tuple[float, int] = (float("-inf"), 0)
        """(monotonic time, brokers up) of the last statistics report: what ends `broker_unreachable`."""

        all_routes = (*sorted(ROUTES), UNKNOWN_ROUTE)
        # Bound up front so every series the alerts read exists (at 0) before the first event.
        self._delivered = {route: self.messages_outcome.labels(route, "delivered", "none") for route in all_routes}
        self._validation = {route: self.validation_failures.labels(route) for route in all_routes}
        self._e2e = {route: self.end_to_end_latency.labels(route) for route in all_routes}
        self._duration = {route: self.http_request_duration.labels(route) for route in all_routes}
        self._http = {
            (route, cls): self.http_requests.labels(route, cls) for route in all_routes for cls in _STATUS_CLASSES
        }
        self._paused = {reason: self.paused.labels(reason) for reason in (*sorted(PAUSE_REASONS), OTHER)}
        self._rebalances = {event: self.rebalances.labels(event) for event in sorted(REBALANCE_EVENTS)}
        self._dlq_ok = self.dlq_writes.labels("ok")
        self._dlq_error = self.dlq_writes.labels("error")
        # Filled on first use: bounded by routes x closed reasons, and by configured topics.
        self._dead_lettered: dict[tuple[str, str], Counter] = {}
        self._retries: dict[tuple[str, str], Counter] = {}
        self._consumed: dict[str, Counter] = {}
        self._lag_series: set[tuple[str, str]] = set()
        self._owned: set[tuple[str, str]] = set()

    # -- per message -----------------------------------------------------------------------------------

    def consumed(self, topic: str, n: int = 1) -> None:
        """Count ``n`` messages polled from ``topic``."""
        child = self._consumed.get(topic)
        if child is None:
            child = self._consumed[topic] = self.messages_consumed.labels(topic)
        child.inc(n)

    def delivered(self, route: str) -> None:
        """Count one message acknowledged by the API."""
        child = self._delivered.get(route)
        if child is None:
            child = self._delivered[UNKNOWN_ROUTE]
        child.inc()

    def dead_lettered(self, route: str, reason: str) -> None:
        """Count one message written to the DLQ, with a bounded reason."""
        child = self._dead_lettered.get((route, reason))
        if child is None:
            child = self.messages_outcome.labels(
                bounded_route(route), "dead_lettered", bounded_reason(reason, DEAD_LETTER_REASONS)
            )
            with self._lock:
                if len(self._dead_lettered) < _CACHE_LIMIT:  # raw keys are unbounded input: cap the cache
                    self._dead_lettered[(route, reason)] = child
        child.inc()

    def validation_failed(self, route: str) -> None:
        """Count one document that failed its JSON Schema."""
        self._validation.get(route, self._validation[UNKNOWN_ROUTE]).inc()

    def end_to_end(self, route: str, seconds: float) -> None:
        """Observe the delay from the Kafka message timestamp to the API acknowledgement."""
        self._e2e.get(route, self._e2e[UNKNOWN_ROUTE]).observe(seconds)

    def set_in_flight(self, n: int, held_bytes: int = 0) -> None:
        """Set how many messages are polled but not finished, and the bytes they hold."""
        self.in_flight.set(n)
        self.in_flight_bytes.set(held_bytes)

    def consume_error(self, name: str) -> None:
        """Count one error librdkafka returned from consume (its name is from librdkafka's closed set)."""
        self.consume_errors.labels(name).inc()

    # -- HTTP ------------------------------------------------------------------------------------------

    def http(self, route: str, status: int | None, seconds: float) -> None:
        """Record one HTTP request: its status class (``None``: no response) and its duration."""
        known = route if route in ROUTES else UNKNOWN_ROUTE
        self._http[(known, status_class(status))].inc()
        self._duration[known].observe(seconds)

    def retry(self, route: str, reason: str) -> None:
        """Count one retry of a request after a transient failure."""
        child = self._retries.get((route, reason))
        if child is None:
            child = self.retries.labels(bounded_route(route), bounded_reason(reason, RETRY_REASONS))
            with self._lock:
                if len(self._retries) < _CACHE_LIMIT:
                    self._retries[(route, reason)] = child
        child.inc()

    # -- state -----------------------------------------------------------------------------------------

    def set_paused(self, reason: str, paused: bool) -> None:
        """Flip the 0/1 pause gauge of ``reason``."""
        self._paused.get(reason, self._paused[OTHER]).set(1 if paused else 0)

    def set_credentials_held(self, datamart: str, held: bool) -> None:
        """Flip the 0/1 gauge of a datamart whose credentials are rejected (datamarts come from configuration)."""
        self.credentials_held.labels(datamart).set(1 if held else 0)

    def set_backpressure(self, paused_partitions: int) -> None:
        """Record how many partitions are paused for backpressure; the `backpressure` pause gauge says if any."""
        self.partitions_paused.set(paused_partitions)
        self._paused["backpressure"].set(1 if paused_partitions else 0)

    def dlq_write(self, ok: bool) -> None:
        """Count one DLQ write acknowledged (``ok``) or failed."""
        (self._dlq_ok if ok else self._dlq_error).inc()

    def rebalance(self, event: str, partitions: Collection[tuple[str, int]]) -> None:
        """Record one rebalance callback (``assign``/``revoke``/``lost``) and the partitions it moved.

        ``partitions`` are (topic, partition) pairs. The owned set kept here suits both the eager protocol
        (full sets) and the cooperative one (increments). Lag and committed-offset series are published for
        owned partitions only, so a partition that moved to another worker is not reported twice; its series
        go when it is revoked or lost.
        """
        child = self._rebalances.get(event)
        if child is None:
            return  # not an event a consumer emits; counting it would only add noise
        child.inc()
        keys = {(topic, str(partition)) for topic, partition in partitions}
        with self._lock:
            if event == "assign":
                self._owned |= keys
            else:
                self._owned -= keys
                self._lag_series -= keys
                for key in keys:
                    for family in (self.consumer_lag, self.committed_offset):
                        with contextlib.suppress(KeyError):
                            family.remove(*key)
            self.assigned_partitions.set(len(self._owned))

    def committed(self, topic: str, partition: int, offset: int) -> None:
        """Record the offset just committed for a partition this worker owns (a revoked one stays removed)."""
        key = (topic, str(partition))
        with self._lock:
            if key in self._owned:
                self.committed_offset.labels(*key).set(offset)

    # -- librdkafka statistics --------------------------------------------------------------------------

    def observe_kafka_stats(self, stats_json: str | bytes) -> None:
        """Update lag and committed offsets from one librdkafka statistics JSON (the ``stats_cb`` argument).

        Only owned partitions count (see ``rebalance``); partition -1 (librdkafka's internal "unassigned"
        bucket) and lag -1 (unknown) are skipped, and a partition that stops reporting a lag loses its series,
        so dashboards show no stale lag. A malformed document is ignored: statistics must never break
        consumption.
        """
        try:
            stats = orjson.loads(stats_json)
        except orjson.JSONDecodeError:
            return
        topics = stats.get("topics") if isinstance(stats, dict) else None
        brokers = stats.get("brokers") if isinstance(stats, dict) else None
        if isinstance(brokers, dict):
            self.brokers_seen = (time.monotonic(), _brokers_up(brokers))  # one tuple store: atomic under the GIL
        if not isinstance(topics, dict):
            return
        with self._lock:
            seen: set[tuple[str, str]] = set()
            for topic_name, topic in topics.items():
                partitions = topic.get("partitions") if isinstance(topic, dict) else None
                if isinstance(partitions, dict):
                    for partition in partitions.values():
                        self._observe_partition(str(topic_name), partition, seen)
            for stale in self._lag_series - seen:
                with contextlib.suppress(KeyError):
                    self.consumer_lag.remove(*stale)
            self._lag_series = seen

    def _observe_partition(self, topic: str, partition: object, seen: set[tuple[str, str]]) -> None:
        if not isinstance(partition, dict):
            return
        partition_id = partition.get("partition")
        if not isinstance(partition_id, int) or partition_id == _UNASSIGNED_PARTITION:
            return
        key = (topic, str(partition_id))
        if key not in self._owned:
            return
        lag = partition.get("consumer_lag")
        if isinstance(lag, int) and lag >= 0:
            self.consumer_lag.labels(*key).set(lag)
            seen.add(key)
        committed = partition.get("committed_offset")
        if isinstance(committed, int) and committed >= 0:
            self.committed_offset.labels(*key).set(committed)


def _brokers_up(brokers: dict[str, object]) -> int:
    """Brokers librdkafka holds a connection to; its logical entries (the group coordinator's alias) do not count."""
    return sum(
        1
        for broker in brokers.values()
        if isinstance(broker, dict) and broker.get("state") == "UP" and broker.get("source") != "logical"
    )
