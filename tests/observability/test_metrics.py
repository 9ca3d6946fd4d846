"""WorkerMetrics: each recording method, read back from a fresh registry with get_sample_value."""

from __future__ import annotations

import platform

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from worker import __version__
from worker.metrics import (
    DEAD_LETTER_REASONS,
    PAUSE_REASONS,
    RETRY_REASONS,
    ROUTES,
    WorkerMetrics,
    bounded_reason,
    bounded_route,
    status_class,
)


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def metrics(registry: CollectorRegistry) -> WorkerMetrics:
    return WorkerMetrics(registry, librdkafka_version="2.16.0")


def outcome(registry: CollectorRegistry, route: str, outcome: str, reason: str) -> float | None:
    return registry.get_sample_value(
        "mics_worker_messages_outcome_total", {"route": route, "outcome": outcome, "reason": reason}
    )


class TestMessages:
    def test_consumed_counts_per_topic(self, metrics: WorkerMetrics, registry: CollectorRegistry) -> None:
        """consumed() adds n to the counter of its topic only."""
        metrics.consumed("a", 3)
        metrics.consumed("a")
        metrics.consumed("b", 2)
        assert registry.get_sample_value("mics_worker_messages_consumed_total", {"topic": "a"}) == 4
        assert registry.get_sample_value("mics_worker_messages_consumed_total", {"topic": "b"}) == 2

    def test_delivered_counts_with_reason_none(self, metrics: WorkerMetrics, registry: CollectorRegistry) -> None:
        """delivered() counts under outcome=delivered, reason=none, for its route."""
        metrics.delivered("profile")
        metrics.delivered("profile")
        assert outcome(registry, "profile", "delivered", "none") == 2
        assert outcome(registry, "activity", "delivered", "none") == 0

    def test_delivered_series_exist_before_any_message(self, registry: CollectorRegistry) -> None:
        """Every route's delivered series is exported at 0 from the start, so rate() works from the first event."""
        WorkerMetrics(registry)
        for route in (*ROUTES, "unknown"):
            assert outcome(registry, route, "delivered", "none") == 0

    def test_dead_lettered_keeps_known_reasons(self, metrics: WorkerMetrics, registry: CollectorRegistry) -> None:
        """dead_lettered() records a reason from the closed set as it is."""
        metrics.dead_lettered("activity", "schema_invalid")
        metrics.dead_lettered("activity", "schema_invalid")
        metrics.dead_lettered("choice", "http_404")
        assert outcome(registry, "activity", "dead_lettered", "schema_invalid") == 2
        assert outcome(registry, "choice", "dead_lettered", "http_404") == 1

    def test_dead_lettered_maps_unknown_reason_and_route(
        self, metrics: WorkerMetrics, registry: CollectorRegistry
    ) -> None:
        """An unknown reason becomes other, an out-of-range status other, and an unknown route unknown."""
        metrics.dead_lettered("activity", "user 42 said hi")
        metrics.dead_lettered("activity", "http_999")
        metrics.dead_lettered("/v1/datamarts/1", "decode_error")
        assert outcome(registry, "activity", "dead_lettered", "other") == 2
        assert outcome(registry, "unknown", "dead_lettered", "decode_error") == 1
        assert outcome(registry, "activity", "dead_lettered", "user 42 said hi") is None

    def test_many_distinct_junk_reasons_are_all_counted_under_other(
        self, metrics: WorkerMetrics, registry: CollectorRegistry
    ) -> None:
        """Thousands of distinct unknown reasons still count, all in the one other series."""
        for n in range(5000):
            metrics.dead_lettered("profile", f"junk-{n}")
        assert outcome(registry, "profile", "dead_lettered", "other") == 5000

    def test_validation_failures_per_route(self, metrics: WorkerMetrics, registry: CollectorRegistry) -> None:
        """validation_failed() counts per route; an unknown route counts as unknown."""
        metrics.validation_failed("choice")
        metrics.validation_failed("nope")
        assert registry.get_sample_value("mics_worker_validation_failures_total", {"route": "choice"}) == 1
        assert registry.get_sample_value("mics_worker_validation_failures_total", {"route": "unknown"}) == 1

    def test_end_to_end_latency_is_a_histogram(self, metrics: WorkerMetrics, registry: CollectorRegistry) -> None:
        """end_to_end() observes seconds into the route's histogram (count, sum and buckets)."""
        metrics.end_to_end("activity", 0.2)
        metrics.end_to_end("activity", 120.0)
        labels = {"route": "activity"}
        assert registry.get_sample_value("mics_worker_end_to_end_latency_seconds_count", labels) == 2
        assert registry.get_sample_value("mics_worker_end_to_end_latency_seconds_sum", labels) == pytest.approx(120.2)
        assert registry.get_sample_value("mics_worker_end_to_end_latency_seconds_bucket", {**labels, "le": "0.25"}) == 1
        assert (
            registry.get_sample_value("mics_worker_end_to_end_latency_seconds_bucket", {**labels, "le": "3600.0"}) == 2
        )

    def test_in_flight_gauge(self, metrics: WorkerMetrics, registry: CollectorRegistry) -> None:
        """set_in_flight() sets the gauge to the given count."""
        metrics.set_in_flight(17)
        assert registry.get_sample_value("mics_worker_in_flight_messages") == 17
        metrics.set_in_flight(0)
        assert registry.get_sample_value("mics_worker_in_flight_messages") == 0


