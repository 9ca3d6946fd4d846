"""The streams the benchmark replays: produced once into Kafka, read by every run through a fresh consumer group.

Two mixes come from `tests.support.events.generate`, so the benchmark sends what the integration tests send:
- `mixed`: the realistic stream (bare activities with three events and two identifiers, profile and choice
  envelopes, ~2% invalid messages of three kinds), split as deployed: bare activities on an activity topic,
  envelopes on an envelope topic;
- `activity`: bare activities only, on one activity topic.
Every message keeps its ledger id, so a run can be settled: each id delivered or dead-lettered, none missing.
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass, field

from confluent_kafka import Consumer, TopicPartition

from tests.support.events import MixSpec, SampleMessage, generate
from tests.support.kafka_broker import create_topic
from tests.support.ledger import produce_all

__all__ = ["PARTITIONS", "Dataset", "end_offsets", "produce_dataset"]

PARTITIONS = 6
MIXES = ("activity", "mixed")


@dataclass
class Dataset:
    """Topics (name → route mode) holding a known set of messages, and what each message should become."""

    name: str
    routes: dict[str, str]
    messages: list[SampleMessage]
    end_offsets: dict[tuple[str, int], int] = field(default_factory=dict)

    @property
    def count(self) -> int:
        return len(self.messages)

    def expected_delivered(self) -> Counter[str]:
        """Deliveries the API should see, by route."""
        return Counter(m.route for m in self.messages if m.expected == "delivered")

    def expected_dead_letters(self) -> dict[str, str]:
        """Ledger id → dead-letter reason, for every message the worker must refuse."""
        return {m.ledger_id: m.expected for m in self.messages if m.expected != "delivered"}

    def worker_settings(self) -> dict[str, str]:
        """`topics` and `routes` for `worker_env`."""
        return {
            "topics": ",".join(self.routes),
            "routes": ",".join(f"{topic}={mode}" for topic, mode in self.routes.items()),
        }


def produce_dataset(bootstrap_servers: str, mix: str, count: int, seed: int = 7) -> Dataset:
    """Create fresh topics and produce `count` messages of `mix` into them; wait for every acknowledgement."""
    run_id = uuid.uuid4().hex[:8]
    if mix == "activity":
        messages = list(generate(count, MixSpec(profiles=0.0, choices=0.0, invalid=0.0), seed=seed))
        topic = f"bench.{run_id}.activities"
        split = {topic: ("activity", messages)}
    elif mix == "mixed":
        messages = list(generate(count, MixSpec(), seed=seed))
        bare = [m for m in messages if m.route == "activity" and m.expected != "forbidden_datamart"]
        bare_ids = {m.ledger_id for m in bare}
        envelopes = [m for m in messages if m.ledger_id not in bare_ids]
        split = {
            f"bench.{run_id}.activities": ("activity", bare),
            f"bench.{run_id}.events": ("envelope", envelopes),
        }
    else:
        raise ValueError(f"unknown mix {mix!r}; expected one of {', '.join(MIXES)}")
    dataset = Dataset(mix, {topic: mode for topic, (mode, _) in split.items()}, messages)
    for topic, (_, part) in split.items():
        create_topic(bootstrap_servers, topic, PARTITIONS)
        produce_all(bootstrap_servers, topic, part)
    dataset.end_offsets = end_offsets(bootstrap_servers, list(dataset.routes))
    if sum(dataset.end_offsets.values()) != count:
        raise RuntimeError(f"produced {count} messages but the topics hold {sum(dataset.end_offsets.values())}")
    return dataset


def end_offsets(bootstrap_servers: str, topics: list[str]) -> dict[tuple[str, int], int]:
    """The high watermark of every partition of `topics` (fresh topics: also their message counts)."""
    consumer = Consumer({"bootstrap.servers": bootstrap_servers, "group.id": f"bench-meta-{uuid.uuid4()}"})
    try:
        ends: dict[tuple[str, int], int] = {}
        for topic in topics:
            partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
            for partition in partitions:
                _, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
                ends[(topic, partition)] = high
        return ends
    finally:
        consumer.close()
