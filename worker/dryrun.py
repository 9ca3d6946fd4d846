"""`mics-worker run --dry-run`: what the worker would do with the data in its topics now, without doing any of it.

The configured topics (the names, or the pattern matched against the cluster's topic list) are read up to the high
watermarks captured at start, under a throwaway consumer group (from the beginning) or under a given group (from its
committed offsets: what that group would process next). Nothing is committed, sent or produced. Every message is
planned by `plan_message`, the pipeline's own decision, so the counts are what a real run would send per route and
dead-letter per reason before any HTTP outcome (API errors cannot be known without calling the API).
"""

from __future__ import annotations

import re
import uuid
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial

from worker import __version__
from worker.config import ENV_PREFIX, WorkerConfig
from worker.dlq import printable
from worker.kafka import Consumer, make_reader
from worker.routing import Rejection, TopicRouter, plan_message
from worker.snapshot import SnapshotReader
from worker.validation import Validators

__all__ = ["DryRunReport", "RejectedExample", "config_for_dry_run", "dry_run", "dry_run_consumer", "format_dry_run"]

_PLACEHOLDER_TOKEN = "dry-run-sends-nothing"  # noqa: S105 - not a secret: never sent anywhere


@dataclass(frozen=True, slots=True)
class RejectedExample:
    """One message the worker would dead-letter, and why."""

    topic: str
    partition: int
    offset: int
    reason: str
    message: str


@dataclass(slots=True)
class DryRunReport:
    """Per-route and per-reason counts over the messages read, and the first rejections as examples."""

    topics: tuple[str, ...]
    group: str
    consumed: int = 0
    would_send: Counter[str] = field(default_factory=Counter)
    would_dead_letter: Counter[str] = field(default_factory=Counter)
    examples: list[RejectedExample] = field(default_factory=list)


def config_for_dry_run(environ: Mapping[str, str]) -> WorkerConfig:
    """The worker's configuration; a dry run calls no API, so it works without an API token."""
    token_vars = (ENV_PREFIX + "API_TOKEN", ENV_PREFIX + "API_TOKEN_FILE")
    if not any(environ.get(name) for name in token_vars):
        environ = {**environ, token_vars[0]: _PLACEHOLDER_TOKEN}
    return WorkerConfig.from_env(environ)


def dry_run(
    config: WorkerConfig,
    *,
    group: str | None = None,
    examples: int = 5,
    timeout_s: float = 30.0,
    validators: Validators | None = None,
) -> DryRunReport:
    """Read the configured topics to their current end and count what would be sent and dead-lettered."""
    group_id = group or f"mics-worker-dry-run-{uuid.uuid4().hex}"
    consumer = dry_run_consumer(config, group_id)
    try:
        topics = _topics(consumer, config, timeout_s)
        report = DryRunReport(topics=tuple(topics), group=group_id)
        reader = SnapshotReader(
            consumer, topics, start="beginning" if group is None else "committed", timeout_s=timeout_s
        )
        router = TopicRouter(config.routes)
        plan = partial(
            plan_message,
            validators=validators or Validators.load(config.schemas_dir),
            default_datamart_id=config.default_datamart_id,
            allowed_datamarts=config.allowed_datamarts,
            max_message_bytes=config.max_message_bytes,
        )
        for batch in reader.batches():
            for message in batch:
                report.consumed += 1
                topic = message.topic() or ""
                outcome = plan(router.mode_for(topic), message.value())
                if not isinstance(outcome, Rejection):
                    report.would_send[outcome.route] += 1
                    continue
                report.would_dead_letter[outcome.reason] += 1
                if len(report.examples) < examples:
                    where = (topic, message.partition() or 0, message.offset() or 0)
                    report.examples.append(RejectedExample(*where, outcome.reason, outcome.message))
    finally:
        consumer.close()
    return report


def dry_run_consumer(config: WorkerConfig, group_id: str) -> Consumer:
    """A consumer with the worker's connection and security settings that assigns partitions and never commits."""
    return make_reader(
        config.bootstrap_servers,
        config.kafka_properties,
        group_id=group_id,
        client_id=f"mics-worker-dry-run/{__version__}",
    )


def _topics(consumer: Consumer, config: WorkerConfig, timeout_s: float) -> list[str]:
    """The configured names, or the existing topics the pattern matches (internal `__` topics excluded)."""
    if not config.topic_pattern:
        return list(config.topics)
    pattern = re.compile(config.topic_pattern)
    existing = consumer.list_topics(timeout=timeout_s).topics
    return sorted(name for name in existing if pattern.search(name) and not name.startswith("__"))


def format_dry_run(report: DryRunReport) -> str:
    """The dry run's ledger, in the shape of the end-of-run summary."""
    lines = [
        f"dry run over {', '.join(report.topics) or 'no topics'} (group {report.group}; nothing sent or committed)",
        f"consumed: {report.consumed}",
        "would send: " + _counts(report.would_send),
        "would dead-letter: " + _counts(report.would_dead_letter),
    ]
    for example in report.examples:
        lines.append(f"  {example.topic}[{example.partition}]@{example.offset}: {example.reason}: {example.message}")
    return "\n".join(printable(line) for line in lines)


def _counts(counter: Counter[str]) -> str:
    total = sum(counter.values())
    parts = ", ".join(f"{name}={count}" for name, count in sorted(counter.items()))
    return f"{total}" + (f" ({parts})" if parts else "")
