"""The sandbox API (`python -m worker.sandbox`) as a child process, for tests, benchmarks and scripts.

The process gets a fresh random token through the environment (never on its command line), picks a free
loopback port itself and announces it on stdout; `start()` returns once that line is read, i.e. once the
sandbox accepts connections. It runs in its own session, so `stop()` can signal exactly it and nothing else.
"""

from __future__ import annotations

import os
import re
import secrets
import select
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx

from tests.support.process_group import ProcessGroup

REPO_ROOT = Path(__file__).resolve().parents[2]
TOKEN_ENV = "MICS_SANDBOX_TOKEN"
DATAMART_TOKENS_ENV = "MICS_SANDBOX_DATAMART_TOKENS"
DEFAULT_STARTUP_TIMEOUT_S = 20.0
DEFAULT_STOP_TIMEOUT_S = 10.0
_ANNOUNCEMENT = re.compile(rb"sandbox listening on (http://\S+)\n")
_STDERR_TAIL_BYTES = 4000


class SandboxError(RuntimeError):
    """The sandbox did not start, or an admin request failed; the message carries what the process said."""


class SandboxProcess:
    """One sandbox process on loopback, with the admin API as methods.

    `args` are extra command-line arguments (`--minimal`, `--seed 1`, `--p500 0.2`, ...). `token` is the
    token the process starts with (default: a fresh random one); `.token` follows `set_token()` and goes
    back to the starting token on `reset()`, as the sandbox itself does.
    """

    def __init__(
        self,
        *args: str,
        token: str | None = None,
        datamart_tokens: dict[str, str] | None = None,
        host: str = "127.0.0.1",
        startup_timeout_s: float = DEFAULT_STARTUP_TIMEOUT_S,
    ) -> None:
        self.args = tuple(args)
        self.host = host
        self.startup_timeout_s = startup_timeout_s
        self._initial_token = token if token is not None else secrets.token_urlsafe(24)
        self.token = self._initial_token
        self._datamart_tokens = dict(datamart_tokens or {})
        self._base_url: str | None = None
        self._process: ProcessGroup | None = None
        self._stderr: Any = None
        self._admin: httpx.Client | None = None

    # -- lifecycle -------------------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:<port>` of the running sandbox (the API is under `/v1`)."""
        if self._base_url is None:
            raise SandboxError("the sandbox is not started")
        return self._base_url

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def is_running(self) -> bool:
        return self._process is not None and self._process.running()

    def start(self) -> Self:
        """Launch the process and wait for its announcement line."""
        if self.is_running():
            raise SandboxError(f"the sandbox is already running at {self._base_url}")
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - kept open for the process's lifetime
        command = [sys.executable, "-m", "worker.sandbox", "--host", self.host, "--port", "0", "--stop-on-stdin-eof"]
        # The sandbox stops when its stdin closes: if this process dies without stop(), so does the sandbox.
        self._process = ProcessGroup(
            [*command, *self.args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            cwd=REPO_ROOT,
            env={
                **os.environ,
                TOKEN_ENV: self._initial_token,
                DATAMART_TOKENS_ENV: ",".join(f"{dm}={token}" for dm, token in self._datamart_tokens.items()),
            },
        )
        try:
            self._base_url = self._await_announcement(self._process.process)
        except BaseException:
            self.stop()
            raise
        self.token = self._initial_token
        self._admin = httpx.Client(base_url=self._base_url, trust_env=False, timeout=10.0)
        return self

    def stop(self, timeout_s: float = DEFAULT_STOP_TIMEOUT_S) -> int | None:
        """SIGTERM, then SIGKILL after `timeout_s`; return the exit status (None if never started)."""
        if self._admin is not None:
            self._admin.close()
            self._admin = None
        process, self._process = self._process, None
        self._base_url = None
        if process is None:
            return None
        process.stop(timeout_s)
        for pipe in (process.process.stdin, process.process.stdout):
            if pipe is not None:
                pipe.close()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None
        return process.returncode

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"running at {self._base_url}" if self.is_running() else "stopped"
        return f"SandboxProcess({state}, args={self.args!r})"

    def stderr_tail(self) -> str:
        """The last few kilobytes the process wrote to stderr (its logs)."""
        if self._stderr is None:
            return ""
        self._stderr.seek(0, os.SEEK_END)
        size = self._stderr.tell()
        self._stderr.seek(max(0, size - _STDERR_TAIL_BYTES))
        text: str = self._stderr.read().decode("utf-8", "replace")
        return text

    def _await_announcement(self, process: subprocess.Popen[bytes]) -> str:
        assert process.stdout is not None
        deadline = time.monotonic() + self.startup_timeout_s
        received = b""
        fd = process.stdout.fileno()
        while (remaining := deadline - time.monotonic()) > 0:
            readable, _, _ = select.select([fd], [], [], remaining)
            if not readable:
                break
            chunk = os.read(fd, 4096)
            if not chunk:
                code = process.wait()
                raise SandboxError(f"the sandbox exited with status {code} before listening:\n{self.stderr_tail()}")
            received += chunk
            found = _ANNOUNCEMENT.search(received)
            if found is not None:
                return found.group(1).decode("ascii")
        raise SandboxError(
            f"the sandbox did not announce its port within {self.startup_timeout_s:.0f} s:\n{self.stderr_tail()}"
        )

    # -- admin API -------------------------------------------------------------------------------------------

    def _call(
        self, method: str, name: str, body: dict[str, object] | None = None, params: dict[str, float] | None = None
    ) -> Any:
        if self._admin is None:
            raise SandboxError("the sandbox is not started")
        response = self._admin.request(method, f"/_sandbox/{name}", json=body, params=params)
        if response.status_code != 200:
            raise SandboxError(f"{method} /_sandbox/{name} answered {response.status_code}: {response.text}")
        return response.json()

    def set_faults(self, **faults: float) -> dict[str, Any]:
        """Change some fault settings (`latency_ms`, `p429`, `retry_after_s`, `p500`, `p503`, `p_reset`,
        `p_hang`, `hang_s`, `outage_s`); return the whole new fault set."""
        result: dict[str, Any] = self._call("PUT", "faults", dict(faults))
        return result

    def faults(self) -> dict[str, Any]:
        """The current fault set (`outage_s`: seconds left in the outage window)."""
        result: dict[str, Any] = self._call("GET", "faults")
        return result

    def set_rate_limit(self, **changes: float | bool | str | None) -> dict[str, Any]:
        """Change some rate limit settings (`rate`, `burst`, `per_datamart_rate`, `per_datamart_burst`: None
        removes a limit or defaults a burst; `record`, `arrivals_kept`); return `rate_limit()`'s document."""
        result: dict[str, Any] = self._call("PUT", "rate_limit", dict(changes))
        return result

    def rate_limit(self) -> dict[str, Any]:
        """The limits in force and the counters: `admitted`, `throttled`, `throttled_by` (`global`,
        `datamart`), `datamarts` (`{"<id>": {"admitted", "throttled"}}`)."""
        result: dict[str, Any] = self._call("GET", "rate_limit")
        return result

    def arrivals(self, window_s: float = 10.0, bucket_s: float = 0.1) -> dict[str, Any]:
        """Arrivals per `bucket_s` over the last `window_s` seconds, oldest first: `admitted` and `throttled`
        lists, `now_s`/`start_s` (the sandbox's monotonic clock), and `complete` (no arrival of the window is
        missing). Recorded only while a limit is set or recording is on (`set_rate_limit(record=True)`)."""
        result: dict[str, Any] = self._call("GET", "arrivals", params={"window_s": window_s, "bucket_s": bucket_s})
        return result

    def stats(self) -> dict[str, Any]:
        """Request counts by `"<METHOD> <route>"`, response counts by status, drops, stored counts."""
        result: dict[str, Any] = self._call("GET", "stats")
        return result

    def documents(self) -> dict[str, list[dict[str, Any]]]:
        """Every accepted write per kind, in arrival order, bodies as received."""
        result: dict[str, list[dict[str, Any]]] = self._call("GET", "documents")
        return result

    def requests(self) -> list[dict[str, Any]]:
        """The most recent API requests: method, raw_path, query, host, status (null when dropped)."""
        result: list[dict[str, Any]] = self._call("GET", "requests")
        return result

    def reset(self) -> None:
        """Forget documents, counts and requests; back to the starting token, faults and RNG seed."""
        self._call("POST", "reset")
        self.token = self._initial_token

    def set_token(self, token: str) -> None:
        """Make the sandbox accept `token` instead of the current one (which is revoked)."""
        self._call("PUT", "token", {"token": token})
        self.token = token

    def set_datamart_token(self, datamart: str, token: str) -> None:
        """Make `datamart` accept `token` only (its previous token, or the sandbox's, is refused there)."""
        self._call("PUT", "token", {"token": token, "datamart": datamart})

    @property
    def registry_url(self) -> str:
        """The Confluent-compatible Schema Registry subset this sandbox serves (`/schemas/ids/{id}`, …)."""
        return self.base_url

    def register_schema(self, schema_id: int, schema: str, schema_type: str = "JSON", guid: str | None = None) -> str:
        """Register a writer schema; its GUID."""
        document: dict[str, object] = {"id": schema_id, "schema": schema, "schemaType": schema_type}
        if guid is not None:
            document["guid"] = guid
        result: dict[str, object] = self._call("PUT", "schemas", document)
        return str(result["guid"])

    def set_registry_available(self, available: bool) -> int:
        """Make every registry read answer 503 (False) or serve again (True); the reads so far."""
        result: dict[str, int] = self._call("PUT", "registry", {"available": available})
        return result["reads"]
