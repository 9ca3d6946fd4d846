"""The soak: the worker under a steady stream with faults for a long time (default 15 minutes), measured from outside.

    scripts/soak [--minutes 15] [--rate N] [--output soak/RESULTS.md]

What it does, in order:

1. Starts a Kafka broker (or uses `KAFKA_BOOTSTRAP_SERVERS`) and the ledger sink (`soak/ledger_sink.py`: the sandbox
   in minimal mode with fault injection, plus a count of accepted writes per ledger id).
2. Calibrates, unless `--rate` is given: one worker drains a backlog with no faults; its steady throughput is the
   "benchmark throughput" of this machine right now, and the soak runs at half of it (`--rate-share`).
3. Soaks: a fresh worker (default settings, as deployed) while a producer thread writes a realistic mix at that
   fixed rate (2% invalid messages), with faults on: 503s, 429s with Retry-After, connection resets, hangs past the
   read timeout, a little latency, and a short full outage every few minutes. Every `--sample-s` seconds it records
   the worker's RSS and CPU (from /proc), outcomes and retries (its /metrics), and each partition's lag as the
   broker sees it (high watermark minus the group's committed offset).
4. Drains: the producer stops, the worker finishes and commits everything, then stops (SIGTERM).
5. Settles the ledger: every produced id must be accepted by the sink or be in the DLQ with its intended reason;
   counts duplicates; writes the figures and a verdict to `--output`.

Verdict rules: the ledger balances (nothing missing, nothing unknown, reasons as intended); no partition stalls
(lag above zero with the committed offset not moving for `--stall-s` seconds); RSS flat (the median of the last
quarter within 10% of the median of the second quarter, after warm-up).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import re
import secrets
import select
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from confluent_kafka import Consumer, Producer, TopicPartition

from tests.support.events import MixSpec, generate
from tests.support.kafka_broker import KafkaBroker, create_topic
from tests.support.ledger import read_dead_letters
from tests.support.worker_process import WorkerProcess, worker_env
from worker import __version__

REPO_ROOT = Path(__file__).resolve().parents[1]
DATAMART = "1509"
OUTCOMES = "mics_worker_messages_outcome_total"
# The faults of the soak: at most one per request, a fixed seed so runs are comparable.
SOAK_FAULTS = {"latency_ms": 2.0, "p503": 0.02, "p429": 0.01, "retry_after_s": 1, "p_reset": 0.005, "p_hang": 0.001,
               "hang_s": 4.0}  # fmt: skip
OUTAGE_EVERY_S = 240.0
OUTAGE_S = 8.0
WORKER_SETTINGS = {"HTTP_READ_TIMEOUT_S": "2", "LOG_LEVEL": "WARNING"}
WARM_UP_S = 60.0
RSS_TOLERANCE = 0.10


# -- the sink process ----------------------------------------------------------------------------------------------


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


# -- measuring from outside ----------------------------------------------------------------------------------------


def process_rss_mib(pid: int) -> float | None:
    """VmRSS of a process in MiB, None once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class LagProbe:
    """Each partition's lag as the broker sees it: high watermark minus the group's committed offset."""

    def __init__(self, bootstrap_servers: str, group: str, partitions: list[TopicPartition]) -> None:
        self._consumer = Consumer({"bootstrap.servers": bootstrap_servers, "group.id": group})
        self._partitions = partitions

    def read(self) -> dict[tuple[str, int], tuple[int, int]]:
        """(committed, high watermark) per partition; committed is 0 before the first commit."""
        committed = {
            (tp.topic, tp.partition): max(tp.offset, 0) for tp in self._consumer.committed(self._partitions, 10)
        }
        result = {}
        for tp in self._partitions:
            _, high = self._consumer.get_watermark_offsets(tp, timeout=10, cached=False)
            result[(tp.topic, tp.partition)] = (committed[(tp.topic, tp.partition)], high)
        return result

    def close(self) -> None:
        self._consumer.close()


# -- the stream ----------------------------------------------------------------------------------------------------


