"""An OpenTelemetry Collector built from source (tests/otelcol, modules from the Go module proxy) for the tests.

`build_collector` compiles it once (about a minute with the module cache filled, longer on a fresh machine);
`CollectorRelay` runs it between the worker and a test's `OtlpReceiver`: the worker exports to the collector's OTLP
receiver exactly as in production, and the collector's OTLP/HTTP exporter forwards what it accepted.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from tests.support.kafka_broker import free_port

SOURCE = Path(__file__).resolve().parents[1] / "otelcol"
BUILD_TIMEOUT_S = 1200.0
START_TIMEOUT_S = 60.0

__all__ = ["CollectorRelay", "build_collector", "go_tool"]


def go_tool() -> str | None:
    """The `go` command on PATH, if any."""
    return shutil.which("go")


def build_collector(go: str, directory: Path) -> Path:
    """Compile tests/otelcol into `directory`; the committed go.sum pins every module (`-mod=readonly`)."""
    binary = directory / "otelcol-relay"
    env = {**os.environ, "GOFLAGS": "-mod=readonly"}
    done = subprocess.run(
        [go, "build", "-o", str(binary), "."],
        cwd=SOURCE,
        env=env,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"building the collector failed:\n{done.stderr[-4000:]}")
    return binary


class CollectorRelay:
    """`with CollectorRelay(binary, sink_endpoint) as relay:` — export to `relay.endpoint`, read at the sink."""

    def __init__(self, binary: Path, sink_endpoint: str) -> None:
        self.port = free_port()
        self._binary = binary
        self._sink = sink_endpoint
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Self:
        self._log = tempfile.TemporaryFile()
        env = {**os.environ, "RELAY_PORT": str(self.port), "SINK_ENDPOINT": self._sink}
        self._process = subprocess.Popen(
            [str(self._binary), "--config", str(SOURCE / "relay.yaml")],
            env=env,
            stdout=self._log,
            stderr=self._log,
            start_new_session=True,
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._listening():
            if self._process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the collector did not start:\n{self.log()[-4000:]}")
            time.sleep(0.05)
        return self

    def _listening(self) -> bool:
        with socket.socket() as probe:
            probe.settimeout(0.5)
            return probe.connect_ex(("127.0.0.1", self.port)) == 0

    def log(self) -> str:
        if self._log is None:
            return ""
        self._log.seek(0)
        return self._log.read().decode(errors="replace")

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()  # the collector flushes its exporter's queue on SIGTERM
            try:
                self._process.wait(30)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(10)
        if self._log is not None:
            self._log.close()
