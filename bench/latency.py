"""End-to-end latency at a steady offered load: produce time → the request's arrival at the API.

Why a separate phase: in the throughput runs every message waits in a pre-produced backlog, so "Kafka timestamp
to API ack" there measures the backlog, not the worker. Here the worker first catches up (an empty topic), then
this process produces activities at a fixed rate, each stamped with `bench_sent_ns` just before `produce()`;
`bench/latency_sink.py` notes each one's arrival, so every percentile is exact (no histogram buckets). The
worker's own `mics_worker_end_to_end_latency_seconds` histogram over the same messages is reported beside it as
a cross-check (bucket-interpolated, so coarse: its buckets are 5, 10, 25, 50, 100 ms...).
"""

from __future__ import annotations

import os
import random
import re
import select
import signal
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
import orjson
from confluent_kafka import Producer

from bench.datasets import PARTITIONS
from bench.observe import histogram_quantile, scrape_all, total
from bench.worker_run import bench_worker_env
from tests.support.events import activity
from tests.support.kafka_broker import create_topic
from tests.support.worker_process import WorkerProcess

__all__ = ["LatencyRun", "LatencySink", "measure_latency"]

REPO_ROOT = Path(__file__).resolve().parents[1]
_ANNOUNCEMENT = re.compile(rb"listening on (http://\S+)\n")
_E2E = "mics_worker_end_to_end_latency_seconds"


@dataclass
class LatencyRun:
    """Latency percentiles of one paced run, in milliseconds."""

    backend: str
    rate_per_s: float
    events: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    histogram_p50_ms: float | None
    histogram_p99_ms: float | None

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


class LatencySink:
    """`python -m bench.latency_sink` as a child process; `latencies_ms()` reads what it measured."""

    def __init__(self) -> None:
        self._process: subprocess.Popen[bytes] | None = None
        self.base_url = ""

    def __enter__(self) -> LatencySink:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "bench.latency_sink", "--port", "0"],
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            start_new_session=True,
        )
        assert self._process.stdout is not None
        fd = self._process.stdout.fileno()
        received = b""
        deadline = time.monotonic() + 20
        while (found := _ANNOUNCEMENT.search(received)) is None:
            readable, _, _ = select.select([fd], [], [], max(deadline - time.monotonic(), 0))
            chunk = os.read(fd, 4096) if readable else b""
            if not chunk:
                self.__exit__()
                raise RuntimeError("the latency sink did not start")
            received += chunk
        self.base_url = found.group(1).decode()
        return self

    def __exit__(self, *_: object) -> None:
        process, self._process = self._process, None
        if process is not None:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(10)
            if process.stdout is not None:
                process.stdout.close()

    def stamped(self) -> int:
        count: int = httpx.get(self.base_url + "/_sink/count", timeout=5).json()["stamped"]
        return count

    def latencies_ms(self) -> list[float]:
        samples: list[float] = httpx.get(self.base_url + "/_sink/latencies", timeout=30).json()
        return [us / 1000 for us in samples]

    def reset(self) -> None:
        httpx.post(self.base_url + "/_sink/reset", timeout=5).raise_for_status()


def measure_latency(
    bootstrap_servers: str, sink: LatencySink, *, backend: str, rate_per_s: float, seconds: float
) -> LatencyRun:
    """Start a worker on a fresh topic, wait until it owns the partitions, then produce at `rate_per_s`."""
    sink.reset()
    run_id = uuid.uuid4().hex[:8]
    topic = f"bench.{run_id}.latency"
    create_topic(bootstrap_servers, topic, PARTITIONS)
    env = bench_worker_env(
        bootstrap_servers,
        api_base_url=sink.base_url,
        api_token="bench-token",
        topics=topic,
        routes=f"{topic}=activity",
        backend=backend,
    )
    count = max(1, round(rate_per_s * seconds))
    with WorkerProcess(env) as worker:
        worker.wait_until(
            lambda: total(scrape_all([worker.url]), "mics_worker_assigned_partitions") >= PARTITIONS,
            timeout_s=90,
            what="the partition assignment",
        )
        time.sleep(1.0)  # let the first fetch requests reach the (empty) partitions
        _produce_paced(bootstrap_servers, topic, count, rate_per_s)
        deadline = time.monotonic() + 60 + seconds
        while sink.stamped() < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the sink saw {sink.stamped()} of {count} paced messages")
            time.sleep(0.1)
        samples = scrape_all([worker.url])
        worker.stop()
    latencies = sorted(sink.latencies_ms())
    cuts = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else latencies * 99
    p50, p99 = histogram_quantile(samples, _E2E, 0.5), histogram_quantile(samples, _E2E, 0.99)
    return LatencyRun(
        backend=backend,
        rate_per_s=rate_per_s,
        events=len(latencies),
        p50_ms=cuts[49],
        p99_ms=cuts[98],
        max_ms=latencies[-1],
        histogram_p50_ms=None if p50 is None else p50 * 1000,
        histogram_p99_ms=None if p99 is None else p99 * 1000,
    )


def _produce_paced(bootstrap_servers: str, topic: str, count: int, rate_per_s: float) -> None:
    """Produce `count` stamped activities evenly spaced at `rate_per_s` (linger 1 ms: the producer adds little)."""
    producer = Producer({"bootstrap.servers": bootstrap_servers, "linger.ms": 1, "enable.idempotence": True})
    rng = random.Random(11)
    bodies = [activity(str(uuid.UUID(int=rng.getrandbits(128), version=4)), n % 500, rng) for n in range(count)]
    started = time.perf_counter()
    for index, body in enumerate(bodies):
        delay = started + index / rate_per_s - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        body["bench_sent_ns"] = time.time_ns()
        producer.produce(topic, key=f"user-{index % 500}".encode(), value=orjson.dumps(body))
        producer.poll(0)
    if producer.flush(30):
        raise RuntimeError("paced messages were not all acknowledged")
