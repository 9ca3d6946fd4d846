"""The progress bar: records handled (sent, dead-lettered or skipped), records/s and ETA, on stderr, with tqdm."""

from __future__ import annotations

import sys
from types import TracebackType

from tqdm import tqdm

__all__ = ["Progress"]


class Progress:
    """A bar over the records of the range; off (`enabled=False`) it counts nothing and prints nothing."""

    def __init__(self, total: int | None, *, enabled: bool) -> None:
        self._bar = (
            tqdm(total=total, unit="rec", unit_scale=True, dynamic_ncols=True, smoothing=0.1, file=sys.stderr)
            if enabled
            else None
        )

    def advance(self, records: int) -> None:
        """Records handled since the last call."""
        if self._bar is not None and records:
            self._bar.update(records)

    def note(self, text: str) -> None:
        """A short status after the bar (uploading, following execution …)."""
        if self._bar is not None:
            self._bar.set_postfix_str(text, refresh=False)

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self._bar is not None:
            self._bar.close()
