"""The smoke tests of scripts/check-image: the built image, run as production runs it, against the host's test services.

Every container runs with a read-only root file system and a /tmp tmpfs, as the image's own user. The checks, in order:
the image's metadata; `--help`; `check` exiting 1 with nothing listening; uid 10001 and the read-only root from inside;
no pip; byte-code for everything `mics-worker check` imports (and what that check costs in CPU); then a live run on
the host network against a real Kafka broker and the sandbox API (started here, on loopback, as scripts/run-local
does): a few messages of each route delivered, /metrics and /readyz answering, the HEALTHCHECK turning healthy;
SIGTERM with requests in flight at a slow API (drained, committed, exit 0); and a replacement worker that delivers
the rest without repeating anything the first one delivered. Prints `ok  <check>` for each; the first failure prints
`FAIL: <check>: <why>` and `check-image: FAILED: <check>`, and the exit status is 1. Every wait has a deadline.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any

import httpx
from confluent_kafka import Consumer, TopicPartition

from tests.support.events import MixSpec, SampleMessage, generate
from tests.support.kafka_broker import KafkaBroker, create_topic, free_port
from tests.support.ledger import Ledger, produce_all
from tests.support.sandbox_process import SandboxProcess
from tests.support.worker_process import worker_env

LABEL = "mics-check-image"  # scripts/check-image removes every container that carries it
ACTIVITY_TOPIC = "image.activities"
MIXED_TOPIC = "image.events"
DLQ_TOPIC = "image.dlq"
GROUP = "image-check"
UID = "10001"
DRAIN_TIMEOUT_S = 20  # the worker's drain deadline in the live run; docker stop waits longer than this
STOP_TIMEOUT_S = DRAIN_TIMEOUT_S + 15
SLOW_API_MS = 2500  # the sandbox's latency while the first worker is stopped: its requests are still in flight

# Run inside the image: which modules that `mics-worker check` imports have no byte-code on disk (a read-only root
# means Python would compile them again at every probe), and what one probe costs in CPU.
_BYTECODE_PROBE = """
import importlib.util, json, os, resource, subprocess, sys
import worker.cli, worker.health
missing = sorted(
    name for name, module in list(sys.modules.items())
    if getattr(module, "__spec__", None) is not None and module.__spec__.cached
    and (module.__spec__.origin or "").endswith(".py") and not os.path.exists(module.__spec__.cached)
)
subprocess.run(["mics-worker", "check"], capture_output=True, check=False)
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"missing": missing, "check_cpu_s": usage.ru_utime + usage.ru_stime}))
"""

_IDENTITY_PROBE = """
import errno, json, os
def writable(path):
    try:
        with open(os.path.join(path, ".probe"), "w") as handle:
            handle.write("x")
    except OSError as error:
        return errno.errorcode.get(error.errno, str(error.errno))
    return "yes"
print(json.dumps({"uid": os.getuid(), "gid": os.getgid(), "root": writable("/opt/venv"), "tmp": writable("/tmp")}))
"""

_PIP_PROBE = """
import importlib.util, json, shutil, subprocess, sys
base = subprocess.run([sys._base_executable, "-c", "import pip"], capture_output=True, check=False).returncode == 0
print(json.dumps({
    "venv": importlib.util.find_spec("pip") is not None,
    "base": base,
    "on_path": [name for name in ("pip", "pip3", "pip3.11") if shutil.which(name)],
}))
"""


class CheckFailed(Exception):
    """One named check did not hold."""

    def __init__(self, check: str, detail: str) -> None:
        super().__init__(f"{check}: {detail}")
        self.check = check
        self.detail = detail


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--image", required=True, help="the image to test")
    args = parser.parse_args(argv)
    try:
        ImageCheck(args.image).run_all()
    except CheckFailed as failure:
        print(f"FAIL: {failure.check}: {failure.detail}", flush=True)
        print(f"check-image: FAILED: {failure.check}", file=sys.stderr, flush=True)
        return 1
    except Exception as error:  # a harness error (broker, sandbox, docker CLI) fails the smoke test, named
        traceback.print_exc()
        print(f"check-image: FAILED: smoke test harness: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    finally:
        remove_containers()
    return 0


def ok(text: str) -> None:
    print(f"ok  {text}", flush=True)


def docker(*args: str, timeout_s: float = 60, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The docker CLI, bounded; a CLI that overstays its deadline is a failure of the step that called it."""
    executable = shutil.which("docker")
    if executable is None:
        raise CheckFailed("docker", "the docker CLI is not on PATH")
    try:
        return subprocess.run(  # noqa: S603 - a fixed program; the arguments are this script's own
            [executable, *args], capture_output=True, text=True, check=False, timeout=timeout_s, env=env
        )
    except subprocess.TimeoutExpired as error:
        raise CheckFailed(f"docker {args[0]}", f"no answer within {timeout_s:.0f} s") from error


