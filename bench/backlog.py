"""Memory with a large backlog waiting: does the worker's footprint stay bounded while a million messages queue?

The worker is pointed at a topic holding `count` small activities (produced once; a topic of that name with at
least `count` messages is reused, which pays off with a long-lived broker: KAFKA_BOOTSTRAP_SERVERS) and runs for
`seconds` with a fresh group, so the whole backlog is ahead of it. Its resident memory is sampled every second;
the figure kept is the kernel's high-water mark (VmHWM). Bounded by design: the in-flight window
(MAX_IN_FLIGHT) pauses partitions, and librdkafka's prefetch is capped (`queued.max.messages.kbytes`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

from confluent_kafka import Producer

from bench import procstat
from bench.datasets import PARTITIONS, end_offsets
from bench.observe import scrape_all, total
from bench.worker_run import bench_worker_env, worker_urls
from tests.support.kafka_broker import admin_client, create_topic
from tests.support.sandbox_process import SandboxProcess
from tests.support.worker_process import WorkerProcess

__all__ = ["BacklogRun", "ensure_backlog", "measure_backlog"]

_SAMPLE_EVERY_S = 1.0
_TEMPLATE = (
    '{{"$ts":{ts},"$type":"SITE_VISIT","$session_status":"NO_SESSION","$unique_key":"backlog-{n}",'
    '"$user_identifiers":[{{"$type":"USER_AGENT","$user_agent_id":"vec:{user}"}}],'
    '"$events":[{{"$ts":{ts},"$event_name":"$page_view","$properties":{{"$url":"https://shop.example/p/{page}"}}}}]}}'
)


@dataclass
class BacklogRun:
    """Memory of one worker facing the backlog, in MiB, and how far it got."""

    backlog: int
    seconds: float
    rss_at_first_consume_mib: float
    peak_rss_mib: float  # VmHWM at the end of the window
    final_rss_mib: float
    processed: int
    in_flight_at_end: int
    stop_seconds: float  # SIGTERM to exit: drain, commit, leave the group
    exit_code: int

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def ensure_backlog(bootstrap_servers: str, count: int, say: Callable[[str], None] = print) -> str:
    """The name of a topic holding at least `count` small activities, producing them if needed."""
    topic = f"bench.backlog.{count}"
    if topic in admin_client(bootstrap_servers).list_topics(timeout=10).topics:
        held = sum(end_offsets(bootstrap_servers, [topic]).values())
        if held >= count:
            return topic
        raise RuntimeError(f"{topic} exists with only {held} messages; delete it or use another broker")
    create_topic(bootstrap_servers, topic, PARTITIONS)
    producer = Producer(
        {
            "bootstrap.servers": bootstrap_servers,
            "linger.ms": 50,
            "batch.size": 1_000_000,
            "enable.idempotence": True,
            "queue.buffering.max.messages": 500_000,
        }
    )
    ts = 1_764_000_000_000
    started = time.monotonic()
    for n in range(count):
        value = _TEMPLATE.format(ts=ts + n, n=n, user=n % 100_000, page=n % 1000).encode()
        while True:
            try:
                producer.produce(topic, key=f"user-{n % 100_000}".encode(), value=value)
                break
            except BufferError:
                producer.poll(0.05)
        if n % 10_000 == 0:
            producer.poll(0)
    if producer.flush(120):
        raise RuntimeError("the backlog was not fully acknowledged")
    say(f"produced {count} backlog messages in {time.monotonic() - started:.0f} s")
    return topic


def measure_backlog(
    bootstrap_servers: str, sandbox: SandboxProcess, topic: str, count: int, *, backend: str, seconds: float
) -> BacklogRun:
    """Run one worker against the backlog for `seconds`, sampling its memory; then stop it gracefully."""
    sandbox.reset()
    env = bench_worker_env(
        bootstrap_servers,
        api_base_url=sandbox.base_url,
        api_token=sandbox.token,
        topics=topic,
        routes=f"{topic}=activity",
        backend=backend,
    )
    with WorkerProcess(env) as worker:
        pid = worker.pid
        assert pid is not None
        urls = worker_urls(worker, 1)
        worker.wait_until(
            lambda: total(scrape_all(urls), "mics_worker_messages_consumed_total") > 0, 90, "the first consume"
        )
        first = procstat.memory(pid)
        started = time.monotonic()
        while time.monotonic() - started < seconds:
            if not worker.is_running():
                raise RuntimeError(f"the worker exited facing the backlog:\n{worker.stderr()[-3000:]}")
            time.sleep(_SAMPLE_EVERY_S)
        last = procstat.memory(pid)
        samples = scrape_all(urls)
        stopping = time.monotonic()
        exit_code = worker.stop()
        stop_seconds = time.monotonic() - stopping
    assert first is not None
    assert last is not None
    return BacklogRun(
        backlog=count,
        seconds=seconds,
        rss_at_first_consume_mib=first.rss_mib,
        peak_rss_mib=last.peak_rss_mib,
        final_rss_mib=last.rss_mib,
        processed=round(total(samples, "mics_worker_messages_outcome_total")),
        in_flight_at_end=round(total(samples, "mics_worker_in_flight_messages")),
        stop_seconds=stop_seconds,
        exit_code=exit_code,
    )
