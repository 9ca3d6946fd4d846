"""The progress bar of the long operator commands (dlq replay, backfill) and of the demo, drawn by tqdm on a terminal.

A command reports either where it is, `bar(done, total)` (replay: the total may grow while it runs, as a snapshot
learns more of its topic, so it is set again with every report), or what it has just finished, `bar.advance(n)`
(backfill, whose total is known up front); `note` puts a short status after the bar. A bar that is off
(`enabled=False`, not a terminal) draws and counts nothing, so a caller never needs a second code path.
"""

from __future__ import annotations

import os
import sys
from types import TracebackType
from typing import IO

from tqdm import tqdm

__all__ = ["Progress"]

# A terminal that reports no width (some pseudo-terminals and CI consoles say 0 columns) would get an empty bar from
# tqdm's dynamic sizing: it gets this many columns instead.
FALLBACK_COLUMNS = 100


class Progress:
    """One tqdm bar on `stream` (stderr unless told); `close()`, or leaving its `with` block, ends the line.

    `scaled` shows large counts as 12.3k and is what backfill's millions of records want; `unit` names what is counted.
    """

    def __init__(
        self,
        *,
        total: int | None = None,
        description: str | None = None,
        unit: str = "record",
        scaled: bool = False,
        stream: IO[str] | None = None,
        enabled: bool = True,
    ) -> None:
        out = sys.stderr if stream is None else stream
        sized = not _terminal_without_width(out)
        self._bar = (
            tqdm(
                total=total,
                desc=description,
                unit=unit,
                unit_scale=scaled,
                file=out,
                dynamic_ncols=sized,
                ncols=None if sized else FALLBACK_COLUMNS,
                smoothing=0.1,
            )
            if enabled
            else None
        )

    def __call__(self, done: int, total: int) -> None:
        """The command has handled `done` of `total` so far."""
        if self._bar is None:
            return
        if total != self._bar.total:
            self._bar.total = total
        self._bar.update(done - self._bar.n)

    def advance(self, count: int) -> None:
        """`count` more handled since the last report."""
        if self._bar is not None and count:
            self._bar.update(count)

    def note(self, text: str) -> None:
        """A short status after the bar (uploading, following executions …), shown with the next redraw."""
        if self._bar is not None:
            self._bar.set_postfix_str(text, refresh=False)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()


def _terminal_without_width(stream: IO[str]) -> bool:
    """Whether `stream` is a terminal that reports 0 columns (not a terminal at all: tqdm sizes nothing, fine)."""
    try:
        descriptor = stream.fileno()
        return os.isatty(descriptor) and os.get_terminal_size(descriptor).columns == 0
    except (AttributeError, OSError, ValueError):
        return False
