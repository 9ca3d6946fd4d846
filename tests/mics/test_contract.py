"""The contract both HTTP backends must honour, over real HTTP against the sandbox.

Every endpoint meets every outcome class the API can produce: success, 400 with an error body, 401,
404, 413, 429 with Retry-After, 500, 503, a reset connection and a hang past the read timeout; plus
a refused connection and the raw path the server receives for hostile values.
"""

import asyncio
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from urllib.parse import urlsplit

import pytest
from aiohttp import web

from tests.support.sandbox_process import SandboxProcess
from worker.mics.auth import ApiToken
from worker.mics.client import ApiPaths, MicsClient
from worker.mics.errors import ApiResult, OutcomeKind
from worker.mics.selectors import UserAccount, UserAgentId, UserPointUuid
from worker.mics.transport import BACKENDS, Timeouts, make_transport

pytestmark = pytest.mark.integration

FAST = Timeouts(connect_s=1.0, read_s=0.5, total_s=3.0)
DATAMART = 1509
SELECTOR = UserAgentId("vec:289388396")
PROCESSING = "4242"
ACTIVITY = (
    b'{"$ts":1764000000000,"$type":"SITE_VISIT","$session_status":"NO_SESSION","$unique_key":"contract-1",'
    b'"$user_identifiers":[{"$type":"USER_AGENT","$user_agent_id":"vec:289388396"}],'
    b'"$events":[{"$ts":1764000000000,"$event_name":"$page_view","$properties":{"url":"/home"}}]}'
)
PROFILE = b'{"plan":"gold","age":41}'
CHOICE = b'{"$processing_id":"4242","$choice_ts":1764000000000,"$choice_acceptance_value":true}'
OVERSIZED = b'{"pad":"' + b"x" * (1024 * 1024) + b'"}'

Call = Callable[[MicsClient], Awaitable[ApiResult]]
ENDPOINTS: dict[str, Call] = {
    "activity": lambda client: client.post_activity(DATAMART, ACTIVITY),
    "profile": lambda client: client.put_profile(DATAMART, SELECTOR, 7, "acc-1", PROFILE),
    "choice_put": lambda client: client.put_choice(DATAMART, SELECTOR, PROCESSING, CHOICE),
    "choice_get": lambda client: client.get_choice(DATAMART, SELECTOR, PROCESSING),
    "choice_change_log": lambda client: client.get_choice_change_log(DATAMART, SELECTOR, PROCESSING),
}
WRITES: dict[str, Callable[[MicsClient, bytes], Awaitable[ApiResult]]] = {
    "activity": lambda client, body: client.post_activity(DATAMART, body),
    "profile": lambda client, body: client.put_profile(DATAMART, SELECTOR, 7, "acc-1", body),
    "choice_put": lambda client, body: client.put_choice(DATAMART, SELECTOR, PROCESSING, body),
}
READS = ["choice_get", "choice_change_log"]
INVALID_BODIES = {
    "activity": b'{"$type":"SITE_VISIT","$session_status":"NO_SESSION"}',
    "profile": b'{"plan":',
    "choice_put": b'{"$processing_id":"4242"}',
}


@pytest.fixture(params=BACKENDS)
async def client(request: pytest.FixtureRequest, sandbox: SandboxProcess) -> AsyncIterator[MicsClient]:
    """A client on each backend, pointed at the sandbox with its current token."""
    transport = make_transport(request.param, FAST, max_connections=4)
    async with MicsClient(transport, sandbox.base_url, ApiToken(sandbox.token)) as mics:
        yield mics


