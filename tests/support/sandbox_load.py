"""A small load generator for the sandbox: how many requests a second it answers, and at what CPU cost.

    python -m tests.support.sandbox_load [--client aiohttp|raw] [--connections 16] [--duration 5]
                                         [--clients 1] [-- sandbox args]

It starts a sandbox (default `--minimal`), posts one small activity over keep-alive connections from
`--clients` processes for `--duration` seconds, and prints the throughput seen by the clients and per
CPU-second of the sandbox process (read from /proc, so Linux only). `--client aiohttp` is the kind of client
the worker uses, and costs more CPU than the server it measures; `--client raw` is a bare asyncio protocol
(one request in flight per connection) cheap enough that the sandbox, not the client, is the bottleneck.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import cast

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


class _RawConnection(asyncio.Protocol):
    """One keep-alive connection sending the same request again as soon as the previous answer is complete."""

    def __init__(self, request: bytes, deadline: float, tally: list[int]) -> None:
        self._request = request
        self._deadline = deadline
        self._tally = tally  # [ok, other]
        self._buffer = b""
        self._transport: asyncio.Transport | None = None
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass asyncio's
        self._transport.write(self._request)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while (head_end := self._buffer.find(b"\r\n\r\n")) >= 0:
            head = self._buffer[:head_end].lower()
            length_at = head.find(b"content-length:")
            length = int(head[length_at + 15 :].split(b"\r\n", 1)[0]) if length_at >= 0 else 0
            end = head_end + 4 + length
            if len(self._buffer) < end:
                return
            self._tally[0 if head.startswith(b"http/1.1 200") else 1] += 1
            self._buffer = self._buffer[end:]
            assert self._transport is not None
            if time.monotonic() < self._deadline:
                self._transport.write(self._request)
            else:
                self._transport.close()
                return

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


async def _raw_load(url: str, token: str, connections: int, duration_s: float) -> tuple[int, int]:
    address = url.removeprefix("http://").split("/", 1)[0]
    host, port = address.rsplit(":", 1)
    path = url[len("http://") + len(address) :]
    request = (
        f"POST {path} HTTP/1.1\r\nHost: {address}\r\nAuthorization: {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(ACTIVITY)}\r\n\r\n"
    ).encode() + ACTIVITY
    loop = asyncio.get_running_loop()
    tally = [0, 0]
    deadline = time.monotonic() + duration_s
    protocols = []
    for _ in range(connections):
        _, protocol = await loop.create_connection(lambda: _RawConnection(request, deadline, tally), host, int(port))
        protocols.append(protocol)
    await asyncio.wait_for(asyncio.gather(*(protocol.closed for protocol in protocols)), duration_s + 30)
    return tally[0], tally[1]


def run_client(client: str, url: str, token: str, connections: int, duration_s: float) -> tuple[int, int]:
    """One load-generating process: (requests answered 200, other answers)."""
    load = _raw_load if client == "raw" else _load
    return uvloop.run(load(url, token, connections, duration_s))


def main() -> int:
    """Parse arguments, run the load, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--client", choices=["aiohttp", "raw"], default="aiohttp", help="kind of load client")
    parser.add_argument("--connections", type=int, default=16, help="keep-alive connections per client process")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds of load")
    parser.add_argument("--clients", type=int, default=1, help="load-generating processes")
    parser.add_argument("sandbox_args", nargs="*", default=["--minimal"], help="arguments for the sandbox")
    args = parser.parse_args()
    # A SIGTERM (e.g. from `timeout`) unwinds like an exception, so the sandbox child is stopped, not orphaned.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with SandboxProcess(*args.sandbox_args) as sandbox, ProcessPoolExecutor(args.clients) as pool:
        url = f"{sandbox.base_url}/v1/datamarts/1/user_activities"
        assert sandbox.pid is not None
        cpu_before = cpu_seconds(sandbox.pid)
        started = time.monotonic()
        futures = [
            pool.submit(run_client, args.client, url, sandbox.token, args.connections, args.duration)
            for _ in range(args.clients)
        ]
        results = [future.result() for future in futures]
        elapsed = time.monotonic() - started
        server_cpu = cpu_seconds(sandbox.pid) - cpu_before
    ok = sum(done for done, _ in results)
    failed = sum(bad for _, bad in results)
    print(f"sandbox args: {' '.join(args.sandbox_args)}")
    shape = f"{args.clients}x{args.connections} {args.client} connections"
    print(f"requests: {ok} ok, {failed} other, in {elapsed:.2f} s from {shape}")
    print(f"throughput seen by the clients: {ok / elapsed:,.0f} req/s")
    print(f"sandbox CPU: {server_cpu:.2f} s -> {ok / server_cpu:,.0f} req per CPU-second")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
