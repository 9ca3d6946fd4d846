"""Injected faults over real HTTP: statuses, dropped connections, hangs, latency, outages, reproducibility."""

from __future__ import annotations

import httpx
import pytest

from tests.sandbox.conftest import ACTIVITY, ACTIVITY_PATH
from tests.support.sandbox_process import SandboxError, SandboxProcess

pytestmark = pytest.mark.integration


class TestStatusFaults:
    def test_429_carries_retry_after(self, api: httpx.Client, sandbox: SandboxProcess) -> None:
        """With p429=1 every request is 429 with the configured Retry-After, and nothing is stored."""
        sandbox.set_faults(p429=1, retry_after_s=7)
        response = api.post(ACTIVITY_PATH, json=ACTIVITY)
        assert response.status_code == 429
        assert response.headers["Retry-After"] == "7"
        assert response.json()["error_code"] == "TOO_MANY_REQUESTS"
        assert sandbox.stats()["stored"]["activities"] == 0

    @pytest.mark.parametrize(("fault", "status"), [("p500", 500), ("p503", 503)])
    def test_server_errors(self, api: httpx.Client, sandbox: SandboxProcess, fault: str, status: int) -> None:
        """With p500=1 / p503=1 every request gets that status with the API's error body."""
        sandbox.set_faults(**{fault: 1})
        response = api.post(ACTIVITY_PATH, json=ACTIVITY)
        assert response.status_code == status
        assert response.json()["status"] == "error"
        assert sandbox.stats()["responses"] == {str(status): 1}

    def test_faults_come_before_authentication(self, sandbox: SandboxProcess) -> None:
        """An unauthenticated request sees the injected fault, not a 401."""
        sandbox.set_faults(p500=1)
        with httpx.Client(base_url=sandbox.base_url, trust_env=False) as client:
            assert client.post(ACTIVITY_PATH, json=ACTIVITY).status_code == 500

    def test_admin_api_is_exempt_from_faults_and_auth(self, sandbox: SandboxProcess) -> None:
        """Under p500=1 and without a token, the admin API still answers, and its calls are not journaled."""
        sandbox.set_faults(p500=1)
        with httpx.Client(base_url=sandbox.base_url, trust_env=False) as client:
            assert client.get("/_sandbox/stats").status_code == 200
        assert sandbox.stats()["requests"] == {}

    def test_fractional_faults_repeat_after_reset(self, api: httpx.Client, sandbox: SandboxProcess) -> None:
        """A seeded sandbox gives the same status sequence for the same fault settings after each reset."""

        def run() -> list[int]:
            sandbox.reset()
            sandbox.set_faults(p500=0.5)
            return [api.post(ACTIVITY_PATH, json=ACTIVITY).status_code for _ in range(20)]

        first = run()
        assert set(first) == {200, 500}
        assert run() == first


class TestDroppedConnections:
    def test_reset_aborts_the_connection(self, api: httpx.Client, sandbox: SandboxProcess) -> None:
        """With p_reset=1 the client sees a reset connection; the request is journaled with no status."""
        sandbox.set_faults(p_reset=1)
        with pytest.raises(httpx.ReadError):
            api.post(ACTIVITY_PATH, json=ACTIVITY)
        stats = sandbox.stats()
        assert stats["dropped"] == {"reset": 1}
        assert stats["responses"] == {}
        assert sandbox.requests()[0]["status"] is None
        assert stats["stored"]["activities"] == 0

    def test_hang_outlasts_the_client_timeout(self, api: httpx.Client, sandbox: SandboxProcess) -> None:
        """With p_hang=1 and hang_s far above the client's timeout, the client times out."""
        sandbox.set_faults(p_hang=1, hang_s=5)
        with pytest.raises(httpx.ReadTimeout):
            api.post(ACTIVITY_PATH, json=ACTIVITY, timeout=0.2)
        assert sandbox.stats()["dropped"] == {"hang": 1}

    def test_hang_ends_by_closing_without_an_answer(self, api: httpx.Client, sandbox: SandboxProcess) -> None:
        """A client that waits longer than hang_s sees the connection closed with no response."""
        sandbox.set_faults(p_hang=1, hang_s=0.2)
        with pytest.raises(httpx.RemoteProtocolError):
            api.post(ACTIVITY_PATH, json=ACTIVITY, timeout=10)


class TestLatencyAndOutage:
    def test_latency_delays_every_answer(self, api: httpx.Client, sandbox: SandboxProcess) -> None:
        """With 2 s of added latency a client allowing 0.1 s times out; without it the same call succeeds."""
        sandbox.set_faults(latency_ms=2000)
        with pytest.raises(httpx.ReadTimeout):
            api.post(ACTIVITY_PATH, json=ACTIVITY, timeout=0.1)
        sandbox.set_faults(latency_ms=0)
        assert api.post(ACTIVITY_PATH, json=ACTIVITY).status_code == 200

    def test_outage_answers_503_until_ended(self, api: httpx.Client, sandbox: SandboxProcess) -> None:
        """During an outage window every API request is 503; ending it restores normal answers."""
        faults = sandbox.set_faults(outage_s=60)
        assert faults["outage_s"] > 0
        assert [api.post(ACTIVITY_PATH, json=ACTIVITY).status_code for _ in range(3)] == [503, 503, 503]
        sandbox.set_faults(outage_s=0)
        assert api.post(ACTIVITY_PATH, json=ACTIVITY).status_code == 200


class TestFaultAdmin:
    def test_put_faults_returns_the_whole_set(self, sandbox: SandboxProcess) -> None:
        """A partial update answers every setting, the named ones changed."""
        faults = sandbox.set_faults(p503=0.25)
        assert faults == {
            "latency_ms": 0.0,
            "p429": 0.0,
            "retry_after_s": 1,
            "p500": 0.0,
            "p503": 0.25,
            "p_reset": 0.0,
            "p_hang": 0.0,
            "hang_s": 30.0,
            "outage_s": 0,
        }
        assert sandbox.faults() == faults

    @pytest.mark.parametrize("changes", [{"p500": 2}, {"nonsense": 1}, {"p429": 0.7, "p503": 0.7}])
    def test_invalid_fault_settings_are_400(self, sandbox: SandboxProcess, changes: dict[str, float]) -> None:
        """Out-of-range, unknown or over-committed settings are refused and change nothing."""
        with pytest.raises(SandboxError, match="400"):
            sandbox.set_faults(**changes)
        assert sandbox.faults()["p500"] == 0.0

    def test_reset_clears_runtime_faults(self, api: httpx.Client, sandbox: SandboxProcess) -> None:
        """reset() puts the faults back to the starting (empty) set."""
        sandbox.set_faults(p500=1, outage_s=60)
        sandbox.reset()
        assert api.post(ACTIVITY_PATH, json=ACTIVITY).status_code == 200