class TestSuccess:
    @pytest.mark.parametrize("endpoint", list(WRITES))
    async def test_writes_are_stored(self, client: MicsClient, sandbox: SandboxProcess, endpoint: str) -> None:
        """A valid write answers 2xx, carries the envelope's data, and the sandbox stored the body."""
        result = await ENDPOINTS[endpoint](client)
        assert (result.kind, result.status, result.reason) == (OutcomeKind.SUCCESS, 200, "ok")
        assert isinstance(result.data, dict)
        stored = sandbox.documents()
        kind = {"activity": "activities", "profile": "profiles", "choice_put": "choices"}[endpoint]
        assert len(stored[kind]) == 1
        assert stored[kind][0]["datamart_id"] == str(DATAMART)

    async def test_choice_reads(self, client: MicsClient) -> None:
        """After two PUTs the choice reads back and its change log holds the earlier state."""
        await ENDPOINTS["choice_put"](client)
        await ENDPOINTS["choice_put"](client)
        current = await ENDPOINTS["choice_get"](client)
        history = await ENDPOINTS["choice_change_log"](client)
        assert (current.kind, history.kind) == (OutcomeKind.SUCCESS, OutcomeKind.SUCCESS)
        assert isinstance(current.data, dict)
        assert current.data["$choice_acceptance_value"] is True
        assert isinstance(history.data, list)
        assert len(history.data) == 1

    async def test_probe_with_a_valid_token(self, client: MicsClient) -> None:
        """The credentials probe succeeds while the token is accepted."""
        assert (await client.probe_credentials(DATAMART)).kind is OutcomeKind.SUCCESS


class TestRejections:
    @pytest.mark.parametrize("endpoint", list(WRITES))
    async def test_bad_request_is_permanent_with_the_error_body(self, client: MicsClient, endpoint: str) -> None:
        """A 400 is permanent and reports the API's error message, code and id."""
        result = await WRITES[endpoint](client, INVALID_BODIES[endpoint])
        assert (result.kind, result.status, result.reason) == (OutcomeKind.PERMANENT, 400, "http_400")
        assert result.error_code == "BAD_REQUEST"
        assert result.error_message
        assert result.error_id

    @pytest.mark.parametrize("endpoint", list(WRITES))
    async def test_payload_too_large_is_permanent(self, client: MicsClient, endpoint: str) -> None:
        """A body over the API's size cap gets a permanent 413."""
        result = await WRITES[endpoint](client, OVERSIZED)
        assert (result.kind, result.status) == (OutcomeKind.PERMANENT, 413)

    @pytest.mark.parametrize("endpoint", READS)
    async def test_unknown_choice_is_not_found(self, client: MicsClient, endpoint: str) -> None:
        """Reading a choice never written is a permanent 404 "Resource Not Found"."""
        result = await ENDPOINTS[endpoint](client)
        assert (result.kind, result.status) == (OutcomeKind.PERMANENT, 404)
        assert result.error_message is not None
        assert "Resource Not Found" in result.error_message

    @pytest.mark.parametrize("endpoint", list(ENDPOINTS))
    async def test_revoked_token_is_auth(self, client: MicsClient, sandbox: SandboxProcess, endpoint: str) -> None:
        """Once the token is revoked every endpoint answers AUTH, and so does the probe."""
        sandbox.set_token("a-rotated-token")
        result = await ENDPOINTS[endpoint](client)
        assert (result.kind, result.status, result.error_code) == (OutcomeKind.AUTH, 401, "UNAUTHORIZED")
        assert (await client.probe_credentials(DATAMART)).kind is OutcomeKind.AUTH


