"""The import client's error paths against a small named fake transport (`ScriptedApi`): what is retried, what is
refused, what is ambiguous, and that the token never appears in an error."""

from __future__ import annotations

from collections.abc import Iterable

import httpx
import pytest

from worker.backfill.client import ApiRefused, ApiUnavailable, ImportClient, UploadUncertain
from worker.mics.auth import ApiToken
from worker.retry import RetryPolicy

TOKEN = "secret-token-value"


class ScriptedApi:
    """Answers requests from a script of (status, JSON body) and records every request it saw."""

    def __init__(self, answers: Iterable[tuple[int, bytes]]) -> None:
        self._answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        status, body = self._answers.pop(0)
        return httpx.Response(status, content=body, headers={"Content-Type": "application/json"})


def _client(api: ScriptedApi) -> ImportClient:
    policy = RetryPolicy(max_attempts=3, max_elapsed_s=5.0, base_delay_s=0.0, max_delay_s=0.0)
    return ImportClient(
        "http://api.test/base", ApiToken(TOKEN), retry=policy, timeout_s=5.0, transport=httpx.MockTransport(api)
    )


OK_EXECUTION = b'{"status":"ok","data":{"id":"9","status":"PENDING"}}'
ERROR = b'{"status":"error","error":"nope","error_code":"X"}'


class TestImportClient:
    def test_paths_stay_under_the_base_and_encode_each_value_as_one_segment(self) -> None:
        """A datamart value with a slash or dots cannot leave the configured base path."""
        api = ScriptedApi([(200, OK_EXECUTION)])
        assert _client(api).upload("../x/1", "7", b"{}\n") == "9"
        (request,) = api.requests
        assert request.url.raw_path == b"/base/v1/datamarts/%2E%2E%2Fx%2F1/document_imports/7/executions"
        assert request.headers["Content-Type"] == "application/x-ndjson"
        assert request.headers["Authorization"] == TOKEN

    def test_a_throttled_request_is_retried(self) -> None:
        """429 says nothing was done: retried, even for an upload."""
        api = ScriptedApi([(429, ERROR), (200, OK_EXECUTION)])
        assert _client(api).upload("1", "7", b"{}\n") == "9"
        assert len(api.requests) == 2

    def test_a_server_error_on_upload_is_ambiguous_and_not_retried(self) -> None:
        """After a 500 the execution may exist: the client says so instead of uploading twice."""
        api = ScriptedApi([(500, ERROR)])
        with pytest.raises(UploadUncertain):
            _client(api).upload("1", "7", b"{}\n")
        assert len(api.requests) == 1

    def test_a_server_error_on_a_read_is_retried_until_the_budget_ends(self) -> None:
        """Reads are safe to repeat: three attempts, then ApiUnavailable."""
        api = ScriptedApi([(503, ERROR)] * 3)
        with pytest.raises(ApiUnavailable, match="gave up after 3 attempts"):
            _client(api).execution("1", "7", "9")

    def test_a_refusal_is_permanent_and_names_neither_token_nor_ids(self) -> None:
        """403 stops at once; the message has the status, the API's text and the path template only."""
        api = ScriptedApi([(403, ERROR)])
        with pytest.raises(ApiRefused) as caught:
            _client(api).execution_ids("1509", "77")
        text = str(caught.value)
        assert "HTTP 403" in text
        assert "nope" in text
        assert TOKEN not in text
        assert "1509" not in text
        assert TOKEN not in repr(_client(ScriptedApi([])))

    def test_an_execution_state_is_read_with_its_line_errors(self) -> None:
        """status, counts and the (line, message) pairs of the answer."""
        body = (
            b'{"status":"ok","data":{"id":"9","status":"SUCCEEDED","result":{"total_lines":3,"total_success":2},'
            b'"errors":[{"line":2,"message":"bad"}]}}'
        )
        state = _client(ScriptedApi([(200, body)])).execution("1", "7", "9")
        assert state.ended
        assert (state.total, state.accepted, state.errors) == (3, 2, ((2, "bad"),))
