"""The operator commands' one progress bar (tqdm): replay's position reports, backfill's increments and notes, off."""

from __future__ import annotations

import fcntl
import io
import os
import struct
import termios

from worker.progress import FALLBACK_COLUMNS, Progress


def test_draws_done_over_total_and_follows_a_growing_total() -> None:
    """The last report shows as `done/total` with the total learnt last (tqdm redraws at most every 0.1 s, so the
    intermediate reports may not be drawn)."""
    stream = io.StringIO()
    bar = Progress(total=0, description="replayed", stream=stream)
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
    Progress(total=0, description="replayed", stream=stream).close()
    assert stream.getvalue().endswith("\n")


def test_advances_add_up_and_a_note_follows_the_bar() -> None:
    """Backfill's use: increments against a known total, in its scaled unit, with the note of the moment."""
    stream = io.StringIO()
    with Progress(total=2000, unit="rec", scaled=True, stream=stream) as bar:
        bar.advance(1500)
        bar.advance(0)
        bar.note("following 3 executions")
        bar.advance(500)
    last = stream.getvalue().rsplit("\r", 1)[-1]
    assert "2.00k/2.00k" in last
    assert "rec/s" in last
    assert "following 3 executions" in last
    assert last.endswith("\n")


def test_a_bar_that_is_off_draws_nothing_whatever_it_is_told() -> None:
    """Off (not a terminal, `--progress off`): reports, increments, notes and close write not a byte."""
    stream = io.StringIO()
    with Progress(total=10, stream=stream, enabled=False) as bar:
        bar(3, 10)
        bar.advance(4)
        bar.note("uploading")
    assert stream.getvalue() == ""


class TestTerminalWithoutWidth:
    def test_a_terminal_reporting_no_columns_still_gets_a_whole_bar(self) -> None:
        """A fresh pseudo-terminal may report 0 columns, where tqdm's own sizing draws a one-character bar and cuts
        the line short: the bar falls back to FALLBACK_COLUMNS, so the bar, the count and the closing bracket show."""
        main, side = os.openpty()
        fcntl.ioctl(side, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 0, 0, 0))  # rows 24, columns 0
        try:
            with os.fdopen(side, "w", closefd=False) as stream:
                assert os.get_terminal_size(side).columns == 0
                bar = Progress(total=10, stream=stream)
                bar(10, 10)
                bar.close()
                stream.flush()
        finally:
            os.close(side)
        drawn = b""
        try:
            while chunk := os.read(main, 65536):
                drawn += chunk
        except OSError:  # EIO: the terminal's other side is closed and everything was read
            pass
        finally:
            os.close(main)
        final = drawn.decode().replace("\r\n", "\n").split("\r")[-1].rstrip()
        assert "10/10" in final
        assert final.endswith("]")
        assert len(final.split("|")[1]) > 10  # the bar itself, not one character
        assert len(final) <= FALLBACK_COLUMNS
