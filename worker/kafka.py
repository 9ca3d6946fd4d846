"""The only module that builds confluent-kafka clients: consumer and DLQ producer settings live here.

Settings chosen for at-least-once: offsets are *stored* by the pipeline only after a message is delivered or its
dead-letter write is acknowledged (`enable.auto.offset.store=false`), and librdkafka's auto-commit sends what was
stored; rebalances and shutdown commit synchronously. Anything from `MICS_WORKER_KAFKA_*` overrides these defaults
(SASL, SSL, tuning), except the three settings the guarantee rests on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from worker import __version__
from worker.config import WorkerConfig
from worker.logs import RepeatFilter

__all__ = [
    "Consumer",
    "KafkaError",
    "KafkaException",
    "Message",
    "Producer",
    "TopicPartition",
    "consumer_settings",
    "make_consumer",
    "make_dlq_producer",
    "producer_settings",
    "subscription",
]

log = logging.getLogger(__name__)
# While a broker is down librdkafka reports every failed reconnect, dozens a second per client: one a kind per 30 s.
log.addFilter(RepeatFilter(interval_s=30.0))

# The at-least-once guarantee depends on these; user overrides of them are refused at start-up.
_PINNED_CONSUMER = {"enable.auto.offset.store": False}
_PINNED_PRODUCER = {"enable.idempotence": True, "acks": "all"}
_PINNED_ALIASES = {"request.required.acks": "acks"}
_CONSUMER_ONLY = (
    "group.", "partition.assignment", "session.timeout", "heartbeat", "max.poll", "auto.offset", "auto.commit",
    "enable.auto.commit", "fetch.", "isolation.level", "queued.", "check.crcs", "enable.partition.eof",
)  # fmt: skip
_PRODUCER_ONLY = (
    "linger", "batch.", "message.timeout", "acks", "request.required.acks", "enable.idempotence", "compression",
    "delivery.timeout", "retries", "message.send.max.retries", "queue.buffering.", "request.timeout",
    "transactional.", "partitioner", "sticky.partitioning",
)  # fmt: skip


def consumer_settings(config: WorkerConfig) -> dict[str, Any]:
    """librdkafka consumer properties for the worker's group."""
    settings: dict[str, Any] = {
        "bootstrap.servers": config.bootstrap_servers,
        "group.id": config.group_id,
        "client.id": f"mics-worker/{__version__}",
        "enable.auto.commit": True,
        "auto.commit.interval.ms": 1000,
        "auto.offset.reset": "earliest",
        "statistics.interval.ms": 5000,
        # Bounded prefetch: the in-flight window bounds the worker, this bounds librdkafka's queue.
        "queued.max.messages.kbytes": 16384,
        "max.poll.interval.ms": 300_000,
    }
    if config.group_protocol == "consumer":
        settings["group.protocol"] = "consumer"  # KIP-848: the broker assigns; no client-side strategy
    else:
        settings["partition.assignment.strategy"] = "cooperative-sticky"
        settings["session.timeout.ms"] = 45_000
    if config.group_instance_id:
        settings["group.instance.id"] = config.group_instance_id
    settings.update(_role_properties(config, skip=_PRODUCER_ONLY))
    _refuse_overrides(config, _PINNED_CONSUMER)
    settings.update(_PINNED_CONSUMER)
    return settings


def producer_settings(config: WorkerConfig) -> dict[str, Any]:
    """librdkafka producer properties for the idempotent dead-letter producer."""
    settings: dict[str, Any] = {
        "bootstrap.servers": config.bootstrap_servers,
        "client.id": f"mics-worker-dlq/{__version__}",
        "linger.ms": 5,
        # A DLQ that cannot be written must be noticed in seconds, not librdkafka's default five minutes.
        "message.timeout.ms": 30_000,
    }
    settings.update(_role_properties(config, skip=_CONSUMER_ONLY))
    _refuse_overrides(config, _PINNED_PRODUCER)
    settings.update(_PINNED_PRODUCER)
    return settings


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


def _role_properties(config: WorkerConfig, skip: tuple[str, ...]) -> dict[str, str]:
    return {key: value for key, value in config.kafka_properties.items() if not key.startswith(skip)}


def _refuse_overrides(config: WorkerConfig, pinned: dict[str, Any]) -> None:
    names = {_PINNED_ALIASES.get(name, name) for name in config.kafka_properties}
    overridden = sorted(set(pinned) & names)
    if overridden:
        raise ValueError(f"these Kafka properties cannot be overridden (at-least-once needs them): {overridden}")


def _on_error(forward: Callable[[KafkaError], None] | None, error: KafkaError) -> None:
    if error.fatal():
        log.error("fatal Kafka client error: %s", error.str())
    else:
        log.warning("Kafka client error: %s", error.str())
    if forward is not None:
        forward(error)