class StreamProducer:
    """Writes `generate()`'s mix at a fixed rate on a thread, remembering each id's intended fate (not its bytes)."""

    def __init__(self, bootstrap_servers: str, activities: str, mixed: str, rate_per_s: float, seed: int) -> None:
        self._producer = Producer({"bootstrap.servers": bootstrap_servers, "linger.ms": 10, "enable.idempotence": True})
        self._topics = (activities, mixed)
        self._rate = rate_per_s
        self._seed = seed
        self.expected: dict[str, str] = {}
        self.failures = 0
        self.behind_s = 0.0  # the most the producer ever lagged its schedule
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="soak-producer", daemon=True)

    def start(self, count: int) -> None:
        self._count = count
        self._thread.start()

    def _run(self) -> None:
        began = time.monotonic()
        interval = 1.0 / self._rate
        for index, message in enumerate(generate(self._count, MixSpec(invalid=0.02), seed=self._seed)):
            if self._stop.is_set():
                break
            due = began + index * interval
            now = time.monotonic()
            if due > now:
                time.sleep(due - now)
            else:
                self.behind_s = max(self.behind_s, now - due)
            bare = message.route == "activity" and not message.value.startswith(b'{"type"')
            topic = self._topics[0] if bare else self._topics[1]
            while True:
                try:
                    self._producer.produce(topic, key=message.key, value=message.value, on_delivery=self._acked)
                    break
                except BufferError:
                    self._producer.poll(0.05)
            self.expected[message.ledger_id] = message.expected
            self._producer.poll(0)
        self._producer.flush(60)

    def _acked(self, error: Any, _message: Any) -> None:
        if error is not None:
            self.failures += 1

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def join(self) -> None:
        self._thread.join()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


# -- the run -------------------------------------------------------------------------------------------------------


class DrainTimeout(RuntimeError):
    """The worker did not commit every partition to its end in time after the stream stopped."""


@dataclass
class Sample:
    at_s: float
    rss_mib: float
    cpu_s: float
    outcomes: float
    retries: float
    accepted: int
    produced: int
    lag: dict[tuple[str, int], int]
    paused: list[str]


@dataclass
class Report:
    started: str
    minutes: float
    rate: float
    calibrated: float | None
    samples: list[Sample] = field(default_factory=list)
    stalls: dict[tuple[str, int], float] = field(default_factory=dict)  # longest no-progress-with-lag stretch
    retries_by_reason: dict[str, float] = field(default_factory=dict)
    dead_lettered_by_reason: Counter[str] = field(default_factory=Counter)
    produced: int = 0
    produce_failures: int = 0
    producer_behind_s: float = 0.0
    delivered_ids: int = 0
    duplicates: int = 0
    missing: int = 0
    unknown: int = 0
    wrong_reason: int = 0
    drain_s: float = 0.0
    drain_error: str | None = None
    stop_status: int | None = None
    sink_stats: dict[str, Any] = field(default_factory=dict)
    load_before: tuple[float, float, float] = (0.0, 0.0, 0.0)
    load_after: tuple[float, float, float] = (0.0, 0.0, 0.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/soak", description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=15.0, help="how long the stream runs (default 15)")
    parser.add_argument("--rate", type=float, default=None, help="messages/s (default: a share of the calibration)")
    parser.add_argument("--rate-share", type=float, default=0.5, help="share of the calibrated throughput (0.5)")
    parser.add_argument("--calibrate-s", type=float, default=30.0, help="calibration measuring time (30)")
    parser.add_argument("--sample-s", type=float, default=10.0, help="seconds between samples (10)")
    parser.add_argument("--stall-s", type=float, default=60.0, help="lag without commit progress = stall (60)")
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--output", type=Path, default=REPO_ROOT / "soak" / "RESULTS.md")
    args = parser.parse_args(argv)

    with _broker() as bootstrap_servers:
        sink = SinkProcess().start()
        try:
            calibrated = None
            rate = args.rate
            if rate is None:
                calibrated = calibrate(bootstrap_servers, sink, args.partitions, args.calibrate_s)
                rate = calibrated * args.rate_share
                print(f"calibrated: {calibrated:.0f} messages/s; soaking at {rate:.0f}/s", flush=True)
            report = soak(bootstrap_servers, sink, args, rate, calibrated)
        finally:
            sink.stop()
    text = render(report, args)
    args.output.write_text(text)
    print(text)
    return 0 if verdict(report, args)[0] else 1


@contextlib.contextmanager
def _broker() -> Iterator[str]:
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "").strip()
    if external:
        yield external
        return
    with KafkaBroker(heap="768m") as broker:
        yield broker.bootstrap_servers


