"""How the demo (scripts/run_local.py) talks: numbered steps with their running time, a live count, one dead letter
per reason, and the commands `--keep` prints. Kept apart from the demo's steps so tests can pin the output's shape.

On a terminal the live count is the project's progress bar (worker/progress.py), not a drawing of its own.
"""

from __future__ import annotations

import shlex
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from tests.support.ledger import DeadLetterRecord
from worker.progress import Progress

STEPS = 7
"""Step 1 (the environment) is printed by scripts/run-local before this script can start."""
TICK_S = 1.0
QUIET_TICK_S = 10.0
"""Without a terminal (a log, a CI job) a still-running step prints a line this often instead of a ticking one."""
_DETAIL_HEADERS = (
    ("mics.dlq.http.status", "HTTP"),
    ("mics.dlq.schema.path", "at"),
    ("mics.dlq.schema.rule", "rule"),
    ("__connect.errors.exception.message", "says"),
)
_MESSAGE_CHARS = 100


class Narrator:
    """Numbered steps, each with a ticking elapsed time while it runs, and a live count; on a terminal the progress
    is redrawn in place, elsewhere it is a line every `QUIET_TICK_S` (and the count a line at most every 2 s)."""

    def __init__(self, out: TextIO, *, live: bool) -> None:
        self.out = out
        self.live = live
        self._step = 1

    def say(self, text: str) -> None:
        self._write(f"==> {text}\n")

    def note(self, text: str) -> None:
        self._write(f"    {text}\n")

    @contextmanager
    def step(self, text: str, *, ticking: bool = True) -> Iterator[None]:
        """`==> [n/7] text`, then the time it has been running until the block ends (unless the block shows its own
        progress: `ticking=False`), then how long it took."""
        self._step += 1
        self.say(f"[{self._step}/{STEPS}] {text}")
        started = time.monotonic()
        done = threading.Event()
        ticker = threading.Thread(target=self._tick, args=(started, done), daemon=True)
        if ticking:
            ticker.start()
        try:
            yield
        finally:
            done.set()
            if ticking:
                ticker.join()
            self._clear()
        self.note(f"done in {time.monotonic() - started:.1f} s")

    @contextmanager
    def counting(self, total: int, unit: str) -> Iterator[Callable[[int, str], None]]:
        """A live count of `total` `unit`s: the block reports `count(done, detail)`. On a terminal it is the progress
        bar (done of total, rate, detail after it); elsewhere a line at most every 2 s, and always the final one."""
        last_line = float("-inf")
        with Progress(total=total, description="    outcomes", unit=unit, stream=self.out, enabled=self.live) as bar:

            def count(done: int, detail: str) -> None:
                nonlocal last_line
                bar.note(detail)
                bar(done, total)
                if not self.live and (done >= total or time.monotonic() - last_line >= 2.0):
                    last_line = time.monotonic()
                    self.note(f"{done:,} / {total:,} {detail}")

            yield count

    def _tick(self, started: float, done: threading.Event) -> None:
        interval = TICK_S if self.live else QUIET_TICK_S
        while not done.wait(interval):
            elapsed = time.monotonic() - started
            if self.live:
                self._write(f"\r    … {elapsed:.0f} s\x1b[K")
            else:
                self.note(f"… still running ({elapsed:.0f} s)")

    def _clear(self) -> None:
        if self.live:
            self._write("\r\x1b[K")

    def _write(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()


def dead_letter_examples(records: Sequence[DeadLetterRecord]) -> list[str]:
    """One line per reason (the first record of each): where it came from and what the worker said about it."""
    first: dict[str, DeadLetterRecord] = {}
    for record in records:
        first.setdefault(record.reason, record)
    lines = []
    for reason in sorted(first):
        headers = first[reason].headers
        source = "{}[{}]@{}".format(
            *(headers.get(f"__connect.errors.{name}", b"?").decode() for name in ("topic", "partition", "offset"))
        )
        details = []
        for name, label in _DETAIL_HEADERS:
            value = headers.get(name, b"").decode("utf-8", "replace")
            if value:
                shown = value if len(value) <= _MESSAGE_CHARS else value[: _MESSAGE_CHARS - 1] + "…"
                details.append(f"{label} {shown}")
        lines.append(f"{reason}: {source}" + (f" — {'; '.join(details)}" if details else ""))
    return lines


def dlq_commands(bootstrap: str, dlq_topic: str, reasons: Sequence[str]) -> list[tuple[str, str]]:
    """The exact commands to inspect and replay the demo's dead letters, while its broker runs."""
    cli = str(Path(sys.prefix) / "bin" / "mics-worker")
    env = f"MICS_WORKER_BOOTSTRAP_SERVERS={shlex.quote(bootstrap)} MICS_WORKER_DLQ_TOPIC={shlex.quote(dlq_topic)}"
    commands = [("summarise the dead letters, five of them in full", f"{env} {cli} dlq inspect --show 5")]
    if reasons:
        reason = reasons[0]
        commands += [
            (f"what a replay of the {reason} ones would do", f"{env} {cli} dlq replay --reason {reason} --dry-run"),
            (
                "replay them to their source topics (a worker would then consume them again)",
                f"{env} {cli} dlq replay --reason {reason}",
            ),
        ]
    return commands
