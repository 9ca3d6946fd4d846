"""Upper bounds measured in the same run as the worker: what each half of the worker's job costs on its own.

- `consume`: confluent-kafka `consume(500)` plus the worker's own per-message work, with no HTTP at all: either
  `codec.decode` only, or the whole `routing.plan_message` (decode, validate, route: what the pipeline calls per
  message). No pipeline, tasks, metrics or offsets: the gap to the worker's figure is the pipeline's own cost.
- `http`: the worker's `MicsClient` over one backend posting a ~600-byte activity to the sandbox at the worker's
  concurrency, nothing else (the driver of `bench/http_backends.py`); backend `lean` is the probe of
  `bench/lean_http.py` (what a minimal client costs), not a worker backend.

Each runs in a fresh child process (`python -m bench.ceilings consume|http ...`, one JSON line on stdout) and
reports that process's CPU time (`time.process_time`: every thread, librdkafka's included), so the figures
compare with the worker's /proc figures and are not skewed by the harness's own heap (datasets kept for the
ledger make every garbage collection pass in the harness slower). The API token goes in through the environment.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import cast

import orjson
from confluent_kafka import Consumer

from bench.datasets import Dataset
from worker import codec
from worker.config import RouteMode

__all__ = ["Ceiling", "consume_ceiling", "http_ceiling"]

REPO_ROOT = Path(__file__).resolve().parents[1]
TOKEN_ENV = "BENCH_API_TOKEN"
_BATCH = 500
_MAX_MESSAGE_BYTES = 1_000_000


@dataclass(frozen=True)
class Ceiling:
    """Throughput and CPU per item of one stage measured alone."""

    name: str
    items: int
    seconds: float
    cpu_seconds: float
    p50_ms: float | None = None
    p99_ms: float | None = None

    @property
    def per_s(self) -> float:
        return self.items / self.seconds

    @property
    def cpu_us_per_item(self) -> float:
        return self.cpu_seconds / self.items * 1e6

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "per_s": self.per_s, "cpu_us_per_item": self.cpu_us_per_item}


def consume_ceiling(bootstrap_servers: str, dataset: Dataset, *, plan: bool) -> Ceiling:
    """Consume the whole dataset with a fresh group, decoding (or fully planning) every message, in a child."""
    routes = ",".join(f"{topic}={mode}" for topic, mode in dataset.routes.items())
    command = ["consume", bootstrap_servers, routes, str(dataset.count)] + (["--plan"] if plan else [])
    return _child(command, {})


def http_ceiling(backend: str, base_url: str, token: str, requests: int, concurrency: int) -> Ceiling:
    """`requests` activity POSTs through `MicsClient` at `concurrency` after a warm-up, in a child on uvloop."""
    command = ["http", backend, base_url, str(requests), str(concurrency)]
    return _child(command, {TOKEN_ENV: token})


def _child(arguments: list[str], env: dict[str, str]) -> Ceiling:
    done = subprocess.run(
        [sys.executable, "-m", "bench.ceilings", *arguments],
        cwd=REPO_ROOT,
        env={**os.environ, **env},
        capture_output=True,
        check=False,
        timeout=900,
    )
    if done.returncode != 0:
        raise RuntimeError(f"ceiling {arguments[0]} failed ({done.returncode}):\n{done.stderr.decode()[-3000:]}")
    return Ceiling(**orjson.loads(done.stdout.splitlines()[-1]))


def _measure_consume(bootstrap_servers: str, routes: dict[str, RouteMode], count: int, plan: bool) -> Ceiling:
    from worker.routing import plan_message
    from worker.validation import Validators

    planner = partial(
        plan_message,
        validators=Validators.load(),
        default_datamart_id="1509",
        allowed_datamarts=frozenset(),
        max_message_bytes=_MAX_MESSAGE_BYTES,
    )
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap_servers,
            "group.id": f"bench-ceiling-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "queued.max.messages.kbytes": 16384,  # as the worker sets it
        }
    )
    consumer.subscribe(list(routes))
    seen = 0
    started = cpu_started = 0.0
    try:
        while seen < count:
            messages = consumer.consume(_BATCH, 1.0)
            if not messages:
                continue
            if not seen:
                started, cpu_started = time.perf_counter(), time.process_time()
            for message in messages:
                if message.error() is not None:
                    continue
                seen += 1
                if plan:
                    planner(routes.get(message.topic() or ""), message.value())
                else:
                    with contextlib.suppress(codec.DecodeError):
                        codec.decode(message.value(), _MAX_MESSAGE_BYTES)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    finally:
        consumer.close()
    name = "consume + decode + validate + route" if plan else "consume + decode"
    return Ceiling(name, seen, elapsed, cpu)


def _measure_http(backend: str, base_url: str, token: str, requests: int, concurrency: int) -> Ceiling:
    import uvloop

    from bench.http_backends import WARMUP_REQUESTS, drive
    from worker.mics import ApiToken, MicsClient, Timeouts, Transport, make_transport

    async def run() -> tuple[float, float, list[float]]:
        transport: Transport
        if backend == "lean":
            from bench.lean_http import LeanTransport

            transport = LeanTransport(concurrency)
        else:
            transport = make_transport(backend, Timeouts(), max_connections=concurrency)
        async with MicsClient(transport, base_url, ApiToken(token), decode_write_answers=False) as client:
            await drive(client, WARMUP_REQUESTS, concurrency)
            started, cpu_started = time.perf_counter(), time.process_time()
            latencies = await drive(client, requests, concurrency)
            return time.perf_counter() - started, time.process_time() - cpu_started, latencies

    elapsed, cpu, latencies = uvloop.run(run())
    cuts = statistics.quantiles(latencies, n=100)
    client = "minimal asyncio HTTP/1.1 probe, bench/lean_http.py" if backend == "lean" else backend
    name = f"HTTP only ({client}, concurrency {concurrency})"
    return Ceiling(name, requests, elapsed, cpu, cuts[49] * 1e3, cuts[98] * 1e3)


def main() -> None:
    parser = argparse.ArgumentParser(description="one ceiling measurement; prints it as one JSON line")
    commands = parser.add_subparsers(dest="command", required=True)
    consume = commands.add_parser("consume")
    consume.add_argument("bootstrap_servers")
    consume.add_argument("routes", help="topic=mode,...")
    consume.add_argument("count", type=int)
    consume.add_argument("--plan", action="store_true", help="validate and route as well as decode")
    http = commands.add_parser("http")
    http.add_argument("backend")
    http.add_argument("base_url")
    http.add_argument("requests", type=int)
    http.add_argument("concurrency", type=int)
    args = parser.parse_args()
    if args.command == "consume":
        routes = {t: cast(RouteMode, m) for t, _, m in (item.partition("=") for item in args.routes.split(","))}
        ceiling = _measure_consume(args.bootstrap_servers, routes, args.count, args.plan)
    else:
        token = os.environ[TOKEN_ENV]
        ceiling = _measure_http(args.backend, args.base_url, token, args.requests, args.concurrency)
    print(orjson.dumps(asdict(ceiling)).decode())


if __name__ == "__main__":
    main()
