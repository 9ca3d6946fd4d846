"""One measured run of the real worker (`python -m worker run`, a separate process) over a pre-produced dataset.

Method, per run: a fresh consumer group reads the dataset from its first offset; the sandbox is reset and a
fresh dead-letter topic created. The clock starts at the last reading taken while the worker's metrics still showed
nothing consumed (at most one 20 ms poll before the first consume) and stops when the broker shows the group's
commits covering every message ("first consume to last commit"; librdkafka auto-commits every second, and the
pipeline asks for a commit early once a quarter of its window is finished but uncommitted). The worker's CPU
(user + system, all threads, all member processes) is read from /proc at both instants; start-up (imports, group
join) is outside the window. Peak RSS is the kernel's high-water mark of each member.
Then the ledger: the sandbox's counts by route, the DLQ's records by ledger id and reason, and the worker's own
outcome counters must each account for every produced message, exactly once.
"""

from __future__ import annotations

import os
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx

from bench import procstat
from bench.datasets import Dataset
from bench.observe import CommitWatcher, Samples, scrape_all, total
from tests.support.kafka_broker import create_topic
from tests.support.ledger import read_dead_letters
from tests.support.sandbox_process import SandboxProcess
from tests.support.worker_process import WorkerProcess, worker_env

__all__ = [
    "LEAN_PROBE",
    "NULL_API",
    "SWAPPED",
    "LedgerCheck",
    "WorkerRun",
    "backend_settings",
    "measure_worker",
    "worker_urls",
]

REPO_ROOT = Path(__file__).resolve().parents[1]
# Not worker backends: experiments that swap the transport of the real worker at start-up (bench/swap_site).
LEAN_PROBE = "lean"  # the minimal HTTP/1.1 client of bench/lean_http.py
NULL_API = "null"  # an instant canned answer, no I/O: what the worker's own work costs
SWAPPED = (LEAN_PROBE, NULL_API)
_FIRST_CONSUME_POLL_S = 0.02
_COMMIT_POLL_S = 0.05
_STARTUP_TIMEOUT_S = 90.0
_STORED_KIND_TO_ROUTE = {"activities": "activity", "profiles": "profile", "choices": "choice"}


@dataclass
class LedgerCheck:
    """Where every produced message went, counted at the API, in the DLQ and by the worker itself."""

    produced: int
    delivered_expected: dict[str, int]
    delivered_at_api: dict[str, int]
    api_non_200: int
    dead_letters_expected: int
    dead_letters_found: int
    dead_letters_wrong: int  # missing, unexpected, duplicated, or with another reason than intended
    worker_outcomes: int

    @property
    def balanced(self) -> bool:
        return (
            self.delivered_at_api == self.delivered_expected
            and self.api_non_200 == 0
            and self.dead_letters_found == self.dead_letters_expected
            and self.dead_letters_wrong == 0
            and self.worker_outcomes == self.produced
            and sum(self.delivered_at_api.values()) + self.dead_letters_found == self.produced
        )


@dataclass
class WorkerRun:
    """The figures of one run."""

    backend: str
    mix: str
    processes: int
    events: int
    seconds: float  # first consume to last commit
    steady_events_per_s: float | None  # commit progress between 10% and 90% of the stream
    cpu_seconds: float
    peak_rss_mib: float  # the largest member's
    total_peak_rss_mib: float  # all members together
    sandbox_cpu_seconds: float  # the API stand-in's share of the machine in the same window
    ledger: LedgerCheck
    worker_exit_code: int
    progress: list[tuple[float, int]] = field(default_factory=list, repr=False)
    api_latency_ms: float = 0.0  # the sandbox's added latency: 0 is an instant API

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds

    @property
    def cpu_us_per_event(self) -> float:
        return self.cpu_seconds / self.events * 1e6

    @property
    def sandbox_cpu_us_per_request(self) -> float | None:
        if self.backend == NULL_API:
            return None  # the null API sends nothing
        return self.sandbox_cpu_seconds / max(sum(self.ledger.delivered_at_api.values()), 1) * 1e6

    def as_dict(self) -> dict[str, object]:
        data = asdict(self)
        del data["progress"]
        data.update(
            events_per_s=self.events_per_s,
            cpu_us_per_event=self.cpu_us_per_event,
            sandbox_cpu_us_per_request=self.sandbox_cpu_us_per_request,
            balanced=self.ledger.balanced,
        )
        return data


