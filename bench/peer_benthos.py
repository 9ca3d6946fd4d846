"""The peer of `scripts/bench --peer benthos`: Benthos doing the worker's job on the same events, same sandbox.

Benthos (github.com/redpanda-data/benthos/v4, MIT; the open core of Redpanda Connect) is built from the Go module
proxy with `bench/benthos/main.go` into a cache directory outside the repository, once per version. Its pipeline is
the worker's activity path: the activity stream read from a file (one JSON document a line), `json_schema` against
a draft-07 rendering of schemas/user_activity.schema.json (Benthos's validator knows drafts 4 to 7), a `switch`
sending what failed to a dead-letter file and the rest to `http_client` (`POST` to the activity endpoint,
`max_in_flight` 64). It runs twice: with Go's stock HTTP transport (2 idle connections per host) and with the
idle pool raised to 64.

CPU is the child's own `ru_utime + ru_stime` from `wait4` (every thread), minus a run over an empty file (start-up,
config and schema compilation), so the figure is per event like the worker's, whose start-up is outside its window.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.datasets import Dataset
from tests.support.sandbox_process import SandboxProcess

__all__ = ["BENTHOS_VERSION", "PeerRun", "build_benthos", "draft07", "measure_benthos"]

MODULE = "github.com/redpanda-data/benthos/v4"
BENTHOS_VERSION = "v4.60.0"
MAX_IN_FLIGHT = 64
IDLE_POOL = 64
DATAMART = "1509"
ACTIVITY_SCHEMA = Path(__file__).resolve().parents[1] / "schemas" / "user_activity.schema.json"
MAIN_GO = Path(__file__).resolve().parent / "benthos" / "main.go"
_RUN_TIMEOUT_S = 600.0


def cache_dir() -> Path:
    """Where the build lives: `$XDG_CACHE_HOME` (or ~/.cache) / mics-worker-bench / benthos-<version>."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "mics-worker-bench" / f"benthos-{BENTHOS_VERSION}"


def build_benthos(say: Callable[[str], None]) -> Path:
    """The Benthos binary, built with `go` on first use (a few minutes) and reused while main.go is unchanged."""
    where = cache_dir()
    binary = where / "benthos"
    source = MAIN_GO.read_bytes()
    if binary.exists() and (where / "main.go").read_bytes() == source:
        return binary
    go = shutil.which("go")
    if go is None:
        raise RuntimeError("--peer benthos needs Go on PATH (https://go.dev/dl/) to build Benthos")
    where.mkdir(parents=True, exist_ok=True)
    (where / "main.go").write_bytes(source)
    say(f"building Benthos {BENTHOS_VERSION} in {where} (first run only; minutes)")
    if not (where / "go.mod").exists():
        _go(go, where, "mod", "init", "mics-worker-bench/benthos")
    _go(go, where, "get", f"{MODULE}@{BENTHOS_VERSION}")
    _go(go, where, "mod", "tidy")
    _go(go, where, "build", "-trimpath", "-o", "benthos", ".")
    return binary


def _go(go: str, where: Path, *args: str) -> None:
    done = subprocess.run([go, *args], cwd=where, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"go {' '.join(args)} failed:\n{done.stderr[-3000:]}")


