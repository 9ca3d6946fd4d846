"""`run --processes N`: N single-process workers of one consumer group, started and stopped together.

Python runs one core per process; Kafka spreads partitions over group members, so a pod uses its cores by running
several members. Each member is a plain `mics-worker run` child with its own health port; signals are forwarded.
Members share the static rate limits (`MICS_WORKER_RATE_LIMIT`): each is told the count and takes its share.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from types import FrameType

__all__ = ["run_members"]


def run_members(count: int, base_health_port: int) -> int:
    """Start `count` members, forward SIGTERM/SIGINT to them, wait; exit non-zero if any member failed."""
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
    while any(member.poll() is None for member in members):
        time.sleep(0.2)
    codes = [member.returncode for member in members]
    return next((code for code in codes if code != 0), 0)
