"""The process-group helper the broker and sandbox fixtures share: stop ends the whole group, kill too."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from tests.support.process_group import ProcessGroup

# A leader that starts a grandchild in its own group and prints its pid; both sleep until signalled.
_TREE = (
    "import subprocess, sys, time\n"
    "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
    "print(child.pid, flush=True)\n"
    "time.sleep(600)\n"
)
# A leader that ignores SIGTERM: stop must fall back to SIGKILL.
_STUBBORN = (
    "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nprint('ready', flush=True)\ntime.sleep(600)\n"
)


def gone(pid: int, timeout_s: float = 10.0) -> bool:
    """Whether `pid` has exited within `timeout_s` (polling: the kernel reaps an orphan asynchronously)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        with open(f"/proc/{pid}/stat") as stat:
            if stat.read().split(") ", 1)[1].startswith("Z"):
                return True  # a zombie waiting for init to reap it: it has exited
        time.sleep(0.05)
    return False


def test_stop_ends_the_leader_and_what_it_started() -> None:
    """SIGTERM reaches the grandchild too: no stray process is left, and the stop counts as clean."""
    group = ProcessGroup([sys.executable, "-c", _TREE], stdout=subprocess.PIPE)
    assert group.process.stdout is not None
    grandchild = int(group.process.stdout.readline())
    assert group.running()
    assert group.stop(timeout_s=10.0) is True
    assert not group.running()
    assert group.returncode == -signal.SIGTERM
    assert gone(grandchild)
    group.process.stdout.close()


def test_stop_kills_a_leader_that_ignores_sigterm() -> None:
    """A process that ignores SIGTERM is killed after the timeout, and the stop reports it was not clean."""
    group = ProcessGroup([sys.executable, "-c", _STUBBORN], stdout=subprocess.PIPE)
    assert group.process.stdout is not None
    assert group.process.stdout.readline() == b"ready\n"
    assert group.stop(timeout_s=0.5) is False
    assert group.returncode == -signal.SIGKILL
    group.process.stdout.close()


def test_kill_and_stop_of_an_exited_process_are_harmless() -> None:
    """A process that already exited: stop is clean and kill returns its status."""
    group = ProcessGroup([sys.executable, "-c", "pass"])
    assert group.process.wait(timeout=30) == 0
    assert group.stop(timeout_s=1.0) is True
    assert group.kill() == 0
