"""The bad-day flow an operator runs: the API was down, messages went to the DLQ; find them, replay them, done."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Callable

import pytest

from tests.integration.conftest import Stream, wait_for_outcomes
from tests.support.events import MixSpec, generate, ledger_id_of
from tests.support.worker_process import REPO_ROOT, WorkerProcess

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def mics_worker(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run an operator command as a user would, with the worker's own settings."""
    return subprocess.run(
        [sys.executable, "-m", "worker", *args],
        cwd=REPO_ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


class TestDeadLetteredThenReplayed:
    def test_messages_dead_lettered_during_an_outage_are_found_replayed_and_delivered_exactly_once(
        self, stream: Stream, running: Callable[[WorkerProcess], WorkerProcess]
    ) -> None:
        """inspect finds the outage's dead letters; replay sends them back once; the worker then delivers each once."""
        # No circuit: with it an outage holds the stream instead of running the retries out (issue 13).
        env = stream.env(RETRY_MAX_ATTEMPTS="2", RETRY_BASE_DELAY_S="0.01", CIRCUIT_FAILURES="0")
        messages = list(generate(30, MixSpec(invalid=0), seed=51))
        ledger = stream.produce(messages)
        stream.sandbox.set_faults(p503=1.0)
        during_outage = running(WorkerProcess(env))
        wait_for_outcomes(during_outage, len(messages))
        assert during_outage.stop() == 0
        assert stream.sandbox.documents()["activities"] == []

        inspected = mics_worker(env, "dlq", "inspect", "--format", "json")
        assert inspected.returncode == 0, inspected.stderr
        report = json.loads(inspected.stdout)
        assert report["by_reason"] == {"retries_exhausted": len(messages)}
        assert report["by_http_status"] == {"503": len(messages)}

        stream.sandbox.set_faults(p503=0.0)
        replayed = mics_worker(env, "dlq", "replay", "--reason", "retries_exhausted")
        assert replayed.returncode == 0, replayed.stderr
        again = mics_worker(env, "dlq", "replay", "--reason", "retries_exhausted")
        assert again.returncode == 0, again.stderr

        after_fix = running(WorkerProcess(env))
        wait_for_outcomes(after_fix, len(messages))
        assert after_fix.stop() == 0
        documents = stream.sandbox.documents()
        delivered = Counter(
            ledger_id_of(stored["body"]) for kind in ("activities", "profiles", "choices") for stored in documents[kind]
        )
        assert delivered == Counter(list(ledger.by_id))  # every message exactly once: one replay, not two
        assert stream.dead_letter_count() == len(messages)