class TestHttp:
    @pytest.mark.parametrize(
        ("status", "expected"),
        [(200, "2xx"), (204, "2xx"), (302, "3xx"), (429, "4xx"), (503, "5xx"), (None, "error"), (999, "error")],
    )
    def test_status_class(self, status: int | None, expected: str) -> None:
        """status_class() maps a status to its class, and a missing or bogus status to error."""
        assert status_class(status) == expected

    def test_http_counts_by_class_and_observes_duration(
        self, metrics: WorkerMetrics, registry: CollectorRegistry
    ) -> None:
        """http() counts the request under its status class and observes its duration."""
        metrics.http("activity", 200, 0.004)
        metrics.http("activity", 503, 0.020)
        metrics.http("activity", None, 10.0)
        for cls in ("2xx", "5xx", "error"):
            assert (
                registry.get_sample_value("mics_worker_http_requests_total", {"route": "activity", "status_class": cls})
                == 1
            )
        assert registry.get_sample_value("mics_worker_http_request_duration_seconds_count", {"route": "activity"}) == 3
        assert (
            registry.get_sample_value(
                "mics_worker_http_request_duration_seconds_bucket", {"route": "activity", "le": "0.005"}
            )
            == 1
        )

    def test_http_buckets_span_a_millisecond_to_thirty_seconds(self, registry: CollectorRegistry) -> None:
        """The duration histogram has a 1 ms bucket and a 30 s bucket."""
        WorkerMetrics(registry)
        for le in ("0.001", "30.0"):
            bucket = {"route": "profile", "le": le}
            assert registry.get_sample_value("mics_worker_http_request_duration_seconds_bucket", bucket) == 0

    def test_retry_bounds_its_reason(self, metrics: WorkerMetrics, registry: CollectorRegistry) -> None:
        """retry() keeps closed-set and http_<status> reasons and maps anything else to other."""
        metrics.retry("profile", "http_429")
        metrics.retry("profile", "timeout")
        metrics.retry("profile", "Connection reset by peer")
        for reason in ("http_429", "timeout", "other"):
            assert registry.get_sample_value("mics_worker_retries_total", {"route": "profile", "reason": reason}) == 1


