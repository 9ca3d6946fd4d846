"""Watching a running worker from the outside: its Prometheus samples, and its group's committed offsets.

The committed offsets are read from the broker (an OffsetFetch with the worker's group id, no group join), so
watching for the last commit costs the worker nothing. The worker's `/metrics` is scraped only where the broker
cannot tell: the first consume, and the final outcome counts and latency histogram.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

import httpx
from confluent_kafka import Consumer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

__all__ = ["CommitWatcher", "Samples", "histogram_quantile", "scrape", "scrape_all"]

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(url: str) -> Samples:
    """Every sample of `<url>/metrics`, keyed by (name, sorted labels)."""
    response = httpx.get(url + "/metrics", timeout=5)
    response.raise_for_status()
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def scrape_all(urls: Iterable[str]) -> Samples:
    """The samples of several members added together (counters and histograms sum across processes)."""
    total: Samples = {}
    for url in urls:
        for key, value in scrape(url).items():
            total[key] = total.get(key, 0.0) + value
    return total


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of `name` over the samples whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(value for (base, pairs), value in samples.items() if base == name and wanted <= set(pairs))


def histogram_quantile(samples: Samples, name: str, quantile: float) -> float | None:
    """Prometheus' `histogram_quantile` over all label sets of `name` (linear within a bucket), in seconds."""
    buckets: dict[float, float] = {}
    for (base, pairs), value in samples.items():
        if base == f"{name}_bucket":
            bound = float(dict(pairs)["le"])
            buckets[bound] = buckets.get(bound, 0.0) + value
    ordered = sorted(buckets.items())
    if not ordered or ordered[-1][1] == 0:
        return None
    rank = quantile * ordered[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in ordered:
        if count >= rank:
            if bound == float("inf"):
                return lower_bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / max(count - lower_count, 1e-12)
        lower_bound, lower_count = bound, count
    return None


class CommitWatcher:
    """Reads a group's committed offsets for a fixed set of partitions without joining the group."""

    def __init__(self, bootstrap_servers: str, group_id: str, ends: dict[tuple[str, int], int]) -> None:
        self._ends = ends
        self._partitions = [TopicPartition(topic, partition) for topic, partition in ends]
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap_servers,
                "group.id": group_id,
                "enable.auto.commit": False,
                "client.id": f"bench-watch-{uuid.uuid4().hex[:6]}",
            }
        )

    def committed(self) -> int:
        """Messages covered by the group's commits so far (fresh topics start at offset 0)."""
        done = 0
        for tp in self._consumer.committed(self._partitions, timeout=10):
            done += max(tp.offset, 0)
        return done

    @property
    def target(self) -> int:
        return sum(self._ends.values())

    def close(self) -> None:
        self._consumer.close()
