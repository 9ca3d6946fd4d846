"""A real single-node Apache Kafka 4.x broker (KRaft, combined broker + controller) for tests, benchmarks and scripts.

Why a real broker: the worker's guarantees (commits, rebalances, the dead-letter topic, broker outages) are
properties of the interaction with Kafka; a fake would only test our idea of Kafka.

The jars come from Maven (``kafka/pom.xml``) into ``.cache/kafka/libs``, fetched once per pom version. Each broker
lives in its own work directory (KRaft storage, ``server.properties``, ``broker.log``) and on free loopback ports;
``stop()``/``start()`` and ``restart()`` keep both, so a chaos test can take the broker away and bring the same
cluster back. The JVM runs in its own process group so stopping it leaves no stray java process.

Command line (from the repository root)::

    python -m tests.support.kafka_broker run    # prints KAFKA_BOOTSTRAP_SERVERS=host:port, blocks until SIGTERM/SIGINT
    python -m tests.support.kafka_broker fetch  # only fetches the jars
"""

from __future__ import annotations

import argparse
import atexit
import base64
import contextlib
import fcntl
import hashlib
import logging
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

# confluent_kafka.admin re-exports NewTopic without declaring it; its typed home is cimpl.
from confluent_kafka.cimpl import NewTopic

from tests.support.process_group import ProcessGroup

REPO_ROOT = Path(__file__).resolve().parents[2]
POM_PATH = REPO_ROOT / "kafka" / "pom.xml"
LOG4J_CONFIG_PATH = REPO_ROOT / "kafka" / "log4j2.properties"
DEFAULT_LIBS_DIR = REPO_ROOT / ".cache" / "kafka" / "libs"

SERVER_MAIN_CLASS = "kafka.Kafka"
STORAGE_TOOL_CLASS = "kafka.tools.StorageTool"

DEFAULT_STARTUP_TIMEOUT_S = 90.0
DEFAULT_STOP_TIMEOUT_S = 30.0
DEFAULT_HEAP = "512m"
LOG_TAIL_LINES = 60

_VERSION_LINE = re.compile(r"Kafka version: (\S+)")
_STARTED_LINE = "Kafka Server started"
_PORT_IN_USE = "Address already in use"
_PORT_RETRIES = 3

_log = logging.getLogger(__name__)


class KafkaBrokerError(RuntimeError):
    """The broker could not be fetched, formatted, started or stopped; the message carries the log tail."""


def fetch_jars(libs_dir: Path = DEFAULT_LIBS_DIR, pom: Path = POM_PATH) -> Path:
    """Copy the broker's jars from Maven into ``libs_dir`` unless a stamp says this pom's jars are already there.

    A file lock serialises concurrent test runs in the same tree; the jars land in a scratch directory first and
    are swapped in whole, so an interrupted fetch never leaves a half-filled classpath behind a valid stamp.
    """
    stamp = libs_dir / f".pom-{hashlib.sha256(pom.read_bytes()).hexdigest()[:16]}"
    if stamp.exists():
        return libs_dir
    libs_dir.parent.mkdir(parents=True, exist_ok=True)
    with (libs_dir.parent / ".fetch.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if stamp.exists():
            return libs_dir
        mvn = shutil.which("mvn")
        if mvn is None:
            raise KafkaBrokerError("Maven (mvn) is not on PATH: it is needed once to fetch the Kafka jars")
        scratch = Path(tempfile.mkdtemp(prefix="libs-partial-", dir=libs_dir.parent))
        try:
            command = [mvn, "-q", "-B", "-f", str(pom), "dependency:copy-dependencies"]
            command.append(f"-DoutputDirectory={scratch}")
            try:
                done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=900)
            except subprocess.TimeoutExpired as error:
                raise KafkaBrokerError("fetching the Kafka jars took over 15 minutes; gave up") from error
            if done.returncode != 0 or not any(scratch.glob("kafka_*.jar")):
                output = (done.stdout + done.stderr).strip().splitlines()[-LOG_TAIL_LINES:]
                raise KafkaBrokerError(
                    f"fetching the Kafka jars failed (mvn exit {done.returncode}):\n" + "\n".join(output)
                )
            (scratch / stamp.name).touch()
            shutil.rmtree(libs_dir, ignore_errors=True)
            scratch.rename(libs_dir)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return libs_dir


