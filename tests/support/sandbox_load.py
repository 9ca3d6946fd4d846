"""A small load generator for the sandbox: how many requests a second it answers, and at what CPU cost.

    python -m tests.support.sandbox_load [--connections 16] [--duration 5] [--clients 1] [-- sandbox args]

It starts a sandbox (default `--minimal`), posts one small activity over keep-alive aiohttp connections
from `--clients` processes for `--duration` seconds, and prints the throughput as seen by the clients and
per CPU-second of the sandbox process (read from /proc, so Linux only). The second figure is what the
sandbox can do on one core even when the load generator competes with it for the same cores.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import aiohttp
import uvloop

from tests.support.sandbox_process import SandboxProcess

ACTIVITY = (
    b'{"$ts":1700000000000,"$type":"SITE_VISIT","$session_status":"NO_SESSION",'
    b'"$user_identifiers":[{"$type":"USER_AGENT","$user_agent_id":"vec:289388396"}],'
    b'"$events":[{"$ts":1700000000000,"$event_name":"$page_view","$properties":{}}]}'
)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _load(url: str, token: str, connections: int, duration_s: float) -> tuple[int, int]:
    headers = {"Authorization": token, "Content-Type": "application/json"}
    done = 0
    failed = 0
    deadline = time.monotonic() + duration_s

    async def one_connection(session: aiohttp.ClientSession) -> None:
        nonlocal done, failed
        while time.monotonic() < deadline:
            async with session.post(url, data=ACTIVITY, headers=headers) as response:
                await response.read()
                if response.status == 200:
                    done += 1
                else:
                    failed += 1

    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(one_connection(session) for _ in range(connections)))
    return done, failed


def run_client(url: str, token: str, connections: int, duration_s: float) -> tuple[int, int]:
    """One load-generating process: (requests answered 200, other answers)."""
    return uvloop.run(_load(url, token, connections, duration_s))


def main() -> int:
    """Parse arguments, run the load, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--connections", type=int, default=16, help="keep-alive connections per client process")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds of load")
    parser.add_argument("--clients", type=int, default=1, help="load-generating processes")
    parser.add_argument("sandbox_args", nargs="*", default=["--minimal"], help="arguments for the sandbox")
    args = parser.parse_args()
    with SandboxProcess(*args.sandbox_args) as sandbox, ProcessPoolExecutor(args.clients) as pool:
        url = f"{sandbox.base_url}/v1/datamarts/1/user_activities"
        assert sandbox.pid is not None
        cpu_before = cpu_seconds(sandbox.pid)
        started = time.monotonic()
        futures = [
            pool.submit(run_client, url, sandbox.token, args.connections, args.duration) for _ in range(args.clients)
        ]
        results = [future.result() for future in futures]
        elapsed = time.monotonic() - started
        server_cpu = cpu_seconds(sandbox.pid) - cpu_before
    ok = sum(done for done, _ in results)
    failed = sum(bad for _, bad in results)
    print(f"sandbox args: {' '.join(args.sandbox_args)}")
    print(f"requests: {ok} ok, {failed} other, in {elapsed:.2f} s from {args.clients}x{args.connections} connections")
    print(f"throughput seen by the clients: {ok / elapsed:,.0f} req/s")
    print(f"sandbox CPU: {server_cpu:.2f} s -> {ok / server_cpu:,.0f} req per CPU-second")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