def worker_urls(worker: WorkerProcess, processes: int) -> list[str]:
    """The health/metrics address of each member (`run --processes N` gives member i HEALTH_PORT + i)."""
    return [f"http://127.0.0.1:{worker.health_port + index}" for index in range(processes)]


def backend_settings(backend: str) -> dict[str, str]:
    """Environment selecting `backend` for a worker process; `lean` and `null` run the real worker with its
    transport swapped at start-up (bench/swap_site/sitecustomize.py), as experiments."""
    if backend in SWAPPED:
        site = os.pathsep.join([str(REPO_ROOT / "bench" / "swap_site"), str(REPO_ROOT)])
        return {"MICS_WORKER_HTTP_BACKEND": "aiohttp", "PYTHONPATH": site, "BENCH_TRANSPORT": backend}
    return {"MICS_WORKER_HTTP_BACKEND": backend}


def bench_worker_env(
    bootstrap_servers: str,
    *,
    api_base_url: str,
    api_token: str,
    topics: str,
    routes: str,
    backend: str,
    **extra: str,
) -> dict[str, str]:
    """A benchmarked worker's environment: a DLQ topic (created here) and a group of its own, warnings-only logs,
    and `backend`'s settings; `extra` adds `MICS_WORKER_<NAME>` settings."""
    run_id = uuid.uuid4().hex[:8]
    dlq_topic = f"bench.{run_id}.dlq"
    create_topic(bootstrap_servers, dlq_topic, 1)
    env = worker_env(
        bootstrap_servers=bootstrap_servers,
        api_base_url=api_base_url,
        api_token=api_token,
        topics=topics,
        routes=routes,
        dlq_topic=dlq_topic,
        group_id=f"bench-{run_id}",
        LOG_LEVEL="WARNING",
        **extra,
    )
    env.update(backend_settings(backend))
    return env


def measure_worker(
    bootstrap_servers: str,
    sandbox: SandboxProcess,
    dataset: Dataset,
    *,
    backend: str,
    processes: int = 1,
    extra_env: dict[str, str] | None = None,
    api_latency_ms: float = 0.0,
    raw_env: dict[str, str] | None = None,
) -> WorkerRun:
    """Run the worker over `dataset` until every message is committed; measure it and settle the ledger.

    `api_latency_ms` makes the sandbox answer every request that much later: an API that far away. `extra_env` adds
    `MICS_WORKER_<NAME>` settings, `raw_env` variables as named (`OTEL_*`)."""
    sandbox.reset()
    if api_latency_ms:
        sandbox.set_faults(latency_ms=api_latency_ms)
    sandbox_pid = sandbox.pid
    assert sandbox_pid is not None
    env = bench_worker_env(
        bootstrap_servers,
        api_base_url=sandbox.base_url,
        api_token=sandbox.token,
        backend=backend,
        **dataset.worker_settings(),
        **(extra_env or {}),
    )
    env.update(raw_env or {})
    group_id, dlq_topic = env["MICS_WORKER_GROUP_ID"], env["MICS_WORKER_DLQ_TOPIC"]
    args = ("--processes", str(processes)) if processes > 1 else ()
    watcher = CommitWatcher(bootstrap_servers, group_id, dataset.end_offsets)
    try:
        with WorkerProcess(env, args=args) as worker:
            urls = worker_urls(worker, processes)
            pid = worker.pid
            assert pid is not None
            started, cpu_at_start = _wait_first_consume(worker, urls, pid)
            sandbox_cpu_at_start = procstat.cpu_seconds([sandbox_pid])
            progress = _wait_all_committed(worker, watcher, dataset.count, started)
            finished = time.monotonic()
            tree = procstat.process_tree(pid)
            cpu_at_end = procstat.cpu_seconds(tree)
            sandbox_cpu = procstat.cpu_seconds([sandbox_pid]) - sandbox_cpu_at_start
            members = tree[1:] if processes > 1 else tree
            peaks = [m.peak_rss_mib for m in map(procstat.memory, members) if m is not None]
            samples = scrape_all(urls)
            exit_code = worker.stop()
    finally:
        watcher.close()
    ledger = _settle(bootstrap_servers, sandbox, dataset, dlq_topic, samples, api_in_process=backend == NULL_API)
    return WorkerRun(
        api_latency_ms=api_latency_ms,
        backend=backend,
        mix=dataset.name,
        processes=processes,
        events=dataset.count,
        seconds=finished - started,
        steady_events_per_s=steady_rate(progress, dataset.count),
        cpu_seconds=cpu_at_end - cpu_at_start,
        sandbox_cpu_seconds=sandbox_cpu,
        peak_rss_mib=max(peaks),
        total_peak_rss_mib=sum(peaks),
        ledger=ledger,
        worker_exit_code=exit_code,
        progress=progress,
    )


