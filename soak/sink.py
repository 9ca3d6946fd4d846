"""The ledger sink (`soak/ledger_sink.py`) as a child process of the soak, with its admin calls."""

from __future__ import annotations

import os
import re
import secrets
import select
import signal
import subprocess
import sys
from typing import Any

import httpx

from soak.settings import REPO_ROOT


class SinkProcess:
    """`python -m soak.ledger_sink` as a child process, with its admin calls."""

    def __init__(self, seed: int = 1) -> None:
        self.token = secrets.token_urlsafe(24)
        self._seed = seed
        self._process: subprocess.Popen[bytes] | None = None
        self.base_url = ""
        self._client: httpx.Client | None = None

    def start(self) -> SinkProcess:
        self._process = subprocess.Popen(  # noqa: S603 - a fixed argv: this interpreter, this repository's module
            [sys.executable, "-m", "soak.ledger_sink", "--port", "0", "--seed", str(self._seed)],
            cwd=REPO_ROOT,
            env={**os.environ, "MICS_SANDBOX_TOKEN": self.token},
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        assert self._process.stdout is not None
        ready, _, _ = select.select([self._process.stdout], [], [], 30)
        line = self._process.stdout.readline().decode() if ready else ""
        found = re.search(r"listening on (http://\S+)", line)
        if found is None:
            self.stop()
            raise RuntimeError(f"the ledger sink did not start: {line!r}")
        self.base_url = found.group(1)
        self._client = httpx.Client(base_url=self.base_url, timeout=60, trust_env=False)
        return self

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        assert self._client is not None
        response = self._client.request(method, path, json=body)
        response.raise_for_status()
        return response.json()

    def set_faults(self, **faults: float) -> None:
        self.call("PUT", "/_sandbox/faults", dict(faults))

    def stop(self) -> None:
        if self._client is not None:
            self._client.close()
        if self._process is not None and self._process.poll() is None:
            os.killpg(self._process.pid, signal.SIGTERM)
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self._process.pid, signal.SIGKILL)
                self._process.wait()
