"""What a second member costs once the group has formed: one process against `run --processes N`, alternated.

    KAFKA_BOOTSTRAP_SERVERS=... .venv/bin/python -m bench.members --events 20000 --rounds 4

`scripts/bench`'s processes row runs over a pre-produced stream, so the second member joins while the first is
already consuming: its start and the cooperative rebalance that hands it half the partitions fall inside a window of
a few seconds (and the test broker forms groups at once, `group.initial.rebalance.delay.ms` 0, where brokers default
to 3 s). Here the stream is produced only once every member holds partitions, so the figure is the members' steady
cost: worker CPU (every member, from /proc) from just before the first message is produced to the last commit,
divided by the events. The producer runs in this process and is not counted.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid

import httpx

from bench import procstat
from bench.datasets import PARTITIONS, end_offsets
from bench.observe import CommitWatcher, scrape, total
from bench.worker_run import bench_worker_env, worker_urls
from tests.support.events import MixSpec, SampleMessage, generate
from tests.support.kafka_broker import create_topic
from tests.support.ledger import produce_all
from tests.support.sandbox_process import SandboxProcess
from tests.support.worker_process import WorkerProcess
from worker.mics.transport import DEFAULT_BACKEND

_JOIN_TIMEOUT_S = 120.0
_SETTLE_S = 1.0  # after every member holds partitions: let the members' start-up work end before measuring
_POLL_S = 0.05


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--processes", type=int, default=2, help="the members compared with one process")
    parser.add_argument("--backend", default=DEFAULT_BACKEND)
    args = parser.parse_args()
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if not bootstrap:
        sys.exit("needs KAFKA_BOOTSTRAP_SERVERS (python -m tests.support.kafka_broker run)")
    stream = list(generate(args.events, MixSpec(profiles=0.0, choices=0.0, invalid=0.0), seed=7))
    figures: dict[int, list[float]] = {1: [], args.processes: []}
    with SandboxProcess("--minimal") as sandbox:
        for _ in range(args.rounds):
            for processes, runs in figures.items():
                cpu_us = _one_run(bootstrap, sandbox, stream, args.backend, processes)
                runs.append(cpu_us)
                print(f"{processes} process(es): {cpu_us:6.1f} µs CPU per event", flush=True)
    one, many = (statistics.median(runs) for runs in figures.values())
    print(f"medians: 1 process {one:.1f} µs, {args.processes} processes {many:.1f} µs ({many / one - 1:+.1%})")
    return 0


def _one_run(
    bootstrap: str, sandbox: SandboxProcess, stream: list[SampleMessage], backend: str, processes: int
) -> float:
    sandbox.reset()
    topic = f"bench.{uuid.uuid4().hex[:8]}.activities"
    create_topic(bootstrap, topic, PARTITIONS)
    env = bench_worker_env(
        bootstrap,
        api_base_url=sandbox.base_url,
        api_token=sandbox.token,
        backend=backend,
        topics=topic,
        routes=f"{topic}=activity",
    )
    args = ("--processes", str(processes)) if processes > 1 else ()
    with WorkerProcess(env, args=args) as worker:
        _wait_every_member_holds_partitions(worker_urls(worker, processes))
        time.sleep(_SETTLE_S)
        pid = worker.pid
        assert pid is not None
        cpu_before = procstat.cpu_seconds(procstat.process_tree(pid))
        produce_all(bootstrap, topic, stream)
        watcher = CommitWatcher(bootstrap, env["MICS_WORKER_GROUP_ID"], end_offsets(bootstrap, [topic]))
        deadline = time.monotonic() + max(_JOIN_TIMEOUT_S, len(stream) / 100)  # 100 events/s: a broken worker
        try:
            while watcher.committed() < watcher.target:
                if time.monotonic() > deadline or not worker.is_running():
                    raise RuntimeError(f"the stream was not committed in time:\n{worker.stderr()[-3000:]}")
                time.sleep(_POLL_S)
        finally:
            watcher.close()
        cpu_after = procstat.cpu_seconds(procstat.process_tree(pid))
        worker.stop()  # SIGTERM, forwarded to every member: none outlives the run
    return 1e6 * (cpu_after - cpu_before) / len(stream)


def _wait_every_member_holds_partitions(urls: list[str]) -> None:
    deadline = time.monotonic() + _JOIN_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            held = [total(scrape(url), "mics_worker_assigned_partitions") for url in urls]
        except httpx.HTTPError:  # a member not listening yet
            held = [0.0]
        if sum(held) == PARTITIONS and all(held):
            return
        time.sleep(_POLL_S)
    raise TimeoutError(f"the members did not share the {PARTITIONS} partitions within {_JOIN_TIMEOUT_S:.0f} s")


if __name__ == "__main__":
    sys.exit(main())
