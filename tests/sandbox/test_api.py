"""The Tracking API endpoints over real HTTP: answers, stored documents, and every refusal."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import httpx
import pytest

from tests.sandbox.conftest import ACTIVITY, ACTIVITY_PATH, PROFILE, PROFILE_PATH, choice, choice_path, enc
from tests.support.sandbox_process import SandboxProcess

pytestmark = pytest.mark.integration


def _read_head(sock: socket.socket) -> bytes:
    """Read from `sock` up to the end of one response head."""
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = sock.recv(65536)
        if not chunk:
            break
        received += chunk
    return received


class TestActivities:
    def test_post_stores_the_activity(self, api: httpx.Client, sandbox: SandboxProcess) -> None:
        """A valid activity is answered 200 with an id and the activity, and is visible to the admin API."""
        response = api.post(ACTIVITY_PATH, json=ACTIVITY)
        assert response.status_code == 200
        answer = response.json()
        assert answer["status"] == "ok"
        assert answer["data"]["activity"] == ACTIVITY
        assert answer["data"]["id"]
        assert sandbox.documents()["activities"] == [{"datamart_id": "1", "body": ACTIVITY}]
        assert sandbox.stats()["stored"]["activities"] == 1

    def test_schema_violation_is_400_naming_the_json_path(self, api: httpx.Client, sandbox: SandboxProcess) -> None:
        """An activity whose event lacks `$ts` is refused 400 with the event's path, and nothing is stored."""
        broken = {**ACTIVITY, "$events": [{"$event_name": "$page_view", "$properties": {}}]}
        response = api.post(ACTIVITY_PATH, json=broken)
        assert response.status_code == 400
        body = response.json()
        assert body["status"] == "error"
        assert body["error_code"] == "BAD_REQUEST"
        assert "$.$events[0].$ts" in body["error"]
        assert sandbox.stats()["stored"]["activities"] == 0

    def test_invalid_json_is_400(self, api: httpx.Client) -> None:
        """A body that is not JSON is refused 400."""
        response = api.post(ACTIVITY_PATH, content=b'{"$type":', headers={"Content-Type": "application/json"})
        assert response.status_code == 400
        assert "Invalid JSON at $" in response.json()["error"]

    def test_body_that_is_not_an_object_is_400(self, api: httpx.Client) -> None:
        """A JSON array is not an activity."""
        response = api.post(ACTIVITY_PATH, json=[ACTIVITY])
        assert response.status_code == 400

    def test_wrong_content_type_is_415(self, api: httpx.Client) -> None:
        """A JSON body sent as text/plain is refused 415."""
        response = api.post(ACTIVITY_PATH, content=b"{}", headers={"Content-Type": "text/plain"})
        assert response.status_code == 415
        assert response.json()["error_code"] == "UNSUPPORTED_MEDIA_TYPE"

    def test_content_type_parameters_are_accepted(self, api: httpx.Client) -> None:
        """`application/json; charset=utf-8` is JSON."""
        response = api.post(
            ACTIVITY_PATH,
            content=httpx.Request("POST", "http://x", json=ACTIVITY).content,
            headers={"Content-Type": "application/json; charset=utf-8"},
        )
        assert response.status_code == 200

    def test_body_over_one_mebibyte_is_413(self, api: httpx.Client) -> None:
        """A body over the 1 MiB cap is refused 413 (declared length)."""
        big = {**ACTIVITY, "padding": "x" * (1024 * 1024)}
        response = api.post(ACTIVITY_PATH, json=big)
        assert response.status_code == 413
        assert response.json()["error_code"] == "PAYLOAD_TOO_LARGE"

    def test_streamed_body_over_the_cap_is_413(self, api: httpx.Client) -> None:
        """A chunked body without a length is cut off at the cap as well."""

        def chunks() -> Iterator[bytes]:
            for _ in range(20):
                yield b"x" * 65536

        response = api.post(ACTIVITY_PATH, content=chunks(), headers={"Content-Type": "application/json"})
        assert response.status_code == 413

    def test_expect_100_continue_is_honoured(self, sandbox: SandboxProcess) -> None:
        """A client sending `Expect: 100-continue` (as curl does) is told to go on, then answered."""
        body = json.dumps(ACTIVITY).encode()
        host, port = sandbox.base_url.removeprefix("http://").rsplit(":", 1)
        head = (
            f"POST {ACTIVITY_PATH} HTTP/1.1\r\nHost: {host}\r\nAuthorization: {sandbox.token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nExpect: 100-continue\r\n\r\n"
        )
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(head.encode())
            assert _read_head(sock).startswith(b"HTTP/1.1 100 Continue\r\n")
            sock.sendall(body)
            assert _read_head(sock).startswith(b"HTTP/1.1 200 OK\r\n")
        assert sandbox.stats()["stored"]["activities"] == 1

    def test_query_string_is_ignored_and_journaled(self, api: httpx.Client, sandbox: SandboxProcess) -> None:
        """`?processing_pipeline=false` does not change the route and is kept in the request journal."""
        response = api.post(ACTIVITY_PATH + "?processing_pipeline=false", json=ACTIVITY)
        assert response.status_code == 200
        [entry] = sandbox.requests()
        assert entry["raw_path"] == ACTIVITY_PATH
        assert entry["query"] == "processing_pipeline=false"
        assert entry["status"] == 200


