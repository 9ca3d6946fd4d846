"""MicsClient over a scripted transport: URLs, headers, outcomes and refusals."""

import pytest

from worker import __version__
from worker.mics.auth import ApiToken
from worker.mics.client import MicsClient
from worker.mics.errors import OutcomeKind
from worker.mics.selectors import UserAccount, UserAgentId, UserPointUuid
from worker.mics.transport import RawResponse, TransportConnectionReset, TransportTimeout

from .fakes import ScriptedTransport

BASE = "https://api.example.test"
SECRET = "api:unit-test-secret-1"
UUID = "0f8fad5b-d9cb-469f-a165-70867728950e"
ACTIVITY = b'{"$type":"SITE_VISIT","$session_status":"NO_SESSION","$events":[]}'


def client_with(transport: ScriptedTransport, base_url: str = BASE) -> MicsClient:
    return MicsClient(transport, base_url, ApiToken(SECRET))


class TestBaseUrl:
    @pytest.mark.parametrize(
        ("base_url", "expected"),
        [
            ("https://api.example.test", "https://api.example.test/v1/datamarts/1/user_activities"),
            ("https://api.example.test/", "https://api.example.test/v1/datamarts/1/user_activities"),
            ("http://127.0.0.1:8080/mics//", "http://127.0.0.1:8080/mics/v1/datamarts/1/user_activities"),
            ("http://[::1]:9/a/b", "http://[::1]:9/a/b/v1/datamarts/1/user_activities"),
        ],
    )
    async def test_accepted_base_urls(self, base_url: str, expected: str) -> None:
        """Trailing slashes, ports, IPv6 hosts and a base path are honoured."""
        transport = ScriptedTransport()
        await client_with(transport, base_url).post_activity(1, ACTIVITY)
        assert transport.sent[0].url == expected

    @pytest.mark.parametrize(
        "base_url",
        [
            "ftp://api.example.test",
            "api.example.test",
            "https://",
            "https://api.example.test?x=1",
            "https://api.example.test/#frag",
            "https://user:pw@api.example.test",
            "https://api.example.test:99999",
            "https://api.example.test/a/../b",
            "https://api.exämple.test",
            "https://api.example.test /x",
            "https://api.example.test\r\n",
        ],
    )
    def test_rejected_base_urls(self, base_url: str) -> None:
        """Non-HTTP schemes, missing hosts, queries, fragments, credentials, bad ports and dot-segments fail early."""
        with pytest.raises(ValueError, match="base URL"):
            client_with(ScriptedTransport(), base_url)


class TestEndpoints:
    async def test_post_activity(self) -> None:
        """An activity is POSTed to the datamart's user_activities with its bytes untouched."""
        transport = ScriptedTransport()
        result = await client_with(transport).post_activity("1509", ACTIVITY)
        sent = transport.sent[0]
        assert (sent.method, sent.url) == ("POST", f"{BASE}/v1/datamarts/1509/user_activities")
        assert sent.body is ACTIVITY
        assert result.kind is OutcomeKind.SUCCESS

    async def test_put_profile(self) -> None:
        """A profile is PUT under the user point, compartment and account segments."""
        transport = ScriptedTransport()
        await client_with(transport).put_profile(7, UserAgentId("vec:42"), 12, "acc/1", b"{}")
        sent = transport.sent[0]
        assert sent.method == "PUT"
        assert sent.url == (
            f"{BASE}/v1/datamarts/7/user_points/user_agent_id=vec%3A42"
            "/user_profiles/compartment_id=12/user_account_id=acc%2F1"
        )

    async def test_put_and_get_choice_and_change_log(self) -> None:
        """Choices are PUT and read at processing_id=<p>; the change log lives below it."""
        transport = ScriptedTransport()
        client = client_with(transport)
        selector = UserAccount(3, "u")
        await client.put_choice(7, selector, "p.1", b"{}")
        await client.get_choice(7, selector, "p.1")
        await client.get_choice_change_log(7, selector, "p.1")
        user_point = f"{BASE}/v1/datamarts/7/user_points/compartment_id=3,user_account_id=u"
        choice = f"{user_point}/user_choices/processing_id=p%2E1"
        assert [(s.method, s.url, s.body) for s in transport.sent] == [
            ("PUT", choice, b"{}"),
            ("GET", choice, None),
            ("GET", choice + "/change_log", None),
        ]

    async def test_writes_can_skip_the_answer_body_while_reads_keep_it(self) -> None:
        """Without decode_write_answers a write's result has no data (body unread); a read's keeps the data."""
        answer = RawResponse(200, {}, b'{"status":"ok","data":{"id":"c1"}}')
        transport = ScriptedTransport(script=[answer])
        client = MicsClient(transport, BASE, ApiToken(SECRET), decode_write_answers=False)
        written = await client.put_choice(7, UserAccount(3, "u"), "p", b"{}")
        read = await client.get_choice(7, UserAccount(3, "u"), "p")
        assert (written.kind, written.data) == (OutcomeKind.SUCCESS, None)
        assert (read.kind, read.data) == (OutcomeKind.SUCCESS, {"id": "c1"})


