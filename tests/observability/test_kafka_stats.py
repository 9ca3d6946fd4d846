"""WorkerMetrics.observe_kafka_stats on a consumer statistics document shaped like librdkafka's."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from worker.metrics import WorkerMetrics

SAMPLE = Path(__file__).with_name("librdkafka_stats.json")
TOPIC = "mics.activities"


@pytest.fixture
def stats() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(SAMPLE.read_text())
    return document


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def metrics(registry: CollectorRegistry) -> WorkerMetrics:
    worker_metrics = WorkerMetrics(registry)
    worker_metrics.rebalance("assign", [(TOPIC, 0), (TOPIC, 1), (TOPIC, 2)])
    return worker_metrics


def lag(registry: CollectorRegistry, partition: str, topic: str = TOPIC) -> float | None:
    return registry.get_sample_value("mics_worker_consumer_lag", {"topic": topic, "partition": partition})


def committed(registry: CollectorRegistry, partition: str, topic: str = TOPIC) -> float | None:
    return registry.get_sample_value("mics_worker_committed_offset", {"topic": topic, "partition": partition})


class TestObserveKafkaStats:
    def test_sets_lag_of_owned_partitions(
        self, metrics: WorkerMetrics, registry: CollectorRegistry, stats: dict[str, Any]
    ) -> None:
        """Each owned partition with a known lag gets its consumer_lag gauge, zero included."""
        metrics.observe_kafka_stats(json.dumps(stats))
        assert lag(registry, "0") == 42
        assert lag(registry, "1") == 0

    def test_skips_unknown_lag(
        self, metrics: WorkerMetrics, registry: CollectorRegistry, stats: dict[str, Any]
    ) -> None:
        """A partition whose lag is -1 (not fetched yet) gets no lag series."""
        metrics.observe_kafka_stats(json.dumps(stats))
        assert lag(registry, "2") is None

    def test_skips_the_internal_unassigned_partition(
        self, metrics: WorkerMetrics, registry: CollectorRegistry, stats: dict[str, Any]
    ) -> None:
        """Partition -1 is librdkafka's internal bucket: ignored even when it carries a lag value."""
        metrics.observe_kafka_stats(json.dumps(stats))
        assert lag(registry, "-1") is None

    def test_ignores_partitions_this_worker_does_not_own(
        self, metrics: WorkerMetrics, registry: CollectorRegistry, stats: dict[str, Any]
    ) -> None:
        """A partition reported in the stats but not assigned here is left to the worker that owns it."""
        metrics.observe_kafka_stats(json.dumps(stats))
        assert lag(registry, "0", topic="mics.profiles") is None
        assert committed(registry, "0", topic="mics.profiles") is None

    def test_sets_committed_offsets_from_stats(
        self, metrics: WorkerMetrics, registry: CollectorRegistry, stats: dict[str, Any]
    ) -> None:
        """committed_offset from the stats fills the gauge; the invalid offset -1001 is skipped."""
        metrics.observe_kafka_stats(json.dumps(stats))
        assert committed(registry, "0") == 1000
        assert committed(registry, "1") == 500
        assert committed(registry, "2") is None

    def test_accepts_bytes(self, metrics: WorkerMetrics, registry: CollectorRegistry, stats: dict[str, Any]) -> None:
        """The statistics may arrive as bytes as well as str."""
        metrics.observe_kafka_stats(json.dumps(stats).encode())
        assert lag(registry, "0") == 42

    def test_lag_that_becomes_unknown_drops_its_series(
        self, metrics: WorkerMetrics, registry: CollectorRegistry, stats: dict[str, Any]
    ) -> None:
        """When a later snapshot reports lag -1 for a partition, its lag series goes instead of going stale."""
        metrics.observe_kafka_stats(json.dumps(stats))
        later = copy.deepcopy(stats)
        later["topics"][TOPIC]["partitions"]["0"]["consumer_lag"] = -1
        metrics.observe_kafka_stats(json.dumps(later))
        assert lag(registry, "0") is None
        assert lag(registry, "1") == 0

    def test_revoked_partition_is_no_longer_reported(
        self, metrics: WorkerMetrics, registry: CollectorRegistry, stats: dict[str, Any]
    ) -> None:
        """After a revoke, the partition's lag goes and later snapshots do not bring it back."""
        metrics.observe_kafka_stats(json.dumps(stats))
        metrics.rebalance("revoke", [(TOPIC, 0)])
        assert lag(registry, "0") is None
        metrics.observe_kafka_stats(json.dumps(stats))
        assert lag(registry, "0") is None
        assert lag(registry, "1") == 0

    @pytest.mark.parametrize(
        "document",
        ["", "not json", "[]", '{"topics": []}', '{"topics": {"t": {"partitions": [1]}}}', '{"topics": {"t": 3}}'],
    )
    def test_malformed_statistics_are_ignored(
        self, metrics: WorkerMetrics, registry: CollectorRegistry, document: str
    ) -> None:
        """A document that is not the expected shape changes nothing and raises nothing."""
        metrics.observe_kafka_stats(document)
        assert lag(registry, "0") is None
