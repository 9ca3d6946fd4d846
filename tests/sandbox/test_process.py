"""The `python -m worker.sandbox` command line and its process controller: startup, flags, minimal mode, stop."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator

import httpx
import pytest

from tests.sandbox.conftest import ACTIVITY, ACTIVITY_PATH, PROFILE_PATH, choice_path
from tests.support.sandbox_process import REPO_ROOT, SandboxError, SandboxProcess
from tests.support.scenario import eventually

pytestmark = pytest.mark.integration


def _gone(pid: int) -> bool:
    """True when no process `pid` exists any more (it was reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.fixture(scope="module")
def minimal() -> Iterator[SandboxProcess]:
    """A sandbox in benchmark mode."""
    with SandboxProcess("--minimal") as process:
        yield process


class TestLifecycle:
    def test_announces_one_line_and_stops_cleanly_on_sigterm(self) -> None:
        """The CLI prints exactly its listening line, serves, and exits 0 on SIGTERM leaving no process."""
        env = {**os.environ, "MICS_SANDBOX_TOKEN": "t0k"}
        command = [sys.executable, "-m", "worker.sandbox", "--port", "0"]
        with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=REPO_ROOT) as proc:
            assert proc.stdout is not None
            line = proc.stdout.readline().decode()
            assert line.startswith("sandbox listening on http://127.0.0.1:")
            base_url = line.split()[-1]
            with httpx.Client(base_url=base_url, trust_env=False) as client:
                assert client.get("/_sandbox/stats").status_code == 200
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=15)
        assert proc.returncode == 0
        assert out == b""
        assert b"t0k" not in err

    def test_stdin_eof_stops_it_when_asked(self) -> None:
        """With --stop-on-stdin-eof, closing its stdin (its parent died) ends the sandbox with status 0."""
        env = {**os.environ, "MICS_SANDBOX_TOKEN": "t0k"}
        command = [sys.executable, "-m", "worker.sandbox", "--port", "0", "--stop-on-stdin-eof"]
        with subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, cwd=REPO_ROOT
        ) as proc:
            assert proc.stdin is not None
            assert proc.stdout is not None
            assert proc.stdout.readline().startswith(b"sandbox listening on ")
            proc.stdin.close()
            assert proc.wait(timeout=30) == 0

    def test_stop_leaves_no_process(self) -> None:
        """SandboxProcess.stop() ends the child and reaps it; its exit status is 0."""
        process = SandboxProcess().start()
        pid = process.pid
        assert pid is not None
        assert process.stop() == 0
        assert _gone(pid)
        assert not process.is_running()

    def test_stop_does_not_wait_out_a_hanging_request(self) -> None:
        """A request held by a 600 s hang does not keep SIGTERM from ending the sandbox with status 0."""
        outcome: list[BaseException] = []
        with SandboxProcess() as process:
            process.set_faults(p_hang=1, hang_s=600)
            url, headers = process.base_url + ACTIVITY_PATH, {"Authorization": process.token}

            def post() -> None:
                try:
                    httpx.post(url, json=ACTIVITY, headers=headers, timeout=60, trust_env=False)
                except httpx.HTTPError as exc:
                    outcome.append(exc)

            client = threading.Thread(target=post)
            client.start()
            eventually(lambda: bool(process.stats()["dropped"].get("hang")), 30, "the sandbox to hold the request")
            assert process.stop(timeout_s=30) == 0
            client.join()
        assert [type(exc) for exc in outcome] == [httpx.RemoteProtocolError]

    def test_missing_token_fails_to_start(self) -> None:
        """Without a usable token the CLI exits with a usage error, which start() reports."""
        process = SandboxProcess(token="")
        with pytest.raises(SandboxError, match="status 2"):
            process.start()
        assert not process.is_running()

    def test_fault_flags_apply_from_the_start(self) -> None:
        """`--p503 1 --latency-ms 5 --outage-s 60` are in force at startup; reset() keeps the flags, ends the outage."""
        with SandboxProcess("--p503", "1", "--latency-ms", "5", "--outage-s", "60") as process:
            headers = {"Authorization": process.token}
            with httpx.Client(base_url=process.base_url, trust_env=False, headers=headers) as client:
                assert client.post(ACTIVITY_PATH, json=ACTIVITY).status_code == 503
            assert process.faults()["outage_s"] > 0
            process.set_faults(p503=0)
            process.reset()
            faults = process.faults()
            assert (faults["p503"], faults["latency_ms"], faults["outage_s"]) == (1.0, 5.0, 0)


class TestMinimalMode:
    def test_counts_without_storing(self, minimal: SandboxProcess) -> None:
        """Minimal mode answers 200 to every write, counts it, and keeps no document."""
        minimal.reset()
        headers = {"Authorization": minimal.token}
        with httpx.Client(base_url=minimal.base_url, trust_env=False, headers=headers) as client:
            assert client.post(ACTIVITY_PATH, json={"not": "validated"}).status_code == 200
            assert client.put(PROFILE_PATH, json={}).status_code == 200
            assert client.put(choice_path(), json={}).status_code == 200
        assert minimal.stats()["stored"] == {"activities": 1, "profiles": 1, "choices": 1}
        assert minimal.documents() == {"activities": [], "profiles": [], "choices": []}

    def test_still_authenticates(self, minimal: SandboxProcess) -> None:
        """Minimal mode still refuses a wrong token."""
        with httpx.Client(base_url=minimal.base_url, trust_env=False) as client:
            assert client.post(ACTIVITY_PATH, json=ACTIVITY, headers={"Authorization": "x"}).status_code == 401