def _topics(bootstrap_servers: str, partitions: int) -> tuple[str, str, str]:
    names = tuple(f"soak-{kind}-{uuid.uuid4().hex[:8]}" for kind in ("activities", "mixed", "dlq"))
    create_topic(bootstrap_servers, names[0], partitions)
    create_topic(bootstrap_servers, names[1], partitions)
    create_topic(bootstrap_servers, names[2], 1)
    return names[0], names[1], names[2]


def _worker(bootstrap_servers: str, sink: SinkProcess, topics: tuple[str, str, str], group: str) -> WorkerProcess:
    activities, mixed, dlq = topics
    env = worker_env(
        bootstrap_servers=bootstrap_servers,
        api_base_url=sink.base_url,
        api_token=sink.token,
        topics=f"{activities},{mixed}",
        routes=f"{activities}=activity,{mixed}=envelope",
        dlq_topic=dlq,
        group_id=group,
        datamart=DATAMART,
        **WORKER_SETTINGS,
    )
    return WorkerProcess(env).start()


def calibrate(bootstrap_servers: str, sink: SinkProcess, partitions: int, measure_s: float) -> float:
    """Messages/s one worker sustains draining a backlog with no faults (the soak's 'benchmark throughput')."""
    topics = _topics(bootstrap_servers, partitions)
    backlog = 40_000
    producer = StreamProducer(bootstrap_servers, topics[0], topics[1], rate_per_s=1e9, seed=101)
    producer.start(backlog)
    producer.join()
    worker = _worker(bootstrap_servers, sink, topics, f"soak-calibration-{uuid.uuid4().hex[:8]}")
    try:
        worker.wait_until(lambda: worker.metric_sum(OUTCOMES) >= 2000, 120, "the calibration to get going")
        first, began = worker.metric_sum(OUTCOMES), time.monotonic()
        deadline = began + measure_s
        while time.monotonic() < deadline and worker.metric_sum(OUTCOMES) < backlog * 0.9:
            time.sleep(1)
        done, elapsed = worker.metric_sum(OUTCOMES), time.monotonic() - began
    finally:
        worker.stop()
        worker.close()
    sink.call("POST", "/_soak/reset")
    sink.call("POST", "/_sandbox/reset")
    return (done - first) / elapsed


def soak(
    bootstrap_servers: str, sink: SinkProcess, args: argparse.Namespace, rate: float, calibrated: float | None
) -> Report:
    report = Report(
        started=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        minutes=args.minutes,
        rate=rate,
        calibrated=calibrated,
        load_before=os.getloadavg(),
    )
    topics = _topics(bootstrap_servers, args.partitions)
    group = f"soak-{uuid.uuid4().hex[:8]}"
    sink.set_faults(**SOAK_FAULTS)
    worker = _worker(bootstrap_servers, sink, topics, group)
    partitions = [TopicPartition(topic, p) for topic in topics[:2] for p in range(args.partitions)]
    probe = LagProbe(bootstrap_servers, group, partitions)
    try:
        worker.wait_until(lambda: worker.probe("/readyz") == 200, 120, "the soak worker to join")
        assert worker.pid is not None
        stream = StreamProducer(bootstrap_servers, topics[0], topics[1], rate, seed=202)
        count = int(rate * args.minutes * 60)
        began = time.monotonic()
        stream.start(count)
        watch = Watch(worker, sink, probe, stream, began, args)
        _observe(report, watch, done=lambda: not stream.running)
        stream.join()
        drain_began = time.monotonic()
        try:
            _observe(report, watch, done=lambda: _drained(probe), limit_s=300)
        except DrainTimeout as exc:
            report.drain_error = str(exc)
        report.drain_s = time.monotonic() - drain_began
        report.retries_by_reason = _by_label(worker, "mics_worker_retries_total", "reason")
        report.stop_status = worker.stop(120)
        report.produced, report.produce_failures = len(stream.expected), stream.failures
        report.producer_behind_s = stream.behind_s
        _settle(report, stream.expected, sink, bootstrap_servers, topics[2])
        report.sink_stats = sink.call("GET", "/_sandbox/stats")
    finally:
        probe.close()
        worker.close()
    report.load_after = os.getloadavg()
    return report


def _drained(probe: LagProbe) -> bool:
    return all(committed >= high for committed, high in probe.read().values())


@dataclass(frozen=True)
class Watch:
    """What the sampling loop looks at."""

    worker: WorkerProcess
    sink: SinkProcess
    probe: LagProbe
    stream: StreamProducer
    began: float
    args: argparse.Namespace


