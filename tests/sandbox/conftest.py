"""Shared pieces of the sandbox's HTTP tests: an authenticated client and valid sample documents."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import quote

import httpx
import pytest

from tests.support.sandbox_process import SandboxProcess

ACTIVITY: dict[str, object] = {
    "$ts": 1_700_000_000_000,
    "$type": "SITE_VISIT",
    "$session_status": "NO_SESSION",
    "$user_identifiers": [{"$type": "USER_AGENT", "$user_agent_id": "vec:289388396"}],
    "$site_id": "1023",
    "$events": [{"$ts": 1_700_000_000_000, "$event_name": "$page_view", "$properties": {"url": "/a"}}],
}
PROFILE: dict[str, object] = {"$compartment_id": 7, "$user_account_id": "u-1", "tier": "gold"}


def choice(ts: int, accepted: bool = True, processing_id: str = "42") -> dict[str, object]:
    """A valid user choice body for `processing_id`."""
    return {"$processing_id": processing_id, "$choice_ts": ts, "$choice_acceptance_value": accepted}


def enc(value: str) -> str:
    """Percent-encode a value as one path segment, the way a correct client does."""
    return quote(value, safe="")


def choice_path(processing_id: str = "42", selector: str = "email_hash=h1", datamart: str = "1") -> str:
    """The raw path of one user choice."""
    return f"/v1/datamarts/{datamart}/user_points/{selector}/user_choices/processing_id={enc(processing_id)}"


PROFILE_PATH = "/v1/datamarts/1/user_points/user_agent_id=vec%3A1/user_profiles/compartment_id=7/user_account_id=u-1"
ACTIVITY_PATH = "/v1/datamarts/1/user_activities"


@pytest.fixture
def api(sandbox: SandboxProcess) -> Iterator[httpx.Client]:
    """A client of the sandbox's API sending its current token (read at each request)."""

    def authorize(request: httpx.Request) -> None:
        request.headers["Authorization"] = sandbox.token

    with httpx.Client(
        base_url=sandbox.base_url, trust_env=False, timeout=10.0, event_hooks={"request": [authorize]}
    ) as client:
        yield client
