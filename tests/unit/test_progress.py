"""The operator tools' progress bar (tqdm): counts and a growing total reach the line it draws."""

from __future__ import annotations

import io

from worker.progress import Progress


def test_draws_done_over_total_and_follows_a_growing_total() -> None:
    """The last report shows as `done/total` with the total learnt last (tqdm redraws at most every 0.1 s, so the
    intermediate reports may not be drawn)."""
    stream = io.StringIO()
    bar = Progress(stream, "replayed")
    bar(2, 4)
    bar(5, 10)
    bar(10, 10)
    bar.close()
    text = stream.getvalue()
    assert "replayed" in text
    assert "/4" not in text.rsplit("\r", 1)[-1]
    assert "10/10" in text
    assert text.endswith("\n")


def test_close_without_a_report_still_ends_its_line() -> None:
    """A command that stopped before its first batch leaves a finished line, not a half-drawn one."""
    stream = io.StringIO()
    Progress(stream, "replayed").close()
    assert stream.getvalue().endswith("\n")