class TestProfiles:
    def test_put_stores_the_profile(self, api: httpx.Client, sandbox: SandboxProcess) -> None:
        """A profile PUT answers the stored profile with system timestamps and records the write."""
        response = api.put(PROFILE_PATH, json=PROFILE)
        assert response.status_code == 200
        data = response.json()["data"]
        assert data["tier"] == "gold"
        assert data["$creation_ts"] == data["$last_modified_ts"]
        assert sandbox.documents()["profiles"] == [
            {
                "datamart_id": "1",
                "user_point": {"user_agent_id": "vec:1"},
                "compartment_id": "7",
                "user_account_id": "u-1",
                "body": PROFILE,
            }
        ]

    def test_body_ids_contradicting_the_path_are_400(self, api: httpx.Client) -> None:
        """A body `$compartment_id` other than the path's is refused, naming the field."""
        response = api.put(PROFILE_PATH, json={**PROFILE, "$compartment_id": 8})
        assert response.status_code == 400
        assert "$.$compartment_id" in response.json()["error"]


class TestChoices:
    def test_put_then_get_returns_the_choice(self, api: httpx.Client, sandbox: SandboxProcess) -> None:
        """A stored choice reads back with GET and is in the write log."""
        assert api.put(choice_path(), json=choice(1)).status_code == 200
        response = api.get(choice_path())
        assert response.status_code == 200
        assert response.json()["data"]["$choice_ts"] == 1
        [stored] = sandbox.documents()["choices"]
        assert stored == {
            "datamart_id": "1",
            "user_point": {"email_hash": "h1"},
            "processing_id": "42",
            "body": choice(1),
        }

    def test_unknown_choice_is_404_resource_not_found(self, api: httpx.Client) -> None:
        """GET of a choice never written answers 404 "Resource Not Found", and so does its change_log."""
        for path in (choice_path("404"), choice_path("404") + "/change_log"):
            response = api.get(path)
            assert response.status_code == 404
            assert response.json()["error"] == "Resource Not Found"

    def test_change_log_grows_with_every_put(self, api: httpx.Client) -> None:
        """Each PUT appends the state it replaced; the log is a list envelope, oldest first."""
        for ts in (1, 2, 3):
            assert api.put(choice_path(), json=choice(ts, accepted=ts % 2 == 1)).status_code == 200
        answer = api.get(choice_path() + "/change_log").json()
        assert [state["$choice_ts"] for state in answer["data"]] == [1, 2]
        assert answer["count"] == answer["total"] == answer["max_results"] == 2
        assert answer["first_result"] == 0
        assert api.get(choice_path()).json()["data"]["$choice_ts"] == 3


class TestAuthentication:
    @pytest.mark.parametrize("header", [None, "wrong", "Bearer {token}"])
    def test_missing_or_wrong_token_is_401(self, sandbox: SandboxProcess, header: str | None) -> None:
        """No token, another token, or the token with a Bearer prefix: 401 with the error body, token not echoed."""
        headers = {} if header is None else {"Authorization": header.format(token=sandbox.token)}
        with httpx.Client(base_url=sandbox.base_url, trust_env=False) as client:
            response = client.post(ACTIVITY_PATH, json=ACTIVITY, headers=headers)
        assert response.status_code == 401
        body = response.json()
        assert body["status"] == "error"
        assert body["error_code"] == "UNAUTHORIZED"
        assert len(body["error_id"]) == 36
        assert sandbox.token not in response.text
        assert sandbox.stats()["stored"]["activities"] == 0

    def test_token_rotation_revokes_the_old_token(self, sandbox: SandboxProcess) -> None:
        """After PUT /_sandbox/token the new token works and the old one is 401; reset restores the first."""
        old = sandbox.token
        sandbox.set_token("rotated-token")
        with httpx.Client(base_url=sandbox.base_url, trust_env=False) as client:
            assert client.get(choice_path(), headers={"Authorization": old}).status_code == 401
            assert client.get(choice_path(), headers={"Authorization": "rotated-token"}).status_code == 404
            sandbox.reset()
            assert client.get(choice_path(), headers={"Authorization": old}).status_code == 404