@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
class TestFaults:
    async def test_rate_limited_with_retry_after(
        self, client: MicsClient, sandbox: SandboxProcess, endpoint: str
    ) -> None:
        """A 429 is retryable and carries the Retry-After delay in seconds."""
        sandbox.set_faults(p429=1.0, retry_after_s=3)
        result = await ENDPOINTS[endpoint](client)
        assert (result.kind, result.status, result.retry_after_s) == (OutcomeKind.RETRYABLE, 429, 3.0)

    @pytest.mark.parametrize(("fault", "status"), [("p500", 500), ("p503", 503)])
    async def test_server_errors_are_retryable(
        self, client: MicsClient, sandbox: SandboxProcess, endpoint: str, fault: str, status: int
    ) -> None:
        """500 and 503 are retryable."""
        sandbox.set_faults(**{fault: 1.0})
        result = await ENDPOINTS[endpoint](client)
        assert (result.kind, result.status, result.reason) == (OutcomeKind.RETRYABLE, status, f"http_{status}")

    async def test_connection_reset_is_retryable(
        self, client: MicsClient, sandbox: SandboxProcess, endpoint: str
    ) -> None:
        """A connection reset by the server is a retryable transport failure."""
        sandbox.set_faults(p_reset=1.0)
        result = await ENDPOINTS[endpoint](client)
        assert (result.kind, result.status, result.reason) == (OutcomeKind.RETRYABLE, None, "connection_reset")

    async def test_hang_past_the_read_timeout(self, client: MicsClient, sandbox: SandboxProcess, endpoint: str) -> None:
        """A server that never answers ends in a retryable timeout."""
        sandbox.set_faults(p_hang=1.0, hang_s=5)
        result = await ENDPOINTS[endpoint](client)
        assert (result.kind, result.status, result.reason) == (OutcomeKind.RETRYABLE, None, "timeout")


