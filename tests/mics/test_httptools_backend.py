"""What the httptools backend does on its own, below the shared contract (tests/mics/test_contract.py).

The request head it writes and refuses, how it frames responses, its keep-alive pool, its bounds and deadlines,
cancellation, idle connections, TLS and URL handling. Every exchange is with a `RawPeer`: a local asyncio server that
reads each request head and answers the raw bytes a test chooses, so each framing and failure is exact. Nothing here
needs the sandbox or Kafka, which is what the ``integration`` mark means, so these tests are not marked.

No test sleeps to wait for an event: it waits on the peer's events (a request arrived, a connection ended), each
bounded by `EVENT_S` so a missing event fails the test instead of hanging it. The only sleeps let loop time pass (an
idle connection outliving a patched `IDLE_S`) or pace a trickling peer. Where order matters between tasks it is made
certain, not likely (see the pool tests). Deadline tests assert lower bounds on elapsed time and only loose upper ones,
so they hold on a loaded machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import itertools
import re
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from worker.mics import httptools_backend
from worker.mics.httptools_backend import HttptoolsTransport, request_head
from worker.mics.transport import (
    RawResponse,
    Timeouts,
    TransportConnectError,
    TransportConnectionReset,
    TransportProtocolError,
    TransportTimeout,
)

FAST = Timeouts(connect_s=1.0, read_s=0.3, total_s=0.8)
"""Short deadlines for the tests about deadlines."""
PATIENT = Timeouts(connect_s=1.0, read_s=5.0, total_s=10.0)
"""Deadlines no passing test meets: a failure that would otherwise hang ends as a timeout instead."""
EVENT_S = 5.0
"""The longest a test waits for an event that is due at once (generous, for a loaded machine)."""

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)", re.IGNORECASE)


# -- the peer ------------------------------------------------------------------------------------------------------


@dataclass
class Exchange:
    """One request as the peer read it, and the stream to answer it on."""

    connection: int  # which accepted connection carried it (1 = the first)
    index: int  # which request on that connection (1 = the first)
    head: bytes
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    @property
    def target(self) -> bytes:
        return target_of(self.head)

    async def send(self, *parts: bytes) -> None:
        """Write each part and let it leave before the next (the client may read them as separate chunks)."""
        for part in parts:
            self.writer.write(part)
            await self.writer.drain()


Answer = Callable[[Exchange], Awaitable[None]]


def target_of(head: bytes) -> bytes:
    """The request target of a request head."""
    return head.split(b" ", 2)[1]


def replying(reply: bytes) -> Answer:
    """An answer that writes `reply` and keeps the connection open for the next request."""

    async def answer(exchange: Exchange) -> None:
        await exchange.send(reply)

    return answer


async def until_closed(exchange: Exchange) -> None:
    """Answer nothing: wait until the client closes (or resets) the connection."""
    with contextlib.suppress(ConnectionError):
        await exchange.reader.read()


def first_connection(first: Answer, then: Answer | None = None) -> Answer:
    """`first` for every request on the first connection, `then` (by default an ``OK``) on any later one."""
    later = then or replying(OK)

    async def answer(exchange: Exchange) -> None:
        await (first if exchange.connection == 1 else later)(exchange)

    return answer


class RawPeer:
    """A local TCP (or TLS) server that reads each request head (and body) and lets `answer` write raw bytes."""

    def __init__(self, answer: Answer, tls: ssl.SSLContext | None = None) -> None:
        self._answer = answer
        self._tls = tls
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self.port = 0  # known once serving
        self.heads: list[bytes] = []
        self.arrivals: asyncio.Queue[Exchange] = asyncio.Queue()
        self.ended: list[asyncio.Event] = []  # one per accepted connection: set once it is over
        self.eof: list[bool] = []  # per connection: the client closed it cleanly (EOF rather than a reset)

    @property
    def connections(self) -> int:
        """How many connections the peer accepted."""
        return len(self.ended)

    @property
    def targets(self) -> list[bytes]:
        """The request targets in the order they arrived."""
        return [target_of(head) for head in self.heads]

    def url(self, path: str = "/", scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    async def next_request(self) -> Exchange:
        """The next request to arrive (failing the test if none arrives)."""
        return await asyncio.wait_for(self.arrivals.get(), EVENT_S)

    async def wait_closed(self, connection: int) -> None:
        """Wait until the numbered connection (1 = the first) is over (failing the test if it stays open)."""
        await asyncio.wait_for(self.ended[connection - 1].wait(), EVENT_S)

    async def __aenter__(self) -> RawPeer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self._tls)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        for handler in self._handlers:
            handler.cancel()
        await asyncio.gather(*self._handlers)
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handler = asyncio.current_task()
        assert handler is not None
        self._handlers.add(handler)
        ended = asyncio.Event()
        self.ended.append(ended)
        self.eof.append(False)
        number = len(self.ended)
        try:
            for index in itertools.count(1):
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                    length = _CONTENT_LENGTH.search(head)
                    if length:
                        await reader.readexactly(int(length[1]))
                except asyncio.IncompleteReadError as exc:
                    self.eof[number - 1] = exc.partial == b""
                    return
                except ConnectionError:
                    return
                self.heads.append(head)
                exchange = Exchange(number, index, head, reader, writer)
                self.arrivals.put_nowait(exchange)
                await self._answer(exchange)
        except asyncio.CancelledError:
            return  # the test is over (returning keeps asyncio's streams from logging the cancellation)
        finally:
            ended.set()
            writer.close()


@pytest.fixture
async def new_transport() -> AsyncIterator[Callable[..., HttptoolsTransport]]:
    """Builds transports (patient deadlines, four connections unless told) and closes them after the test."""
    made: list[HttptoolsTransport] = []

    def make(
        timeouts: Timeouts = PATIENT, max_connections: int = 4, tls: ssl.SSLContext | None = None
    ) -> HttptoolsTransport:
        transport = HttptoolsTransport(timeouts, max_connections, tls=tls)
        made.append(transport)
        return transport

    yield make
    for transport in made:
        await transport.aclose()


async def get(transport: HttptoolsTransport, peer: RawPeer, path: str = "/") -> RawResponse:
    return await transport.request("GET", peer.url(path), {}, None)


# -- 1. the request head -------------------------------------------------------------------------------------------


class TestRequestHead:
    def test_a_post_with_a_body_length(self) -> None:
        """The request line, Host, the caller's headers in order, then Content-Length and the blank line."""
        head = request_head(
            "POST",
            "/v1/datamarts/1509/user_activities?x=%20",
            "api.example:8443",
            {"Authorization": "Bearer t0ken", "Content-Type": "application/json"},
            123,
        )
        assert head == (
            b"POST /v1/datamarts/1509/user_activities?x=%20 HTTP/1.1\r\n"
            b"Host: api.example:8443\r\n"
            b"Authorization: Bearer t0ken\r\n"
            b"Content-Type: application/json\r\n"
            b"Content-Length: 123\r\n"
            b"\r\n"
        )

    def test_a_get_without_a_body_has_no_length(self) -> None:
        """No body means no Content-Length header at all (not "0")."""
        assert (
            request_head("GET", "/", "h", {"Accept": "*/*"}, None)
            == b"GET / HTTP/1.1\r\nHost: h\r\nAccept: */*\r\n\r\n"
        )

    def test_a_tab_inside_a_value_is_allowed(self) -> None:
        """HTAB is legal inside a field value and is written as is."""
        assert b"X-Note: a\tb\r\n" in request_head("GET", "/", "h", {"X-Note": "a\tb"}, None)

    @pytest.mark.parametrize("method", ["GET /", "GE T", "", "GET\r\n", "P\x00ST", "PÖST", "GET:"])
    def test_a_method_that_is_not_a_token_is_refused(self, method: str) -> None:
        """A method with a space, control character, separator or non-ASCII letter could split the request line."""
        with pytest.raises(ValueError, match="not an HTTP method"):
            request_head(method, "/", "h", {}, None)

    @pytest.mark.parametrize(
        "target",
        ["v1/x", "", "*", "http://h/v1", "/a b", "/a\rb", "/a\nb", "/a\r\nHost: evil", "/a\x00b", "/a\tb", "/a#b"],
    )
    def test_a_target_not_an_origin_path_or_with_a_space_or_control_is_refused(self, target: str) -> None:
        """Only an origin-form path without spaces, a fragment or control characters can follow the method (the
        client percent-encodes every id, so a raw "#" would be a bug, and a server would cut the path there)."""
        with pytest.raises(ValueError, match="origin-form"):
            request_head("GET", target, "h", {}, None)

    @pytest.mark.parametrize("name", ["X Y", "X:Y", "", "X\r\nY", "X-Ä", "X-Y\x00", "(X)"])
    def test_a_header_name_that_is_not_a_token_is_refused(self, name: str) -> None:
        """A header name must be a token, or the line could be read as another header or the body."""
        with pytest.raises(ValueError, match="header name refused"):
            request_head("GET", "/", "h", {name: "v"}, None)

    @pytest.mark.parametrize("value", ["a\r\nX-Injected: 1", "a\nb", "a\rb", "a\x00b", "a\x7fb"])
    def test_a_header_value_with_a_control_character_is_refused(self, value: str) -> None:
        """CR, LF, NUL (and the other controls but HTAB) in a value could end the header early."""
        with pytest.raises(ValueError, match="control character"):
            request_head("GET", "/", "h", {"X-Value": value}, None)

    def test_a_refused_value_is_never_repeated_in_the_error(self) -> None:
        """The value may be a credential (a token file with a stray newline): the error names the header, not it."""
        with pytest.raises(ValueError, match="Authorization") as refused:
            request_head("GET", "/", "h", {"Authorization": "Bearer s3cr3t-t0ken\n"}, None)
        assert "s3cr3t" not in str(refused.value)

    @pytest.mark.parametrize("name", ["Host", "content-length", "TRANSFER-ENCODING", "CoNnEcTiOn"])
    def test_a_transport_owned_header_is_refused_in_any_case(self, name: str) -> None:
        """Host, Content-Length, Transfer-Encoding and Connection decide the framing: only the transport writes them."""
        with pytest.raises(ValueError, match="header name refused"):
            request_head("POST", "/", "h", {name: "1"}, 1)

    @pytest.mark.parametrize(
        ("method", "path", "headers", "refusal"),
        [
            ("GET /x", "/", {}, "not an HTTP method"),
            ("GET", "/a b", {}, "origin-form"),
            ("GET", "/", {"Content-Length": "0"}, "header name refused"),
            ("GET", "/", {"X-Value": "a\r\n\r\nGET /smuggled HTTP/1.1"}, "control character"),
        ],
    )
    async def test_a_refused_request_never_reaches_the_peer(
        self,
        new_transport: Callable[..., HttptoolsTransport],
        method: str,
        path: str,
        headers: dict[str, str],
        refusal: str,
    ) -> None:
        """The head is checked before a connection is taken: the peer never sees one, and the transport still works."""
        async with RawPeer(replying(OK)) as peer:
            transport = new_transport()
            with pytest.raises(ValueError, match=refusal):
                await transport.request(method, peer.url(path), headers, None)
            assert peer.connections == 0
            assert (await get(transport, peer, "/after")).status == 200
        assert peer.targets == [b"/after"]


