"""The sandbox's rate limit over real HTTP: flags at startup, the admin API at runtime, 429 + Retry-After."""

from __future__ import annotations

import httpx
import pytest

from tests.sandbox.conftest import ACTIVITY, ACTIVITY_PATH
from tests.support.sandbox_process import SandboxError, SandboxProcess

pytestmark = pytest.mark.integration

#: One token per 100 s: after the burst, nothing refills within a test, however slow the machine.
SLOW = "0.01/s"


def _activity_path(datamart: str) -> str:
    return f"/v1/datamarts/{datamart}/user_activities"


def _assert_throttled(response: httpx.Response, scope: str) -> None:
    """A 429 with the API's error body and a whole-second Retry-After of at least 1."""
    assert response.status_code == 429
    body = response.json()
    assert (body["status"], body["error_code"]) == ("error", "TOO_MANY_REQUESTS")
    assert body["error"] == f"Too Many Requests (sandbox rate limit: {scope})"
    assert 1 <= int(response.headers["Retry-After"]) <= 100


class TestStartupFlags:
    def test_global_and_per_datamart_limits_answer_429_with_retry_after(self) -> None:
        """Global burst 3, per-datamart burst 2: datamart 1 is throttled by its own bucket, then 2 by the global one."""
        flags = ("--rate-limit", SLOW, "--rate-burst", "3", "--rate-limit-per-datamart", SLOW)
        with SandboxProcess(*flags, "--rate-burst-per-datamart", "2") as process:
            headers = {"Authorization": process.token}
            with httpx.Client(base_url=process.base_url, trust_env=False, headers=headers, timeout=10) as client:
                one = [client.post(_activity_path("1"), json=ACTIVITY) for _ in range(3)]
                two = [client.post(_activity_path("2"), json=ACTIVITY) for _ in range(2)]
                assert all(client.get("/_sandbox/rate_limit").status_code == 200 for _ in range(20))
            assert [r.status_code for r in one + two] == [200, 200, 429, 200, 429]
            _assert_throttled(one[2], "datamart 1")
            _assert_throttled(two[1], "global")
            counters = process.rate_limit()
            assert counters["rate"] == 0.01
            assert (counters["burst"], counters["per_datamart_burst"]) == (3, 2)
            assert (counters["admitted"], counters["throttled"]) == (3, 2)
            assert counters["throttled_by"] == {"global": 1, "datamart": 1}
            assert counters["datamarts"] == {"1": {"admitted": 2, "throttled": 1}, "2": {"admitted": 1, "throttled": 1}}
            assert process.stats()["responses"] == {"200": 3, "429": 2}

    @pytest.mark.parametrize("flags", [("--rate-burst", "3"), ("--rate-limit", "fast"), ("--rate-limit", "0/s")])
    def test_bad_flags_are_usage_errors(self, flags: tuple[str, ...]) -> None:
        """A burst without its rate, or a rate that is not one, stops the CLI with status 2."""
        with pytest.raises(SandboxError, match="status 2"):
            SandboxProcess(*flags).start()


class TestAdminApi:
    def test_a_limit_set_at_runtime_applies_at_once_and_can_be_lifted(
        self, api: httpx.Client, sandbox: SandboxProcess
    ) -> None:
        """PUT rate_limit throttles the next request; rate null lifts it; reset() goes back to no limit."""
        assert api.post(ACTIVITY_PATH, json=ACTIVITY).status_code == 200
        described = sandbox.set_rate_limit(rate=SLOW, burst=1)
        assert (described["rate"], described["burst"], described["active"]) == (0.01, 1, True)
        statuses = [api.post(ACTIVITY_PATH, json=ACTIVITY).status_code for _ in range(3)]
        assert statuses == [200, 429, 429]
        sandbox.set_rate_limit(rate=None)
        assert api.post(ACTIVITY_PATH, json=ACTIVITY).status_code == 200
        sandbox.reset()
        assert sandbox.rate_limit()["active"] is False

    def test_invalid_settings_are_refused(self, sandbox: SandboxProcess) -> None:
        """A bad value answers 400 and changes nothing."""
        with pytest.raises(SandboxError, match="400"):
            sandbox.set_rate_limit(rate=0)
        with pytest.raises(SandboxError, match="400"):
            sandbox.set_rate_limit(speed=1)
        assert sandbox.rate_limit()["rate"] is None

    def test_arrivals_are_bucketed(self, api: httpx.Client, sandbox: SandboxProcess) -> None:
        """With recording on, every request of the window is counted once, admitted and throttled apart."""
        sandbox.set_rate_limit(per_datamart_rate=SLOW, per_datamart_burst=4)
        for _ in range(6):
            api.post(ACTIVITY_PATH, json=ACTIVITY)
        found = sandbox.arrivals(window_s=30, bucket_s=0.5)
        assert (len(found["admitted"]), sum(found["admitted"]), sum(found["throttled"])) == (60, 4, 2)
        assert found["complete"] is False  # recording began inside the window

    def test_bad_arrival_queries_are_refused(self, sandbox: SandboxProcess) -> None:
        """A bucket of 0 s or a million buckets answer 400."""
        for window_s, bucket_s in ((10, 0), (1000, 0.001)):
            with pytest.raises(SandboxError, match="400"):
                sandbox.arrivals(window_s=window_s, bucket_s=bucket_s)