class TestHeaders:
    async def test_write_headers(self) -> None:
        """Requests with a body carry the raw token, JSON content type and accept, and the worker's user agent."""
        transport = ScriptedTransport()
        await client_with(transport).post_activity(1, ACTIVITY)
        assert transport.sent[0].headers == {
            "Authorization": SECRET,
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": f"mics-event-worker/{__version__}",
        }

    async def test_read_headers_have_no_content_type(self) -> None:
        """A GET carries no Content-Type."""
        transport = ScriptedTransport()
        await client_with(transport).get_choice(1, UserPointUuid(UUID), 2)
        assert "Content-Type" not in transport.sent[0].headers
        assert transport.sent[0].headers["Authorization"] == SECRET


class TestOutcomes:
    async def test_http_outcome_is_classified(self) -> None:
        """A 429 with Retry-After in HTTP-date form comes back retryable with a delay."""
        transport = ScriptedTransport([RawResponse(429, {"retry-after": "Fri, 01 Jan 2100 00:00:00 GMT"}, b"")])
        result = await client_with(transport).post_activity(1, ACTIVITY)
        assert (result.kind, result.status, result.reason) == (OutcomeKind.RETRYABLE, 429, "http_429")
        assert result.retry_after_s is not None
        assert result.retry_after_s > 0

    @pytest.mark.parametrize(
        ("error", "reason"), [(TransportTimeout(), "timeout"), (TransportConnectionReset(), "connection_reset")]
    )
    async def test_transport_errors_become_retryable_results(self, error: Exception, reason: str) -> None:
        """A transport failure is returned as a retryable result, never raised."""
        transport = ScriptedTransport([error])  # type: ignore[list-item]
        result = await client_with(transport).put_choice(1, UserPointUuid(UUID), 2, b"{}")
        assert (result.kind, result.status, result.reason) == (OutcomeKind.RETRYABLE, None, reason)

    async def test_413_is_permanent(self) -> None:
        """Payload too large is permanent: the same body would be refused again."""
        transport = ScriptedTransport([RawResponse(413, {}, b'{"status":"error","error":"too large"}')])
        result = await client_with(transport).post_activity(1, ACTIVITY)
        assert (result.kind, result.error_message) == (OutcomeKind.PERMANENT, "too large")

    async def test_token_echoed_in_an_error_body_is_masked(self) -> None:
        """Should the API echo the token in an error, the result carries *** instead."""
        body = b'{"status":"error","error":"bad token ' + SECRET.encode() + b'","error_code":"UNAUTHORIZED"}'
        transport = ScriptedTransport([RawResponse(401, {}, body)])
        result = await client_with(transport).post_activity(1, ACTIVITY)
        assert result.kind is OutcomeKind.AUTH
        assert result.error_message == "bad token ***"
        assert SECRET not in repr(result)

    @pytest.mark.parametrize("datamart_id", ["", -1, True, ["1"], {"id": 1}, None, 1.5])
    async def test_invalid_path_values_are_refused_unsent(self, datamart_id: object) -> None:
        """A value that cannot be a path segment gives a permanent result and no request."""
        transport = ScriptedTransport()
        result = await client_with(transport).post_activity(datamart_id, ACTIVITY)  # type: ignore[arg-type]
        assert (result.kind, result.status, result.reason) == (OutcomeKind.PERMANENT, None, "invalid_path_value")
        assert transport.sent == []

    async def test_invalid_ids_beyond_the_datamart_are_refused_unsent(self) -> None:
        """Empty compartment, account and processing ids are refused on every endpoint."""
        transport = ScriptedTransport()
        client = client_with(transport)
        selector = UserPointUuid(UUID)
        results = [
            await client.put_profile(1, selector, "", "u", b"{}"),
            await client.put_profile(1, selector, 1, "", b"{}"),
            await client.put_choice(1, selector, "", b"{}"),
            await client.get_choice(1, selector, ""),
            await client.get_choice_change_log(1, selector, ""),
        ]
        assert {result.reason for result in results} == {"invalid_path_value"}
        assert transport.sent == []


class TestProbeCredentials:
    async def test_not_found_means_the_token_was_accepted(self) -> None:
        """A 404 on the probe is a success: the API authenticated the request."""
        body = b'{"status":"error","error":"Resource Not Found","error_code":"NOT_FOUND"}'
        transport = ScriptedTransport([RawResponse(404, {}, body)])
        result = await client_with(transport).probe_credentials(1509)
        assert (result.kind, result.status, result.error_message) == (OutcomeKind.SUCCESS, 404, None)
        assert transport.sent[0].method == "GET"
        assert "/v1/datamarts/1509/user_points/" in transport.sent[0].url

    async def test_rejected_token_is_auth(self) -> None:
        """A 401 on the probe is AUTH."""
        transport = ScriptedTransport([RawResponse(401, {}, b"")])
        assert (await client_with(transport).probe_credentials(1)).kind is OutcomeKind.AUTH

    async def test_server_failure_stays_retryable(self) -> None:
        """A 503 on the probe says nothing about the token: retryable."""
        transport = ScriptedTransport([RawResponse(503, {}, b"")])
        assert (await client_with(transport).probe_credentials(1)).kind is OutcomeKind.RETRYABLE


class TestLifecycle:
    async def test_context_manager_closes_the_transport(self) -> None:
        """Leaving ``async with`` closes the transport."""
        transport = ScriptedTransport()
        async with client_with(transport) as client:
            await client.post_activity(1, ACTIVITY)
        assert transport.closed

    def test_repr_hides_the_token(self) -> None:
        """The client's repr names its target, never the token."""
        text = repr(client_with(ScriptedTransport()))
        assert SECRET not in text
        assert BASE in text
