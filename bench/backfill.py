"""Backfill against the real-time path for the same records: records/s and CPU per record of the client process.

    python -m bench.backfill --records 20000     # uses $KAFKA_BOOTSTRAP_SERVERS, or starts a broker of its own

Both runs read the same pre-produced topic (two datamarts, three document types, ~1% invalid) into the same
sandbox (validation on, no latency), each as one OS process from its start to its end — start-up, the consumer's
join and, for the backfill, following every execution to its end included. CPU is the client process's user + system
time (`RUSAGE_CHILDREN` around its run), not the sandbox's. Prints one Markdown row per path.
"""

from __future__ import annotations

import argparse
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from tests.backfill.support import backfill_env, mixed_stream
from tests.support.kafka_broker import KafkaBroker, create_topic, free_port
from tests.support.ledger import produce_all
from tests.support.sandbox_process import REPO_ROOT, SandboxProcess


def _cpu_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _accepted(sandbox: SandboxProcess) -> int:
    documents = sandbox.documents()
    return sum(len(documents[kind]) for kind in ("activities", "profiles", "choices"))


def _backfill(env: dict[str, str], work: Path) -> tuple[float, float]:
    began, cpu = time.monotonic(), _cpu_children()
    command = [sys.executable, "-m", "worker", "backfill", "--checkpoint", str(work / "c.json"), "--progress", "off"]
    subprocess.run(command, env=env, cwd=REPO_ROOT, check=True, stdout=subprocess.DEVNULL)
    return time.monotonic() - began, _cpu_children() - cpu


def _real_time(env: dict[str, str], sandbox: SandboxProcess, expected: int) -> tuple[float, float]:
    env = {**env, "MICS_WORKER_GROUP_ID": f"bench-{uuid.uuid4().hex[:8]}", "MICS_WORKER_HEALTH_PORT": str(free_port())}
    began, cpu = time.monotonic(), _cpu_children()
    worker = subprocess.Popen(
        [sys.executable, "-m", "worker", "run"],
        env=env,
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while sandbox.stats()["responses"].get("200", 0) < expected:
            if worker.poll() is not None:
                raise RuntimeError("the worker exited early")
            time.sleep(0.2)
        elapsed = time.monotonic() - began
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(60)
    return elapsed, _cpu_children() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=20_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        work = Path(directory)
        external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        broker = None if external else KafkaBroker(work_dir=work / "kafka").start()
        bootstrap = external or broker.bootstrap_servers  # type: ignore[union-attr]
        try:
            topic, dlq = f"bench-bf-{uuid.uuid4().hex[:8]}", f"bench-bf-dlq-{uuid.uuid4().hex[:8]}"
            create_topic(bootstrap, topic, 3)
            create_topic(bootstrap, dlq, 1)
            messages = list(mixed_stream(args.records))
            produce_all(bootstrap, topic, messages)
            valid = sum(1 for m in messages if m.expected == "delivered")
            with SandboxProcess("--import-delay-s", "0") as sandbox:
                env = {
                    **os.environ,
                    **backfill_env(
                        bootstrap_servers=bootstrap,
                        base_url=sandbox.base_url,
                        token=sandbox.token,
                        topic=topic,
                        dlq_topic=dlq,
                    ),
                    "MICS_WORKER_BACKFILL_POLL_INTERVAL_S": "0.2",
                }
                bulk_s, bulk_cpu = _backfill(env, work)
                bulk_accepted = _accepted(sandbox)
                sandbox.reset()
                live_s, live_cpu = _real_time(env, sandbox, valid)
            load = os.getloadavg()[0]
            print(f"records: {args.records} ({valid} valid), load average at the end {load:.1f} (shared machine)")
            print("| path | records/s | client CPU µs/record | wall s | accepted |")
            print("|---|---:|---:|---:|---:|")
            for name, wall, cpu, accepted in (
                ("backfill (document imports)", bulk_s, bulk_cpu, bulk_accepted),
                ("real-time worker (aiohttp)", live_s, live_cpu, valid),
            ):
                rate, cpu_us = args.records / wall, cpu / args.records * 1e6
                print(f"| {name} | {rate:,.0f} | {cpu_us:,.0f} | {wall:.1f} | {accepted} |")
        finally:
            if broker is not None:
                broker.close()


if __name__ == "__main__":
    main()