def remove_containers() -> None:
    listed = docker("ps", "-aq", "--filter", f"label={LABEL}")
    for container in listed.stdout.split():
        docker("rm", "-f", container)


def wait_for(condition: Callable[[], bool], timeout_s: float, check: str, what: str) -> float:
    """Poll `condition` until true; returns the seconds it took; fails `check` when the deadline passes."""
    started = time.monotonic()
    while True:
        with suppress(httpx.HTTPError):
            if condition():
                return time.monotonic() - started
        if time.monotonic() - started > timeout_s:
            raise CheckFailed(check, f"{what}: not within {timeout_s:.0f} s")
        time.sleep(0.2)


class ImageCheck:
    def __init__(self, image: str) -> None:
        self.image = image
        # As production runs it: read-only root, a tmpfs at /tmp, the image's own user (no --user here).
        tmpfs = "/tmp:rw,nosuid,nodev,size=64m"  # noqa: S108 - the container's /tmp, a fresh tmpfs
        self.hardening = ("--read-only", "--tmpfs", tmpfs, "--label", LABEL)

    def run_all(self) -> None:
        self.check_metadata()
        self.check_one_shot_commands()
        self.check_identity()
        self.check_no_pip()
        self.check_bytecode()
        self.check_live()

    # -- the image on its own (no network at all) ----------------------------------------------------------------

    def run_once(self, *args: str, entrypoint: str | None = None) -> subprocess.CompletedProcess[str]:
        flags = ["--rm", "--network", "none", *self.hardening]
        if entrypoint is not None:
            flags += ["--entrypoint", entrypoint]
        return docker("run", *flags, self.image, *args, timeout_s=60)

    def probe(self, check: str, code: str) -> Any:
        done = self.run_once("-c", code, entrypoint="python")
        if done.returncode != 0:
            raise CheckFailed(check, f"the probe exited {done.returncode}: {done.stderr.strip()[-800:]}")
        return json.loads(done.stdout)

    def check_metadata(self) -> None:
        check = "image metadata"
        inspected = docker("image", "inspect", self.image)
        if inspected.returncode != 0:
            raise CheckFailed(check, inspected.stderr.strip())
        config = json.loads(inspected.stdout)[0]["Config"]
        expected = {
            "User": f"{UID}:{UID}",
            "Entrypoint": ["mics-worker"],
            "Cmd": ["run"],
            "Healthcheck.Test": ["CMD", "mics-worker", "check"],
            "ExposedPorts": ["9102/tcp"],
        }
        found = {
            "User": config.get("User"),
            "Entrypoint": config.get("Entrypoint"),
            "Cmd": config.get("Cmd"),
            "Healthcheck.Test": (config.get("Healthcheck") or {}).get("Test"),
            "ExposedPorts": sorted(config.get("ExposedPorts") or {}),
        }
        wrong = {name: found[name] for name in expected if found[name] != expected[name]}
        if wrong:
            raise CheckFailed(check, f"expected {expected}, found {wrong}")
        ok(f"{check}: user {found['User']}, exec-form entrypoint/cmd, HEALTHCHECK `mics-worker check`, port 9102")

    def check_one_shot_commands(self) -> None:
        helped = self.run_once("--help")
        if helped.returncode != 0 or "run" not in helped.stdout:
            raise CheckFailed("--help", f"exit {helped.returncode}: {(helped.stdout + helped.stderr).strip()[-500:]}")
        ok("--help answers (exit 0)")
        checked = self.run_once("check")
        if checked.returncode != 1:
            raise CheckFailed("check with nothing listening", f"exit {checked.returncode}, expected 1")
        ok("`check` exits 1 with nothing listening")

    def check_identity(self) -> None:
        check = "uid 10001 on a read-only root"
        seen = self.probe(check, _IDENTITY_PROBE)
        expected = {"uid": int(UID), "gid": int(UID), "root": "EROFS", "tmp": "yes"}
        if seen != expected:
            raise CheckFailed(check, f"expected {expected}, found {seen}")
        ok(f"{check}: runs as {UID}:{UID}; / refuses writes (EROFS), /tmp takes them")

    def check_no_pip(self) -> None:
        check = "no pip in the runtime image"
        seen = self.probe(check, _PIP_PROBE)
        if seen != {"venv": False, "base": False, "on_path": []}:
            raise CheckFailed(check, f"pip is still there: {seen}")
        ok(f"{check} (neither in the virtualenv, nor in the base's Python, nor on PATH)")

    def check_bytecode(self) -> None:
        check = "standard library precompiled"
        seen = self.probe(check, _BYTECODE_PROBE)
        if seen["missing"]:
            shown = ", ".join(seen["missing"][:12])
            raise CheckFailed(check, f"{len(seen['missing'])} modules `check` imports have no byte-code: {shown}")
        cpu = seen["check_cpu_s"]
        ok(f"{check}: every module `mics-worker check` imports has byte-code; one check costs {cpu:.2f} s CPU")

    # -- the live run (host network: the broker and the sandbox listen on the host's loopback) ----------------------

    def check_live(self) -> None:
        check = "live run"
        with KafkaBroker() as broker, SandboxProcess("--seed", "1") as sandbox:
            bootstrap = broker.bootstrap_servers
            for topic in (ACTIVITY_TOPIC, MIXED_TOPIC):
                create_topic(bootstrap, topic, partitions=3)
            create_topic(bootstrap, DLQ_TOPIC, partitions=1)
            first = list(generate(45, MixSpec(profiles=0.3, choices=0.3, invalid=0.0), seed=11))
            routes = Counter(message.route for message in first)
            if min(routes[route] for route in ("activity", "profile", "choice")) < 3:
                raise CheckFailed(check, f"the sample has too few of some route: {dict(routes)}")
            self.produce(bootstrap, first)
            env = worker_env(
                bootstrap_servers=bootstrap,
                api_base_url=sandbox.base_url,
                api_token=sandbox.token,
                topics=f"{ACTIVITY_TOPIC},{MIXED_TOPIC}",
                routes=f"{ACTIVITY_TOPIC}=activity,{MIXED_TOPIC}=envelope",
                dlq_topic=DLQ_TOPIC,
                group_id=GROUP,
                DRAIN_TIMEOUT_S=str(DRAIN_TIMEOUT_S),
                HEALTH_HOST="127.0.0.1",
            )
            with self.worker(env) as worker:
                ready_s = wait_for(lambda: worker.status("/readyz") == 200, 90, "/readyz", "/readyz answering 200")
                ok(f"/readyz answers 200, {ready_s:.1f} s after `docker run` (start-up, broker connection included)")
                kinds = {"activity": "activities", "profile": "profiles", "choice": "choices"}

                def arrived() -> Counter[str]:
                    documents = sandbox.documents()
                    return Counter({route: len(documents.get(kind, [])) for route, kind in kinds.items()})

                wait_for(lambda: arrived() == routes, 120, "delivery", f"the sandbox receiving {dict(routes)}")
                ok(f"{check}: delivered to the sandbox per route {dict(sorted(routes.items()))}")
                metrics = worker.get("/metrics")
                if metrics.status_code != 200 or "mics_worker_messages_outcome_total" not in metrics.text:
                    raise CheckFailed("/metrics", f"status {metrics.status_code}, no outcome counter")
                ok("/metrics answers with the worker's counters")
                healthy_s = wait_for(worker.healthy, 60, "HEALTHCHECK", "docker's health status turning healthy")
                ok(f"HEALTHCHECK turns healthy (`mics-worker check` in the container, {healthy_s:.1f} s after ready)")
                second = self.check_drain(bootstrap, sandbox, worker)
            self.check_replacement(bootstrap, sandbox, env, second)

    def check_drain(self, bootstrap: str, sandbox: SandboxProcess, worker: ContainerWorker) -> list[SampleMessage]:
        """A second batch meets a slow API; SIGTERM while its requests are in flight. Returns that batch."""
        check = "SIGTERM drain"
        sandbox.set_faults(latency_ms=SLOW_API_MS)
        second = list(generate(30, MixSpec(profiles=0.3, choices=0.3, invalid=0.0), seed=12))
        self.produce(bootstrap, second)
        wait_for(lambda: worker.metric("mics_worker_in_flight_messages") > 0, 30, check, "messages in flight")
        in_flight = worker.metric("mics_worker_in_flight_messages")
        started = time.monotonic()
        stopped = docker("stop", "--time", str(STOP_TIMEOUT_S), worker.name, timeout_s=STOP_TIMEOUT_S + 30)
        took = time.monotonic() - started
        state = worker.state()
        if stopped.returncode != 0 or state.get("Running") or state.get("ExitCode") != 0:
            raise CheckFailed(
                check, f"exit {state.get('ExitCode')} after {took:.1f} s (137 = killed mid-drain):\n{worker.logs()}"
            )
        if "SIGTERM: draining" not in worker.logs():
            raise CheckFailed(check, f"the worker did not log its drain:\n{worker.logs()}")
        sandbox.set_faults(latency_ms=0)
        ok(f"{check}: {in_flight:.0f} in flight at a {SLOW_API_MS} ms API, drained and exited 0 in {took:.1f} s")
        return second

    def check_replacement(
        self, bootstrap: str, sandbox: SandboxProcess, env: dict[str, str], second: list[SampleMessage]
    ) -> None:
        """A replacement worker delivers what the drained one left; nothing it delivered comes again."""
        check = "drain committed"
        ledger = Ledger(second)
        with self.worker(env) as worker:
            wait_for(
                lambda: not ledger.settle(sandbox, bootstrap, DLQ_TOPIC).missing,
                120,
                check,
                f"a replacement worker delivering the rest of {len(second)} messages",
            )
            worker.stop()
        settlement = ledger.settle(sandbox, bootstrap, DLQ_TOPIC)
        lag = self.uncommitted(bootstrap)
        if settlement.duplicates or settlement.dead_lettered or lag:
            raise CheckFailed(
                check,
                f"{settlement.duplicates} delivered twice, {sum(settlement.dead_lettered.values())} dead-lettered, "
                f"{lag} left uncommitted",
            )
        ok(f"{check}: a replacement delivered the rest; none of the {len(second)} twice, all committed")

    # -- helpers -------------------------------------------------------------------------------------------------

    @staticmethod
    def produce(bootstrap: str, messages: list[SampleMessage]) -> None:
        produce_all(bootstrap, ACTIVITY_TOPIC, [m for m in messages if m.route == "activity"])
        produce_all(bootstrap, MIXED_TOPIC, [m for m in messages if m.route != "activity"])

    @staticmethod
    def uncommitted(bootstrap: str) -> int:
        """Messages past the group's committed offsets, over both topics."""
        consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": GROUP, "enable.auto.commit": False})
        try:
            behind = 0
            for topic in (ACTIVITY_TOPIC, MIXED_TOPIC):
                partitions = [TopicPartition(topic, p) for p in range(3)]
                for committed in consumer.committed(partitions, timeout=10):
                    _, high = consumer.get_watermark_offsets(committed, timeout=10)
                    behind += high - max(committed.offset, 0)
            return behind
        finally:
            consumer.close()

    @contextmanager
    def worker(self, env: dict[str, str]) -> Iterator[ContainerWorker]:
        worker = ContainerWorker(self.image, env, self.hardening)
        try:
            yield worker.start()
        finally:
            worker.remove()