def _observe(report: Report, watch: Watch, done: Callable[[], bool], limit_s: float | None = None) -> None:
    """Sample every `sample_s` until `done()`; start an outage every OUTAGE_EVERY_S of the stream."""
    worker, sink, probe, stream, began, args = (
        watch.worker,
        watch.sink,
        watch.probe,
        watch.stream,
        watch.began,
        watch.args,
    )
    assert worker.pid is not None
    started = time.monotonic()
    next_outage = began + OUTAGE_EVERY_S
    last_progress: dict[tuple[str, int], tuple[int, float]] = {}
    while not done():
        if limit_s is not None and time.monotonic() - started > limit_s:
            raise DrainTimeout(f"the worker did not catch up within {limit_s:.0f} s of the stream's end")
        if not worker.is_running():
            raise RuntimeError("the worker exited during the soak:\n" + worker.stderr()[-4000:])
        now = time.monotonic()
        if limit_s is None and now >= next_outage:
            sink.set_faults(outage_s=OUTAGE_S)
            next_outage += OUTAGE_EVERY_S
        lags = probe.read()
        for key, (committed, high) in lags.items():
            previous = last_progress.get(key)
            if previous is None or committed != previous[0] or committed >= high:
                last_progress[key] = (committed, now)
            else:
                report.stalls[key] = max(report.stalls.get(key, 0.0), now - previous[1])
        metrics = worker.metrics()
        report.samples.append(
            Sample(
                at_s=now - began,
                rss_mib=process_rss_mib(worker.pid) or 0.0,
                cpu_s=process_cpu_s(worker.pid),
                outcomes=_total(metrics, OUTCOMES),
                retries=_total(metrics, "mics_worker_retries_total"),
                accepted=sink.call("GET", "/_soak/count")["accepted"],
                produced=len(stream.expected),
                lag={key: high - committed for key, (committed, high) in lags.items()},
                paused=[k for k, v in metrics.items() if k.startswith("mics_worker_paused{") and v == 1.0],
            )
        )
        time.sleep(args.sample_s)


def _total(metrics: dict[str, float], name: str) -> float:
    return sum(value for key, value in metrics.items() if key.partition("{")[0] == name)


def _by_label(worker: WorkerProcess, name: str, label: str) -> dict[str, float]:
    found: dict[str, float] = {}
    for key, value in worker.metrics().items():
        if key.partition("{")[0] == name:
            match = re.search(rf'{label}="([^"]*)"', key)
            reason = match.group(1) if match else ""
            found[reason] = found.get(reason, 0.0) + value
    return {reason: count for reason, count in found.items() if count}


def _settle(report: Report, expected: dict[str, str], sink: SinkProcess, bootstrap_servers: str, dlq: str) -> None:
    accepted: dict[str, int] = sink.call("GET", "/_soak/ledger")["accepted"]
    dead: Counter[str] = Counter()
    reasons: dict[str, str] = {}
    for record in read_dead_letters(bootstrap_servers, dlq):
        ledger_id = record.ledger_id
        if ledger_id is None or ledger_id not in expected:
            report.unknown += 1
            continue
        dead[ledger_id] += 1
        reasons[ledger_id] = record.reason
        report.dead_lettered_by_reason[record.reason] += 1
    report.unknown += sum(1 for ledger_id in accepted if ledger_id not in expected)
    arrivals = Counter({k: v for k, v in accepted.items() if k in expected}) + dead
    report.delivered_ids = sum(1 for ledger_id in accepted if ledger_id in expected)
    report.duplicates = sum(count - 1 for count in arrivals.values() if count > 1)
    report.missing = sum(1 for ledger_id in expected if ledger_id not in arrivals)
    report.wrong_reason = sum(
        1
        for ledger_id, fate in expected.items()
        if (fate == "delivered" and ledger_id in reasons) or (fate != "delivered" and reasons.get(ledger_id) != fate)
    )


# -- the report ----------------------------------------------------------------------------------------------------


def rss_flatness(report: Report) -> tuple[float, float] | None:
    """(median RSS of the second quarter, of the last quarter) after the warm-up, in MiB."""
    steady = [s for s in report.samples if s.at_s >= WARM_UP_S and s.at_s <= report.minutes * 60]
    if len(steady) < 8:
        return None
    quarter = len(steady) // 4
    return statistics.median(s.rss_mib for s in steady[quarter : 2 * quarter]), statistics.median(
        s.rss_mib for s in steady[-quarter:]
    )