def _wait_first_consume(worker: WorkerProcess, urls: list[str], pid: int) -> tuple[float, float]:
    """Poll the members' metrics until one has consumed; return (monotonic time, worker CPU seconds) just before.

    Each poll notes the time and CPU first, then scrapes; the reading returned is the one taken before the last
    scrape that still showed nothing consumed, so the window surely starts before the first consume (at most one
    poll early) and a worker that finishes a small stream between two polls is still measured whole.
    """
    deadline = time.monotonic() + _STARTUP_TIMEOUT_S
    before_last_empty: tuple[float, float] | None = None
    while time.monotonic() < deadline:
        reading = time.monotonic(), procstat.cpu_seconds(procstat.process_tree(pid))
        try:
            consumed = total(scrape_all(urls), "mics_worker_messages_consumed_total")
        except httpx.HTTPError:
            consumed = 0.0  # not listening yet (or one member not yet)
        if consumed > 0:
            return before_last_empty or reading
        before_last_empty = reading
        if not worker.is_running():
            raise RuntimeError(f"the worker exited before consuming:\n{worker.stderr()[-3000:]}")
        time.sleep(_FIRST_CONSUME_POLL_S)
    raise TimeoutError(f"the worker consumed nothing in {_STARTUP_TIMEOUT_S:.0f} s:\n{worker.stderr()[-3000:]}")


def _wait_all_committed(
    worker: WorkerProcess, watcher: CommitWatcher, count: int, started: float
) -> list[tuple[float, int]]:
    """Poll the group's committed offsets until they cover every message; return (seconds, committed) samples."""
    timeout_s = max(120.0, count / 100)  # 100 events/s would be a broken worker, not a slow one
    progress: list[tuple[float, int]] = []
    while True:
        done = watcher.committed()
        now = time.monotonic()
        progress.append((now - started, done))
        if done >= watcher.target:
            return progress
        if not worker.is_running():
            raise RuntimeError(f"the worker exited with {done}/{count} committed:\n{worker.stderr()[-3000:]}")
        if now - started > timeout_s:
            raise TimeoutError(f"only {done}/{count} committed after {timeout_s:.0f} s:\n{worker.stderr()[-3000:]}")
        time.sleep(_COMMIT_POLL_S)


def steady_rate(progress: list[tuple[float, int]], count: int) -> float | None:
    """Events/s between the first commits past 10% and past 90% of the stream (start-up and tail excluded)."""
    low = next(((t, n) for t, n in progress if n >= 0.1 * count), None)
    high = next(((t, n) for t, n in progress if n >= 0.9 * count), None)
    if low is None or high is None or high[0] <= low[0]:
        return None
    return (high[1] - low[1]) / (high[0] - low[0])


def _settle(
    bootstrap_servers: str,
    sandbox: SandboxProcess,
    dataset: Dataset,
    dlq_topic: str,
    samples: Samples,
    *,
    api_in_process: bool,
) -> LedgerCheck:
    """Count each message where it ended; with the null API the deliveries are the worker's own counts."""
    if api_in_process:
        routes = dataset.expected_delivered()
        counted = {
            r: round(total(samples, "mics_worker_messages_outcome_total", route=r, outcome="delivered")) for r in routes
        }
        delivered, non_200 = {route: n for route, n in counted.items() if n}, 0
    else:
        stats = sandbox.stats()
        delivered = {_STORED_KIND_TO_ROUTE[kind]: n for kind, n in stats["stored"].items() if n}
        non_200 = sum(n for status, n in stats["responses"].items() if status != "200")
    expected = dataset.expected_dead_letters()
    found = Counter[str]()
    wrong = 0
    records = read_dead_letters(bootstrap_servers, dlq_topic)
    for record in records:
        ledger_id = record.ledger_id
        if ledger_id is None or expected.get(ledger_id) != record.reason:
            wrong += 1
        else:
            found[ledger_id] += 1
    wrong += sum(n - 1 for n in found.values() if n > 1) + len(set(expected) - set(found))
    return LedgerCheck(
        produced=dataset.count,
        delivered_expected=dict(dataset.expected_delivered()),
        delivered_at_api=delivered,
        api_non_200=non_200,
        dead_letters_expected=len(expected),
        dead_letters_found=len(records),
        dead_letters_wrong=wrong,
        worker_outcomes=round(total(samples, "mics_worker_messages_outcome_total")),
    )
