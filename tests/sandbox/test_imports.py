"""The sandbox's document imports over real HTTP: create, upload, asynchronous processing, per-line errors, limits."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from tests.sandbox.conftest import ACTIVITY, PROFILE, choice
from tests.support.sandbox_process import SandboxProcess
from tests.support.scenario import eventually

pytestmark = pytest.mark.integration

IMPORTS = "/v1/datamarts/1/document_imports"
NDJSON = {"Content-Type": "application/x-ndjson"}


def _create(api: httpx.Client, document_type: str) -> str:
    body = {"document_type": document_type, "mime_type": "APPLICATION_X_NDJSON", "encoding": "utf-8", "name": "t"}
    response = api.post(IMPORTS, json=body)
    assert response.status_code == 200, response.text
    return str(response.json()["data"]["id"])


def _ndjson(*documents: object) -> bytes:
    return b"".join(orjson.dumps(document) + b"\n" for document in documents)


def _ended(api: httpx.Client, import_id: str, execution_id: str) -> dict[str, Any]:
    """Poll the execution until it is SUCCEEDED or FAILED (generous deadline: a loaded machine)."""
    found: dict[str, Any] = {}

    def ended() -> bool:
        found.update(api.get(f"{IMPORTS}/{import_id}/executions/{execution_id}").json()["data"])
        return found["status"] in {"SUCCEEDED", "FAILED"}

    eventually(ended, 30, f"execution {execution_id} ended", interval_s=0.02)
    return found


class TestCreateImport:
    def test_an_import_is_created_with_the_documented_fields(self, api: httpx.Client) -> None:
        """The answer echoes document_type, mime_type, encoding and name, with an id and the datamart."""
        body = {"document_type": "USER_PROFILE", "mime_type": "APPLICATION_X_NDJSON", "encoding": "utf-8", "name": "n"}
        data = api.post(IMPORTS, json=body).json()["data"]
        assert data["id"]
        assert {k: data[k] for k in body} == body
        assert data["datamart_id"] == "1"

    @pytest.mark.parametrize(
        ("field", "value"),
        [("document_type", "USER_SEGMENT_X"), ("mime_type", "TEXT_CSV"), ("encoding", "latin-1"), ("name", "")],
    )
    def test_an_invalid_import_is_refused_400_naming_the_field(self, api: httpx.Client, field: str, value: str) -> None:
        """Each field outside what the sandbox models is a 400 whose message names it."""
        body = {"document_type": "USER_ACTIVITY", "mime_type": "APPLICATION_X_NDJSON", "encoding": "utf-8", "name": "n"}
        response = api.post(IMPORTS, json={**body, field: value})
        assert response.status_code == 400
        assert f"$.{field}" in response.json()["error"]

    def test_without_the_token_it_is_401(self, sandbox: SandboxProcess) -> None:
        """The bulk path sits behind the same authentication as the real-time endpoints."""
        response = httpx.post(sandbox.base_url + IMPORTS, json={}, headers={"Authorization": "wrong"})
        assert response.status_code == 401


class TestExecutions:
    def test_an_execution_goes_from_pending_to_succeeded_and_stores_every_line(
        self, api: httpx.Client, sandbox: SandboxProcess
    ) -> None:
        """Created PENDING at once, processed later: the lines are stored like real-time writes."""
        import_id = _create(api, "USER_ACTIVITY")
        created = api.post(f"{IMPORTS}/{import_id}/executions", content=_ndjson(ACTIVITY, ACTIVITY), headers=NDJSON)
        assert created.status_code == 200
        assert created.json()["data"]["status"] == "PENDING"
        ended = _ended(api, import_id, created.json()["data"]["id"])
        assert ended["status"] == "SUCCEEDED"
        assert ended["result"] == {"total_lines": 2, "total_success": 2, "total_failure": 0}
        assert sandbox.documents()["activities"] == [{"datamart_id": "1", "body": ACTIVITY}] * 2

    def test_profile_and_choice_commands_are_applied_per_the_documented_format(
        self, api: httpx.Client, sandbox: SandboxProcess
    ) -> None:
        """USER_PROFILE and USER_CHOICE lines (operation, one identifier, force_replace, the object) are stored."""
        profiles = _create(api, "USER_PROFILE")
        line = {"operation": "UPSERT", "compartment_id": "7", "user_account_id": "u-1", "force_replace": True}
        execution = api.post(
            f"{IMPORTS}/{profiles}/executions", content=_ndjson({**line, "user_profile": PROFILE}), headers=NDJSON
        ).json()["data"]
        assert _ended(api, profiles, execution["id"])["result"]["total_success"] == 1
        choices = _create(api, "USER_CHOICE")
        command = {"operation": "UPSERT", "email_hash": "h1", "force_replace": True, "user_choice": choice(5)}
        execution = api.post(f"{IMPORTS}/{choices}/executions", content=_ndjson(command), headers=NDJSON).json()["data"]
        assert _ended(api, choices, execution["id"])["result"]["total_success"] == 1
        documents = sandbox.documents()
        assert documents["profiles"][0]["body"] == PROFILE
        assert documents["profiles"][0]["user_account_id"] == "u-1"
        assert documents["choices"][0]["user_point"] == {"email_hash": "h1"}

    def test_each_bad_line_is_reported_with_its_number_and_the_others_are_stored(
        self, api: httpx.Client, sandbox: SandboxProcess
    ) -> None:
        """Invalid JSON, a schema error and two identifiers on one line are three per-line errors, not a failure."""
        import_id = _create(api, "USER_CHOICE")
        good = {"operation": "UPSERT", "email_hash": "h1", "force_replace": True, "user_choice": choice(5)}
        two_ids = {**good, "user_agent_id": "vec:1"}
        no_ts = {**good, "user_choice": {"$processing_id": "42", "$choice_acceptance_value": True}}
        body = _ndjson(good) + b"{not json\n" + _ndjson(no_ts, two_ids, good)
        execution = api.post(f"{IMPORTS}/{import_id}/executions", content=body, headers=NDJSON).json()["data"]
        ended = _ended(api, import_id, execution["id"])
        assert ended["status"] == "SUCCEEDED"
        assert ended["result"] == {"total_lines": 5, "total_success": 2, "total_failure": 3}
        assert [error["line"] for error in ended["errors"]] == [2, 3, 4]
        assert "$.user_choice" in ended["errors"][1]["message"]
        assert "one identifier" in ended["errors"][2]["message"]
        assert len(sandbox.documents()["choices"]) == 2

    def test_the_executions_of_an_import_are_listed(self, api: httpx.Client) -> None:
        """GET …/executions lists every execution of the import (what a resumed backfill reads)."""
        import_id = _create(api, "USER_ACTIVITY")
        ids = [
            api.post(f"{IMPORTS}/{import_id}/executions", content=_ndjson(ACTIVITY), headers=NDJSON).json()["data"][
                "id"
            ]
            for _ in range(3)
        ]
        listed = api.get(f"{IMPORTS}/{import_id}/executions").json()
        assert [item["id"] for item in listed["data"]] == ids
        assert listed["count"] == 3

    def test_an_unknown_import_or_execution_is_404(self, api: httpx.Client) -> None:
        """An import of another datamart is unknown here, as is an execution id never created."""
        import_id = _create(api, "USER_ACTIVITY")
        assert api.get(f"/v1/datamarts/2/document_imports/{import_id}/executions").status_code == 404
        assert api.get(f"{IMPORTS}/{import_id}/executions/999999").status_code == 404

    def test_a_wrong_content_type_is_415(self, api: httpx.Client) -> None:
        """An execution body is NDJSON, announced as application/x-ndjson."""
        import_id = _create(api, "USER_ACTIVITY")
        response = api.post(
            f"{IMPORTS}/{import_id}/executions", content=_ndjson(ACTIVITY), headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 415


@pytest.fixture
def limited() -> Iterator[SandboxProcess]:
    """A sandbox with a 2 kB execution limit and every execution failing."""
    with SandboxProcess("--max-execution-bytes", "2048", "--import-failure", "1", "--import-delay-s", "0") as process:
        yield process


class TestLimitsAndFaults:
    def test_an_execution_over_the_size_limit_is_413_and_creates_nothing(self, limited: SandboxProcess) -> None:
        """The limit is the body's size; nothing is listed after the refusal."""
        with httpx.Client(base_url=limited.base_url, headers={"Authorization": limited.token}) as api:
            import_id = _create(api, "USER_ACTIVITY")
            response = api.post(f"{IMPORTS}/{import_id}/executions", content=_ndjson(*[ACTIVITY] * 20), headers=NDJSON)
            assert response.status_code == 413
            assert api.get(f"{IMPORTS}/{import_id}/executions").json()["data"] == []

    def test_the_failure_fault_ends_an_execution_failed_with_nothing_stored(self, limited: SandboxProcess) -> None:
        """`--import-failure 1`: the execution ends FAILED with an error and no line applied."""
        with httpx.Client(base_url=limited.base_url, headers={"Authorization": limited.token}) as api:
            import_id = _create(api, "USER_ACTIVITY")
            created = api.post(f"{IMPORTS}/{import_id}/executions", content=_ndjson(ACTIVITY), headers=NDJSON)
            ended = _ended(api, import_id, created.json()["data"]["id"])
            assert ended["status"] == "FAILED"
            assert ended["error"] == "execution failed (sandbox fault)"
            assert limited.documents()["activities"] == []

    def test_reset_forgets_imports(self, api: httpx.Client, sandbox: SandboxProcess) -> None:
        """`POST /_sandbox/reset` clears imports and executions with everything else."""
        import_id = _create(api, "USER_ACTIVITY")
        sandbox.reset()
        assert api.get(f"{IMPORTS}/{import_id}/executions").status_code == 404
