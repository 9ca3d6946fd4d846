"""The httptools backend: the worker's own HTTP/1.1 connections on the event loop, responses read by httptools.

Why it exists: inside the worker pyreqwest's call costs about twice what it costs alone, because every completion
crosses from its Rust thread to the event loop and competes with the loop's own work for the GIL; an exchange on the
loop's own sockets has no hand-off (bench/RESULTS.md, "Issue 16": half the CPU per event of the HTTP call).

What is written here and what is not: the response is parsed by httptools (llhttp, the parser of Node.js and of
uvicorn), TLS is the standard `ssl` module with the system's trust store, sockets are asyncio's. This module writes
only the request head (request line, ``Host``, the caller's headers, ``Content-Length``), keeps a pool of keep-alive
connections and enforces the deadlines. It refuses to write a head that could be read as anything else: a method or
header name that is not an HTTP token, a path or value with a control character, or a header the transport owns
(``Host``, ``Content-Length``, ``Transfer-Encoding``, ``Connection``): that is a bug in the caller (`ValueError`), never
sent. Redirects are answers like any other (never followed), no cookie is kept, no proxy is used, nothing is
decompressed (nothing asks for an encoding).

Bounds: a response head over `MAX_HEAD_BYTES` or a body over `MAX_BODY_BYTES` is a protocol error (the connection is
closed); at most `max_connections` connections are open, a request waiting for one counts against its total deadline;
an idle connection is closed after `IDLE_S` rather than reused, so a server's keep-alive timeout is rarely met
mid-request. Failure mapping (``TransportError`` subclasses): nothing could be opened (refused, unresolvable, a TLS
handshake or certificate refused) -> connect error; a deadline -> timeout; the connection closed or reset before the
whole response -> connection reset (the request may have been read); bytes that are not an HTTP response ->
protocol error.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from collections import deque
from collections.abc import Mapping
from typing import Final, cast
from urllib.parse import urlsplit

import httptools

from worker.mics.transport import (
    RawResponse,
    Timeouts,
    TransportConnectError,
    TransportConnectionReset,
    TransportError,
    TransportProtocolError,
    TransportTimeout,
)

__all__ = ["IDLE_S", "MAX_BODY_BYTES", "MAX_HEAD_BYTES", "HttptoolsTransport"]

MAX_HEAD_BYTES: Final = 64 * 1024
"""The most a response's status line and headers may take (the API's are a few hundred bytes)."""
MAX_BODY_BYTES: Final = 32 * 1024 * 1024
"""The most a response body may take (the API's answers are small JSON documents)."""
IDLE_S: Final = 30.0
"""An idle pooled connection older than this is closed instead of reused."""

_TOKEN: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_UNSAFE: Final = re.compile(r"[\x00-\x1f\x7f]")
_UNSAFE_IN_VALUE: Final = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # HTAB is allowed inside a field value
_OWNED: Final = frozenset({"host", "content-length", "transfer-encoding", "connection"})


def request_head(method: str, target: str, host: str, headers: Mapping[str, str], length: int | None) -> bytes:
    """The request line and headers, refused (ValueError) if any part could change the message's framing."""
    if not _TOKEN.fullmatch(method):
        raise ValueError(f"not an HTTP method: {method!r}")
    if not target.startswith("/") or _UNSAFE.search(target) or " " in target or "#" in target:
        raise ValueError(
            "the request target must be an origin-form path without spaces, a fragment or control characters"
        )
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
    for name, value in headers.items():
        if not _TOKEN.fullmatch(name) or name.lower() in _OWNED:
            raise ValueError(f"header name refused: {name!r}")
        if _UNSAFE_IN_VALUE.search(value):
            raise ValueError(f"the value of header {name!r} holds a control character")
        lines.append(f"{name}: {value}")
    if length is not None:
        lines.append(f"Content-Length: {length}")
    lines.append("\r\n")
    return "\r\n".join(lines).encode("latin-1")


class _Connection(asyncio.Protocol):
    """One keep-alive connection carrying one exchange at a time (no pipelining), with its own deadline timer."""

    def __init__(self, loop: asyncio.AbstractEventLoop, timeouts: Timeouts) -> None:
        self._loop = loop
        self._read_s = timeouts.read_s
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[RawResponse] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._deadline = 0.0  # the exchange's total deadline (loop time)
        self._last_read = 0.0
        self._head_bytes = 0
        self._head_received = 0  # bytes received while the head was still unfinished
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []
        self._body_bytes = 0
        self._headers_done = False
        self.idle_since = 0.0
        self.open = False

    # -- asyncio.Protocol --------------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        self.open = True

    def connection_lost(self, exc: Exception | None) -> None:
        self.open = False
        if self._waiter is None or self._waiter.done():
            return
        if exc is None and self._headers_done and self._ends_at_close():
            self._complete()  # a body delimited by the connection's end, read whole
            return
        self._finish(TransportConnectionReset("the connection closed before the whole response"))

    def data_received(self, data: bytes) -> None:
        if self._waiter is None:  # bytes nobody asked for: this connection can no longer be trusted
            self.abort()
            return
        self._last_read = self._loop.time()
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:  # a bound passed inside a callback below
            self._fail(exc.__context__ or exc)
        except httptools.HttpParserUpgrade:
            self._fail(TransportProtocolError("the peer switched protocols"))
        except httptools.HttpParserError as exc:
            self._fail(TransportProtocolError(f"not an HTTP response: {type(exc).__name__}"))
        else:
            if not self._headers_done:  # httptools reports a header only once its line ends: bound the unfinished one
                self._head_received += len(data)
                if self._head_received > MAX_HEAD_BYTES:
                    self._fail(TransportProtocolError(f"a response head over {MAX_HEAD_BYTES} bytes"))

    # -- httptools callbacks -------------------------------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self._waiter is None or self._waiter.done():  # bytes after the whole response: the framing is lost
            raise TransportProtocolError("the peer sent more than the response")
        self._headers, self._body, self._body_bytes, self._head_bytes, self._headers_done = {}, [], 0, 0, False
        self._head_received = 0

    def on_status(self, status: bytes) -> None:
        self._count_head(len(status))

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_head(len(name) + len(value))
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        previous = self._headers.get(key)
        self._headers[key] = text if previous is None else f"{previous}, {text}"

    def on_headers_complete(self) -> None:
        self._headers_done = True

    def on_body(self, body: bytes) -> None:
        self._body_bytes += len(body)
        if self._body_bytes > MAX_BODY_BYTES:
            raise TransportProtocolError(f"a response body over {MAX_BODY_BYTES} bytes")
        self._body.append(body)

    def on_message_complete(self) -> None:
        status = self._parser.get_status_code()
        if 100 <= status < 200:  # an interim answer (100 Continue, 103): the real one follows
            self._headers_done = False  # its head is not the response's: a close now is a reset
            return
        self._complete()

    # -- the exchange ----------------------------------------------------------------------------------------------

    async def exchange(self, request: bytes, deadline: float) -> RawResponse:
        """Write one request and wait for its whole response, until `deadline` or `read_s` without a byte."""
        assert self._transport is not None
        waiter: asyncio.Future[RawResponse] = self._loop.create_future()
        self._waiter = waiter
        self._deadline = deadline
        self._last_read = self._loop.time()
        self._headers_done = False
        self._transport.write(request)
        self._timer = self._loop.call_at(min(deadline, self._last_read + self._read_s), self._check_deadlines)
        try:
            return await waiter
        finally:
            self._waiter = None
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

    def _check_deadlines(self) -> None:
        now = self._loop.time()
        if now >= self._deadline:
            self._fail(TransportTimeout("the total deadline passed before the whole response"))
            return
        if self._transport is not None and self._transport.get_write_buffer_size():
            self._last_read = now  # the request is still being written: the wait for an answer has not begun
        elif now - self._last_read >= self._read_s:
            self._fail(TransportTimeout(f"no byte from the API for {self._read_s:g} s"))
            return
        self._timer = self._loop.call_at(min(self._deadline, self._last_read + self._read_s), self._check_deadlines)

    def _count_head(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > MAX_HEAD_BYTES:
            raise TransportProtocolError(f"a response head over {MAX_HEAD_BYTES} bytes")

    def _ends_at_close(self) -> bool:
        headers = self._headers
        return "content-length" not in headers and "chunked" not in headers.get("transfer-encoding", "").lower()

    def _complete(self) -> None:
        if not self._parser.should_keep_alive():
            self.abort_after_reply()
        self._finish(RawResponse(self._parser.get_status_code(), self._headers, b"".join(self._body)))

    def _finish(self, outcome: RawResponse | TransportError) -> None:
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        if isinstance(outcome, RawResponse):
            waiter.set_result(outcome)
        else:
            waiter.set_exception(outcome)

    def _fail(self, error: BaseException) -> None:
        """End the exchange with `error` (a TransportError) and close the connection: its framing is lost."""
        if not isinstance(error, TransportError):
            error = TransportProtocolError(f"unreadable response: {type(error).__name__}")
        self.abort()
        self._finish(error)

    # -- the pool's side ---------------------------------------------------------------------------------------------

    def abort_after_reply(self) -> None:
        """The peer asked to close (or HTTP/1.0): the response is whole, the connection is not reused."""
        self.open = False
        if self._transport is not None:
            self._transport.close()

    def abort(self) -> None:
        self.open = False
        if self._transport is not None:
            self._transport.abort()

    @property
    def reusable(self) -> bool:
        return self.open and self._transport is not None and not self._transport.is_closing()


class _Pool:
    """The connections to one origin: at most `limit` open, idle ones reused newest first."""

    def __init__(self, host: str, port: int, limit: int, timeouts: Timeouts, tls: ssl.SSLContext | None) -> None:
        self._host = host
        self._port = port
        self._limit = limit
        self._timeouts = timeouts
        self._tls = tls
        self._idle: list[_Connection] = []
        self._closed = False  # aclose() ran: a connection released from now on is closed, not pooled
        self._open = 0  # connections counted against the limit: busy, idle or being opened
        self._waiters: deque[asyncio.Future[None]] = deque()

    async def acquire(self, deadline: float) -> _Connection:
        """An idle connection still fit for use, else a new one once the limit allows (waiting until `deadline`)."""
        loop = asyncio.get_running_loop()
        while True:
            while self._idle:
                connection = self._idle.pop()
                if connection.reusable and loop.time() - connection.idle_since < IDLE_S:
                    return connection
                connection.abort()
                self._open -= 1
            if self._open < self._limit:
                break
            await self._wait_for_room(loop, deadline)  # returns with room or an idle connection, or raises
        self._open += 1
        try:
            return await self._connect(loop, deadline)
        except BaseException:
            self._open -= 1
            self._wake_one()
            raise

    def release(self, connection: _Connection, *, reuse: bool) -> None:
        if reuse and connection.reusable and not self._closed:
            connection.idle_since = asyncio.get_running_loop().time()
            self._idle.append(connection)
        else:
            connection.abort()
            self._open -= 1
        self._wake_one()

    def close(self) -> None:
        self._closed = True
        for connection in self._idle:
            connection.abort()
        self._open -= len(self._idle)
        self._idle.clear()

    async def _wait_for_room(self, loop: asyncio.AbstractEventLoop, deadline: float) -> None:
        while self._open >= self._limit and not self._idle:
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.append(waiter)
            try:
                async with asyncio.timeout_at(deadline):
                    await waiter
            except BaseException as exc:
                if waiter.done() and not waiter.cancelled():
                    self._wake_one()  # woken for a free connection but leaving: the next waiter takes the turn
                waiter.cancel()
                if isinstance(exc, TimeoutError):
                    raise TransportTimeout("no connection became free before the total deadline") from exc
                raise

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def _connect(self, loop: asyncio.AbstractEventLoop, deadline: float) -> _Connection:
        host, timeouts = self._host, self._timeouts
        try:
            async with asyncio.timeout_at(min(deadline, loop.time() + timeouts.connect_s)):
                _, connection = await loop.create_connection(
                    lambda: _Connection(loop, timeouts),
                    host,
                    self._port,
                    ssl=self._tls,
                    server_hostname=host if self._tls is not None else None,
                )
        except TimeoutError as exc:
            raise TransportTimeout("connecting to the API timed out") from exc
        except (OSError, ssl.SSLError) as exc:  # refused, unreachable, unresolvable, TLS refused
            raise TransportConnectError("could not connect to the API") from exc
        return connection


class HttptoolsTransport:
    """Sends requests over pooled keep-alive connections of the running event loop."""

    def __init__(self, timeouts: Timeouts, max_connections: int, tls: ssl.SSLContext | None = None) -> None:
        self._timeouts = timeouts
        self._max_connections = max_connections
        self._tls = tls
        self._pools: dict[str, tuple[_Pool, str]] = {}  # "scheme://netloc" -> its pool and its Host header

    async def request(self, method: str, url: str, headers: Mapping[str, str], body: bytes | None) -> RawResponse:
        """Send one request and read the whole response, mapping every failure onto a TransportError."""
        origin_end = url.find("/", url.find("//") + 2)
        prefix, target = (url, "/") if origin_end < 0 else (url[:origin_end], url[origin_end:])
        pool, host = self._pools.get(prefix) or self._pool(prefix)
        request = request_head(method, target, host, headers, None if body is None else len(body))
        if body:
            request += body
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeouts.total_s
        connection = await pool.acquire(deadline)
        reuse = False
        try:
            response = await connection.exchange(request, deadline)
            reuse = True
            return response
        finally:
            pool.release(connection, reuse=reuse)

    async def aclose(self) -> None:
        """Close every idle connection (busy ones close when their exchange ends)."""
        for pool, _ in self._pools.values():
            pool.close()
        self._pools.clear()

    def _pool(self, prefix: str) -> tuple[_Pool, str]:
        """The pool of a new origin (a refused prefix is never cached, so every later request meets the refusal)."""
        if "?" in prefix or "#" in prefix:
            raise ValueError("a query or fragment needs a path before it")
        parts = urlsplit(prefix)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.username or parts.password:
            raise ValueError("the API URL must be http(s)://host[:port] without credentials")
        tls = None
        if parts.scheme == "https":
            tls = self._tls or ssl.create_default_context()
        port = parts.port or (443 if tls is not None else 80)
        entry = _Pool(parts.hostname, port, self._max_connections, self._timeouts, tls), parts.netloc
        self._pools[prefix] = entry
        return entry
