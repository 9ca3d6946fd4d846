"""Memory with large messages (GitHub issue 12, item 4): does the byte window bound the worker's footprint?

Before the window was bounded in bytes, 2,000 in-flight envelopes of 250 kB reached ~1 GiB RSS, twice the chart's
memory limit. Here the worker is pointed at a topic of `count` bare activities of ~250 kB each (one event whose
`$properties` carries a long string; each validates: `plan_message` makes a Job of it) while the sandbox answers
every API request only after `latency_ms`, so requests are slow, messages pile up in the window and the window is
what stops the consumption. One run per `MAX_IN_FLIGHT_BYTES` setting (the default, then a larger one for contrast),
each with a fresh group, so the whole topic is ahead of it.

A run ends when the worker has consumed the whole topic or after `seconds` from its first consume, whichever comes
first; then SIGTERM (drain, commit). While it runs, the worker's `/metrics` is read every `SAMPLE_EVERY_S`: the
largest `mics_worker_in_flight_bytes` (and in-flight messages, and partitions paused) seen is kept. The memory
figure is the kernel's high-water mark of the process (VmHWM), read before the SIGTERM.

The topic (`bench.large.<count>x<size>`) is produced once and reused when it already holds `count` messages, which
pays off with a long-lived broker (KAFKA_BOOTSTRAP_SERVERS): it holds count x 250 kB on the broker's disk.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import httpx
import orjson
from confluent_kafka import Producer

from bench import procstat
from bench.datasets import PARTITIONS, end_offsets
from bench.observe import scrape_all, total
from bench.worker_run import bench_worker_env, worker_urls
from tests.support.kafka_broker import admin_client, create_topic
from tests.support.sandbox_process import SandboxProcess
from tests.support.worker_process import WorkerProcess
from worker.config import WorkerConfig
from worker.routing import Job, plan_message
from worker.validation import Validators

__all__ = [
    "CONTRAST_IN_FLIGHT_BYTES",
    "DEFAULT_LATENCY_MS",
    "DEFAULT_SECONDS",
    "MESSAGE_BYTES",
    "LargeRun",
    "ensure_large_topic",
    "large_activity",
    "measure_large",
]

MESSAGE_BYTES = 250_000  # each record's value, in bytes
DEFAULT_IN_FLIGHT_BYTES = WorkerConfig.max_in_flight_bytes  # the worker's default MAX_IN_FLIGHT_BYTES
CONTRAST_IN_FLIGHT_BYTES = 256 * 1024 * 1024
DEFAULT_LATENCY_MS = 1000.0  # 64 requests at a time, 1 s each: ~64 messages/s, far below what Kafka hands over
DEFAULT_SECONDS = 90.0
SAMPLE_EVERY_S = 0.2
_STARTUP_TIMEOUT_S = 90.0
_TOPIC_MAX_MESSAGE_BYTES = 2 * 1024 * 1024  # room above one record (the broker's default is ~1 MB)
_DATAMART = "1509"  # worker_env's default datamart


def large_activity(n: int, size: int = MESSAGE_BYTES) -> bytes:
    """A bare activity of exactly `size` bytes: one page view whose `$properties` carries a long string."""
    padding = size - len(_activity(n, ""))
    if padding < 0:
        raise ValueError(f"a large activity cannot be smaller than {size - padding} bytes")
    return _activity(n, "x" * padding)


def _activity(n: int, payload: str) -> bytes:
    ts = 1_764_000_000_000 + n
    properties = {"$url": f"https://shop.example/p/{n % 1000}", "payload": payload}
    event = {"$ts": ts, "$event_name": "$page_view", "$properties": properties}
    return orjson.dumps(
        {
            "$ts": ts,
            "$type": "SITE_VISIT",
            "$session_status": "NO_SESSION",
            "$unique_key": f"large-{n}",
            "$user_identifiers": [{"$type": "USER_AGENT", "$user_agent_id": f"vec:{n % 500}"}],
            "$events": [event],
        }
    )


def check_plannable(value: bytes) -> None:
    """Raise unless the worker would send `value` (a Job on an activity route), not dead-letter it."""
    plan = plan_message(
        "activity",
        value,
        validators=Validators.load(),
        default_datamart_id=_DATAMART,
        allowed_datamarts=frozenset({_DATAMART}),
        max_message_bytes=WorkerConfig.max_message_bytes,
    )
    if not isinstance(plan, Job):
        raise RuntimeError(f"the large activity would not be sent but dead-lettered: {plan}")


def ensure_large_topic(
    bootstrap_servers: str, count: int, size: int = MESSAGE_BYTES, say: Callable[[str], None] = print
) -> str:
    """The name of a topic holding at least `count` large activities, producing them if needed."""
    topic = f"bench.large.{count}x{size}"
    if topic in admin_client(bootstrap_servers).list_topics(timeout=10).topics:
        held = sum(end_offsets(bootstrap_servers, [topic]).values())
        if held >= count:
            return topic
        raise RuntimeError(f"{topic} exists with only {held} messages; delete it or use another broker")
    check_plannable(large_activity(0, size))
    create_topic(bootstrap_servers, topic, PARTITIONS, {"max.message.bytes": str(_TOPIC_MAX_MESSAGE_BYTES)})
    producer = Producer(
        {
            "bootstrap.servers": bootstrap_servers,
            "message.max.bytes": _TOPIC_MAX_MESSAGE_BYTES,
            "linger.ms": 20,
            "enable.idempotence": True,
            "queue.buffering.max.kbytes": 65_536,  # at most ~260 records waiting in this process
        }
    )
    started = time.monotonic()
    for n in range(count):
        value = large_activity(n, size)
        while True:
            try:
                producer.produce(topic, key=f"user-{n % 500}".encode(), value=value)
                break
            except BufferError:
                producer.poll(0.05)  # the local queue is full: serve delivery reports until there is room
        producer.poll(0)
    if producer.flush(300):
        raise RuntimeError("the large messages were not all acknowledged")
    say(f"produced {count:,} messages of {size:,} bytes in {time.monotonic() - started:.0f} s")
    return topic


@dataclass
class LargeRun:
    """One worker facing the large messages with one byte window; memory in MiB."""

    max_in_flight_bytes: int  # the setting (MICS_WORKER_MAX_IN_FLIGHT_BYTES)
    messages: int  # in the topic
    message_bytes: int
    latency_ms: float  # added by the sandbox to every API request
    time_limit_s: float  # the run's bound, from its first consume
    seconds: float  # first consume to the end of the run
    ended_by: str  # "consumed all" or "time limit"
    rss_at_first_consume_mib: float
    peak_rss_mib: float  # VmHWM before SIGTERM
    max_in_flight_bytes_seen: float  # the largest mics_worker_in_flight_bytes sampled
    max_in_flight_messages_seen: int
    max_partitions_paused_seen: int
    consumed: int
    processed: int  # with an outcome by the end of the run
    delivered: int
    stop_seconds: float  # SIGTERM to exit: drain, commit, leave the group
    exit_code: int

    @property
    def window_mib(self) -> float:
        return self.max_in_flight_bytes / 2**20

    @property
    def max_in_flight_mib_seen(self) -> float:
        return self.max_in_flight_bytes_seen / 2**20

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "window_mib": self.window_mib, "max_in_flight_mib_seen": self.max_in_flight_mib_seen}


@dataclass
class _Maxima:
    in_flight_bytes: float = 0.0
    in_flight_messages: float = 0.0
    partitions_paused: float = 0.0
    consumed: float = 0.0

    def note(self, urls: list[str]) -> None:
        samples = scrape_all(urls)
        self.in_flight_bytes = max(self.in_flight_bytes, total(samples, "mics_worker_in_flight_bytes"))
        self.in_flight_messages = max(self.in_flight_messages, total(samples, "mics_worker_in_flight_messages"))
        self.partitions_paused = max(self.partitions_paused, total(samples, "mics_worker_partitions_paused"))
        self.consumed = total(samples, "mics_worker_messages_consumed_total")


def measure_large(
    bootstrap_servers: str,
    sandbox: SandboxProcess,
    topic: str,
    count: int,
    *,
    backend: str,
    max_in_flight_bytes: int | None = None,
    latency_ms: float = DEFAULT_LATENCY_MS,
    seconds: float = DEFAULT_SECONDS,
    message_bytes: int = MESSAGE_BYTES,
) -> LargeRun:
    """Run one worker against the large messages with slow API answers; sample its window; then stop it.

    `max_in_flight_bytes` None runs the worker's default. The sandbox is reset before and after (its latency off).
    """
    sandbox.reset()
    sandbox.set_faults(latency_ms=latency_ms)
    extra = {"MAX_IN_FLIGHT_BYTES": str(max_in_flight_bytes)} if max_in_flight_bytes is not None else {}
    env = bench_worker_env(
        bootstrap_servers,
        api_base_url=sandbox.base_url,
        api_token=sandbox.token,
        topics=topic,
        routes=f"{topic}=activity",
        backend=backend,
        **extra,
    )
    try:
        with WorkerProcess(env) as worker:
            pid = worker.pid
            assert pid is not None
            urls = worker_urls(worker, 1)
            maxima = _Maxima()

            def consumed_any() -> bool:
                maxima.note(urls)
                return maxima.consumed > 0

            worker.wait_until(consumed_any, _STARTUP_TIMEOUT_S, "the first consume")
            first = procstat.memory(pid)
            started = time.monotonic()
            deadline = started + seconds
            while maxima.consumed < count and time.monotonic() < deadline:
                if not worker.is_running():
                    raise RuntimeError(f"the worker exited facing the large messages:\n{worker.stderr()[-3000:]}")
                time.sleep(SAMPLE_EVERY_S)
                try:
                    maxima.note(urls)
                except httpx.HTTPError as exc:
                    raise RuntimeError(f"the worker's /metrics did not answer: {exc}") from exc
            ended = time.monotonic()
            ended_by = "consumed all" if maxima.consumed >= count else "time limit"
            last = procstat.memory(pid)
            samples = scrape_all(urls)
            stopping = time.monotonic()
            exit_code = worker.stop()
            stop_seconds = time.monotonic() - stopping
    finally:
        if sandbox.is_running():  # a dead sandbox has its own error to tell; do not hide it behind this one
            sandbox.reset()
    assert first is not None
    assert last is not None
    return LargeRun(
        max_in_flight_bytes=max_in_flight_bytes if max_in_flight_bytes is not None else DEFAULT_IN_FLIGHT_BYTES,
        messages=count,
        message_bytes=message_bytes,
        latency_ms=latency_ms,
        time_limit_s=seconds,
        seconds=ended - started,
        ended_by=ended_by,
        rss_at_first_consume_mib=first.rss_mib,
        peak_rss_mib=last.peak_rss_mib,
        max_in_flight_bytes_seen=maxima.in_flight_bytes,
        max_in_flight_messages_seen=round(maxima.in_flight_messages),
        max_partitions_paused_seen=round(maxima.partitions_paused),
        consumed=round(maxima.consumed),
        processed=round(total(samples, "mics_worker_messages_outcome_total")),
        delivered=round(total(samples, "mics_worker_messages_outcome_total", outcome="delivered")),
        stop_seconds=stop_seconds,
        exit_code=exit_code,
    )
