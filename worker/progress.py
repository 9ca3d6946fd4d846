"""Progress of a long operator command (dlq replay, backfill, the demo), drawn by tqdm on a terminal.

The commands report `(done, total)` as they go; `Progress` turns that into one bar redrawn in place. The total may
grow while the command runs (a snapshot learns more of its topic), so it is set again with every report.
"""

from __future__ import annotations

from typing import IO

from tqdm import tqdm

__all__ = ["Progress"]


class Progress:
    """A `(done, total)` callback drawing one tqdm bar on `stream`; `close()` ends the line."""

    def __init__(self, stream: IO[str], description: str, *, unit: str = "record") -> None:
        self._bar = tqdm(total=0, desc=description, unit=unit, file=stream, leave=True, dynamic_ncols=True)

    def __call__(self, done: int, total: int) -> None:
        if total != self._bar.total:
            self._bar.total = total
        self._bar.update(done - self._bar.n)

    def close(self) -> None:
        self._bar.close()
