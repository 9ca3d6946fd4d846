"""Where the worker's CPU goes: py-spy samples the real worker over a produced stream, self time per function.

    KAFKA_BOOTSTRAP_SERVERS=... .venv/bin/python -m bench.profile_worker --events 20000 --backend pyreqwest

Needs `py-spy` on PATH (not a project dependency: `pip install py-spy`). The worker runs as in `scripts/bench`
(the sandbox in `--minimal` mode, the activity stream, a fresh group) under `py-spy record --gil --format raw` (only
the thread holding the GIL is sampled, so waiting does not count), stopped
with SIGINT once the broker shows every message committed; the folded stacks are summed by their leaf frame.
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.datasets import produce_dataset
from bench.observe import CommitWatcher
from bench.worker_run import bench_worker_env
from tests.support.sandbox_process import SandboxProcess


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--backend", default="pyreqwest", help="a worker backend, or null / lean (bench/swap_site)")
    parser.add_argument("--top", type=int, default=40, help="functions listed")
    parser.add_argument("--rate", type=int, default=250, help="samples per second")
    args = parser.parse_args()
    spy = shutil.which("py-spy")
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if spy is None or not bootstrap:
        sys.exit("needs py-spy on PATH and KAFKA_BOOTSTRAP_SERVERS (python -m tests.support.kafka_broker run)")
    dataset = produce_dataset(bootstrap, "activity", args.events)
    with SandboxProcess("--minimal") as sandbox, tempfile.TemporaryDirectory() as tmp:
        env = bench_worker_env(
            bootstrap,
            api_base_url=sandbox.base_url,
            api_token=sandbox.token,
            backend=args.backend,
            **dataset.worker_settings(),
        )
        folded = Path(tmp) / "stacks.txt"
        command = [spy, "record", "--gil", "--format", "raw", "-r", str(args.rate), "-o", str(folded), "--"]
        command += [sys.executable, "-m", "worker", "run"]
        spied = subprocess.Popen(command, env={**os.environ, **env}, stdout=subprocess.DEVNULL)
        watcher = CommitWatcher(bootstrap, env["MICS_WORKER_GROUP_ID"], dataset.end_offsets)
        try:
            while watcher.committed() < watcher.target:
                if spied.poll() is not None:
                    sys.exit("the worker exited before committing everything")
                time.sleep(0.2)
        finally:
            watcher.close()
            spied.send_signal(signal.SIGINT)
            spied.wait(60)
        print_leaves(folded, args.top)
    return 0


def print_leaves(folded: Path, top: int) -> None:
    """Self samples per leaf function (file:function), and per module, as shares of all samples."""
    leaves: collections.Counter[str] = collections.Counter()
    modules: collections.Counter[str] = collections.Counter()
    total = 0
    for line in folded.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        leaf = frames[-1]
        leaves[leaf] += int(count)
        module = leaf.rpartition("(")[2].split(":")[0].rstrip(")")
        modules[module] += int(count)
        total += int(count)
    print(f"{total} samples")
    for name, count in leaves.most_common(top):
        print(f"{100 * count / total:5.1f}%  {name}")
    print("\nby file:")
    for name, count in modules.most_common(top):
        print(f"{100 * count / total:5.1f}%  {name}")


if __name__ == "__main__":
    sys.exit(main())