def verdict(report: Report, args: argparse.Namespace) -> tuple[bool, list[str]]:
    problems = []
    if report.missing or report.unknown or report.wrong_reason or report.produce_failures:
        problems.append("the ledger does not balance")
    stalled = [key for key, seconds in report.stalls.items() if seconds >= args.stall_s]
    if stalled:
        problems.append(f"{len(stalled)} partition(s) stalled")
    flat = rss_flatness(report)
    if flat is None or flat[1] > flat[0] * (1 + RSS_TOLERANCE):
        problems.append("RSS is not flat")
    if report.drain_error is not None:
        problems.append(report.drain_error)
    if report.stop_status != 0:
        problems.append(f"the worker exited with {report.stop_status}")
    return not problems, problems


def render(report: Report, args: argparse.Namespace) -> str:
    ok, problems = verdict(report, args)
    steady = [s for s in report.samples if s.at_s <= report.minutes * 60]
    flat = rss_flatness(report)
    first, last = report.samples[0], report.samples[-1]
    worker_cpu = last.cpu_s - first.cpu_s
    lines = [
        "# Soak results",
        "",
        f"`scripts/soak --minutes {args.minutes:g}` on {report.started}: worker {__version__}, Python "
        f"{platform.python_version()}, {os.cpu_count()} cores shared with other jobs (load average "
        f"{report.load_before[0]:.1f} at the start, {report.load_after[0]:.1f} at the end).",
        "",
        f"**Verdict: {'PASS' if ok else 'FAIL'}**" + ("" if ok else f" ({'; '.join(problems)})"),
        "",
        "## Load",
        "",
        (
            f"- Calibration (one worker draining a 40,000-message backlog, no faults, this machine, right before): "
            f"**{report.calibrated:.0f} messages/s**; the soak ran at {args.rate_share:.0%} of it."
            if report.calibrated is not None
            else "- Rate given on the command line."
        ),
        _bench_reference(report.rate),
        f"- Stream: **{report.rate:.0f} messages/s** for {report.minutes:g} min = {report.produced:,} messages "
        f"(`generate()` mix: ~70% activities, 15% profiles, 15% choices, 2% invalid of three kinds), "
        f"{args.partitions} + {args.partitions} partitions; the producer was at most {report.producer_behind_s:.1f} s "
        f"behind its schedule; {report.produce_failures} produce failures.",
        f"- Faults (one seeded draw per request): {_faults_text()}; plus a full outage (503 to everything) of "
        f"{OUTAGE_S:g} s every {OUTAGE_EVERY_S / 60:g} min.",
        f"- Worker: one process, defaults except {_worker_settings_text()}.",
        "",
        "## Ledger",
        "",
        "| produced | delivered (distinct ids) | dead-lettered | missing | unknown | wrong reason | duplicates |",
        "|---|---|---|---|---|---|---|",
        f"| {report.produced:,} | {report.delivered_ids:,} | {sum(report.dead_lettered_by_reason.values()):,} | "
        f"{report.missing} | {report.unknown} | {report.wrong_reason} | {report.duplicates} |",
        "",
        "Dead-lettered by reason: "
        + (", ".join(f"{k} {v}" for k, v in sorted(report.dead_lettered_by_reason.items())) or "none")
        + ". Retries by reason: "
        + (", ".join(f"{k} {v:.0f}" for k, v in sorted(report.retries_by_reason.items())) or "none")
        + f". The sink answered: {_responses_text(report.sink_stats)}.",
        "",
        (
            f"After the stream ended the worker caught up (every partition committed to its end) in "
            f"{report.drain_s:.0f} s; SIGTERM then stopped it with status {report.stop_status}."
            if report.drain_error is None
            else f"{report.drain_error.capitalize()}; SIGTERM then stopped it with status {report.stop_status}."
        ),
        "",
        "## Memory (worker RSS from /proc, MiB)",
        "",
    ]
    if flat is not None:
        change = (flat[1] - flat[0]) / flat[0]
        lines.append(
            f"Median of the second quarter {flat[0]:.1f}, of the last quarter {flat[1]:.1f} ({change:+.1%}; "
            f"flat means within {RSS_TOLERANCE:.0%}, after a {WARM_UP_S:.0f} s warm-up). "
            f"Peak {max(s.rss_mib for s in steady):.1f}. Worker CPU over the run: {worker_cpu:.0f} s "
            f"({worker_cpu / max(1.0, last.at_s - first.at_s):.0%} of a core)."
        )
    lines += [
        "",
        "| minute | RSS MiB | outcomes | sink accepted | max partition lag | paused |",
        "|---|---|---|---|---|---|",
    ]
    for sample in _per_minute(steady):
        lines.append(
            f"| {sample.at_s / 60:.0f} | {sample.rss_mib:.1f} | {sample.outcomes:,.0f} | {sample.accepted:,} | "
            f"{max(sample.lag.values(), default=0):,} | {_pause_reasons(sample.paused)} |"
        )
    lines += [
        "",
        "## Partitions",
        "",
        f"Lag is the broker's view: high watermark minus the group's committed offset, sampled every {args.sample_s:g} "
        f"s. A stall is lag above zero while the committed offset does not move for {args.stall_s:g} s.",
        "",
        "| partition | max lag | longest time without commit progress while behind (s) |",
        "|---|---|---|",
    ]
    for key in sorted(first.lag):
        max_lag = max(s.lag.get(key, 0) for s in report.samples)
        lines.append(f"| {key[0]}[{key[1]}] | {max_lag:,} | {report.stalls.get(key, 0.0):.0f} |")
    lines.append("")
    return "\n".join(lines)


