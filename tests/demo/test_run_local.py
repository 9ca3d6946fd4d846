"""scripts/run-local end to end (its own broker, sandbox and worker): the narration's shape from the first line,
no raw librdkafka line, one dead letter per reason, and `--keep` with commands that work as printed."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
KEEP_MARKER = "==> press Ctrl-C to stop them"


class _Lines:
    """The demo's stdout, collected line by line by a thread, so the test can wait for a line with a deadline."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._process = process
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, text: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while text not in self.lines:
            if self._process.poll() is not None:
                self._thread.join(5)
                if text in self.lines:
                    return
                raise AssertionError(f"the demo exited ({self._process.returncode}):\n" + "\n".join(self.lines))
            assert time.monotonic() < deadline, f"no {text!r} in:\n" + "\n".join(self.lines)
            time.sleep(0.1)

    def finish(self) -> None:
        self._thread.join(30)
        if self._process.stdout is not None:
            self._process.stdout.close()


def _run_printed(command: str) -> subprocess.CompletedProcess[str]:
    """Run a printed `VAR=value ... program args` line exactly as a user would paste it (no shell needed)."""
    words = shlex.split(command)
    env = {"PATH": os.environ.get("PATH", "")}
    while "=" in words[0] and not words[0].startswith("/"):
        name, _, value = words.pop(0).partition("=")
        env[name] = value
    return subprocess.run(words, env=env, capture_output=True, text=True, timeout=120, check=False)


def test_the_demo_narrates_keeps_and_balances() -> None:
    """200 events with --keep: step 1 comes first (before the environment is checked), steps 2-7 follow in order,
    each step ends with its time, the live count reaches 200 / 200, no `%N|` librdkafka line, one example per
    dead-letter reason of the ledger, the printed inspect command works while the demo waits, and Ctrl-C ends it
    with exit status 0 (the ledger balances)."""
    process = subprocess.Popen(
        [str(REPO / "scripts" / "run-local"), "--events", "200", "--keep"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=REPO,
        start_new_session=True,
    )
    output = _Lines(process)
    try:
        output.wait_for(KEEP_MARKER, timeout_s=600)
        [inspect] = [line.strip() for line in output.lines if line.strip().endswith("dlq inspect --show 5")]
        inspected = _run_printed(inspect)
        assert inspected.returncode == 0, inspected.stderr
        assert "dead-letter topic demo.dlq:" in inspected.stdout
        [dry_run] = [line.strip() for line in output.lines if line.strip().endswith("--dry-run")]
        replayed = _run_printed(dry_run)
        assert replayed.returncode == 0, replayed.stderr
        assert "dry run: nothing produced, nothing committed" in replayed.stdout
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=120) == 0
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    output.finish()
    lines = output.lines

    assert lines[0].startswith("==> [1/7] preparing the Python environment")
    steps = [int(match.group(1)) for line in lines if (match := re.match(r"==> \[(\d)/7\] ", line))]
    assert steps == [1, 2, 3, 4, 5, 6, 7]
    assert sum(line.startswith("    done in ") for line in lines) == 7
    assert "    200 / 200 finished" in "\n".join(lines)
    assert not [line for line in lines if re.match(r"%\d\|", line)]
    assert "==> the ledger balances: every message was delivered or dead-lettered with a reason" in lines

    [dlq_line] = [line for line in lines if line.startswith("  in the DLQ ")]
    reasons = sorted(re.findall(r"(\w+)=\d+", dlq_line))
    start = lines.index("==> one dead letter of each reason:")
    examples = lines[start + 1 : start + 1 + len(reasons)]
    assert [example.split(":", 1)[0].strip() for example in examples] == reasons
    assert not any("<host:port>" in line or "while a broker runs" in line for line in lines)
    assert lines[-1] == "==> stopping the sandbox and the broker"
