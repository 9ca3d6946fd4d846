"""The soak: the worker under a steady stream with faults for a long time (default 15 minutes), measured from outside.

    scripts/soak [--minutes 15] [--rate N] [--stall-s 60] [--drain-s 300] [--backend B] [--output soak/RESULTS.md]

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

The report gives, per partition, the messages committed per second over the soak and the longest stretch without
commit progress while the partition had lag; the worker's CPU share; and how long it took to catch up.

Verdict rules (`soak/verdict.py`): the ledger balances (nothing missing, nothing unknown, reasons as intended); every
partition's committed offset moves at least every `--stall-s` seconds (60) while it has lag; the worker catches up
after the stream (total lag 0 within `--drain-s`, 300); RSS flat (the median of the last quarter within 10% of the
median of the second quarter, after warm-up); the worker stops with status 0.

Modules: `settings` (faults, worker settings), `sink` and `stream` (the processes around the worker), `sampling`
(measuring from outside), `model` (the figures), `verdict` (ledger and rules), `render` (the Markdown), this one (the
order of things and the command line).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from confluent_kafka import TopicPartition

from soak.model import Report
from soak.render import render
from soak.sampling import DrainTimeout, LagProbe, Watch, metric_by_label, observe, take_sample
from soak.settings import DATAMART, OUTCOMES, RATE_LIMIT_SHARE, REPO_ROOT, SOAK_FAULTS, WORKER_SETTINGS
from soak.sink import SinkProcess
from soak.stream import StreamProducer
from soak.verdict import settle, verdict
from tests.support.kafka_broker import KafkaBroker, create_topic
from tests.support.worker_process import WorkerProcess, worker_env
from worker.mics.transport import BACKENDS, DEFAULT_BACKEND


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/soak", description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--minutes", type=float, default=15.0, help="how long the stream runs (default 15)")
    parser.add_argument("--rate", type=float, default=None, help="messages/s (default: a share of the calibration)")
    parser.add_argument("--rate-share", type=float, default=0.5, help="share of the calibrated throughput (0.5)")
    parser.add_argument("--calibrate-s", type=float, default=30.0, help="calibration measuring time (30)")
    parser.add_argument("--sample-s", type=float, default=10.0, help="seconds between samples (10)")
    parser.add_argument("--stall-s", type=float, default=60.0, help="lag without commit progress = stall (60)")
    parser.add_argument("--drain-s", type=float, default=300.0, help="time to catch up after the stream (300)")
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--output", type=Path, default=REPO_ROOT / "soak" / "RESULTS.md")
    parser.add_argument(
        "--backend", choices=BACKENDS, default=DEFAULT_BACKEND, help=f"HTTP backend (default {DEFAULT_BACKEND})"
    )
    args = parser.parse_args(argv)

    with _broker() as bootstrap_servers:
        sink = SinkProcess().start()
        try:
            calibrated = None
            rate = args.rate
            if rate is None:
                calibrated = calibrate(bootstrap_servers, sink, args.partitions, args.calibrate_s, args.backend)
                rate = calibrated * args.rate_share
                print(f"calibrated: {calibrated:.0f} messages/s; soaking at {rate:.0f}/s", flush=True)
            report = soak(bootstrap_servers, sink, args, rate, calibrated)
        finally:
            sink.stop()
    text = render(report, args)
    args.output.write_text(text)
    print(text)
    return 0 if verdict(report)[0] else 1


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


def _worker(
    bootstrap_servers: str, sink: SinkProcess, topics: tuple[str, str, str], group: str, backend: str
) -> WorkerProcess:
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
        HTTP_BACKEND=backend,
    )
    return WorkerProcess(env).start()


def calibrate(bootstrap_servers: str, sink: SinkProcess, partitions: int, measure_s: float, backend: str) -> float:
    """Messages/s one worker sustains draining a backlog with no faults (the soak's 'benchmark throughput')."""
    topics = _topics(bootstrap_servers, partitions)
    backlog = 40_000
    producer = StreamProducer(bootstrap_servers, topics[0], topics[1], rate_per_s=1e9, seed=101)
    producer.start(backlog)
    producer.join()
    worker = _worker(bootstrap_servers, sink, topics, f"soak-calibration-{uuid.uuid4().hex[:8]}", backend)
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
    """The stream with faults, the drain, the stop, the ledger: everything the report needs."""
    report = Report(
        started=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        minutes=args.minutes,
        rate=rate,
        calibrated=calibrated,
        stall_s=args.stall_s,
        drain_limit_s=args.drain_s,
        load_before=os.getloadavg(),
    )
    topics = _topics(bootstrap_servers, args.partitions)
    group = f"soak-{uuid.uuid4().hex[:8]}"
    sink.set_faults(**SOAK_FAULTS)
    sink.call("PUT", "/_sandbox/rate_limit", {"rate": round(rate * RATE_LIMIT_SHARE, 1)})
    worker = _worker(bootstrap_servers, sink, topics, group, args.backend)
    partitions = [TopicPartition(topic, p) for topic in topics[:2] for p in range(args.partitions)]
    probe = LagProbe(bootstrap_servers, group, partitions)
    try:
        worker.wait_until(lambda: worker.probe("/readyz") == 200, 120, "the soak worker to join")
        stream = StreamProducer(bootstrap_servers, topics[0], topics[1], rate, seed=202)
        began = time.monotonic()
        stream.start(int(rate * args.minutes * 60))
        watch = Watch(worker, sink, probe, stream, began, args)
        observe(report, watch, done=lambda: not stream.running)
        stream.join()
        drain_began = time.monotonic()
        report.stream_s = drain_began - began
        try:
            observe(report, watch, done=probe.drained, limit_s=args.drain_s)
        except DrainTimeout as exc:
            report.drain_error = str(exc)
        report.drain_s = time.monotonic() - drain_began
        take_sample(report, watch)  # the last look: where every partition's commit ended
        report.retries_by_reason = metric_by_label(worker, "mics_worker_retries_total", "reason")
        report.stop_status = worker.stop(120)
        report.produced, report.produce_failures = len(stream.expected), stream.failures
        report.producer_behind_s = stream.behind_s
        settle(report, stream.expected, sink, bootstrap_servers, topics[2])
        report.sink_stats = sink.call("GET", "/_sandbox/stats")
    finally:
        probe.close()
        worker.close()
    report.load_after = os.getloadavg()
    return report


if __name__ == "__main__":
    sys.exit(main())
