"""A probe, not a worker backend: how cheap can the worker's HTTP call be in Python on this machine?

aiohttp costs the worker about 250 µs of CPU per request here (bench/RESULTS.md), most of the worker's budget. This
`Transport` speaks just enough HTTP/1.1 to talk to the sandbox (keep-alive connections from a small pool, one write
per request, `Content-Length` response bodies) over asyncio protocols, so the `http` ceiling run with
`--backends lean` shows what is library overhead and what every client pays (system calls, the event loop).

What a production transport would still need, and this probe does not have: TLS (the real API is https),
chunked responses, connect/read/total timeouts, response size caps, proxies refused explicitly, and the
exception mapping onto `TransportError` that both real backends pass in tests/mics/test_contract.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import cast
from urllib.parse import urlsplit

from worker.mics.transport import RawResponse, TransportConnectionReset, TransportProtocolError

__all__ = ["LeanTransport"]

_HEAD_END = b"\r\n\r\n"


class _Connection(asyncio.Protocol):
    """One keep-alive connection carrying one request at a time (no pipelining)."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._waiter: asyncio.Future[RawResponse] | None = None
        self._transport: asyncio.Transport | None = None
        self.reusable = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.reusable = False
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(TransportConnectionReset("the connection closed before the response"))

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        end = self._buffer.find(_HEAD_END)
        if end < 0 or self._waiter is None:
            return
        try:
            status, headers = _parse_head(bytes(self._buffer[:end]))
            length = int(headers.get("content-length", "0"))
        except ValueError as exc:
            self._fail(TransportProtocolError(f"unreadable response head: {exc}"))
            return
        start = end + len(_HEAD_END)
        if len(self._buffer) < start + length:
            return  # the body is still arriving
        body = bytes(self._buffer[start : start + length])
        del self._buffer[: start + length]
        if headers.get("connection", "").lower() == "close":
            self.reusable = False
        waiter, self._waiter = self._waiter, None
        waiter.set_result(RawResponse(status, headers, body))

    def _fail(self, error: Exception) -> None:
        self.reusable = False
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(error)
        if self._transport is not None:
            self._transport.close()

    async def exchange(self, request: bytes) -> RawResponse:
        assert self._transport is not None
        self._waiter = asyncio.get_running_loop().create_future()
        self._transport.write(request)
        return await self._waiter

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


class LeanTransport:
    """The `Transport` protocol over a pool of at most `max_connections` plain-HTTP keep-alive connections."""

    def __init__(self, max_connections: int) -> None:
        self._slots = asyncio.Semaphore(max_connections)
        self._idle: list[_Connection] = []
        self._origin = ""
        self._host = ""
        self._port = 0

    async def request(self, method: str, url: str, headers: Mapping[str, str], body: bytes | None) -> RawResponse:
        if not url.startswith(self._origin) or not self._origin:
            self._remember_origin(url)
        path = url[len(self._origin) :]
        head = [f"{method} {path} HTTP/1.1", f"Host: {self._host}:{self._port}"]
        head += [f"{name}: {value}" for name, value in headers.items()]
        payload = body or b""
        head.append(f"Content-Length: {len(payload)}\r\n\r\n")
        request = "\r\n".join(head).encode("latin-1") + payload
        async with self._slots:
            connection = await self._connection()
            response = await connection.exchange(request)
            if connection.reusable:
                self._idle.append(connection)
            return response

    async def aclose(self) -> None:
        for connection in self._idle:
            connection.close()
        self._idle.clear()

    async def _connection(self) -> _Connection:
        while self._idle:
            connection = self._idle.pop()
            if connection.reusable:
                return connection
        loop = asyncio.get_running_loop()
        try:
            _, protocol = await loop.create_connection(_Connection, self._host, self._port)
        except OSError as exc:
            raise TransportConnectionReset(f"connect failed: {type(exc).__name__}") from exc
        return protocol

    def _remember_origin(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or parts.hostname is None:
            raise ValueError("the lean probe speaks plain http only")
        self._host, self._port = parts.hostname, parts.port or 80
        self._origin = f"{parts.scheme}://{parts.netloc}"


def _parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if "chunked" in headers.get("transfer-encoding", ""):
        raise ValueError("chunked responses are beyond this probe")
    return status, headers
