"""`run --processes N`: N single-process workers of one consumer group, started and stopped together.

Python runs one core per process; Kafka spreads partitions over group members, so a pod uses its cores by running
several members. Each member is a plain `mics-worker run` child with its own health port; signals are forwarded.
Members share the static rate limits (`MICS_WORKER_RATE_LIMIT`): each is told the count and takes its share.
A member whose supervisor is gone (killed with SIGKILL, which cannot be forwarded) stops on its own, gracefully: in a
container the whole group of processes would die with it, but on a host the members would otherwise run on unseen.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from types import FrameType

__all__ = ["run_members", "watch_supervisor"]

log = logging.getLogger(__name__)


def run_members(count: int, base_health_port: int) -> int:
    """Start `count` members, forward SIGTERM/SIGINT to them, wait; exit non-zero if any member failed.

    Started and stopped together: a member that fails (it could not start, say its health port was taken, or it
    crashed) stops the others gracefully, so the whole process exits non-zero and is restarted, instead of running on
    with part of its members and a health port that still answers.
    """
    members: list[subprocess.Popen[bytes]] = []
    for index in range(count):
        env = dict(os.environ)
        env["MICS_WORKER_HEALTH_PORT"] = str(base_health_port + index if base_health_port else 0)
        env["MICS_WORKER_PROCESSES"] = str(count)  # each member takes 1/count of every RATE_LIMIT
        members.append(subprocess.Popen([sys.executable, "-m", "worker", "run"], env=env))

    def forward(signum: int, _frame: FrameType | None) -> None:
        for member in members:
            if member.poll() is None:
                member.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    stopping = False
    while None in [member.poll() for member in members]:  # every member polled: `any` would stop at the first
        failed = [member for member in members if member.returncode not in (None, 0)]
        if failed and not stopping:
            stopping = True
            log.error("a member exited with status %d: stopping the others", failed[0].returncode)
            forward(signal.SIGTERM, None)
        time.sleep(0.2)
    codes = [member.returncode for member in members]
    return next((code for code in codes if code != 0), 0)


def watch_supervisor(parent_pid: int, on_gone: Callable[[], None]) -> bool:
    """Call `on_gone` once, on the running loop, when the process `parent_pid` exits; False when it cannot be watched.

    A pidfd (Linux 5.3+) becomes readable when its process exits: no polling. A parent already gone (the member was
    re-parented before it looked) counts as gone at once.
    """
    loop = asyncio.get_running_loop()
    try:
        descriptor = os.pidfd_open(parent_pid)
    except ProcessLookupError:
        loop.call_soon(on_gone)
        return True
    except (AttributeError, OSError) as exc:  # not Linux, or a kernel without pidfd_open
        log.warning("cannot watch the supervising process (%s): a SIGKILL to it will leave this member running", exc)
        return False

    def gone() -> None:
        loop.remove_reader(descriptor)
        os.close(descriptor)
        on_gone()

    loop.add_reader(descriptor, gone)
    return True
