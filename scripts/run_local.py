"""The main job, end to end on one machine: a real Kafka broker, the sandbox API, sample events, the worker.

Produces a few thousand events of all three routes (some invalid) to two topics, runs `mics-worker run` against them
until every message has an outcome, stops it with SIGTERM (drain, commit, leave the group), and prints the ledger:
what the worker reports, what the sandbox received, what the dead-letter topic holds, with one dead letter of each
reason. Every step says what it does and shows its progress while it runs. `--keep` keeps the broker and the
sandbox running afterwards, with the commands to inspect and replay the dead letters. Run via `scripts/run-local`
(which builds the environment first: step 1).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence

import httpx

from scripts.demo_narration import Narrator, dead_letter_examples, dlq_commands
from tests.support.events import MixSpec, generate
from tests.support.kafka_broker import KafkaBroker, create_topic
from tests.support.ledger import CLIENT_LOG, Ledger, produce_all, read_dead_letters
from tests.support.sandbox_process import SandboxProcess
from tests.support.worker_process import WorkerProcess, worker_env
from worker.mics.transport import BACKENDS, DEFAULT_BACKEND

ACTIVITY_TOPIC = "demo.activities"
MIXED_TOPIC = "demo.events"
DLQ_TOPIC = "demo.dlq"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=5000, help="how many events to produce (default 5000)")
    parser.add_argument("--backend", choices=BACKENDS, default=DEFAULT_BACKEND, help="the worker's HTTP client")
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the broker and the sandbox running at the end (until Ctrl-C), with the commands to inspect and "
        "replay the dead letters",
    )
    parser.add_argument(
        "--verbose", action="store_true", help="also show the Kafka clients' own log lines and the worker's log"
    )
    args = parser.parse_args(argv)
    if args.verbose:
        CLIENT_LOG.addHandler(logging.StreamHandler(sys.stderr))
        CLIENT_LOG.setLevel(logging.DEBUG)
    else:
        CLIENT_LOG.setLevel(logging.CRITICAL + 1)
    CLIENT_LOG.propagate = False
    narrator = Narrator(sys.stdout, live=sys.stdout.isatty())
    return run(args, narrator)


def run(args: argparse.Namespace, narrator: Narrator) -> int:
    with narrator.step("starting a local Apache Kafka broker (the first run fetches its jars with Maven)"):
        broker = KafkaBroker().start()
    try:
        with narrator.step("starting the sandbox API (the local stand-in for mediarithmics)"):
            sandbox = SandboxProcess("--seed", "1").start()
        try:
            return _demo(args, narrator, broker, sandbox)
        finally:
            sandbox.stop()
    finally:
        narrator.say("stopping the sandbox and the broker")
        broker.close()


def _demo(args: argparse.Namespace, narrator: Narrator, broker: KafkaBroker, sandbox: SandboxProcess) -> int:
    bootstrap = broker.bootstrap_servers
    narrator.note(f"Kafka {broker.version} at {bootstrap}; sandbox API at {sandbox.base_url}")
    messages = list(generate(args.events, MixSpec(invalid=0.03)))
    with narrator.step(f"producing {len(messages):,} events (about 3% invalid) to two topics"):
        for topic in (ACTIVITY_TOPIC, MIXED_TOPIC):
            create_topic(bootstrap, topic, partitions=3)
        create_topic(bootstrap, DLQ_TOPIC, partitions=1)
        activities = [m for m in messages if m.route == "activity" and m.expected != "forbidden_datamart"]
        taken = {m.ledger_id for m in activities}
        others = [m for m in messages if m.ledger_id not in taken]
        produce_all(bootstrap, ACTIVITY_TOPIC, activities)
        produce_all(bootstrap, MIXED_TOPIC, others)
    narrator.note(f"{len(activities):,} activities to {ACTIVITY_TOPIC}, {len(others):,} envelopes to {MIXED_TOPIC}")

    env = worker_env(
        bootstrap_servers=bootstrap,
        api_base_url=sandbox.base_url,
        api_token=sandbox.token,
        topics=f"{ACTIVITY_TOPIC},{MIXED_TOPIC}",
        routes=f"{ACTIVITY_TOPIC}=activity,{MIXED_TOPIC}=envelope",
        dlq_topic=DLQ_TOPIC,
        group_id="demo-worker",
        HTTP_BACKEND=args.backend,
        LOG_FORMAT="text",
        LOG_LEVEL="INFO" if args.verbose else "WARNING",
    )
    with WorkerProcess(env) as worker:
        with narrator.step("the worker consumes them (mics-worker run): a live count of outcomes", ticking=False):
            narrator.note(f"its metrics and health: {worker.url}/metrics, /healthz, /readyz")
            _follow(narrator, worker, len(messages))
        with narrator.step("stopping the worker with SIGTERM (it drains, commits and leaves the group)"):
            code = worker.stop()
        narrator.note(f"worker exit status {code}; its summary:")
        for line in worker.stdout().strip().splitlines():
            print(f"  {line}")
        if args.verbose or code != 0:
            narrator.say("the worker's log:")
            print(worker.stderr().strip())

    with narrator.step("settling the ledger: the sandbox's documents and the dead-letter topic"):
        ledger = Ledger(messages)
        settlement = ledger.settle(sandbox, bootstrap, DLQ_TOPIC)
        records = read_dead_letters(bootstrap, DLQ_TOPIC)
    arrived = Counter(ledger.by_id[ledger_id].route for ledger_id in settlement.delivered.elements())
    dlq = Counter(record.reason for record in records)
    print(f"  produced       {len(messages)}")
    print(f"  at the sandbox {sum(settlement.delivered.values())} ({_counts(arrived)})")
    print(f"  in the DLQ     {sum(dlq.values())} ({_counts(dlq)})")
    print(f"  missing        {len(settlement.missing)}")
    print(f"  duplicates     {settlement.duplicates}")
    narrator.say("one dead letter of each reason:")
    for line in dead_letter_examples(records):
        print(f"  {line}")
    balanced = not settlement.missing and settlement.unknown == 0
    if balanced:
        narrator.say("the ledger balances: every message was delivered or dead-lettered with a reason")
    else:
        narrator.say(f"the ledger does NOT balance: {len(settlement.missing)} missing, {settlement.unknown} unknown")
    if args.keep:
        _keep(narrator, bootstrap, sandbox, sorted(dlq))
    else:
        narrator.note("the broker and the sandbox stop now; `scripts/run-local --keep` keeps them running, with the")
        narrator.note("commands to inspect and replay the dead letters")
    return 0 if balanced and code == 0 else 1


def _follow(narrator: Narrator, worker: WorkerProcess, total: int, timeout_s: float = 300.0) -> None:
    """Live count of finished messages until every one has an outcome (bounded: `timeout_s` without progress)."""
    last_progress, finished = time.monotonic(), 0
    with narrator.counting(total, "message") as count:
        while finished < total:
            outcomes = _outcomes(worker)
            if outcomes is None:
                detail = "finished (the worker is starting)"
            elif not sum(outcomes.values()):
                detail = "finished (the worker is joining its consumer group)"
            else:
                detail = f"finished (delivered {outcomes['delivered']:,}, dead-lettered {outcomes['dead_lettered']:,})"
            done = sum(outcomes.values()) if outcomes else 0
            if done > finished:
                last_progress, finished = time.monotonic(), done
            count(finished, detail)
            if not worker.is_running():
                raise RuntimeError(f"the worker exited early:\n{worker.stderr()[-4000:]}")
            if time.monotonic() - last_progress > timeout_s:
                raise TimeoutError(f"no message finished for {timeout_s:.0f} s:\n{worker.stderr()[-4000:]}")
            time.sleep(0.2)


def _outcomes(worker: WorkerProcess) -> Counter[str] | None:
    """Messages delivered and dead-lettered so far, from the worker's /metrics; None until it answers."""
    try:
        samples = worker.metrics()
    except httpx.HTTPError:
        return None
    outcomes: Counter[str] = Counter(delivered=0, dead_lettered=0)
    for key, value in samples.items():
        if key.startswith("mics_worker_messages_outcome_total{"):
            for outcome in ("delivered", "dead_lettered"):
                if f'outcome="{outcome}"' in key:
                    outcomes[outcome] += int(value)
    return outcomes


def _keep(narrator: Narrator, bootstrap: str, sandbox: SandboxProcess, reasons: list[str]) -> None:
    """Wait for Ctrl-C (or SIGTERM) with the broker and the sandbox up, after printing what to do with them."""
    narrator.say(f"keeping the broker ({bootstrap}) and the sandbox ({sandbox.base_url}) running; in another shell:")
    for what, command in dlq_commands(bootstrap, DLQ_TOPIC, reasons):
        narrator.note(f"# {what}")
        narrator.note(command)
    narrator.say("press Ctrl-C to stop them")
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    while not stop.wait(1.0):
        pass


def _counts(counter: dict[str, int]) -> str:
    return ", ".join(f"{name}={count}" for name, count in sorted(counter.items()))


if __name__ == "__main__":
    sys.exit(main())