@pytest.mark.parametrize("backend", BACKENDS)
async def test_refused_connection_is_a_connect_error(backend: str) -> None:
    """Nothing listening on the port gives a retryable connect_error."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    transport = make_transport(backend, FAST, max_connections=1)
    async with MicsClient(transport, f"http://127.0.0.1:{port}", ApiToken("t0ken")) as mics:
        result = await mics.post_activity(DATAMART, ACTIVITY)
    assert (result.kind, result.status, result.reason) == (OutcomeKind.RETRYABLE, None, "connect_error")


@pytest.mark.parametrize("backend", BACKENDS)
async def test_redirects_are_not_followed(backend: str) -> None:
    """A 3xx is returned as a halt (the configured base is wrong); the client never goes where it points."""
    followed: list[str] = []

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPTemporaryRedirect("/elsewhere")

    async def elsewhere(request: web.Request) -> web.Response:
        followed.append(request.method)
        return web.json_response({"status": "ok", "data": {}})

    app = web.Application()
    app.router.add_post("/v1/datamarts/{dm}/user_activities", redirect)
    app.router.add_route("*", "/elsewhere", elsewhere)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        async with MicsClient(
            make_transport(backend, FAST, max_connections=1), f"http://127.0.0.1:{port}", ApiToken("t0ken")
        ) as mics:
            result = await mics.post_activity(DATAMART, ACTIVITY)
    finally:
        await runner.cleanup()
    assert (result.kind, result.status) == (OutcomeKind.HALT, 307)
    assert followed == []


class TestRawPathAtTheServer:
    NASTY = ("a/b", "..", ".", "x?y=1#z", "%2F%2e%2E", "c,d=e", "é ü\r\n", "../../v1/other")

    async def test_profile_path_arrives_as_built(self, client: MicsClient, sandbox: SandboxProcess) -> None:
        """Hostile ids reach the server in exactly the encoded path built, and decode back to themselves."""
        paths = ApiPaths(sandbox.base_url)
        for index, nasty in enumerate(self.NASTY):
            # A datamart is a whole segment, where "." and ".." are refused (below); other ids carry a prefix.
            datamart = "dm" + nasty if nasty in (".", "..") else nasty
            selector = UserAccount(nasty, nasty + "!")
            result = await client.put_profile(datamart, selector, nasty, nasty, PROFILE)
            assert result.kind is OutcomeKind.SUCCESS, (nasty, result)
            received = sandbox.requests()[-1]
            expected = urlsplit(paths.profile(datamart, selector, nasty, nasty))
            assert (received["raw_path"], received["query"]) == (expected.path, "")
            assert received["host"] == expected.netloc
            stored = sandbox.documents()["profiles"][index]
            assert (stored["datamart_id"], stored["compartment_id"], stored["user_account_id"]) == (
                datamart,
                nasty,
                nasty,
            )
            assert stored["user_point"] == {"compartment_id": nasty, "user_account_id": nasty + "!"}

    async def test_a_dot_segment_datamart_is_refused_and_never_sent(
        self, client: MicsClient, sandbox: SandboxProcess
    ) -> None:
        """A datamart id of "." or ".." is a permanent refusal made before any request leaves the client."""
        for dots in (".", ".."):
            result = await client.post_activity(dots, b"{}")
            assert (result.kind, result.status, result.reason) == (OutcomeKind.PERMANENT, None, "invalid_path_value")
        assert sandbox.requests() == []

    async def test_choice_path_arrives_as_built(self, client: MicsClient, sandbox: SandboxProcess) -> None:
        """A hostile processing id and a UUID selector reach the choice endpoint unaltered."""
        selector = UserPointUuid("0F8FAD5B-D9CB-469F-A165-70867728950E")
        nasty = "../p?#1"
        body = b'{"$processing_id":"../p?#1","$choice_ts":1764000000000}'
        assert (await client.put_choice(DATAMART, selector, nasty, body)).kind is OutcomeKind.SUCCESS
        assert (await client.get_choice_change_log(DATAMART, selector, nasty)).kind is OutcomeKind.SUCCESS
        expected = urlsplit(ApiPaths(sandbox.base_url).choice_change_log(DATAMART, selector, nasty))
        assert sandbox.requests()[-1]["raw_path"] == expected.path
        stored = sandbox.documents()["choices"][0]
        assert (stored["processing_id"], stored["user_point"]) == (nasty, selector.value)


class RawPeer:
    """A TCP server that reads one request head, answers ``reply`` raw, then resets the connection (RST)."""

    def __init__(self, reply: bytes) -> None:
        self._reply = reply
        self.requests = 0

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        self.requests += 1
        writer.write(self._reply)
        await writer.drain()
        writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()

    async def post(self, backend: str) -> ApiResult:
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        try:
            port = server.sockets[0].getsockname()[1]
            async with MicsClient(
                make_transport(backend, FAST, max_connections=1), f"http://127.0.0.1:{port}", ApiToken("t0ken")
            ) as mics:
                return await mics.post_activity(DATAMART, ACTIVITY)
        finally:
            server.close()
            await server.wait_closed()


@pytest.mark.parametrize("backend", BACKENDS)
async def test_reset_after_the_request_was_read_is_not_a_connect_error(backend: str) -> None:
    """A reset once the server has read the request is connection_reset: it may have been acted on."""
    peer = RawPeer(b"")
    result = await peer.post(backend)
    assert peer.requests == 1
    assert (result.kind, result.status, result.reason) == (OutcomeKind.RETRYABLE, None, "connection_reset")


@pytest.mark.parametrize("backend", BACKENDS)
async def test_reset_part_way_through_the_body_is_a_connection_reset(backend: str) -> None:
    """A response cut off after its head, inside a declared body, is a retryable connection_reset."""
    peer = RawPeer(b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"sta')
    result = await peer.post(backend)
    assert (result.kind, result.status, result.reason) == (OutcomeKind.RETRYABLE, None, "connection_reset")


# httpx reports an unreadable status line as its RemoteProtocolError, which it also raises for a peer that
# closed without answering; its backend maps that type to connection_reset, so it is not listed here.
@pytest.mark.parametrize("backend", ["aiohttp", "httptools", "pyreqwest"])
async def test_an_answer_that_is_not_http_is_a_protocol_error(backend: str) -> None:
    """Bytes that are not an HTTP response are a retryable protocol_error."""
    result = await RawPeer(b"NOT HTTP AT ALL\r\n\r\n").post(backend)
    assert (result.kind, result.status, result.reason) == (OutcomeKind.RETRYABLE, None, "protocol_error")
