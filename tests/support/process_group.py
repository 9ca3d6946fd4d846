"""A child process in its own session, stopped by signalling its whole process group.

The broker (a JVM, which may fork helpers) and the sandbox are started this way, so stopping one signals exactly
it and everything it started, and nothing else on the machine.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Sequence
from typing import Any

__all__ = ["ProcessGroup"]


class ProcessGroup:
    """`start` launches `command` as a session leader; `stop` is SIGTERM then SIGKILL, `kill` SIGKILL at once."""

    def __init__(self, command: Sequence[str], **popen: Any) -> None:
        self.process: subprocess.Popen[bytes] = subprocess.Popen(command, start_new_session=True, **popen)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def returncode(self) -> int | None:
        return self.process.returncode

    def running(self) -> bool:
        return self.process.poll() is None

    def signal(self, signum: signal.Signals) -> None:
        """Signal the whole group (gone already: nothing to do)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signum)

    def stop(self, timeout_s: float) -> bool:
        """SIGTERM to the group, SIGKILL if it is still there after `timeout_s`, then collect the status (and
        SIGKILL what the leader left behind). True when it exited on SIGTERM (or had exited already)."""
        clean = True
        if self.running():
            self.signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                clean = False
        self.kill()
        return clean

    def kill(self) -> int:
        """SIGKILL to the group and collect the leader's status."""
        self.signal(signal.SIGKILL)
        return self.process.wait()
