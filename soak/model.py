"""The figures a soak collects, and what is derived from them (per-partition throughput, the worker's CPU share)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

Partition = tuple[str, int]


@dataclass
class Sample:
    """One look from outside: the worker's process, its metrics, the sink, and each partition as the broker sees it."""

    at_s: float  # since the stream began
    rss_mib: float
    cpu_s: float
    outcomes: float
    retries: float
    accepted: int
    produced: int
    committed: dict[Partition, int]
    lag: dict[Partition, int]
    paused: list[str]


@dataclass
class Report:
    started: str
    minutes: float
    rate: float
    calibrated: float | None
    stall_s: float  # the verdict's rule: a partition behind must commit at least this often
    drain_limit_s: float  # the verdict's rule: after the stream, total lag must reach 0 within this
    samples: list[Sample] = field(default_factory=list)
    stalls: dict[Partition, float] = field(default_factory=dict)  # longest no-progress-with-lag stretch
    retries_by_reason: dict[str, float] = field(default_factory=dict)
    dead_lettered_by_reason: Counter[str] = field(default_factory=Counter)
    produced: int = 0
    produce_failures: int = 0
    producer_behind_s: float = 0.0
    delivered_ids: int = 0
    duplicates: int = 0
    missing: int = 0
    unknown: int = 0
    wrong_reason: int = 0
    stream_s: float = 0.0
    drain_s: float = 0.0
    drain_error: str | None = None
    stop_status: int | None = None
    sink_stats: dict[str, Any] = field(default_factory=dict)
    load_before: tuple[float, float, float] = (0.0, 0.0, 0.0)
    load_after: tuple[float, float, float] = (0.0, 0.0, 0.0)

    @property
    def partitions(self) -> list[Partition]:
        return sorted({key for sample in self.samples for key in sample.committed})

    def committed_per_s(self) -> dict[Partition, float]:
        """Messages committed per second per partition, from the first sample to the last (stream and drain)."""
        if len(self.samples) < 2:
            return {}
        first, last = self.samples[0], self.samples[-1]
        elapsed = max(last.at_s - first.at_s, 1e-9)
        return {key: (last.committed.get(key, 0) - first.committed.get(key, 0)) / elapsed for key in self.partitions}

    def cpu_share(self, until_s: float | None = None) -> float | None:
        """The worker's CPU seconds per wall second (1.0 = one core busy), over all samples or those up to `until_s`."""
        samples = [s for s in self.samples if until_s is None or s.at_s <= until_s]
        if len(samples) < 2 or samples[-1].at_s <= samples[0].at_s:
            return None
        return (samples[-1].cpu_s - samples[0].cpu_s) / (samples[-1].at_s - samples[0].at_s)
