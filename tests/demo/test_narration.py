"""The demo's output pieces (scripts/demo_narration.py), without a broker: steps, live count, dead-letter examples
and the commands printed by `--keep`."""

from __future__ import annotations

import io
import sys
import time
from pathlib import Path

import pytest

from scripts import demo_narration
from scripts.demo_narration import Narrator, dead_letter_examples, dlq_commands
from tests.support.ledger import DeadLetterRecord


def record(reason: str, offset: int, **headers: str) -> DeadLetterRecord:
    base = {
        "mics.dlq.reason": reason,
        "__connect.errors.topic": "demo.events",
        "__connect.errors.partition": "1",
        "__connect.errors.offset": str(offset),
        **headers,
    }
    return DeadLetterRecord(None, b"{}", {name: value.encode() for name, value in base.items()}, 0)


class TestSteps:
    def test_steps_are_numbered_after_the_environment_and_say_how_long_they_took(self) -> None:
        """Step 1 is the environment (printed by scripts/run-local); the script's steps go on from 2 of 7."""
        out = io.StringIO()
        narrator = Narrator(out, live=False)
        with narrator.step("starting a broker"):
            pass
        with narrator.step("starting the sandbox"):
            narrator.note("at http://127.0.0.1:1")
        lines = out.getvalue().splitlines()
        assert lines[0] == "==> [2/7] starting a broker"
        assert lines[1].startswith("    done in ")
        assert lines[2:4] == ["==> [3/7] starting the sandbox", "    at http://127.0.0.1:1"]

    def test_a_long_step_shows_it_is_still_running(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Without a terminal a step that lasts prints a "still running" line per tick (the tick is shortened
        here; the ticker thread's lines are waited for, not slept for)."""
        out = io.StringIO()
        narrator = Narrator(out, live=False)
        monkeypatch.setattr(demo_narration, "QUIET_TICK_S", 0.01)
        with narrator.step("a slow step"):
            deadline = time.monotonic() + 30
            while "still running" not in out.getvalue():
                assert time.monotonic() < deadline, "no progress line"
                time.sleep(0.01)
        assert out.getvalue().splitlines()[1].startswith("    … still running (")

    def test_the_live_count_on_a_terminal_is_the_progress_bar(self) -> None:
        """On a terminal the count is the project's progress bar (worker/progress.py): it ends at 400/400 with the
        rate and the latest detail after it, on one line of its own, and none of the plain count lines."""
        out = io.StringIO()
        narrator = Narrator(out, live=True)
        with narrator.counting(400, "message") as count:
            count(10, "finished (delivered 9, dead-lettered 1)")
            count(400, "finished (delivered 390, dead-lettered 10)")
        final = out.getvalue().split("\r")[-1]
        assert final.startswith("    outcomes: 100%")
        assert "400/400" in final
        assert "message/s, finished (delivered 390, dead-lettered 10)]" in final
        assert final.endswith("\n")
        assert " / 400 " not in out.getvalue()

    def test_the_count_without_a_terminal_is_throttled_but_the_last_always_shows(self) -> None:
        """Elsewhere plain lines, no bar: a line at most every 2 s, and always the final count."""
        out = io.StringIO()
        narrator = Narrator(out, live=False)
        with narrator.counting(400, "message") as count:
            count(1, "finished")
            count(2, "finished")
            count(400, "finished")
        assert out.getvalue().splitlines() == ["    1 / 400 finished", "    400 / 400 finished"]


class TestDeadLetterExamples:
    def test_one_example_per_reason_with_what_the_worker_said(self) -> None:
        """Three schema_invalid and one decode_error give two lines, the first record of each, sorted by reason."""
        records = [
            record("schema_invalid", 3, **{"mics.dlq.schema.path": "$.$ts", "mics.dlq.schema.rule": "type"}),
            record("schema_invalid", 4),
            record("decode_error", 7, **{"__connect.errors.exception.message": "invalid JSON"}),
            record("schema_invalid", 9),
        ]
        assert dead_letter_examples(records) == [
            "decode_error: demo.events[1]@7 — says invalid JSON",
            "schema_invalid: demo.events[1]@3 — at $.$ts; rule type",
        ]

    def test_a_long_message_is_cut(self) -> None:
        """A long exception message is cut to 100 characters, ending in an ellipsis."""
        [line] = dead_letter_examples(
            [record("http_400", 1, **{"__connect.errors.exception.message": "x" * 500, "mics.dlq.http.status": "400"})]
        )
        assert line == "http_400: demo.events[1]@1 — HTTP 400; says " + "x" * 99 + "…"


class TestKeepCommands:
    def test_exact_commands_with_the_real_address_and_no_placeholder(self) -> None:
        """Inspect, a dry-run replay and a replay of the first reason, each runnable as printed."""
        commands = dlq_commands("127.0.0.1:40123", "demo.dlq", ["decode_error", "schema_invalid"])
        cli = str(Path(sys.prefix) / "bin" / "mics-worker")
        env = "MICS_WORKER_BOOTSTRAP_SERVERS=127.0.0.1:40123 MICS_WORKER_DLQ_TOPIC=demo.dlq"
        assert [command for _, command in commands] == [
            f"{env} {cli} dlq inspect --show 5",
            f"{env} {cli} dlq replay --reason decode_error --dry-run",
            f"{env} {cli} dlq replay --reason decode_error",
        ]
        assert all("<" not in command for _, command in commands)

    def test_an_empty_dlq_offers_only_the_inspection(self) -> None:
        """Nothing to replay: no replay command."""
        assert len(dlq_commands("127.0.0.1:1", "demo.dlq", [])) == 1
