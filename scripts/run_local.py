"""The main job, end to end on one machine: a real Kafka broker, the sandbox API, sample events, the worker.

Produces a few thousand events of all three routes (some invalid) to two topics, runs `mics-worker run` against them
until every message has an outcome, stops it with SIGTERM (drain, commit, leave the group), and prints the ledger:
what the worker reports, what the sandbox received, what the dead-letter topic holds. Run via `scripts/run-local`.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter

from tests.support.events import MixSpec, generate
from tests.support.kafka_broker import KafkaBroker, create_topic
from tests.support.ledger import Ledger, produce_all, read_dead_letters
from tests.support.sandbox_process import SandboxProcess
from tests.support.worker_process import WorkerProcess, worker_env
from worker.mics.transport import BACKENDS, DEFAULT_BACKEND

ACTIVITY_TOPIC = "demo.activities"
MIXED_TOPIC = "demo.events"
DLQ_TOPIC = "demo.dlq"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=5000, help="how many events to produce (default 5000)")
    parser.add_argument("--backend", choices=BACKENDS, default=DEFAULT_BACKEND)
    args = parser.parse_args()

    say("starting a local Apache Kafka broker (first run fetches its jars with Maven)…")
    with KafkaBroker() as broker, SandboxProcess("--seed", "1") as sandbox:
        bootstrap = broker.bootstrap_servers
        say(f"Kafka {broker.version} at {bootstrap}; sandbox API at {sandbox.base_url}")
        for topic in (ACTIVITY_TOPIC, MIXED_TOPIC):
            create_topic(bootstrap, topic, partitions=3)
        create_topic(bootstrap, DLQ_TOPIC, partitions=1)

        messages = list(generate(args.events, MixSpec(invalid=0.03)))
        activities = [m for m in messages if m.route == "activity" and m.expected != "forbidden_datamart"]
        taken = {m.ledger_id for m in activities}
        others = [m for m in messages if m.ledger_id not in taken]
        produce_all(bootstrap, ACTIVITY_TOPIC, activities)
        produce_all(bootstrap, MIXED_TOPIC, others)
        say(f"produced {len(activities)} activities to {ACTIVITY_TOPIC} and {len(others)} envelopes to {MIXED_TOPIC}")

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
            LOG_LEVEL="WARNING",
        )
        started = time.monotonic()
        with WorkerProcess(env) as worker:
            say(f"worker running (metrics and health at {worker.url}/metrics, /healthz, /readyz)")
            worker.wait_until(
                lambda: worker.metric_sum("mics_worker_messages_outcome_total") >= len(messages),
                timeout_s=300,
                what=f"{len(messages)} outcomes",
            )
            elapsed = time.monotonic() - started
            code = worker.stop()
            say(f"all {len(messages)} messages finished in {elapsed:.1f} s; worker stopped (exit {code}). Its summary:")
            print(worker.stdout().strip())

        ledger = Ledger(messages)
        settlement = ledger.settle(sandbox, bootstrap, DLQ_TOPIC)
        arrived = Counter(ledger.by_id[ledger_id].route for ledger_id in settlement.delivered.elements())
        dlq = Counter(record.reason for record in read_dead_letters(bootstrap, DLQ_TOPIC))
        say("ledger:")
        print(f"  produced       {len(messages)}")
        print(f"  at the sandbox {sum(settlement.delivered.values())} ({_counts(arrived)})")
        print(f"  in the DLQ     {sum(dlq.values())} ({_counts(dlq)})")
        print(f"  missing        {len(settlement.missing)}")
        print(f"  duplicates     {settlement.duplicates}")
        print(
            "\nTo look at the dead letters while a broker runs: MICS_WORKER_BOOTSTRAP_SERVERS=<host:port> "
            f"MICS_WORKER_DLQ_TOPIC={DLQ_TOPIC} .venv/bin/mics-worker dlq inspect"
        )
        for record in read_dead_letters(bootstrap, DLQ_TOPIC)[:3]:
            shown = {k: v.decode() for k, v in record.headers.items() if k.startswith(("mics.dlq.reason", "__connect"))}
            print(f"  e.g. {shown}")
        balanced = not settlement.missing and settlement.unknown == 0
        return 0 if balanced and code == 0 else 1


def _counts(counter: dict[str, int]) -> str:
    return ", ".join(f"{name}={count}" for name, count in sorted(counter.items()))


def say(text: str) -> None:
    print(f"==> {text}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
