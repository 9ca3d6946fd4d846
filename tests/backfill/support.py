"""What the backfill tests share: a mixed stream over two datamarts and three document types with ledger ids, the
backfill as an OS process (so a test can kill it), and the sandbox started with the bulk path's flags."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import orjson

from tests.support.events import SampleMessage, activity, choice_envelope, profile_envelope
from tests.support.sandbox_process import REPO_ROOT

__all__ = ["DATAMARTS", "BackfillProcess", "backfill_env", "mixed_stream"]

DATAMARTS = ("1509", "2607")


def mixed_stream(count: int, *, invalid_every: int = 97, seed: int = 11) -> Iterator[SampleMessage]:
    """Envelopes spread over two datamarts and three types; every `invalid_every`-th is one the worker refuses."""
    rng = random.Random(seed)
    for index in range(count):
        ledger_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        user = rng.randrange(5000)
        datamart = DATAMARTS[index % 2]
        key = f"user-{user}".encode()
        kind = (index // 2) % 3
        if index % invalid_every == invalid_every - 1:
            body = activity(ledger_id, user, rng, events=1)
            del body["$events"]  # schema_invalid at $.body
            value = orjson.dumps({"type": "activity", "datamart_id": datamart, "body": body})
            yield SampleMessage(ledger_id, key, value, "activity", "schema_invalid")
            continue
        if kind == 0:
            document: dict[str, Any] = {"type": "activity", "body": activity(ledger_id, user, rng, events=1)}
            route = "activity"
        elif kind == 1:
            document, route = profile_envelope(ledger_id, user), "profile"
        else:
            document, route = choice_envelope(ledger_id, user, rng.random() < 0.7), "choice"
        document["datamart_id"] = datamart
        yield SampleMessage(ledger_id, key, orjson.dumps(document), route, "delivered")


def backfill_env(
    *, bootstrap_servers: str, base_url: str, token: str, topic: str, dlq_topic: str, **extra: str
) -> dict[str, str]:
    """The worker's settings as a backfill reads them (its topics, routes, datamarts, DLQ), plus `extra`."""
    env = {
        "MICS_WORKER_BOOTSTRAP_SERVERS": bootstrap_servers,
        "MICS_WORKER_API_BASE_URL": base_url,
        "MICS_WORKER_API_TOKEN": token,
        "MICS_WORKER_TOPICS": topic,
        "MICS_WORKER_ROUTES": f"{topic}=envelope",
        "MICS_WORKER_DLQ_TOPIC": dlq_topic,
        "MICS_WORKER_ALLOWED_DATAMARTS": ",".join(DATAMARTS),
        "MICS_WORKER_DEFAULT_DATAMART_ID": DATAMARTS[0],
        "MICS_WORKER_LOG_FORMAT": "text",
        "MICS_WORKER_BACKFILL_POLL_INTERVAL_S": "0.1",
        "MICS_WORKER_RETRY_MAX_DELAY_S": "1",
    }
    env.update({f"MICS_WORKER_{name}": value for name, value in extra.items()})
    return env


class BackfillProcess:
    """`python -m worker backfill …` as a child process, its output in files under `directory`."""

    def __init__(self, env: Mapping[str, str], directory: Path, *args: str) -> None:
        self.env = {**os.environ, **env}
        self.directory = directory
        self.args = args
        self.report_path = directory / f"report-{uuid.uuid4().hex[:6]}.json"
        self._stdout = directory / "stdout.txt"
        self._stderr = directory / "stderr.txt"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> BackfillProcess:
        command = [sys.executable, "-m", "worker", "backfill", *self.args, "--report", str(self.report_path)]
        with open(self._stdout, "wb") as out, open(self._stderr, "wb") as err:
            self.process = subprocess.Popen(command, env=self.env, cwd=REPO_ROOT, stdout=out, stderr=err)
        return self

    def wait(self, timeout_s: float) -> int:
        assert self.process is not None
        return self.process.wait(timeout_s)

    def kill(self) -> None:
        """SIGKILL: no handler runs, nothing is flushed (a crash)."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(30)

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.kill()

    def stdout(self) -> str:
        return self._stdout.read_text(encoding="utf-8", errors="replace")

    def stderr(self) -> str:
        return self._stderr.read_text(encoding="utf-8", errors="replace")

    def report(self) -> dict[str, Any]:
        document: dict[str, Any] = json.loads(self.report_path.read_text(encoding="utf-8"))
        return document
