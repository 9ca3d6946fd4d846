"""Measuring the worker from outside while the soak runs: its process (/proc), its /metrics, and the broker's view of
each partition (high watermark and the group's committed offset)."""

from __future__ import annotations

import argparse
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition

from soak.model import Partition, Report, Sample
from soak.settings import OUTAGE_EVERY_S, OUTAGE_S, OUTCOMES
from soak.sink import SinkProcess
from soak.stream import StreamProducer
from tests.support.worker_process import WorkerProcess


class DrainTimeout(RuntimeError):
    """The worker did not commit every partition to its end in time after the stream stopped."""


def process_rss_mib(pid: int) -> float | None:
    """VmRSS of a process in MiB, None once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class LagProbe:
    """Each partition's lag as the broker sees it: high watermark minus the group's committed offset."""

    def __init__(self, bootstrap_servers: str, group: str, partitions: list[TopicPartition]) -> None:
        self._consumer = Consumer({"bootstrap.servers": bootstrap_servers, "group.id": group})
        self._partitions = partitions

    def read(self) -> dict[Partition, tuple[int, int]]:
        """(committed, high watermark) per partition; committed is 0 before the first commit."""
        committed = {
            (tp.topic, tp.partition): max(tp.offset, 0) for tp in self._consumer.committed(self._partitions, 10)
        }
        result = {}
        for tp in self._partitions:
            _, high = self._consumer.get_watermark_offsets(tp, timeout=10, cached=False)
            result[(tp.topic, tp.partition)] = (committed[(tp.topic, tp.partition)], high)
        return result

    def drained(self) -> bool:
        return all(committed >= high for committed, high in self.read().values())

    def close(self) -> None:
        self._consumer.close()


@dataclass
class CommitTracker:
    """Per partition, the longest stretch in which the committed offset did not move while the partition had lag.

    A stretch starts at the last look where the offset moved or nothing was waiting, so it may be over-estimated by
    up to one sampling interval, never under-estimated by more than one.
    """

    longest: dict[Partition, float] = field(default_factory=dict)
    _since: dict[Partition, tuple[int, float]] = field(default_factory=dict)

    def observe(self, now: float, offsets: Mapping[Partition, tuple[int, int]]) -> None:
        """Take one look: (committed, high watermark) per partition at `now` (seconds, any fixed origin)."""
        for key, (committed, high) in offsets.items():
            previous = self._since.get(key)
            if previous is None or committed != previous[0] or committed >= high:
                self._since[key] = (committed, now)
                self.longest.setdefault(key, 0.0)
            else:
                self.longest[key] = max(self.longest.get(key, 0.0), now - previous[1])


@dataclass
class Watch:
    """What the sampling loop looks at; one per soak, so a stall that spans the stream's end is one stretch."""

    worker: WorkerProcess
    sink: SinkProcess
    probe: LagProbe
    stream: StreamProducer
    began: float
    args: argparse.Namespace
    commits: CommitTracker = field(default_factory=CommitTracker)


def observe(report: Report, watch: Watch, done: Callable[[], bool], limit_s: float | None = None) -> None:
    """Sample every `sample_s` until `done()`; with no limit (the stream), start an outage every OUTAGE_EVERY_S.

    Raises DrainTimeout when `limit_s` passes first, RuntimeError when the worker exits.
    """
    worker, sink = watch.worker, watch.sink
    started = time.monotonic()
    next_outage = watch.began + OUTAGE_EVERY_S
    while not done():
        if limit_s is not None and time.monotonic() - started > limit_s:
            raise DrainTimeout(f"the worker did not catch up within {limit_s:.0f} s of the stream's end")
        if not worker.is_running():
            raise RuntimeError("the worker exited during the soak:\n" + worker.stderr()[-4000:])
        now = time.monotonic()
        if limit_s is None and now >= next_outage:
            sink.set_faults(outage_s=OUTAGE_S)
            next_outage += OUTAGE_EVERY_S
        take_sample(report, watch)
        time.sleep(watch.args.sample_s)


def take_sample(report: Report, watch: Watch) -> None:
    """One look at the worker, the sink and every partition; updates the longest stretches without commit progress."""
    worker = watch.worker
    assert worker.pid is not None
    now = time.monotonic()
    offsets = watch.probe.read()
    watch.commits.observe(now, offsets)
    report.stalls = dict(watch.commits.longest)
    metrics = worker.metrics()
    report.samples.append(
        Sample(
            at_s=now - watch.began,
            rss_mib=process_rss_mib(worker.pid) or 0.0,
            cpu_s=process_cpu_s(worker.pid),
            outcomes=metric_total(metrics, OUTCOMES),
            retries=metric_total(metrics, "mics_worker_retries_total"),
            accepted=watch.sink.call("GET", "/_soak/count")["accepted"],
            produced=len(watch.stream.expected),
            committed={key: committed for key, (committed, _) in offsets.items()},
            lag={key: high - committed for key, (committed, high) in offsets.items()},
            paused=[k for k, v in metrics.items() if k.startswith("mics_worker_paused{") and v == 1.0],
        )
    )


def metric_total(metrics: dict[str, float], name: str) -> float:
    return sum(value for key, value in metrics.items() if key.partition("{")[0] == name)


def metric_by_label(worker: WorkerProcess, name: str, label: str) -> dict[str, float]:
    found: dict[str, float] = {}
    for key, value in worker.metrics().items():
        if key.partition("{")[0] == name:
            match = re.search(rf'{label}="([^"]*)"', key)
            reason = match.group(1) if match else ""
            found[reason] = found.get(reason, 0.0) + value
    return {reason: count for reason, count in found.items() if count}
