"""Requests per second of each HTTP backend through the real client, against the sandbox in --minimal mode.

    .venv/bin/python bench/http_backends.py [--requests 5000] [--concurrency 1 16 64] [--repeat 3]

One sandbox process (its own core) answers; this process drives ``MicsClient.post_activity`` with a
653-byte activity at each concurrency level, ``concurrency`` connections, after a short warm-up. Each
figure is the best of ``--repeat`` runs (the machine is shared, so the best run is the least disturbed
one); p50/p99 latencies come from that run. Prints a Markdown table for bench/HTTP_BACKENDS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import sys
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from tests.support.sandbox_process import SandboxProcess  # noqa: E402 - needs the repo root on sys.path
from worker.mics import (  # noqa: E402
    BACKENDS,
    ApiToken,
    MicsClient,
    OutcomeKind,
    RawResponse,
    Timeouts,
    UserAgentId,
    make_transport,
)

ACTIVITY = (
    b'{"$ts":1764000000000,"$type":"SITE_VISIT","$session_status":"NO_SESSION",'
    b'"$unique_key":"7a1c3e52-cb10-11ee-a506-0242ac120002","$site_id":"1023",'
    b'"$user_identifiers":[{"$type":"USER_AGENT","$user_agent_id":"vec:289388396"},'
    b'{"$type":"USER_ACCOUNT","$compartment_id":"1","$user_account_id":"user-42"}],'
    b'"$origin":{"$source":"newsletter","$channel":"email","$campaign_id":"77"},'
    b'"$events":[{"$ts":1764000000000,"$event_name":"$page_view","$properties":{"url":"/home","ref":"mail"}},'
    b'{"$ts":1764000001000,"$event_name":"$item_view","$properties":{"$item_id":"sku-1234","price":19.9}},'
    b'{"$ts":1764000002000,"$event_name":"$basket_view","$properties":{"items":2}}]}'
)
WARMUP_REQUESTS = 200


@dataclass(frozen=True)
class Run:
    """One measured run: throughput and latency percentiles in milliseconds."""

    requests_per_s: float
    p50_ms: float
    p99_ms: float


async def drive(client: MicsClient, requests: int, concurrency: int) -> list[float]:
    """Send ``requests`` activities from ``concurrency`` workers; return each request's latency."""
    remaining = requests
    latencies: list[float] = []

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            started = time.perf_counter()
            result = await client.post_activity(1509, ACTIVITY)
            latencies.append(time.perf_counter() - started)
            if result.kind is not OutcomeKind.SUCCESS:
                raise RuntimeError(f"unexpected outcome {result.kind.name} {result.reason}")

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies


async def measure(backend: str, base_url: str, token: str, requests: int, concurrency: int) -> Run:
    """One warmed-up run of one backend at one concurrency."""
    transport = make_transport(backend, Timeouts(), max_connections=concurrency)
    async with MicsClient(transport, base_url, ApiToken(token)) as client:
        await drive(client, WARMUP_REQUESTS, concurrency)
        started = time.perf_counter()
        latencies = await drive(client, requests, concurrency)
        elapsed = time.perf_counter() - started
    cuts = statistics.quantiles(latencies, n=100)
    return Run(requests / elapsed, cuts[49] * 1000, cuts[98] * 1000)


class NullTransport:
    """Answers at once with a canned 200: what is left to measure is the client's own work."""

    ANSWER = RawResponse(200, {"content-type": "application/json"}, b'{"status":"ok","data":{}}')

    async def request(self, method: str, url: str, headers: object, body: bytes | None) -> RawResponse:
        return self.ANSWER

    async def aclose(self) -> None:
        return None


async def client_overhead_us(calls: int = 50_000) -> tuple[float, float]:
    """Microseconds of client work per call (URL, check, headers, classification): activity, profile."""
    client = MicsClient(NullTransport(), "https://api.mediarithmics.com", ApiToken("bench-token"))
    selector = UserAgentId("vec:289388396")
    started = time.perf_counter()
    for _ in range(calls):
        await client.post_activity(1509, ACTIVITY)
    activity = time.perf_counter() - started
    started = time.perf_counter()
    for _ in range(calls):
        await client.put_profile(1509, selector, 1, "user-42", b"{}")
    profile = time.perf_counter() - started
    return activity / calls * 1e6, profile / calls * 1e6


def event_loop_runner() -> tuple[str, Callable[[Coroutine[Any, Any, Run]], Run]]:
    """uvloop when installed (as the worker runs), else the default asyncio loop."""
    try:
        import uvloop
    except ImportError:
        return "asyncio", asyncio.run
    return "uvloop", uvloop.run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000, help="measured requests per run (default 5000)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--repeat", type=int, default=3, help="runs per cell; the best is kept (default 3)")
    parser.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=BACKENDS)
    args = parser.parse_args()

    loop_name, run = event_loop_runner()
    activity_us, profile_us = min(asyncio.run(client_overhead_us()) for _ in range(args.repeat))
    print(f"client overhead without I/O: post_activity {activity_us:.1f} us, put_profile {profile_us:.1f} us")
    results: dict[tuple[str, int], Run] = {}
    with SandboxProcess("--minimal") as sandbox:
        for concurrency in args.concurrency:
            for backend in args.backends:
                runs = [
                    run(measure(backend, sandbox.base_url, sandbox.token, args.requests, concurrency))
                    for _ in range(args.repeat)
                ]
                best = max(runs, key=lambda r: r.requests_per_s)
                results[backend, concurrency] = best
                print(
                    f"{backend:8} c={concurrency:<3} {best.requests_per_s:8.0f} req/s "
                    f"p50 {best.p50_ms:6.2f} ms  p99 {best.p99_ms:6.2f} ms  "
                    f"(runs: {', '.join(f'{r.requests_per_s:.0f}' for r in runs)})",
                    flush=True,
                )

    print()
    print(
        f"Python {platform.python_version()}, {loop_name}, {args.requests} requests a run, "
        f"best of {args.repeat}, sandbox --minimal in its own process"
    )
    print(f"Client overhead without I/O: post_activity {activity_us:.1f} us, put_profile {profile_us:.1f} us a call.")
    print()
    print("| backend | concurrency | req/s | p50 ms | p99 ms |")
    print("|---|---:|---:|---:|---:|")
    for (backend, concurrency), best in sorted(results.items()):
        print(f"| {backend} | {concurrency} | {best.requests_per_s:.0f} | {best.p50_ms:.2f} | {best.p99_ms:.2f} |")


if __name__ == "__main__":
    main()