class ContainerWorker:
    """`mics-worker run` in a container on the host network; its settings reach it through the docker CLI's
    environment (`-e NAME`), so the API token never appears on a command line."""

    def __init__(self, image: str, env: dict[str, str], hardening: Sequence[str]) -> None:
        self.image = image
        self.port = free_port()
        self.env = {**env, "MICS_WORKER_HEALTH_PORT": str(self.port)}
        self.hardening = hardening
        self.name = f"mics-check-{uuid.uuid4().hex[:8]}"

    def start(self) -> ContainerWorker:
        names = [flag for name in sorted(self.env) for flag in ("-e", name)]
        started = docker(
            "run", "-d", "--name", self.name, "--network", "host", *self.hardening,
            # The image's HEALTHCHECK command, probed every 2 s instead of 30 s so the check does not wait for it.
            "--health-interval", "2s", "--health-start-period", "60s",
            *names, self.image,
            env={**os.environ, **self.env},
        )  # fmt: skip
        if started.returncode != 0:
            raise CheckFailed("docker run", started.stderr.strip())
        return self

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.url(path), timeout=5)

    def status(self, path: str) -> int:
        self.assert_running()
        return self.get(path).status_code

    def metric(self, name: str) -> float:
        total = 0.0
        for line in self.get("/metrics").text.splitlines():
            if line.startswith(name) and line[len(name) : len(name) + 1] in ("{", " "):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def state(self) -> dict[str, Any]:
        inspected = docker("inspect", "-f", "{{json .State}}", self.name)
        state: dict[str, Any] = json.loads(inspected.stdout) if inspected.returncode == 0 else {}
        return state

    def healthy(self) -> bool:
        self.assert_running()
        return bool((self.state().get("Health") or {}).get("Status") == "healthy")

    def assert_running(self) -> None:
        state = self.state()
        if not state.get("Running"):
            raise CheckFailed("worker container", f"exited {state.get('ExitCode')}:\n{self.logs()}")

    def logs(self) -> str:
        done = docker("logs", "--tail", "40", self.name)
        return (done.stdout + done.stderr).strip()

    def stop(self) -> None:
        docker("stop", "--time", str(STOP_TIMEOUT_S), self.name, timeout_s=STOP_TIMEOUT_S + 30)

    def remove(self) -> None:
        docker("rm", "-f", self.name)


if __name__ == "__main__":
    sys.exit(main())
