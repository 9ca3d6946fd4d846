"""CPU time and memory of other processes, read from /proc (Linux only, no psutil).

Why /proc: the worker runs as its own process (as in production), so its cost must be read from the outside.
`utime + stime` counts every thread of the process (the event loop, librdkafka's threads) and nothing of the
other processes sharing the machine, so it stays meaningful while the cores are shared; `VmHWM` is the kernel's
own record of the peak resident set.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Memory", "cpu_seconds", "memory", "process_tree"]

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_PROC = Path("/proc")


@dataclass(frozen=True, slots=True)
class Memory:
    """Resident memory of one process, in MiB: now and at its peak."""

    rss_mib: float
    peak_rss_mib: float


def process_tree(pid: int) -> list[int]:
    """`pid` and all its live descendants (`run --processes N` runs its members as children)."""
    found = [pid]
    index = 0
    while index < len(found):
        found.extend(_children(found[index]))
        index += 1
    return found


def cpu_seconds(pids: list[int]) -> float:
    """User plus system CPU seconds consumed so far by these processes (all their threads); gone ones count 0."""
    total = 0
    for pid in pids:
        try:
            text = (_PROC / str(pid) / "stat").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue
        # The command name may hold spaces or parentheses: the fields that follow start after the last ')'.
        fields = text[text.rindex(")") + 2 :].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of proc(5))
    return total / _CLOCK_TICKS


def memory(pid: int) -> Memory | None:
    """VmRSS and VmHWM of one process, or None once it is gone."""
    try:
        lines = (_PROC / str(pid) / "status").read_text().splitlines()
    except (FileNotFoundError, ProcessLookupError):
        return None
    values: dict[str, float] = {}
    for line in lines:
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            values[name] = int(rest.split()[0]) / 1024  # reported in kB
    if len(values) != 2:
        return None  # a zombie has no memory lines
    return Memory(values["VmRSS"], values["VmHWM"])


def _children(pid: int) -> list[int]:
    children: list[int] = []
    try:
        tasks = list((_PROC / str(pid) / "task").iterdir())
    except (FileNotFoundError, ProcessLookupError):
        return children
    for task in tasks:
        try:
            children.extend(int(child) for child in (task / "children").read_text().split())
        except (FileNotFoundError, ProcessLookupError):
            continue
    return children