def draft07(node: Any) -> Any:
    """The same constraints in draft-07 terms: `$defs` → `definitions`, `prefixItems` → array `items`
    (a following `items` → `additionalItems`), `dependentRequired` → `dependencies`; `$id` dropped."""
    if isinstance(node, list):
        return [draft07(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "$schema":
            out[key] = "http://json-schema.org/draft-07/schema#"
        elif key == "$id":
            continue
        elif key == "$defs":
            out["definitions"] = draft07(value)
        elif key == "$ref" and isinstance(value, str):
            out[key] = value.replace("#/$defs/", "#/definitions/")
        elif key == "prefixItems":
            out["items"] = draft07(value)
        elif key == "items" and "prefixItems" in node:
            out["additionalItems"] = draft07(value)
        elif key == "dependentRequired":
            out["dependencies"] = draft07(value)
        else:
            out[key] = draft07(value)
    return out


def pipeline_config(events: Path, schema: Path, dead_letters: Path, url: str, token: str) -> dict[str, Any]:
    """file → json_schema → switch(errored → dead-letter file, else → http_client)."""
    return {
        "http": {"enabled": False},
        "logger": {"level": "WARN"},
        "input": {"file": {"paths": [str(events)], "scanner": {"lines": {}}}},
        "pipeline": {"processors": [{"json_schema": {"schema_path": f"file://{schema}"}}]},
        "output": {
            "switch": {
                "cases": [
                    {"check": "errored()", "output": {"file": {"path": str(dead_letters), "codec": "lines"}}},
                    {
                        "output": {
                            "http_client": {
                                "url": url,
                                "verb": "POST",
                                "headers": {"Authorization": token, "Content-Type": "application/json"},
                                "max_in_flight": MAX_IN_FLIGHT,
                            }
                        }
                    },
                ]
            }
        },
    }


@dataclass
class PeerRun:
    """One Benthos run over the stream."""

    variant: str  # "stock" or "idle pool 64"
    events: int
    seconds: float  # process start to exit, start-up included
    cpu_seconds: float  # minus the empty-file run's
    startup_cpu_seconds: float
    delivered_at_api: int
    dead_lettered: int
    exit_code: int

    @property
    def balanced(self) -> bool:
        return self.exit_code == 0 and self.delivered_at_api + self.dead_lettered == self.events

    @property
    def cpu_us_per_event(self) -> float:
        return self.cpu_seconds / self.events * 1e6

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "cpu_us_per_event": self.cpu_us_per_event, "balanced": self.balanced}


def measure_benthos(binary: Path, sandbox: SandboxProcess, dataset: Dataset, *, idle_pool: int | None) -> PeerRun:
    """Run Benthos over `dataset`'s messages (in produced order) until the file is exhausted and all is sent."""
    env = {**os.environ}
    env.pop("BENCH_IDLE_CONNS_PER_HOST", None)
    if idle_pool is not None:
        env["BENCH_IDLE_CONNS_PER_HOST"] = str(idle_pool)
    url = f"{sandbox.base_url}/v1/datamarts/{DATAMART}/user_activities"
    with tempfile.TemporaryDirectory(prefix="bench-benthos-") as tmp:
        work = Path(tmp)
        schema = work / "user_activity.draft07.json"
        schema.write_text(json.dumps(draft07(json.loads(ACTIVITY_SCHEMA.read_text()))))
        empty, events = work / "empty.jsonl", work / "events.jsonl"
        empty.write_bytes(b"")
        events.write_bytes(b"".join(message.value + b"\n" for message in dataset.messages))
        setup = _Setup(binary, work, env, schema, url, sandbox.token)
        sandbox.reset()
        startup_cpu, _, _ = _run(setup, empty, "empty")
        sandbox.reset()
        cpu, seconds, code = _run(setup, events, "events")
        dead = work / "events.dead.jsonl"
        dead_lettered = len(dead.read_bytes().splitlines()) if dead.exists() else 0
    delivered = int(sandbox.stats()["stored"].get("activities", 0))
    return PeerRun(
        variant="stock" if idle_pool is None else f"idle pool {idle_pool}",
        events=dataset.count,
        seconds=seconds,
        cpu_seconds=cpu - startup_cpu,
        startup_cpu_seconds=startup_cpu,
        delivered_at_api=delivered,
        dead_lettered=dead_lettered,
        exit_code=code,
    )


@dataclass(frozen=True)
class _Setup:
    """What every Benthos process of one measurement shares."""

    binary: Path
    work: Path
    env: dict[str, str]
    schema: Path
    url: str
    token: str


def _run(setup: _Setup, events: Path, name: str) -> tuple[float, float, int]:
    """(CPU seconds, wall seconds, exit code) of one Benthos process over `events`."""
    work = setup.work
    config = work / f"{name}.yaml"
    dead_letters = work / f"{name}.dead.jsonl"
    # JSON is YAML: the config is written with the standard library.
    config.write_text(json.dumps(pipeline_config(events, setup.schema, dead_letters, setup.url, setup.token)))
    log = work / f"{name}.log"
    started = time.monotonic()
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [str(setup.binary), "-c", str(config)], env=setup.env, stdout=subprocess.DEVNULL, stderr=stderr
        )
    deadline = started + _RUN_TIMEOUT_S
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            process.kill()
            process.wait()
            raise TimeoutError(f"Benthos did not finish {events.name} in {_RUN_TIMEOUT_S:.0f} s")
        time.sleep(0.02)
    seconds = time.monotonic() - started
    code = os.waitstatus_to_exitcode(status)
    process.returncode = code
    if code != 0:
        raise RuntimeError(f"Benthos exited {code}:\n{log.read_text(errors='replace')[-3000:]}")
    return usage.ru_utime + usage.ru_stime, seconds, code