def _bench_reference(rate: float) -> str:
    """The benchmark's figure for the same mix and setup (bench/RESULTS.md), when it has one, beside the soak's rate."""
    results = REPO_ROOT / "bench" / "RESULTS.md"
    text = results.read_text(encoding="utf-8") if results.exists() else ""
    found = re.search(r"^\| aiohttp \| mixed \| 1 \| [\d,]+ \| ([\d,]+)", text, re.MULTILINE)
    if found is None:
        return "- No benchmark figure for the mixed stream in bench/RESULTS.md to compare with."
    figure = float(found.group(1).replace(",", ""))
    return (
        f"- Benchmark (bench/RESULTS.md, mixed stream, aiohttp, 1 process, its latest run): {figure:,.0f} events/s; "
        f"the soak's rate is {rate / figure:.0%} of it."
    )


def _pause_reasons(series: list[str]) -> str:
    """`mics_worker_paused{reason="x"}` keys → `x, y`, or `-`."""
    reasons = [match.group(1) for key in series if (match := re.search(r'reason="([^"]*)"', key))]
    return ", ".join(reasons) or "-"


def _per_minute(samples: list[Sample]) -> list[Sample]:
    chosen: dict[int, Sample] = {}
    for sample in samples:
        chosen.setdefault(int(sample.at_s // 60), sample)
    return [chosen[minute] for minute in sorted(chosen)]


def _worker_settings_text() -> str:
    """The settings the soak's worker runs with beyond the essentials: the harness's own plus the soak's."""
    harness = worker_env(
        bootstrap_servers="", api_base_url="", api_token="", topics="", routes="", dlq_topic="", group_id=""
    )
    essentials = {"BOOTSTRAP_SERVERS", "API_BASE_URL", "API_TOKEN", "TOPICS", "ROUTES", "DLQ_TOPIC", "GROUP_ID"}
    chosen = {name.removeprefix("MICS_WORKER_"): value for name, value in harness.items()}
    chosen = {name: value for name, value in chosen.items() if name not in essentials}
    chosen.update(WORKER_SETTINGS)
    return ", ".join(f"{name}={value}" for name, value in sorted(chosen.items()))


def _faults_text() -> str:
    return (
        f"latency {SOAK_FAULTS['latency_ms']:g} ms, 503 {SOAK_FAULTS['p503']:.1%}, 429 {SOAK_FAULTS['p429']:.1%} "
        f"(Retry-After {SOAK_FAULTS['retry_after_s']:g} s), reset {SOAK_FAULTS['p_reset']:.1%}, hang "
        f"{SOAK_FAULTS['p_hang']:.1%} for {SOAK_FAULTS['hang_s']:g} s (read timeout "
        f"{WORKER_SETTINGS['HTTP_READ_TIMEOUT_S']} s)"
    )


def _responses_text(stats: dict[str, Any]) -> str:
    responses = stats.get("responses", {})
    dropped = stats.get("dropped", {})
    parts = [f"{status} x{count:,}" for status, count in sorted(responses.items())]
    parts += [f"{kind} x{count:,}" for kind, count in sorted(dropped.items())]
    return ", ".join(parts) or "nothing"


if __name__ == "__main__":
    sys.exit(main())
