"""`run --processes N` end to end: the members share one group, and none outlives its supervisor.

SIGTERM to the supervisor is forwarded to every member; SIGKILL cannot be. In a container the members would die with
it, but on a host they would run on unseen: each member watches its supervisor and stops gracefully (drain, commit,
leave) when it is gone.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.conftest import Stream
from tests.support.events import MixSpec, generate
from tests.support.scenario import eventually
from tests.support.worker_process import WorkerProcess

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

ASSIGNED = "mics_worker_assigned_partitions"


def assigned_partitions(url: str) -> float:
    """The partitions a member holds, from its /metrics (0 while it does not answer yet)."""
    try:
        text = httpx.get(url + "/metrics", timeout=2).text
    except httpx.HTTPError:
        return 0.0
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == ASSIGNED
    )


def children(pid: int) -> list[int]:
    """The processes `pid` started (Linux: its main thread's children list)."""
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def running_process(pid: int) -> bool:
    """True while `pid` runs (an exited member not yet reaped by its new parent is a zombie: not running)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


class TestSupervisor:
    def test_members_stop_gracefully_when_their_supervisor_is_killed(
        self, stream: Stream, running: Callable[[WorkerProcess], WorkerProcess]
    ) -> None:
        """SIGKILL to `run --processes 2` mid-stream: both members drain, commit and exit; a worker started later
        finishes the stream with nothing lost and nothing twice (what the members took was finished and committed:
        members killed outright would leave it uncommitted, and the later worker would send it again)."""
        messages = list(generate(3000, MixSpec(invalid=0.02), seed=41))
        ledger = stream.produce(messages)
        # ~400 messages/s for the two (4 requests at a time each, 20 ms per answer), each holding at most 300: the
        # kill lands mid-stream, and the drain finishes what the members hold, not the whole stream.
        stream.sandbox.set_faults(latency_ms=20)
        settings = stream.env(MAX_CONCURRENCY="4", MAX_IN_FLIGHT="300")
        supervisor = running(WorkerProcess(settings, args=("--processes", "2"), health_ports=2))
        urls = [supervisor.url, f"http://127.0.0.1:{supervisor.health_port + 1}"]
        supervisor.wait_until(
            lambda: all(assigned_partitions(url) > 0 for url in urls), 120, "both members to hold partitions"
        )
        supervisor.wait_until(lambda: stream.arrived() >= 100, 120, "the members to deliver")
        assert supervisor.pid is not None
        members = children(supervisor.pid)
        assert len(members) == 2
        assert stream.arrived() < len(messages) - 600, "the stream was nearly over before the kill"
        supervisor.kill()
        eventually(lambda: not any(running_process(pid) for pid in members), 90, "both members to exit")
        later = running(stream.worker())
        later.wait_until(lambda: stream.arrived() >= len(messages), 180, "the whole stream")
        assert later.stop() == 0
        settlement = stream.settle(ledger)
        assert settlement.missing == set()
        assert settlement.duplicates == 0

    def test_a_member_that_cannot_start_stops_the_others_and_the_supervisor_fails(
        self, stream: Stream, running: Callable[[WorkerProcess], WorkerProcess]
    ) -> None:
        """Started and stopped together: the second member's health port is taken, so it cannot start; the first is
        stopped too and `run --processes 2` exits non-zero (and is restarted), rather than run on at half strength."""
        supervisor = WorkerProcess(stream.env(), args=("--processes", "2"), health_ports=2)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
            squatter.bind(("127.0.0.1", supervisor.health_port + 1))
            squatter.listen()
            running(supervisor)
            eventually(lambda: not supervisor.is_running(), 120, "the supervisor to exit")
        assert supervisor.stop() != 0
        assert "a member exited with status" in supervisor.stderr()
        assert "cannot serve metrics and health" in supervisor.stderr()