def new_cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes, URL-safe base64 without padding (Kafka's ``Uuid`` text form).

    Kafka never hands out ids whose text starts with '-' (it would read as a command-line flag), nor its two
    reserved ids (all zero, and zero-then-one); neither do we.
    """
    while True:
        raw = secrets.token_bytes(16)
        text = base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")
        if not text.startswith("-") and int.from_bytes(raw, "big") > 1:
            return text


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now (the broker binds it a moment later; a lost race is retried)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def java_executable() -> str:
    """``$JAVA_HOME/bin/java``, else ``java`` from PATH."""
    java_home = os.environ.get("JAVA_HOME")
    java = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
    if java is None:
        raise KafkaBrokerError("java is not on PATH (and JAVA_HOME is unset): Kafka 4.x needs Java 17+")
    return java


class ClassDataArchive:
    """A dynamic AppCDS archive of the classes the broker loads, kept in ``.cache/kafka/cds``.

    Why: a broker start is mostly the JVM loading and verifying thousands of classes; mapping them from an archive
    takes about a third off the CPU a start costs (measured: a restart 22 s -> 14 s on the busy 2-core box).
    The first broker writes the archive when it exits cleanly; later JVMs map it. The name is keyed by what the
    JVM validates (every jar's path, size and mtime, and the java binary), so a re-fetch or a new JDK gets a new
    archive (the old one is then removed); a JVM given a mismatching archive silently runs without it.
    """

    def __init__(self, libs_dir: Path, java: str) -> None:
        # What the JVM checks before it maps an archive: each jar's name, size and mtime, and the JVM itself.
        files = [*sorted(libs_dir.glob("*.jar")), Path(java).resolve()]
        identity = "|".join(f"{path}:{path.stat().st_size}:{path.stat().st_mtime_ns}" for path in files)
        key = hashlib.sha256(identity.encode()).hexdigest()[:16]
        self.path = libs_dir.parent / "cds" / f"broker-{key}.jsa"
        self._pending: Path | None = None

    def reading_options(self) -> tuple[str, ...]:
        """Map the archive if there is one (for short-lived tools: they never write it)."""
        return (f"-XX:SharedArchiveFile={self.path}",) if self.path.exists() else ()

    def broker_options(self) -> tuple[str, ...]:
        """Map the archive, or have this JVM write one (under a private name) when it exits."""
        if self.path.exists():
            return self.reading_options()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._pending = self.path.with_name(f"{self.path.stem}.{os.getpid()}-{secrets.token_hex(4)}.partial")
        return (f"-XX:ArchiveClassesAtExit={self._pending}",)

    def settle(self, *, exited_cleanly: bool) -> None:
        """After the JVM is gone: publish a cleanly written archive atomically, drop anything else."""
        pending, self._pending = self._pending, None
        if pending is None or not pending.exists():
            return
        if exited_cleanly and not self.path.exists():
            pending.replace(self.path)
            for stale in self.path.parent.glob("broker-*.jsa"):
                if stale != self.path:
                    stale.unlink(missing_ok=True)
        else:
            pending.unlink(missing_ok=True)


def _quiet_logger() -> logging.Logger:
    """librdkafka's connection-refused chatter while a broker boots is expected; keep it out of test output."""
    quiet = logging.getLogger(f"{__name__}.librdkafka")
    quiet.setLevel(logging.CRITICAL)
    quiet.propagate = False
    return quiet


def admin_client(bootstrap_servers: str) -> AdminClient:
    """An AdminClient that reconnects quickly and logs nothing (for harness use, not for the worker)."""
    conf: dict[str, str | int | float | bool] = {
        "bootstrap.servers": bootstrap_servers,
        "reconnect.backoff.ms": 100,
        "reconnect.backoff.max.ms": 500,
        "log.connection.close": False,
    }
    return AdminClient(conf, logger=_quiet_logger())


def create_topic(
    bootstrap_servers: str,
    name: str,
    partitions: int = 3,
    config: Mapping[str, str] | None = None,
    *,
    replication_factor: int = 1,
    timeout_s: float = 30.0,
) -> None:
    """Create a topic and return once the broker's metadata shows every partition with a leader."""
    admin = admin_client(bootstrap_servers)
    new_topic = NewTopic(
        name, num_partitions=partitions, replication_factor=replication_factor, config=dict(config or {})
    )
    futures = admin.create_topics([new_topic], operation_timeout=timeout_s, request_timeout=timeout_s)
    futures[name].result(timeout=timeout_s)
    _wait_for(
        lambda: _topic_ready(admin, name, partitions),
        timeout_s,
        f"topic {name!r} was created but its {partitions} partitions did not all get a leader",
    )


def delete_topic(bootstrap_servers: str, name: str, *, timeout_s: float = 30.0) -> None:
    """Delete a topic and return once the broker's metadata no longer lists it."""
    admin = admin_client(bootstrap_servers)
    futures = admin.delete_topics([name], operation_timeout=timeout_s, request_timeout=timeout_s)
    futures[name].result(timeout=timeout_s)
    _wait_for(
        lambda: name not in admin.list_topics(timeout=5).topics,
        timeout_s,
        f"topic {name!r} was deleted but still appears in the metadata",
    )


def _topic_ready(admin: AdminClient, name: str, partitions: int) -> bool:
    topic = admin.list_topics(topic=name, timeout=5).topics.get(name)
    if topic is None or topic.error is not None or len(topic.partitions) != partitions:
        return False
    return all(p.error is None and p.leader >= 0 for p in topic.partitions.values())


def _wait_for(condition: Callable[[], bool], timeout_s: float, failure: str) -> None:
    """Poll ``condition()`` until it is true; KafkaExceptions while polling count as 'not yet'."""
    deadline = time.monotonic() + timeout_s
    while True:
        with contextlib.suppress(KafkaException):
            if condition():
                return
        if time.monotonic() >= deadline:
            raise KafkaBrokerError(f"{failure} within {timeout_s:.0f} s")
        time.sleep(0.1)


class KafkaBroker:
    """One single-node KRaft Kafka broker process on loopback, restartable with its data and ports intact.

    ``work_dir`` (default: a fresh temporary directory, removed by ``close()``) holds the storage, the generated
    ``server.properties`` and ``broker.log``; a caller-supplied directory is kept. ``overrides`` are extra
    ``server.properties`` entries, applied last. ``class_data_sharing`` maps (or, the first time, writes) a class
    archive that makes JVM starts cheaper; see ClassDataArchive.
    """

    def __init__(
        self,
        *,
        work_dir: Path | None = None,
        host: str = "127.0.0.1",
        port: int | None = None,
        auto_create_topics: bool = False,
        heap: str = DEFAULT_HEAP,
        startup_timeout_s: float = DEFAULT_STARTUP_TIMEOUT_S,
        overrides: Mapping[str, str] | None = None,
        libs_dir: Path = DEFAULT_LIBS_DIR,
        class_data_sharing: bool = True,
    ) -> None:
        self._owns_work_dir = work_dir is None
        self.work_dir = Path(tempfile.mkdtemp(prefix="mics-kafka-")) if work_dir is None else work_dir
        self.host = host
        self._fixed_port = port is not None
        self.port = port if port is not None else free_port(host)
        self.controller_port = self._free_controller_port()
        self.auto_create_topics = auto_create_topics
        self.heap = heap
        self.startup_timeout_s = startup_timeout_s
        self.overrides = dict(overrides or {})
        self.libs_dir = libs_dir
        self.class_data_sharing = class_data_sharing
        self.cluster_id = new_cluster_id()
        self._archive: ClassDataArchive | None = None
        self._process: ProcessGroup | None = None
        self._log_offset = 0
        self._version: str | None = None

    @property
    def bootstrap_servers(self) -> str:
        """``host:port`` of the PLAINTEXT listener; stable across restarts."""
        return f"{self.host}:{self.port}"

    @property
    def log_path(self) -> Path:
        """The broker's log (every incarnation appended, plus the storage formatting output)."""
        return self.work_dir / "broker.log"

    @property
    def data_dir(self) -> Path:
        return self.work_dir / "data"

    @property
    def version(self) -> str:
        """The Kafka version the running (or last) broker logged at startup, e.g. ``"4.4.0"``."""
        if self._version is None:
            found = _VERSION_LINE.findall(self._read_log(self._log_offset))
            if not found:
                raise KafkaBrokerError(f"no 'Kafka version:' line in {self.log_path} yet")
            self._version = found[-1]
        return self._version

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def is_running(self) -> bool:
        return self._process is not None and self._process.running()

    def start(self) -> Self:
        """Start the broker (formatting the storage on first use) and wait until it answers metadata requests."""
        if self.is_running():
            raise KafkaBrokerError(f"broker {self.bootstrap_servers} is already running")
        fetch_jars(self.libs_dir)
        if self.class_data_sharing and self._archive is None:
            self._archive = ClassDataArchive(self.libs_dir, java_executable())
        first_start = not (self.data_dir / "meta.properties").exists()
        for attempt in range(1, _PORT_RETRIES + 1):
            self._write_server_properties()
            if first_start:
                self._format_storage()
            try:
                self._launch_and_wait()
                return self
            except KafkaBrokerError:
                if not (first_start and attempt < _PORT_RETRIES and self._lost_port_race()):
                    raise
                _log.warning("a broker port was taken meanwhile; retrying on fresh ports")
                shutil.rmtree(self.data_dir, ignore_errors=True)
                if not self._fixed_port:
                    self.port = free_port(self.host)
                self.controller_port = self._free_controller_port()
        raise AssertionError("unreachable")  # pragma: no cover

    def stop(self, timeout_s: float = DEFAULT_STOP_TIMEOUT_S) -> None:
        """Controlled shutdown (SIGTERM to the process group), SIGKILL if it takes longer than ``timeout_s``."""
        process = self._process
        if process is None:
            return
        exited_cleanly = process.stop(timeout_s)
        if not exited_cleanly:
            _log.warning("broker %s ignored SIGTERM for %.0f s; killed it", self.bootstrap_servers, timeout_s)
        self._reaped(exited_cleanly=exited_cleanly)

    def kill(self) -> None:
        """Hard stop (SIGKILL, no controlled shutdown), as a crashed or OOM-killed broker would go away."""
        process = self._process
        if process is not None:
            process.kill()
            self._reaped(exited_cleanly=False)

    def restart(self, timeout_s: float = DEFAULT_STOP_TIMEOUT_S) -> Self:
        """Stop and start again: same data, same ports, same cluster."""
        self.stop(timeout_s)
        return self.start()

    def close(self) -> None:
        """Stop the broker and remove its work directory if this object created it."""
        self.stop()
        if self._owns_work_dir:
            shutil.rmtree(self.work_dir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "running" if self.is_running() else "stopped"
        return f"KafkaBroker({self.bootstrap_servers}, {state}, work_dir={str(self.work_dir)!r})"

    def server_properties(self) -> dict[str, str]:
        """The broker settings: one node, one replica everywhere, test-friendly group timings."""
        listen = self.host
        properties = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{listen}:{self.controller_port}",
            "listeners": f"PLAINTEXT://{listen}:{self.port},CONTROLLER://{listen}:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{listen}:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.data_dir),
            "num.partitions": "3",
            "default.replication.factor": "1",
            "min.insync.replicas": "1",
            "auto.create.topics.enable": str(self.auto_create_topics).lower(),
            "offsets.topic.replication.factor": "1",
            # Fewer internal partitions than the default 50: the first group on a fresh broker is ready sooner.
            "offsets.topic.num.partitions": "10",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "5",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            # The KIP-848 'consumer' group protocol is on by default in 4.x (setting the deprecated
            # group.coordinator.rebalance.protocols would switch the other new protocols off).
            # Heartbeats every second instead of five: assignments settle faster in tests after joins and leaves.
            "group.consumer.min.heartbeat.interval.ms": "500",
            "group.consumer.heartbeat.interval.ms": "1000",
            # A killed broker's old registration must expire before its successor may register: 6 s, not 9 s.
            "broker.session.timeout.ms": "6000",
            "broker.heartbeat.interval.ms": "1000",
        }
        properties.update(self.overrides)
        return properties

    # -- internals -------------------------------------------------------------------------------------------

    def _free_controller_port(self) -> int:
        while (port := free_port(self.host)) == self.port:
            pass
        return port

    def _write_server_properties(self) -> Path:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        path = self.work_dir / "server.properties"
        path.write_text("".join(f"{key}={value}\n" for key, value in self.server_properties().items()))
        return path

    def _java_command(self, main_class: str, *args: str, jvm_options: tuple[str, ...]) -> list[str]:
        return [
            java_executable(),
            *jvm_options,
            "-XX:+ExitOnOutOfMemoryError",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={LOG4J_CONFIG_PATH}",
            "-cp",
            f"{self.libs_dir}/*",
            main_class,
            *args,
        ]

    def _format_storage(self) -> None:
        """Write the KRaft metadata (cluster id, node id, features) into the empty data directory."""
        properties = str(self.work_dir / "server.properties")
        # A short-lived tool: the quick C1 compiler and the serial collector cost it a third less CPU.
        tool_jvm: tuple[str, ...] = ("-Xmx256m", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC")
        if self._archive is not None:
            tool_jvm += self._archive.reading_options()
        command = self._java_command(
            STORAGE_TOOL_CLASS, "format", "-t", self.cluster_id, "-c", properties, jvm_options=tool_jvm
        )
        offset = self._log_size()
        with self.log_path.open("ab") as log:
            log.write(b"==== formatting KRaft storage ====\n")
            log.flush()
            done = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, check=False, timeout=120)
        if done.returncode != 0:
            raise KafkaBrokerError(
                f"formatting the KRaft storage failed (exit {done.returncode}); log tail:\n{self._tail(offset)}"
            )

    def _launch_and_wait(self) -> None:
        properties = str(self.work_dir / "server.properties")
        # Full JIT for the broker itself: benchmarks push real load through it.
        broker_jvm: tuple[str, ...] = (f"-Xmx{self.heap}", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20")
        if self._archive is not None:
            broker_jvm += self._archive.broker_options()
        command = self._java_command(SERVER_MAIN_CLASS, properties, jvm_options=broker_jvm)
        self._log_offset = self._log_size()
        self._version = None
        started_at = time.monotonic()
        with self.log_path.open("ab") as log:
            log.write(f"==== starting broker on {self.bootstrap_servers} ====\n".encode())
            log.flush()
            # Own session = own process group: stop()/kill() signal the whole group, never leaving a stray JVM.
            self._process = ProcessGroup(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        atexit.register(self.kill)
        try:
            self._wait_until_ready()
        except BaseException:
            self.kill()
            raise
        _log.info(
            "Kafka %s ready on %s after %.1f s", self.version, self.bootstrap_servers, time.monotonic() - started_at
        )

    def _wait_until_ready(self) -> None:
        """Ready = the broker logged that it started and answers a metadata request listing itself."""
        admin = admin_client(self.bootstrap_servers)
        deadline = time.monotonic() + self.startup_timeout_s
        while True:
            process = self._process
            if process is None or not process.running():
                code = None if process is None else process.returncode
                raise KafkaBrokerError(
                    f"the broker exited during startup (exit {code}); log tail of {self.log_path}:\n"
                    f"{self._tail(self._log_offset)}"
                )
            if _STARTED_LINE in self._read_log(self._log_offset):
                with contextlib.suppress(KafkaException):
                    if admin.list_topics(timeout=1).brokers:
                        return
            if time.monotonic() >= deadline:
                raise KafkaBrokerError(
                    f"the broker did not answer a metadata request on {self.bootstrap_servers} within "
                    f"{self.startup_timeout_s:.0f} s; log tail of {self.log_path}:\n{self._tail(self._log_offset)}"
                )
            time.sleep(0.2)

    def _lost_port_race(self) -> bool:
        return _PORT_IN_USE in self._read_log(self._log_offset)

    def _reaped(self, *, exited_cleanly: bool) -> None:
        """The process group is gone (`ProcessGroup.stop`/`kill`): forget it and settle the class-data archive."""
        atexit.unregister(self.kill)
        self._process = None
        if self._archive is not None:
            self._archive.settle(exited_cleanly=exited_cleanly)

    def _log_size(self) -> int:
        return self.log_path.stat().st_size if self.log_path.exists() else 0

    def _read_log(self, offset: int) -> str:
        if not self.log_path.exists():
            return ""
        with self.log_path.open("rb") as log:
            log.seek(offset)
            return log.read().decode("utf-8", errors="replace")

    def _tail(self, offset: int, lines: int = LOG_TAIL_LINES) -> str:
        return "\n".join(self._read_log(offset).splitlines()[-lines:])


# -- command line ------------------------------------------------------------------------------------------------


def _run(arguments: argparse.Namespace, out: IO[str]) -> int:
    stop_requested = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop_requested.set())
    broker = KafkaBroker(
        port=arguments.port,
        auto_create_topics=arguments.auto_create_topics,
        startup_timeout_s=arguments.startup_timeout,
    )
    try:
        broker.start()
        print(f"KAFKA_BOOTSTRAP_SERVERS={broker.bootstrap_servers}", file=out, flush=True)
        print(f"Kafka {broker.version}, log: {broker.log_path}", file=sys.stderr, flush=True)
        while not stop_requested.wait(1.0):
            if not broker.is_running():
                print(f"the broker exited on its own; see {broker.log_path}", file=sys.stderr)
                return 1
        return 0
    finally:
        broker.close()


def main(argv: list[str] | None = None, out: IO[str] = sys.stdout) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.kafka_broker", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="start a broker, print its address, stop it on SIGTERM/SIGINT")
    run.add_argument("--port", type=int, default=None, help="PLAINTEXT listener port (default: a free one)")
    run.add_argument("--auto-create-topics", action="store_true", help="set auto.create.topics.enable=true")
    run.add_argument("--startup-timeout", type=float, default=DEFAULT_STARTUP_TIMEOUT_S, metavar="SECONDS")
    commands.add_parser("fetch", help="only fetch the Kafka jars into .cache/kafka/libs")
    arguments = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        if arguments.command == "fetch":
            print(fetch_jars(), file=out)
            return 0
        return _run(arguments, out)
    except KafkaBrokerError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
