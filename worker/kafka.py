"""The only module that builds confluent-kafka clients and their settings, for the worker and every tool.

One function, `client_settings`, turns a role, the bootstrap servers and the operator's `MICS_WORKER_KAFKA_*`
properties into librdkafka settings, so the worker and the DLQ tools and the dry run filter properties by client role
alike and refuse the same overrides.

Settings chosen for at-least-once: offsets are *stored* by the pipeline only after a message is delivered or its
dead-letter write is acknowledged (`enable.auto.offset.store=false`), and librdkafka's auto-commit sends what was
stored; rebalances and shutdown commit synchronously. Anything from `MICS_WORKER_KAFKA_*` overrides these defaults
(SASL, SSL, tuning), except the three settings the guarantee rests on: overriding those is refused, for the worker
and the tools alike (the tools run with the worker's environment).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any, Literal

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from worker import __version__
from worker.config import WorkerConfig
from worker.kafka_properties import PINNED, PINNED_ALIASES
from worker.logs import RepeatFilter

__all__ = [
    "FETCH_WAIT_MAX_MS",
    "Consumer",
    "KafkaError",
    "KafkaException",
    "Message",
    "Producer",
    "Role",
    "TopicPartition",
    "client_settings",
    "consume_available",
    "consumer_settings",
    "librdkafka_refusal",
    "make_consumer",
    "make_dlq_producer",
    "make_reader",
    "make_replay_producer",
    "producer_settings",
    "reader_settings",
    "replay_producer_settings",
    "role_properties",
    "subscription",
    "topic_partitions",
]

Role = Literal["consumer", "producer"]

FETCH_WAIT_MAX_MS = 100
"""The worker's `fetch.wait.max.ms` (librdkafka's default: 500): how long a resumed partition may wait for a fetch."""

log = logging.getLogger(__name__)
# While a broker is down librdkafka reports every failed reconnect, dozens a second per client: one a kind per 30 s.
log.addFilter(RepeatFilter(interval_s=30.0))

# The at-least-once guarantee depends on these (pinned in `kafka_properties`, checked there at start too).
_PINNED: dict[Role, dict[str, Any]] = PINNED
_PINNED_ALIASES = PINNED_ALIASES
# Properties librdkafka defines for one role only: the other role's client never gets them (librdkafka warns).
_ROLE_ONLY: dict[Role, tuple[str, ...]] = {
    "consumer": (
        "group.", "partition.assignment", "session.timeout", "heartbeat", "max.poll", "auto.offset", "auto.commit",
        "enable.auto.commit", "enable.auto.offset.store", "fetch.", "isolation.level", "queued.", "check.crcs",
        "enable.partition.eof",
    ),
    "producer": (
        "linger", "batch.", "message.timeout", "acks", "request.required.acks", "enable.idempotence", "compression",
        "delivery.timeout", "retries", "message.send.max.retries", "queue.buffering.", "request.timeout",
        "transactional.", "partitioner", "sticky.partitioning",
    ),
}  # fmt: skip
_SENTINEL_PROPERTY = "mics.worker.property.check"
_OTHER_ROLE: dict[Role, Role] = {"consumer": "producer", "producer": "consumer"}


def client_settings(
    role: Role,
    bootstrap_servers: str,
    kafka_properties: Mapping[str, str],
    *,
    client_id: str,
    defaults: Mapping[str, Any] | None = None,
    fixed: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """librdkafka settings for one client, in order of precedence (lowest first):

    bootstrap servers, client id and the caller's `defaults`; the operator's properties for this role (the other
    role's are dropped); the caller's `fixed` settings (what the caller's own correctness needs, e.g. a tool that
    never commits); the role's pinned at-least-once settings, which an operator property may not override
    (ValueError).
    """
    names = {_PINNED_ALIASES.get(name, name) for name in kafka_properties}
    overridden = sorted(set(_PINNED[role]) & names)
    if overridden:
        raise ValueError(f"these Kafka properties cannot be overridden (at-least-once needs them): {overridden}")
    settings: dict[str, Any] = {"bootstrap.servers": bootstrap_servers, "client.id": client_id, **(defaults or {})}
    settings.update(role_properties(role, kafka_properties))
    settings.update(fixed or {})
    settings.update(_PINNED[role])
    return settings


def role_properties(role: Role, kafka_properties: Mapping[str, str]) -> dict[str, str]:
    """The operator's properties a client of `role` gets: all but those librdkafka defines for the other role."""
    skip = _ROLE_ONLY[_OTHER_ROLE[role]]
    return {key: value for key, value in kafka_properties.items() if not key.startswith(skip)}


def consumer_settings(config: WorkerConfig) -> dict[str, Any]:
    """librdkafka consumer properties for the worker's group."""
    defaults: dict[str, Any] = {
        "group.id": config.group_id,
        "enable.auto.commit": True,
        "auto.commit.interval.ms": 1000,
        "auto.offset.reset": "earliest",
        "statistics.interval.ms": 5000,
        # Bounded prefetch: the in-flight window bounds the worker, this bounds librdkafka's queue.
        "queued.max.messages.kbytes": 16384,
        # librdkafka keeps one fetch per broker in flight, and a fetch for partitions read to their end waits at the
        # broker up to this long for new records: a partition resumed meanwhile is not fetched before it returns.
        # The window pauses and resumes partitions as it cycles, so librdkafka's 500 ms default left the worker
        # idle after resumes (bench/RESULTS.md: the same 20,000 events in 3.8 s instead of 6.5 s). An idle
        # consumer sends 10 fetches a second per broker instead of 2.
        "fetch.wait.max.ms": FETCH_WAIT_MAX_MS,
        "max.poll.interval.ms": 300_000,
    }
    if config.group_protocol == "consumer":
        defaults["group.protocol"] = "consumer"  # KIP-848: the broker assigns; no client-side strategy
    else:
        defaults["partition.assignment.strategy"] = "cooperative-sticky"
        defaults["session.timeout.ms"] = 45_000
    if config.group_instance_id:
        defaults["group.instance.id"] = config.group_instance_id
    return client_settings(
        "consumer",
        config.bootstrap_servers,
        config.kafka_properties,
        client_id=f"mics-worker/{__version__}",
        defaults=defaults,
    )


def producer_settings(config: WorkerConfig) -> dict[str, Any]:
    """librdkafka producer properties for the idempotent dead-letter producer."""
    return client_settings(
        "producer",
        config.bootstrap_servers,
        config.kafka_properties,
        client_id=f"mics-worker-dlq/{__version__}",
        # A DLQ that cannot be written must be noticed in seconds, not librdkafka's default five minutes.
        defaults={"linger.ms": 5, "message.timeout.ms": 30_000},
    )


def reader_settings(
    bootstrap_servers: str, kafka_properties: Mapping[str, str], *, group_id: str, client_id: str
) -> dict[str, Any]:
    """A tool's consumer (dlq inspect/replay, dry run): assigns partitions itself and never commits on its own."""
    return client_settings(
        "consumer",
        bootstrap_servers,
        kafka_properties,
        client_id=client_id,
        defaults={"auto.offset.reset": "earliest"},
        fixed={"group.id": group_id, "enable.auto.commit": False, "enable.partition.eof": True},
    )


def replay_producer_settings(bootstrap_servers: str, kafka_properties: Mapping[str, str]) -> dict[str, Any]:
    """`dlq replay`'s producer: idempotent and `acks=all` like the worker's, keyed records placed as Java would."""
    return client_settings(
        "producer",
        bootstrap_servers,
        kafka_properties,
        client_id=f"mics-worker-dlq-replay/{__version__}",
        # The Java client's default: a keyed record lands where most producers would have put it.
        defaults={"partitioner": "murmur2_random", "linger.ms": 5, "message.timeout.ms": 30_000},
    )


def subscription(config: WorkerConfig) -> list[str]:
    """Topic names, or the one `^regex` librdkafka treats as a pattern subscription."""
    return [config.topic_pattern] if config.topic_pattern else list(config.topics)


def make_consumer(
    config: WorkerConfig,
    *,
    on_stats: Callable[[str], None] | None = None,
    on_commit: Callable[[KafkaError | None, list[TopicPartition]], None] | None = None,
    on_error: Callable[[KafkaError], None] | None = None,
) -> Consumer:
    """Create (not subscribe) the group consumer; errors and librdkafka logs go to the `worker.kafka` logger, and
    every error also to `on_error` (the pipeline stops on a fatal one)."""
    settings = consumer_settings(config)
    settings["error_cb"] = partial(_on_error, on_error)
    settings["logger"] = log
    if on_stats is not None:
        settings["stats_cb"] = on_stats
    if on_commit is not None:
        settings["on_commit"] = on_commit
    return Consumer(settings)


def make_dlq_producer(config: WorkerConfig, on_error: Callable[[KafkaError], None] | None = None) -> Producer:
    """Create the idempotent producer that writes dead letters; errors are logged and passed to `on_error`."""
    settings = producer_settings(config)
    settings["error_cb"] = partial(_on_error, on_error)
    settings["logger"] = log
    return Producer(settings)


def make_reader(
    bootstrap_servers: str, kafka_properties: Mapping[str, str], *, group_id: str, client_id: str
) -> Consumer:
    """Create a tool's consumer (`reader_settings`); librdkafka logs go to the `worker.kafka` logger."""
    settings = reader_settings(bootstrap_servers, kafka_properties, group_id=group_id, client_id=client_id)
    settings["logger"] = log
    return Consumer(settings)


def make_replay_producer(bootstrap_servers: str, kafka_properties: Mapping[str, str]) -> Producer:
    """Create `dlq replay`'s producer (`replay_producer_settings`)."""
    settings = replay_producer_settings(bootstrap_servers, kafka_properties)
    settings["logger"] = log
    return Producer(settings)


def _on_error(forward: Callable[[KafkaError], None] | None, error: KafkaError) -> None:
    if error.fatal():
        log.error("fatal Kafka client error: %s", error.str())
    else:
        log.warning("Kafka client error: %s", error.str())
    if forward is not None:
        forward(error)


def librdkafka_refusal(name: str, value: str) -> str | None:
    """librdkafka's message when it refuses the property `name=value`, else None.

    The property is set on a configuration followed by a name librdkafka never defines, which fails before any
    client is created: failing on that name means the property itself was accepted.
    """
    try:
        Producer({name: value, _SENTINEL_PROPERTY: "x"})
    except KafkaException as exc:
        text = exc.args[0].str() if exc.args and isinstance(exc.args[0], KafkaError) else str(exc)
        return None if _SENTINEL_PROPERTY in text else str(text)
    except (TypeError, ValueError) as exc:  # pragma: no cover - confluent-kafka's own argument checks
        return str(exc)
    return None  # pragma: no cover - the sentinel always fails


def topic_partitions(consumer: Consumer, topic: str, timeout_s: float) -> list[int]:
    """The partition ids of `topic`, sorted; LookupError (a sentence naming the topic) when it cannot be read."""
    try:
        metadata = consumer.list_topics(topic, timeout=timeout_s)
    except KafkaException as exc:
        raise LookupError(f"cannot read the metadata of topic {topic!r}: {exc}") from exc
    found = metadata.topics.get(topic)
    if found is None or found.error is not None:
        raise LookupError(f"topic {topic!r} does not exist")
    return sorted(found.partitions)


def consume_available(consumer: Consumer, batch_size: int, timeout_s: float) -> list[Message]:
    """Wait up to `timeout_s` for one message, then take whatever else is already fetched, up to the batch size.

    librdkafka's `consume(n, timeout)` returns only once it has n messages or the timeout passed, so at a low rate
    every message sat out the whole poll timeout (100 ms; bench/RESULTS.md). Under load the queue is full and the
    second call fills the batch at once, so batches stay large.
    """
    first = consumer.consume(1, timeout_s)
    if not first or batch_size == 1:
        return first
    return first + consumer.consume(batch_size - 1, 0)
