"""The end-to-end benchmark (GitHub issue 7): `scripts/bench [options]`, or `python -m bench.run [options]`.

Starts a real Kafka broker (or uses KAFKA_BOOTSTRAP_SERVERS) and the sandbox API in `--minimal` mode, produces
the streams once, then measures the real worker process for each HTTP backend, the ceilings of each half of its
job, latency at a steady load, 1 vs N processes, (with `--backlog N`) memory facing a large backlog, and (with
`--large N`) memory with N messages of 250 kB against a slow API, per byte window. Writes
the figures into bench/RESULTS.md (between generated-section markers) and, with `--json`, as JSON. Method and
caveats: bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib.metadata
import os
import platform
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import confluent_kafka
import orjson

from bench import report
from bench.backlog import ensure_backlog, measure_backlog
from bench.ceilings import consume_ceiling, http_ceiling
from bench.datasets import MIXES, Dataset, produce_dataset
from bench.large import (
    CONTRAST_IN_FLIGHT_BYTES,
    DEFAULT_LATENCY_MS,
    DEFAULT_SECONDS,
    MESSAGE_BYTES,
    ensure_large_topic,
    measure_large,
)
from bench.latency import LatencySink, measure_latency
from bench.peer_benthos import IDLE_POOL, build_benthos, measure_benthos
from bench.peer_report import peer_section
from bench.worker_run import NULL_API, SWAPPED, WorkerRun, measure_worker
from tests.support.kafka_broker import KafkaBroker
from tests.support.sandbox_process import SandboxProcess
from worker.mics.transport import BACKENDS, DEFAULT_BACKEND

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS = REPO_ROOT / "bench" / "RESULTS.md"
DEFAULT_EVENTS = 30_000
HTTPX_SHARE = 10  # httpx runs get events / 10: it is an order of magnitude slower (bench/HTTP_BACKENDS.md)
WORKER_CONCURRENCY = 64  # the worker's default MICS_WORKER_MAX_CONCURRENCY, for the HTTP ceiling
LATENCY_RATE_SHARE = 0.3  # latency phase load: 30% of the measured throughput (headroom on a busy box)...
LATENCY_RATE_CAP = 2000.0  # ...at most this many events/s
_REPORTED_DISTRIBUTIONS = ("orjson", "aiohttp", "httptools", "httpx", "pyreqwest", "uvloop", "jsonschema-rs")


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    if args.large_only:
        say(f"benchmark: only memory with {args.large:,} large messages")
    elif args.distant_only:
        say(f"benchmark: only an API {args.distant_ms:.0f} ms away against an instant one, {args.events:,} events")
    else:
        say(f"benchmark: {args.events:,} events, backends {args.backends}, processes {args.processes}, x{args.repeat}")
    with _kafka() as (bootstrap_servers, kafka_version), SandboxProcess("--minimal") as sandbox:
        results = _measure(args, bootstrap_servers, kafka_version, sandbox)
    text = args.output.read_text() if args.output.exists() else "# Benchmark results\n"
    if not (args.large_only or args.distant_only):
        text = report.replace_section(text, "main", report.main_section(results))
        print(report.main_section(results))
    if results["peer"]:
        text = report.replace_section(text, "peer", peer_section(results))
        print(peer_section(results))
    if results["backlog"]:
        text = report.replace_section(text, "backlog", report.backlog_section(results))
    if results["distant"]:
        text = report.replace_section(text, "distant", report.distant_section(results))
        print(report.distant_section(results))
    if results["large"]:
        text = report.replace_section(text, "large", report.large_section(results))
        print(report.large_section(results))
    args.output.write_text(text)
    say(f"wrote {args.output}")
    if args.json:
        args.json.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    balanced = all(run["balanced"] for run in results["runs"] + results["distant"])
    if not balanced:
        say("LEDGER NOT BALANCED: some run lost, duplicated or misfiled messages (see the table)")
    return 0 if balanced else 1


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    """The parsed command line, with `--smoke`'s presets applied and the `--…-only` options checked."""
    args = _parser().parse_args(argv)
    if args.smoke:
        args.events, args.repeat, args.backends, args.processes = 2000, 1, [DEFAULT_BACKEND, NULL_API], [1]
        args.latency_seconds, args.backlog, args.large = 3.0, 0, 0
    if args.large_only and not args.large:
        _parser().error("--large-only needs --large N")
    if args.distant_only and not args.distant_ms:
        _parser().error("--distant-only needs --distant-ms MS")
    return args


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="scripts/bench", description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=DEFAULT_EVENTS, help=f"per stream (default {DEFAULT_EVENTS})")
    parser.add_argument(
        "--backends",
        type=_csv((*BACKENDS, *SWAPPED)),
        default=[*BACKENDS, *SWAPPED],
        help=f"comma list (default: {', '.join((*BACKENDS, *SWAPPED))}; the last two are experiments, README.md)",
    )
    parser.add_argument("--processes", type=_csv(None, int), default=[1, 2], help="comma list (default 1,2)")
    parser.add_argument("--mixes", type=_csv(MIXES), default=list(MIXES), help="comma list (default: both)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each measurement; medians reported")
    parser.add_argument("--latency-seconds", type=float, default=10.0, help="paced phase length (default 10)")
    parser.add_argument("--backlog", type=int, default=0, metavar="N", help="also measure RSS facing N messages")
    parser.add_argument("--backlog-seconds", type=float, default=45.0, help="worker run time against the backlog")
    parser.add_argument(
        "--large", type=int, default=0, metavar="N", help="also measure RSS with N messages of 250 kB (full run: 2000)"
    )
    parser.add_argument(
        "--large-seconds", type=float, default=DEFAULT_SECONDS, help="bound of each large-message run (default 90)"
    )
    parser.add_argument(
        "--large-latency-ms", type=float, default=DEFAULT_LATENCY_MS, help="the sandbox's added latency (default 1000)"
    )
    parser.add_argument(
        "--distant-ms",
        type=float,
        default=0.0,
        metavar="MS",
        help="also run one worker (default settings, activity mix) against an API this far away and an instant one",
    )
    parser.add_argument("--distant-only", action="store_true", help="only the --distant-ms measurement")
    parser.add_argument("--large-only", action="store_true", help="only the --large measurement (main section kept)")
    parser.add_argument(
        "--peer", choices=["benthos"], help="also run Benthos on the activity stream (built with Go on first use)"
    )
    parser.add_argument("--smoke", action="store_true", help="CI smoke: 2,000 events, default backend + null, once")
    parser.add_argument("--output", type=Path, default=RESULTS, help="the Markdown file to update")
    parser.add_argument("--json", type=Path, help="also write every figure as JSON here")
    return parser


