"""The worker (`python -m worker run`) as a separate OS process, as it runs in production, for tests and scripts.

Settings go in through `MICS_WORKER_*` environment variables; the health/metrics port is chosen free up front, so
tests read `/metrics` and `/readyz` exactly as Prometheus and Kubernetes do.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Self

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.support.kafka_broker import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]

__all__ = ["WorkerProcess", "worker_env"]


def free_port_run(count: int) -> int:
    """The first of `count` consecutive ports nobody listens on right now."""
    while True:
        base = free_port()
        with contextlib.ExitStack() as held:
            try:
                for port in range(base, base + count):
                    probe = held.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
                    probe.bind(("127.0.0.1", port))
            except OSError:
                continue  # one of them is taken: another base
        return base


def worker_env(
    *,
    bootstrap_servers: str,
    api_base_url: str,
    api_token: str,
    topics: str,
    routes: str,
    dlq_topic: str,
    group_id: str,
    datamart: str = "1509",
    **extra: str,
) -> dict[str, str]:
    """The environment for one worker: the essentials plus any `MICS_WORKER_<NAME>` given as `NAME=value`."""
    env = {
        "MICS_WORKER_BOOTSTRAP_SERVERS": bootstrap_servers,
        "MICS_WORKER_API_BASE_URL": api_base_url,
        "MICS_WORKER_API_TOKEN": api_token,
        "MICS_WORKER_TOPICS": topics,
        "MICS_WORKER_ROUTES": routes,
        "MICS_WORKER_DLQ_TOPIC": dlq_topic,
        "MICS_WORKER_GROUP_ID": group_id,
        "MICS_WORKER_DEFAULT_DATAMART_ID": datamart,
        "MICS_WORKER_LOG_FORMAT": "json",
        "MICS_WORKER_DRAIN_TIMEOUT_S": "20",
        "MICS_WORKER_CREDENTIALS_PROBE_INTERVAL_S": "0.5",
        "MICS_WORKER_RETRY_MAX_DELAY_S": "2",
    }
    env.update({f"MICS_WORKER_{name}": value for name, value in extra.items()})
    return env


class WorkerProcess:
    """One worker process; `metric()` and `ready()` read its health port, `stop()` sends SIGTERM and waits."""

    def __init__(self, env: Mapping[str, str], *, args: tuple[str, ...] = (), health_ports: int = 1) -> None:
        self.health_port = free_port_run(health_ports)  # `run --processes N` gives member i the base port + i
        self.env = {**os.environ, **env, "MICS_WORKER_HEALTH_PORT": str(self.health_port)}
        self.env.setdefault("MICS_WORKER_HEALTH_HOST", "127.0.0.1")
        self.args = args
        self._process: subprocess.Popen[bytes] | None = None
        self._stdout: IO[bytes] | None = None
        self._stderr: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.health_port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def start(self) -> Self:
        """Start the process; returns at once (use `wait_until` for readiness)."""
        self._stdout = tempfile.TemporaryFile()  # noqa: SIM115 - kept open for the process's life; see close()
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115
        self._process = subprocess.Popen(
            [sys.executable, "-m", "worker", "run", *self.args],
            cwd=REPO_ROOT,
            env=self.env,
            stdout=self._stdout,
            stderr=self._stderr,
            start_new_session=True,
        )
        return self

    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def stop(self, timeout_s: float = 60.0) -> int:
        """SIGTERM (graceful drain and commit), then wait; SIGKILL only if it overstays `timeout_s`."""
        process = self._require()
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        return process.returncode

    def kill(self) -> None:
        """SIGKILL: a crash, no drain, no commit."""
        process = self._require()
        if process.poll() is None:
            process.kill()
            process.wait()

    def stdout(self) -> str:
        return self._read(self._stdout)

    def stderr(self) -> str:
        return self._read(self._stderr)

    def metrics(self) -> dict[str, float]:
        """All samples of `/metrics` as `name{label="v",...}` → value (labels sorted)."""
        response = httpx.get(self.url + "/metrics", timeout=5)
        response.raise_for_status()
        samples: dict[str, float] = {}
        for family in text_string_to_metric_families(response.text):
            for sample in family.samples:
                labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
                samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
        return samples

    def metric_sum(self, name: str, **labels: str) -> float:
        """The sum of `name` over the samples whose labels include `labels`."""
        total = 0.0
        wanted = [f'{k}="{v}"' for k, v in labels.items()]
        for key, value in self.metrics().items():
            base, _, label_text = key.partition("{")
            if base == name and all(w in label_text for w in wanted):
                total += value
        return total

    def probe(self, path: str) -> int | None:
        """The HTTP status of `/healthz` or `/readyz`, None when nothing answers."""
        try:
            return httpx.get(self.url + path, timeout=2).status_code
        except httpx.HTTPError:
            return None

    def wait_until(self, condition: Callable[[], bool], timeout_s: float, what: str) -> None:
        """Poll `condition` until true; fail with the worker's stderr tail if it does not come, or the worker dies."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if condition():
                    return
            if not self.is_running():
                raise AssertionError(
                    f"worker exited ({self._require().returncode}) waiting for {what}:\n{self._tail()}"
                )
            time.sleep(0.2)
        raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}:\n{self._tail()}")

    def _tail(self) -> str:
        return "\n".join(self.stderr().splitlines()[-40:])

    def _require(self) -> subprocess.Popen[bytes]:
        if self._process is None:
            raise RuntimeError("the worker was not started")
        return self._process

    @staticmethod
    def _read(handle: IO[bytes] | None) -> str:
        if handle is None:
            return ""
        handle.seek(0)
        return handle.read().decode(errors="replace")

    def __enter__(self) -> Self:
        return self.start()

    def close(self) -> None:
        """Kill the process if it still runs and release its output files."""
        if self._process is not None and self._process.poll() is None:
            self.kill()
        for handle in (self._stdout, self._stderr):
            if handle is not None:
                handle.close()
        self._stdout = self._stderr = None

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
