"""`watch_supervisor`: a member of `run --processes N` learns at once that its supervisor is gone."""

from __future__ import annotations

import asyncio
import subprocess
import sys

from worker.processes import watch_supervisor

EVENT_S = 10.0  # the longest a test waits for something due at once (a loaded machine)


def _sleeper() -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])


async def test_the_callback_comes_when_the_watched_process_exits_and_not_before() -> None:
    """Watched while it lives: nothing; killed: the callback, once."""
    parent = _sleeper()
    calls: list[str] = []
    gone = asyncio.Event()

    def on_gone() -> None:
        calls.append("gone")
        gone.set()

    try:
        assert watch_supervisor(parent.pid, on_gone)
        for _ in range(20):  # the loop turns with the process alive: its descriptor is not readable
            await asyncio.sleep(0)
        assert calls == []
    finally:
        parent.kill()
        parent.wait()
    await asyncio.wait_for(gone.wait(), EVENT_S)
    for _ in range(20):
        await asyncio.sleep(0)
    assert calls == ["gone"]


async def test_a_supervisor_already_gone_counts_as_gone_at_once() -> None:
    """A member re-parented before it looked must not wait for a process that no longer exists."""
    parent = _sleeper()
    parent.kill()
    parent.wait()  # reaped: its pid names no process now
    gone = asyncio.Event()
    assert watch_supervisor(parent.pid, gone.set)
    await asyncio.wait_for(gone.wait(), EVENT_S)