class TestState:
    def test_every_pause_reason_starts_at_zero(self, registry: CollectorRegistry) -> None:
        """Each pause reason has its series at 0 before any pause, so alerts can compare against it."""
        WorkerMetrics(registry)
        for reason in PAUSE_REASONS:
            assert registry.get_sample_value("mics_worker_paused", {"reason": reason}) == 0

    def test_set_paused_flips_its_gauge(self, metrics: WorkerMetrics, registry: CollectorRegistry) -> None:
        """set_paused() sets 1 then 0 for its reason and leaves the others alone."""
        metrics.set_paused("credentials", True)
        assert registry.get_sample_value("mics_worker_paused", {"reason": "credentials"}) == 1
        assert registry.get_sample_value("mics_worker_paused", {"reason": "dlq_rate"}) == 0
        metrics.set_paused("credentials", False)
        assert registry.get_sample_value("mics_worker_paused", {"reason": "credentials"}) == 0

    def test_dlq_write_results(self, metrics: WorkerMetrics, registry: CollectorRegistry) -> None:
        """dlq_write() counts acknowledged writes as ok and refused ones as error."""
        metrics.dlq_write(True)
        metrics.dlq_write(True)
        metrics.dlq_write(False)
        assert registry.get_sample_value("mics_worker_dlq_writes_total", {"result": "ok"}) == 2
        assert registry.get_sample_value("mics_worker_dlq_writes_total", {"result": "error"}) == 1

    def test_committed_offset_gauge(self, metrics: WorkerMetrics, registry: CollectorRegistry) -> None:
        """committed() sets the committed offset of an owned topic and partition."""
        metrics.rebalance("assign", [("t", 3)])
        metrics.committed("t", 3, 1234)
        assert registry.get_sample_value("mics_worker_committed_offset", {"topic": "t", "partition": "3"}) == 1234

    def test_a_commit_after_the_revoke_does_not_bring_the_series_back(
        self, metrics: WorkerMetrics, registry: CollectorRegistry
    ) -> None:
        """The commit on revoke comes after the revoke removed the partition's series: it stays removed."""
        metrics.rebalance("assign", [("t", 3)])
        metrics.committed("t", 3, 10)
        metrics.rebalance("revoke", [("t", 3)])
        metrics.committed("t", 3, 20)
        assert registry.get_sample_value("mics_worker_committed_offset", {"topic": "t", "partition": "3"}) is None

    def test_rebalance_counts_events_and_tracks_assigned_partitions(
        self, metrics: WorkerMetrics, registry: CollectorRegistry
    ) -> None:
        """assign adds partitions to the assigned gauge, revoke and lost remove them; each callback counts once."""
        metrics.rebalance("assign", [("t", 0), ("t", 1), ("u", 0)])
        assert registry.get_sample_value("mics_worker_assigned_partitions") == 3
        metrics.rebalance("revoke", [("t", 1)])
        metrics.rebalance("lost", [("u", 0)])
        assert registry.get_sample_value("mics_worker_assigned_partitions") == 1
        for event in ("assign", "revoke", "lost"):
            assert registry.get_sample_value("mics_worker_rebalances_total", {"event": event}) == 1

    def test_revoke_drops_the_partition_series(self, metrics: WorkerMetrics, registry: CollectorRegistry) -> None:
        """A revoked partition's committed-offset series disappears instead of going stale."""
        metrics.rebalance("assign", [("t", 0)])
        metrics.committed("t", 0, 10)
        metrics.rebalance("revoke", [("t", 0)])
        assert registry.get_sample_value("mics_worker_committed_offset", {"topic": "t", "partition": "0"}) is None

    def test_unknown_rebalance_event_is_ignored(self, metrics: WorkerMetrics, registry: CollectorRegistry) -> None:
        """An event outside assign/revoke/lost neither counts nor changes the assignment."""
        metrics.rebalance("assign", [("t", 0)])
        metrics.rebalance("shuffle", [("t", 0)])
        assert registry.get_sample_value("mics_worker_assigned_partitions") == 1
        assert registry.get_sample_value("mics_worker_rebalances_total", {"event": "shuffle"}) is None

    def test_build_info(self, metrics: WorkerMetrics, registry: CollectorRegistry) -> None:
        """build_info is 1 with the package, Python and librdkafka versions as labels."""
        labels = {"version": __version__, "python": platform.python_version(), "librdkafka": "2.16.0"}
        assert registry.get_sample_value("mics_worker_build_info", labels) == 1

    def test_process_metrics_are_opt_out(self) -> None:
        """The process collector (CPU, memory, fds) is registered unless process_metrics=False."""
        with_process, without_process = CollectorRegistry(), CollectorRegistry()
        WorkerMetrics(with_process)
        WorkerMetrics(without_process, process_metrics=False)
        assert with_process.get_sample_value("process_start_time_seconds") is not None
        assert without_process.get_sample_value("process_start_time_seconds") is None