class TestPaths:
    def test_nasty_values_arrive_decoded(self, api: httpx.Client, sandbox: SandboxProcess) -> None:
        """Encoded `/ = , ? # % +` in the datamart, selector and document keys are stored decoded and exact."""
        nasty = "a/b=c,d?e#f%g+h é"
        path = (
            f"/v1/datamarts/{enc(nasty)}/user_points/compartment_id={enc(nasty)},user_account_id={enc(nasty)}"
            f"/user_profiles/compartment_id={enc(nasty)}/user_account_id={enc(nasty)}"
        )
        response = api.put(path, json={"x": 1})
        assert response.status_code == 200
        [stored] = sandbox.documents()["profiles"]
        assert stored["datamart_id"] == nasty
        assert stored["user_point"] == {"compartment_id": nasty, "user_account_id": nasty}
        assert stored["compartment_id"] == stored["user_account_id"] == nasty
        assert sandbox.requests()[0]["raw_path"] == path

    def test_unencoded_separator_in_a_value_is_404(self, api: httpx.Client) -> None:
        """A client that forgets to encode `=` in a processing id reaches no resource."""
        response = api.put(choice_path().replace("processing_id=42", "processing_id=4=2"), json=choice(1))
        assert response.status_code == 404
        assert response.json()["error_code"] == "NOT_FOUND"

    def test_malformed_percent_escape_is_400(self, api: httpx.Client) -> None:
        """A stray "%" in a value is a bad request."""
        response = api.post("/v1/datamarts/1%zz/user_activities", json=ACTIVITY)
        assert response.status_code == 400

    def test_unknown_path_is_404_and_counted_as_unknown(self, api: httpx.Client, sandbox: SandboxProcess) -> None:
        """Paths outside the API answer 404 and count under the `unknown` route."""
        response = api.get("/v1/datamarts/1/segments")
        assert response.status_code == 404
        assert sandbox.stats()["requests"] == {"GET unknown": 1}

    def test_wrong_method_is_405_with_allow(self, api: httpx.Client) -> None:
        """GET on the activities endpoint answers 405 and names POST."""
        response = api.get(ACTIVITY_PATH)
        assert response.status_code == 405
        assert response.headers["Allow"] == "POST"


class TestStats:
    def test_counts_by_route_and_status(self, api: httpx.Client, sandbox: SandboxProcess) -> None:
        """Stats count requests by method and route, responses by status, stored documents by kind."""
        api.post(ACTIVITY_PATH, json=ACTIVITY)
        api.put(PROFILE_PATH, json=PROFILE)
        api.put(choice_path(), json=choice(1))
        api.get(choice_path())
        api.get(choice_path() + "/change_log")
        api.get(choice_path("nope"))
        stats = sandbox.stats()
        assert stats["requests"] == {
            "POST activity": 1,
            "PUT profile": 1,
            "PUT choice_put": 1,
            "GET choice_get": 2,
            "GET choice_change_log": 1,
        }
        assert stats["responses"] == {"200": 5, "404": 1}
        assert stats["stored"] == {"activities": 1, "profiles": 1, "choices": 1}

    def test_reset_forgets_documents_and_counts(self, api: httpx.Client, sandbox: SandboxProcess) -> None:
        """After reset the stats, documents and request journal are empty."""
        api.post(ACTIVITY_PATH, json=ACTIVITY)
        sandbox.reset()
        assert sandbox.stats() == {
            "requests": {},
            "responses": {},
            "dropped": {},
            "stored": {"activities": 0, "profiles": 0, "choices": 0},
        }
        assert sandbox.documents() == {"activities": [], "profiles": [], "choices": []}
        assert sandbox.requests() == []