# -- 2. framing of responses ---------------------------------------------------------------------------------------


class TestFraming:
    async def test_a_content_length_body_is_read_whole(self, new_transport: Callable[..., HttptoolsTransport]) -> None:
        """A body sent in pieces ends exactly at its Content-Length."""

        async def answer(exchange: Exchange) -> None:
            await exchange.send(b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n", b"hello", b" world")

        async with RawPeer(answer) as peer:
            response = await get(new_transport(), peer)
        assert (response.status, response.body) == (200, b"hello world")

    async def test_a_chunked_body_of_several_chunks_is_read_whole(
        self, new_transport: Callable[..., HttptoolsTransport]
    ) -> None:
        """Chunks arriving separately are joined, and the message ends at the last (zero) chunk."""

        async def answer(exchange: Exchange) -> None:
            await exchange.send(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                b"5\r\nhello\r\n",
                b"1\r\n \r\n",
                b"5\r\nworld\r\n",
                b"0\r\n\r\n",
            )

        async with RawPeer(answer) as peer:
            transport = new_transport()
            response = await get(transport, peer)
            assert (await get(transport, peer)).body == b"hello world"  # the message ended: the connection is reused
        assert (response.status, response.body) == (200, b"hello world")
        assert peer.connections == 1

    async def test_a_body_delimited_by_the_connections_end_is_read_whole(
        self, new_transport: Callable[..., HttptoolsTransport]
    ) -> None:
        """Without Content-Length or chunked, the body runs to the peer's clean close, and is all of it."""

        async def answer(exchange: Exchange) -> None:
            await exchange.send(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n", b"hello", b" world")
            exchange.writer.close()

        async with RawPeer(first_connection(answer)) as peer:
            transport = new_transport()
            response = await get(transport, peer)
            assert (await get(transport, peer)).status == 200
        assert (response.status, response.body) == (200, b"hello world")
        assert peer.connections == 2  # that connection could not be reused

    async def test_a_100_continue_before_the_answer_is_skipped(
        self, new_transport: Callable[..., HttptoolsTransport]
    ) -> None:
        """An interim 100 (with its own header) is not the response: the 200 after it is, with only its headers."""

        async def answer(exchange: Exchange) -> None:
            await exchange.send(
                b"HTTP/1.1 100 Continue\r\nX-Interim: yes\r\n\r\n",
                b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nX-Final: yes\r\n\r\ndone",
            )

        async with RawPeer(answer) as peer:
            response = await new_transport().request("POST", peer.url(), {}, b"{}")
        assert (response.status, response.body) == (200, b"done")
        assert dict(response.headers) == {"content-length": "4", "x-final": "yes"}

    async def test_a_100_continue_then_the_connections_end_is_a_reset(
        self, new_transport: Callable[..., HttptoolsTransport]
    ) -> None:
        """A peer that closes after an interim answer gave no response: a reset, never a "response" of status 100."""

        async def answer(exchange: Exchange) -> None:
            await exchange.send(b"HTTP/1.1 100 Continue\r\n\r\n")
            exchange.writer.close()

        async with RawPeer(answer) as peer:
            with pytest.raises(TransportConnectionReset):
                await new_transport().request("POST", peer.url(), {}, b"{}")

    async def test_a_204_has_an_empty_body(self, new_transport: Callable[..., HttptoolsTransport]) -> None:
        """A 204 ends at its head (no body is waited for), and the connection is reused."""
        async with RawPeer(replying(b"HTTP/1.1 204 No Content\r\nX-Id: 7\r\n\r\n")) as peer:
            transport = new_transport()
            response = await get(transport, peer)
            assert (await get(transport, peer)).status == 204
        assert (response.status, response.body, response.headers["x-id"]) == (204, b"", "7")
        assert peer.connections == 1

    async def test_header_names_are_lower_cased_and_duplicates_joined(
        self, new_transport: Callable[..., HttptoolsTransport]
    ) -> None:
        """Repeated names (in any case) become one comma-separated value; every name is lower case."""
        reply = (
            b"HTTP/1.1 200 OK\r\nX-Trace: a\r\nContent-Length: 2\r\nx-trace: b\r\nX-TRACE: c\r\n"
            b"Retry-After: 3\r\n\r\nok"
        )
        async with RawPeer(replying(reply)) as peer:
            response = await get(new_transport(), peer)
        assert dict(response.headers) == {"x-trace": "a, b, c", "content-length": "2", "retry-after": "3"}

    async def test_bytes_after_the_whole_response_are_never_read_as_the_next_one(
        self, new_transport: Callable[..., HttptoolsTransport]
    ) -> None:
        """A peer that sends more than the response framed is not trusted again: the next request gets its own answer
        on a new connection, never the leftover bytes."""
        extra = (
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst"
            b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nsmug"  # a second "response" nobody asked for, cut short
        )
        second = b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecond"
        async with RawPeer(first_connection(replying(extra), replying(second))) as peer:
            transport = new_transport()
            assert (await get(transport, peer)).body == b"first"
            assert (await get(transport, peer)).body == b"second"
        assert peer.connections == 2


# -- 3. keep-alive -------------------------------------------------------------------------------------------------


class TestKeepAlive:
    async def test_sequential_requests_reuse_one_connection(
        self, new_transport: Callable[..., HttptoolsTransport]
    ) -> None:
        """A keep-alive HTTP/1.1 response leaves its connection in the pool for the next request."""
        async with RawPeer(replying(OK)) as peer:
            transport = new_transport()
            assert (await get(transport, peer, "/1")).body == b"ok"
            assert (await get(transport, peer, "/2")).body == b"ok"
        assert (peer.connections, peer.targets) == (1, [b"/1", b"/2"])

    @pytest.mark.parametrize(
        "reply",
        [
            b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
            b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
        ],
        ids=["connection-close", "http-1.0"],
    )
    async def test_a_response_without_keep_alive_is_not_reused(
        self, new_transport: Callable[..., HttptoolsTransport], reply: bytes
    ) -> None:
        """After "Connection: close" or an HTTP/1.0 answer without keep-alive, the client closes that connection and
        the next request opens a new one (even though this peer would have kept it open)."""
        async with RawPeer(replying(reply)) as peer:
            transport = new_transport()
            assert (await get(transport, peer)).body == b"ok"
            await peer.wait_closed(1)
            assert (await get(transport, peer)).body == b"ok"
        assert peer.connections == 2


# -- 4. bounds -----------------------------------------------------------------------------------------------------


class TestBounds:
    async def test_a_head_over_the_bound_is_a_protocol_error_and_closes(
        self, new_transport: Callable[..., HttptoolsTransport], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A response head over MAX_HEAD_BYTES is refused and its connection closed, not returned to the pool."""
        monkeypatch.setattr(httptools_backend, "MAX_HEAD_BYTES", 256)
        padding = b"".join(b"X-Pad-%02d: %s\r\n" % (n, b"a" * 32) for n in range(10))
        big_head = b"HTTP/1.1 200 OK\r\n" + padding + b"Content-Length: 2\r\n\r\nok"
        async with RawPeer(first_connection(replying(big_head))) as peer:
            transport = new_transport()
            with pytest.raises(TransportProtocolError, match="head over 256 bytes"):
                await get(transport, peer)
            await peer.wait_closed(1)
            assert (await get(transport, peer)).status == 200
        assert peer.connections == 2

    async def test_an_unfinished_header_line_over_the_bound_is_a_protocol_error(
        self, new_transport: Callable[..., HttptoolsTransport], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A header line that never ends is refused once the head passes MAX_HEAD_BYTES, not held in memory until a
        deadline (httptools reports a header only when its line is whole)."""
        monkeypatch.setattr(httptools_backend, "MAX_HEAD_BYTES", 256)

        async def endless_header(exchange: Exchange) -> None:
            await exchange.send(b"HTTP/1.1 200 OK\r\nX-Endless: " + b"a" * 2048)
            await until_closed(exchange)

        async with RawPeer(endless_header) as peer:
            with pytest.raises(TransportProtocolError, match="head over 256 bytes"):
                await get(new_transport(), peer)  # PATIENT deadlines: a timeout here would take seconds
            await peer.wait_closed(1)

    @pytest.mark.parametrize(
        "reply",
        [
            b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"a" * 100,
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"  # two 50-byte chunks, together over the bound
            + b"32\r\n"
            + b"a" * 50
            + b"\r\n32\r\n"
            + b"b" * 50
            + b"\r\n0\r\n\r\n",
        ],
        ids=["content-length", "chunked"],
    )
    async def test_a_body_over_the_bound_is_a_protocol_error_and_closes(
        self, new_transport: Callable[..., HttptoolsTransport], monkeypatch: pytest.MonkeyPatch, reply: bytes
    ) -> None:
        """A body over MAX_BODY_BYTES is refused and its connection closed, not returned to the pool."""
        monkeypatch.setattr(httptools_backend, "MAX_BODY_BYTES", 64)
        async with RawPeer(first_connection(replying(reply))) as peer:
            transport = new_transport()
            with pytest.raises(TransportProtocolError, match="body over 64 bytes"):
                await get(transport, peer)
            await peer.wait_closed(1)
            assert (await get(transport, peer)).status == 200
        assert peer.connections == 2

    @pytest.mark.parametrize(
        "reply", [b"SSH-2.0-OpenSSH_9.6\r\n", b"HTTP/1.1 2OO OK\r\n\r\n", b"HTTP/1.1 200 OK\r\nBad Header\r\n\r\n"]
    )
    async def test_bytes_that_are_not_http_are_a_protocol_error(
        self, new_transport: Callable[..., HttptoolsTransport], reply: bytes
    ) -> None:
        """Another protocol, a malformed status line or a malformed header: a protocol error, the connection closed."""
        async with RawPeer(replying(reply)) as peer:
            with pytest.raises(TransportProtocolError, match="not an HTTP response"):
                await get(new_transport(), peer)
            await peer.wait_closed(1)


# -- 5. deadlines --------------------------------------------------------------------------------------------------


class TestDeadlines:
    async def test_a_head_then_silence_past_read_s_is_a_timeout(
        self, new_transport: Callable[..., HttptoolsTransport]
    ) -> None:
        """The read deadline counts from the last byte: a peer silent for read_s after the head is a timeout, long
        before the total deadline."""

        async def head_then_stall(exchange: Exchange) -> None:
            await exchange.send(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
            await until_closed(exchange)

        timeouts = Timeouts(connect_s=1.0, read_s=0.3, total_s=10.0)
        async with RawPeer(head_then_stall) as peer:
            loop = asyncio.get_running_loop()
            started = loop.time()
            with pytest.raises(TransportTimeout, match=r"no byte from the API for 0\.3 s"):
                await get(new_transport(timeouts), peer)
            elapsed = loop.time() - started
        assert timeouts.read_s <= elapsed < 5.0

    async def test_a_request_still_being_written_is_not_a_read_timeout(
        self, new_transport: Callable[..., HttptoolsTransport]
    ) -> None:
        """The read deadline waits for an answer, so it starts once the request is written: a peer slow to read a
        large body (more than the socket buffers hold, so part of it waits in the transport) is not a silent one."""
        timeouts = Timeouts(connect_s=1.0, read_s=0.3, total_s=20.0)
        body = b"x" * (32 * 1024 * 1024)
        received: list[int] = []

        async def slow_reader(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            head = await reader.readuntil(b"\r\n\r\n")
            await asyncio.sleep(3 * timeouts.read_s)  # a slow reader is the behaviour under test, not a wait
            received.append(len(await reader.readexactly(int(_CONTENT_LENGTH.search(head)[1]))))  # type: ignore[index]
            writer.write(OK)
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(slow_reader, "127.0.0.1", 0)
        try:
            port = server.sockets[0].getsockname()[1]
            response = await new_transport(timeouts).request("POST", f"http://127.0.0.1:{port}/v1/x", {}, body)
        finally:
            server.close()
            await server.wait_closed()
        assert (response.status, response.body, received) == (200, b"ok", [len(body)])

    async def test_a_trickle_that_never_ends_is_stopped_by_the_total_deadline(
        self, new_transport: Callable[..., HttptoolsTransport]
    ) -> None:
        """One byte well within every read_s keeps the read deadline away; total_s still ends the exchange."""

        async def trickle(exchange: Exchange) -> None:
            try:
                await exchange.send(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
                while True:
                    await exchange.send(b"a")
                    await asyncio.sleep(0.05)  # pacing the trickle, not waiting for an event
            except ConnectionError:
                pass  # the client gave up

        timeouts = Timeouts(connect_s=1.0, read_s=0.8, total_s=1.6)
        async with RawPeer(trickle) as peer:
            loop = asyncio.get_running_loop()
            started = loop.time()
            with pytest.raises(TransportTimeout, match="total deadline"):
                await get(new_transport(timeouts), peer)
            elapsed = loop.time() - started
            await peer.wait_closed(1)
        assert timeouts.total_s <= elapsed < timeouts.total_s + 4.0

    async def test_a_request_waiting_for_a_busy_connection_times_out_at_its_total_deadline(
        self, new_transport: Callable[..., HttptoolsTransport]
    ) -> None:
        """With max_connections=1 the wait for a connection counts against the total deadline: while the only
        connection stays busy on a stalled exchange, the waiting request is a timeout and is never sent.

        To keep the connection busy past the waiter's deadline, the busy exchange ("/y") must start after the waiter
        did: it is sent in the very step in which "/x" returns its connection, before the woken waiter runs."""
        gate = asyncio.Event()

        async def answer(exchange: Exchange) -> None:
            if exchange.target == b"/x":
                await gate.wait()
                await exchange.send(OK)
            else:
                await until_closed(exchange)

        timeouts = Timeouts(connect_s=1.0, read_s=5.0, total_s=0.8)
        async with RawPeer(answer) as peer:
            transport = new_transport(timeouts, max_connections=1)

            async def x_then_y() -> None:
                assert (await get(transport, peer, "/x")).status == 200
                with pytest.raises(TransportTimeout):
                    await get(transport, peer, "/y")

            holder = asyncio.create_task(x_then_y())
            await peer.next_request()  # "/x" holds the only connection
            loop = asyncio.get_running_loop()
            started = loop.time()
            waiting = asyncio.create_task(get(transport, peer, "/waiting"))  # it queues before "/x" is answered
            gate.set()
            with pytest.raises(TransportTimeout, match="no connection became free"):
                await waiting
            elapsed = loop.time() - started
            await holder
        assert timeouts.total_s * 0.99 <= elapsed < timeouts.total_s + 4.0
        assert peer.targets == [b"/x", b"/y"]

    async def test_after_a_timeout_the_connection_is_not_reused(
        self, new_transport: Callable[..., HttptoolsTransport]
    ) -> None:
        """A timed-out exchange may still be answered later: its connection is closed, the next request opens one."""
        async with RawPeer(first_connection(until_closed)) as peer:
            transport = new_transport(FAST)
            with pytest.raises(TransportTimeout):
                await get(transport, peer, "/stalled")
            await peer.wait_closed(1)
            assert (await get(transport, peer, "/next")).body == b"ok"
        assert (peer.connections, peer.targets) == (2, [b"/stalled", b"/next"])


# -- 6. cancellation -----------------------------------------------------------------------------------------------


class TestCancellation:
    async def test_a_request_cancelled_mid_exchange_gives_its_connection_back(
        self, new_transport: Callable[..., HttptoolsTransport]
    ) -> None:
        """A cancelled exchange's connection is closed and no longer counted: with max_connections=1 the next request
        still gets through (it would otherwise wait for a connection until its total deadline)."""
        async with RawPeer(first_connection(until_closed)) as peer:
            transport = new_transport(Timeouts(connect_s=1.0, read_s=3.0, total_s=3.0), max_connections=1)
            cancelled = asyncio.create_task(get(transport, peer, "/cancelled"))
            await peer.next_request()
            cancelled.cancel()
            with pytest.raises(asyncio.CancelledError):
                await cancelled
            await peer.wait_closed(1)
            assert (await get(transport, peer, "/next")).body == b"ok"
        assert peer.connections == 2

    async def test_a_waiter_cancelled_once_handed_a_connection_passes_it_on(
        self, new_transport: Callable[..., HttptoolsTransport]
    ) -> None:
        """A request woken for a freed connection but cancelled before it ran must wake the next waiter: the freed
        connection is not left idle while another request waits for one until its deadline."""
        gate = asyncio.Event()
        waiters: list[asyncio.Task[RawResponse]] = []

        async def answer(exchange: Exchange) -> None:
            if exchange.target == b"/first":
                await gate.wait()
            await exchange.send(OK)

        async with RawPeer(answer) as peer:
            transport = new_transport(Timeouts(connect_s=1.0, read_s=3.0, total_s=3.0), max_connections=1)

            async def first_then_cancel_the_woken_waiter() -> RawResponse:
                response = await get(transport, peer, "/first")  # returning the connection woke waiters[0] ...
                waiters[0].cancel()  # ... which has not run yet
                return response

            first = asyncio.create_task(first_then_cancel_the_woken_waiter())
            await peer.next_request()
            waiters += [asyncio.create_task(get(transport, peer, path)) for path in ("/cancelled", "/next")]
            gate.set()
            assert (await first).status == 200
            with pytest.raises(asyncio.CancelledError):
                await waiters[0]
            assert (await waiters[1]).status == 200
        assert (peer.connections, peer.targets) == (1, [b"/first", b"/next"])


# -- 7. idle connections -------------------------------------------------------------------------------------------


class TestIdleConnections:
    async def test_a_connection_the_peer_closed_while_idle_is_not_reused(
        self, new_transport: Callable[..., HttptoolsTransport]
    ) -> None:
        """A server's keep-alive timeout closing a pooled connection makes the next request open a new one instead of
        failing on the dead one."""

        async def answer_then_close(exchange: Exchange) -> None:
            await exchange.send(OK)
            exchange.writer.write_eof()  # the peer's side ends; the serving loop then sees the client's close

        async with RawPeer(first_connection(answer_then_close)) as peer:
            transport = new_transport()
            assert (await get(transport, peer, "/1")).body == b"ok"
            await peer.wait_closed(1)  # the client noticed, and closed its side too
            assert (await get(transport, peer, "/2")).body == b"ok"
        assert (peer.connections, peer.targets) == (2, [b"/1", b"/2"])

    async def test_a_connection_idle_longer_than_idle_s_is_replaced(
        self, new_transport: Callable[..., HttptoolsTransport], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A pooled connection idle past IDLE_S is closed when next wanted and a new one opened in its place."""
        monkeypatch.setattr(httptools_backend, "IDLE_S", 0.05)
        async with RawPeer(replying(OK)) as peer:
            transport = new_transport()
            assert (await get(transport, peer, "/1")).body == b"ok"
            await asyncio.sleep(0.1)  # loop time passes IDLE_S: the connection has been idle that long
            assert (await get(transport, peer, "/2")).body == b"ok"
            await peer.wait_closed(1)
        assert peer.connections == 2


# -- 8. TLS --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SelfSigned:
    """A self-signed certificate for 127.0.0.1: its PEM (for a client to trust) and a server context serving it."""

    pem: str
    server: ssl.SSLContext


@pytest.fixture
def self_signed(tmp_path: Path) -> SelfSigned:
    """A fresh self-signed certificate for 127.0.0.1 and localhost, made with `cryptography` (a dev dependency)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "httptools backend test")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.IPv4Address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    pem = certificate.public_bytes(serialization.Encoding.PEM)
    (tmp_path / "cert.pem").write_bytes(pem)
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    return SelfSigned(pem.decode("ascii"), server)


class TestTls:
    async def test_a_trusted_certificate_carries_the_request(
        self, new_transport: Callable[..., HttptoolsTransport], self_signed: SelfSigned
    ) -> None:
        """With a context trusting the server's certificate, the request goes over TLS with the URL's Host."""
        trusting = ssl.create_default_context(cadata=self_signed.pem)
        async with RawPeer(replying(OK), tls=self_signed.server) as peer:
            response = await new_transport(tls=trusting).request("GET", peer.url("/secure", "https"), {}, None)
        assert (response.status, response.body) == (200, b"ok")
        assert peer.heads == [f"GET /secure HTTP/1.1\r\nHost: 127.0.0.1:{peer.port}\r\n\r\n".encode()]

    async def test_an_untrusted_certificate_is_a_connect_error_and_nothing_is_sent(
        self, new_transport: Callable[..., HttptoolsTransport], self_signed: SelfSigned
    ) -> None:
        """With the default context (the system's trust store) a self-signed certificate is refused at the handshake:
        a connect error, and the request never reaches the server."""
        async with RawPeer(replying(OK), tls=self_signed.server) as peer:
            with pytest.raises(TransportConnectError) as refused:
                await new_transport().request("GET", peer.url("/secure", "https"), {}, None)
        assert isinstance(refused.value.__cause__, ssl.SSLCertVerificationError)
        assert peer.heads == []


# -- 9. closing ----------------------------------------------------------------------------------------------------


class TestAclose:
    async def test_aclose_closes_idle_connections(self, new_transport: Callable[..., HttptoolsTransport]) -> None:
        """aclose() ends every pooled connection: the peer reads an end of file."""
        async with RawPeer(replying(OK)) as peer:
            transport = new_transport()
            await get(transport, peer, "/1")
            await get(transport, peer, "/2")
            await transport.aclose()
            await peer.wait_closed(1)
        assert (peer.connections, peer.eof) == (1, [True])

    async def test_a_connection_busy_during_aclose_is_closed_when_its_exchange_ends(
        self, new_transport: Callable[..., HttptoolsTransport]
    ) -> None:
        """A request in flight during aclose() completes, then its connection is closed rather than pooled again."""
        gate = asyncio.Event()

        async def answer(exchange: Exchange) -> None:
            await gate.wait()
            await exchange.send(OK)

        async with RawPeer(answer) as peer:
            transport = new_transport()
            in_flight = asyncio.create_task(get(transport, peer))
            await peer.next_request()
            await transport.aclose()
            gate.set()
            assert (await in_flight).body == b"ok"
            await peer.wait_closed(1)


# -- 10. URL handling ----------------------------------------------------------------------------------------------


class TestUrls:
    async def test_the_host_header_is_the_urls_netloc(self, new_transport: Callable[..., HttptoolsTransport]) -> None:
        """Host is the netloc exactly as written, port included; a URL without a path asks for "/"."""
        async with RawPeer(replying(OK)) as peer:
            transport = new_transport()
            await transport.request("GET", f"http://127.0.0.1:{peer.port}", {}, None)
            await transport.request("GET", f"http://127.0.0.1:{peer.port}/v1/x?y=1", {}, None)
        assert peer.heads == [
            f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{peer.port}\r\n\r\n".encode(),
            f"GET /v1/x?y=1 HTTP/1.1\r\nHost: 127.0.0.1:{peer.port}\r\n\r\n".encode(),
        ]

    async def test_a_query_without_a_path_is_refused(self, new_transport: Callable[..., HttptoolsTransport]) -> None:
        """``http://host?x`` has no path to put the query after: refused, rather than sent as "/" without it."""
        async with RawPeer(replying(OK)) as peer:
            with pytest.raises(ValueError, match="needs a path"):
                await new_transport().request("GET", f"http://127.0.0.1:{peer.port}?x=1", {}, None)
        assert peer.connections == 0

    @pytest.mark.parametrize(
        "url",
        [
            "http://user:secret@127.0.0.1:{port}/p",
            "http://user@127.0.0.1:{port}/p",
            "http://:secret@127.0.0.1:{port}/p",
            "ftp://127.0.0.1:{port}/p",
            "ws://127.0.0.1:{port}/p",
            "//127.0.0.1:{port}/p",
            "127.0.0.1:{port}/p",
        ],
    )
    async def test_credentials_or_another_scheme_are_refused(
        self, new_transport: Callable[..., HttptoolsTransport], url: str
    ) -> None:
        """Only http(s)://host[:port] is accepted: credentials in the URL or another scheme are a caller's bug."""
        async with RawPeer(replying(OK)) as peer:
            with pytest.raises(ValueError, match="without credentials"):
                await new_transport().request("GET", url.format(port=peer.port), {}, None)
        assert peer.connections == 0


class TestOnUvloop:
    """The worker runs on uvloop, whose transports differ from asyncio's in detail (write buffering, close and abort
    ordering): the exchanges that lean on them, once more on uvloop."""

    def test_keep_alive_chunked_bodies_deadlines_and_resets_on_uvloop(self) -> None:
        uvloop = pytest.importorskip("uvloop")

        async def chunked(exchange: Exchange) -> None:
            await exchange.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", b"2\r\nok\r\n", b"0\r\n\r\n")

        async def stall_then_reset(exchange: Exchange) -> None:
            if exchange.target == b"/stall":
                await exchange.send(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
                await until_closed(exchange)
            else:
                exchange.writer.transport.abort()

        async def scenario() -> tuple[list[int], int, type[BaseException], type[BaseException]]:
            transport = HttptoolsTransport(FAST, max_connections=2)
            try:
                async with RawPeer(chunked) as peer:
                    statuses = [(await get(transport, peer)).status for _ in range(3)]
                    reused = peer.connections
                async with RawPeer(stall_then_reset) as peer:
                    errors = []
                    for path in ("/stall", "/reset"):
                        with pytest.raises((TransportTimeout, TransportConnectionReset)) as caught:
                            await get(transport, peer, path)
                        errors.append(caught.type)
            finally:
                await transport.aclose()
            return statuses, reused, errors[0], errors[1]

        statuses, connections, stalled, reset = uvloop.run(scenario())
        assert statuses == [200, 200, 200]
        assert connections == 1  # one keep-alive connection carried the three
        assert (stalled, reset) == (TransportTimeout, TransportConnectionReset)