class TestLabelBounds:
    def test_every_label_comes_from_a_closed_set(self) -> None:
        """Whatever strings arrive, route and reason labels stay inside their closed sets."""
        registry = CollectorRegistry()
        metrics = WorkerMetrics(registry)
        allowed_routes = {*ROUTES, "unknown"}

        @settings(max_examples=60, deadline=None)
        @given(route=st.text(max_size=30), reason=st.text(max_size=30))
        def record_then_inspect(route: str, reason: str) -> None:
            metrics.dead_lettered(route, reason)
            metrics.retry(route, reason)
            metrics.http(route, 200, 0.01)
            for family in registry.collect():
                for sample in family.samples:
                    if "route" in sample.labels:
                        assert sample.labels["route"] in allowed_routes
                    if sample.labels.get("outcome") == "dead_lettered":
                        reason_label = sample.labels["reason"]
                        assert bounded_reason(reason_label, DEAD_LETTER_REASONS) == reason_label
                    if family.name == "mics_worker_retries":
                        assert bounded_reason(sample.labels["reason"], RETRY_REASONS) == sample.labels["reason"]

        record_then_inspect()

    @pytest.mark.parametrize("reason", ["http_100", "http_599"])
    def test_http_reason_range_is_inclusive(self, reason: str) -> None:
        """http_100 and http_599 are kept as they are."""
        assert bounded_reason(reason, DEAD_LETTER_REASONS) == reason

    @pytest.mark.parametrize("reason", ["http_99", "http_600", "http_", "http_5xx", "HTTP_500"])
    def test_malformed_http_reasons_become_other(self, reason: str) -> None:
        """Anything that is not exactly http_<100..599> becomes other."""
        assert bounded_reason(reason, DEAD_LETTER_REASONS) == "other"

    def test_bounded_route(self) -> None:
        """Known routes stay, anything else is unknown."""
        assert bounded_route("choice") == "choice"
        assert bounded_route("Choice") == "unknown"


class TestTrafficMetrics:
    def test_every_routes_flow_series_exist_from_the_start_and_read_live_state_once_bound(self) -> None:
        """Limit, in-flight and held series exist at 0 per route before any request; once bound they read the live
        objects at scrape time; halts are set per route and datamart."""
        registry = CollectorRegistry()
        metrics = WorkerMetrics(registry, process_metrics=False)
        for route in ("activity", "profile", "choice"):
            assert registry.get_sample_value("mics_worker_concurrency_limit", {"route": route}) == 0
            assert registry.get_sample_value("mics_worker_route_held", {"route": route, "reason": "backoff"}) == 0
            assert registry.get_sample_value("mics_worker_http_throttled_total", {"route": route}) == 0
        state = {"limit": 20.0}
        metrics.traffic.bind(
            "activity",
            limit=lambda: state["limit"],
            pace=lambda: 42.5,
            in_flight=lambda: 3.0,
            backing_off=lambda: 1.0,
            circuit_open=lambda: 0.0,
        )
        state["limit"] = 35.0
        assert registry.get_sample_value("mics_worker_concurrency_limit", {"route": "activity"}) == 35
        assert registry.get_sample_value("mics_worker_requests_in_flight", {"route": "activity"}) == 3
        assert registry.get_sample_value("mics_worker_route_pace", {"route": "activity"}) == 42.5
        assert registry.get_sample_value("mics_worker_route_held", {"route": "activity", "reason": "backoff"}) == 1
        metrics.traffic.set_halted("activity", "1509", True)
        metrics.traffic.wait("activity", "halt", 0.5)
        metrics.traffic.throttled_answer("profile")
        assert registry.get_sample_value("mics_worker_route_halted", {"route": "activity", "datamart": "1509"}) == 1
        labels = {"route": "activity", "reason": "halt"}
        assert registry.get_sample_value("mics_worker_route_wait_seconds_total", labels) == 0.5
        assert registry.get_sample_value("mics_worker_http_throttled_total", {"route": "profile"}) == 1