def _measure(args: argparse.Namespace, bootstrap_servers: str, kafka_version: str, sandbox: SandboxProcess) -> Any:
    results: dict[str, Any] = {
        "meta": _meta(args, kafka_version),
        "runs": [],
        "ceilings": [],
        "latency": [],
        "backlog": None,
        "large": [],
        "distant": [],
        "peer": [],
    }
    datasets: dict[tuple[str, int], Dataset] = {}

    def dataset(mix: str, count: int) -> Dataset:
        if (mix, count) not in datasets:
            say(f"producing {count:,} events ({mix} mix)")
            datasets[mix, count] = produce_dataset(bootstrap_servers, mix, count)
        return datasets[mix, count]

    def record(run: WorkerRun) -> None:
        results["runs"].append(run.as_dict())
        say(
            f"  {run.backend} {run.mix} x{run.processes}: {run.events_per_s:,.0f} events/s, "
            f"{run.cpu_us_per_event:,.0f} µs CPU/event, peak RSS {run.peak_rss_mib:.0f} MiB, "
            f"ledger {'balanced' if run.ledger.balanced else 'NOT BALANCED: ' + repr(run.ledger)}"
        )

    if args.large_only:
        _large(args, bootstrap_servers, sandbox, results)
        results["meta"]["loadavg_end"] = os.getloadavg()[0]
        return results
    if args.distant_only:
        _distant(args, bootstrap_servers, sandbox, dataset("activity", args.events), results)
        results["meta"]["loadavg_end"] = os.getloadavg()[0]
        return results
    for backend in args.backends:
        count = args.events if backend != "httpx" else max(1000, args.events // HTTPX_SHARE)
        for mix in args.mixes:
            for _ in range(args.repeat):
                record(measure_worker(bootstrap_servers, sandbox, dataset(mix, count), backend=backend))
    for processes in (p for p in args.processes if p > 1):
        for _ in range(args.repeat):
            stream = dataset("activity", args.events)
            record(measure_worker(bootstrap_servers, sandbox, stream, backend=DEFAULT_BACKEND, processes=processes))
    if args.distant_ms:
        _distant(args, bootstrap_servers, sandbox, dataset("activity", args.events), results)
    if args.peer:
        _peer(args, sandbox, dataset("activity", args.events), results)
    _ceilings(args, bootstrap_servers, sandbox, dataset("activity", args.events), results)
    _latency(args, bootstrap_servers, results)
    if args.backlog:
        topic = ensure_backlog(bootstrap_servers, args.backlog, say)
        say(f"backlog: running the worker {args.backlog_seconds:.0f} s against {args.backlog:,} messages")
        run = measure_backlog(
            bootstrap_servers, sandbox, topic, args.backlog, backend=DEFAULT_BACKEND, seconds=args.backlog_seconds
        )
        results["backlog"] = run.as_dict()
        say(f"  peak RSS {run.peak_rss_mib:.0f} MiB, {run.processed:,} processed")
    if args.large:
        _large(args, bootstrap_servers, sandbox, results)
    results["meta"]["loadavg_end"] = os.getloadavg()[0]
    return results


def _distant(
    args: argparse.Namespace, bootstrap_servers: str, sandbox: SandboxProcess, stream: Dataset, results: Any
) -> None:
    """Issue 13 (e): the same worker and stream against an instant API and one `--distant-ms` away, alternated."""
    for _ in range(args.repeat):
        for latency_ms in (0.0, args.distant_ms):
            run = measure_worker(bootstrap_servers, sandbox, stream, backend=DEFAULT_BACKEND, api_latency_ms=latency_ms)
            results["distant"].append(run.as_dict())
            say(
                f"  API {latency_ms:.0f} ms away: {run.events_per_s:,.0f} events/s, "
                f"{run.cpu_us_per_event:,.0f} µs CPU/event, ledger {'balanced' if run.ledger.balanced else 'NOT'}"
            )


def _ceilings(
    args: argparse.Namespace, bootstrap_servers: str, sandbox: SandboxProcess, stream: Dataset, results: Any
) -> None:
    say("ceilings: consume + decode (+ validate + route) without HTTP; HTTP without Kafka")
    for _ in range(args.repeat):
        for plan in (False, True):
            ceiling = consume_ceiling(bootstrap_servers, stream, plan=plan)
            results["ceilings"].append({**ceiling.as_dict(), "kind": "plan" if plan else "decode", "backend": None})
        for backend in (b for b in args.backends if b != NULL_API):
            requests = args.events if backend != "httpx" else max(1000, args.events // HTTPX_SHARE)
            ceiling = http_ceiling(backend, sandbox.base_url, sandbox.token, requests, WORKER_CONCURRENCY)
            results["ceilings"].append({**ceiling.as_dict(), "kind": "http", "backend": backend})
            say(f"  {ceiling.name}: {ceiling.per_s:,.0f}/s, {ceiling.cpu_us_per_item:,.0f} µs CPU each")


def _peer(args: argparse.Namespace, sandbox: SandboxProcess, stream: Dataset, results: Any) -> None:
    """Benthos on the activity stream, stock and with its idle pool raised, against the same sandbox."""
    binary = build_benthos(say)
    for _ in range(args.repeat):
        for idle_pool in (None, IDLE_POOL):
            run = measure_benthos(binary, sandbox, stream, idle_pool=idle_pool)
            results["peer"].append(run.as_dict())
            say(
                f"  Benthos {run.variant}: {run.cpu_us_per_event:,.0f} µs CPU/event, {run.seconds:.1f} s, "
                f"{run.delivered_at_api:,} delivered, {run.dead_lettered:,} dead-lettered"
            )


def _large(args: argparse.Namespace, bootstrap_servers: str, sandbox: SandboxProcess, results: Any) -> None:
    """RSS with large messages: the default byte window, then a larger one for contrast (bench/large.py)."""
    topic = ensure_large_topic(bootstrap_servers, args.large, say=say)
    for window in (None, CONTRAST_IN_FLIGHT_BYTES):
        shown = "default" if window is None else f"{window // 2**20} MiB"
        say(f"large messages: {args.large:,} of {MESSAGE_BYTES:,} bytes, {shown} byte window")
        run = measure_large(
            bootstrap_servers,
            sandbox,
            topic,
            args.large,
            backend=DEFAULT_BACKEND,
            max_in_flight_bytes=window,
            latency_ms=args.large_latency_ms,
            seconds=args.large_seconds,
        )
        results["large"].append(run.as_dict())
        say(
            f"  peak RSS {run.peak_rss_mib:.0f} MiB, at most {run.max_in_flight_mib_seen:.1f} MiB in flight "
            f"({run.max_in_flight_messages_seen} messages), {run.consumed:,} consumed, {run.ended_by}"
        )


def _latency(args: argparse.Namespace, bootstrap_servers: str, results: Any) -> None:
    with LatencySink() as sink:
        for backend in (b for b in args.backends if b != NULL_API):  # the null API never reaches the sink
            rates = [
                r["events_per_s"]
                for r in results["runs"]
                if r["backend"] == backend and r["mix"] == "activity" and r["processes"] == 1
            ]
            measured = report.median(rates) if rates else 1000.0
            rate = min(LATENCY_RATE_CAP, LATENCY_RATE_SHARE * measured)
            say(f"latency: {backend} at {rate:,.0f} events/s for {args.latency_seconds:.0f} s")
            for _ in range(args.repeat):
                run = measure_latency(
                    bootstrap_servers, sink, backend=backend, rate_per_s=rate, seconds=args.latency_seconds
                )
                results["latency"].append(run.as_dict())
                say(f"  p50 {run.p50_ms:.1f} ms, p99 {run.p99_ms:.1f} ms")


@contextlib.contextmanager
def _kafka() -> Iterator[tuple[str, str]]:
    """KAFKA_BOOTSTRAP_SERVERS when set (its version read from the harness pom), else a broker started here."""
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "").strip()
    if external:
        pom = (REPO_ROOT / "kafka" / "pom.xml").read_text()
        found = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", pom)
        yield external, (found.group(1) if found else "unknown") + " (external broker; version per kafka/pom.xml)"
        return
    say("starting a Kafka broker (KAFKA_BOOTSTRAP_SERVERS is not set)")
    with KafkaBroker() as broker:
        yield broker.bootstrap_servers, broker.version


def _meta(args: argparse.Namespace, kafka_version: str) -> dict[str, Any]:
    cpu_model = "unknown CPU"
    with contextlib.suppress(OSError):
        found = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
        cpu_model = found.group(1).strip() if found else cpu_model
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cores": os.cpu_count(),
        "cpu_model": cpu_model,
        "python": platform.python_version(),
        "confluent_kafka": _version("confluent-kafka"),
        "librdkafka": confluent_kafka.libversion()[0],
        "kafka": kafka_version,
        **{name.replace("-", "_"): _version(name) for name in _REPORTED_DISTRIBUTIONS},
        "commit": _commit(),
        "events": args.events,
        "large": args.large,
        "repeat": args.repeat,
        "smoke": args.smoke,
        "backends": args.backends,
        "default_backend": DEFAULT_BACKEND,
        "loadavg_start": os.getloadavg()[0],
        "loadavg_end": None,
    }


def _git(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, check=False)


def _commit() -> str:
    """The measured code: HEAD, marked when worker/ differs from it (others edit the tree while this runs)."""
    try:
        head = _git("rev-parse", "--short", "HEAD")
        dirty = _git("diff", "--quiet", "HEAD", "--", "worker")
    except OSError:
        return "unknown"
    return head.stdout.strip() + (" + uncommitted changes in worker/" if dirty.returncode else "")


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


def _csv(allowed: tuple[str, ...] | None, kind: type = str) -> Any:
    def parse(text: str) -> list[Any]:
        items = [kind(item.strip()) for item in text.split(",") if item.strip()]
        unknown = [item for item in items if allowed is not None and item not in allowed]
        if not items or unknown:
            raise argparse.ArgumentTypeError(f"expected a comma list of {', '.join(allowed or ('numbers',))}")
        return items

    return parse


def say(text: str) -> None:
    print(f"==> {text}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
