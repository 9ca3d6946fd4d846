"""Feeds `conditions` from the parts that know each abnormal state but have no reason to log it themselves.

- `api_failing` / `api_throttled`: each route's gate (open circuit, shared backoff), sampled by `tick`; the answers
  are counted by `traffic.control.Traffic.record`.
- `broker_unreachable`: starts on librdkafka's "all brokers down" error (`client_error`), ends when a statistics
  report newer than that error sees a broker up (`WorkerMetrics.brokers_up`).
- `group_join_waiting`: no assignment `JOIN_GRACE_S` after the start; the line says why it can take long (after a
  `kill -9` the group waits for the old member's session to time out).
- `dlq_unwritable` for a missing topic: asked of the broker at start (`watch_dlq_topic`), not learnt from the
  producer's first failure 30 s later; the writer starts and ends it on real writes too.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Final

from worker.conditions import Conditions
from worker.kafka import KafkaError, KafkaException, Producer
from worker.metrics import WorkerMetrics
from worker.traffic.control import RouteTraffic

__all__ = ["JOIN_GRACE_S", "StateWatch"]

log = logging.getLogger(__name__)

JOIN_GRACE_S: Final = 5.0
"""A join usually takes a few seconds; only a longer wait is an abnormal state worth a line."""
_SAMPLE_INTERVAL_S: Final = 0.25
_UNREACHABLE: Final = frozenset({KafkaError._ALL_BROKERS_DOWN})
_TRANSPORT: Final = frozenset({KafkaError._TRANSPORT, KafkaError._RESOLVE})
DLQ_CHECK_TIMEOUT_S: Final = 5.0
"""Bounds the metadata request (a thread of the default executor; a stop waits for it at most this long)."""
DLQ_RECHECK_S: Final = 30.0


class StateWatch:
    """Samples what has no event of its own and turns client errors into conditions. Used from the event loop."""

    def __init__(
        self,
        conditions: Conditions,
        metrics: WorkerMetrics,
        routes: Mapping[str, RouteTraffic],
        *,
        bootstrap_servers: str,
        group_id: str,
        session_timeout_ms: object,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._conditions = conditions
        self._metrics = metrics
        self._routes = routes
        self._brokers = bootstrap_servers
        self._group = group_id
        self._session_timeout = session_timeout_ms
        self._clock = clock
        self._started = clock()
        self._assigned = False
        self._last_sample = float("-inf")
        self._brokers_down_at: float | None = None

    def assigned(self) -> None:
        """An assignment arrived: the group is joined."""
        self._assigned = True
        self._conditions.set("group_join_waiting", self._group, False)

    def client_error(self, error: KafkaError) -> None:
        """A non-fatal librdkafka error (consumer or DLQ producer)."""
        code = error.code()
        if code in _UNREACHABLE:
            self._brokers_down_at = self._clock()
            self._conditions.set("broker_unreachable", self._brokers, True, error.str())
        elif code in _TRANSPORT:
            self._conditions.count("broker_unreachable", self._brokers, "connection_errors")

    def tick(self) -> None:
        """Sample the gates, the join and the brokers (at most every 0.25 s), then let the conditions write."""
        now = self._clock()
        if now - self._last_sample >= _SAMPLE_INTERVAL_S:
            self._last_sample = now
            self._sample(now)
        self._conditions.tick()

    def _sample(self, now: float) -> None:
        for name, lane in self._routes.items():
            gate = lane.gate
            self._conditions.set(
                "api_failing", name, gate.circuit.is_open, "one probe at a time until an answer is not a failure"
            )
            self._conditions.set(
                "api_throttled", name, gate.backing_off, "the route's senders wait for the shared backoff"
            )
        if not self._assigned and now - self._started >= JOIN_GRACE_S:
            self._conditions.set("group_join_waiting", self._group, True, self._join_detail(now))
        if self._brokers_down_at is not None:
            seen_at, up = self._metrics.brokers_seen
            if up and seen_at > self._brokers_down_at:
                self._brokers_down_at = None
                self._conditions.set("broker_unreachable", self._brokers, False)

    def _join_detail(self, now: float) -> str:
        if self._conditions.active("broker_unreachable", self._brokers):
            return "no broker is reachable"
        timeout = (
            f"session.timeout.ms={self._session_timeout}"
            if self._session_timeout is not None
            else "the broker's group.consumer.session.timeout.ms"
        )
        return (
            f"group {self._group}: no partitions after {now - self._started:.0f} s; after an unclean stop (kill -9) "
            f"the group waits for the previous member's session to time out ({timeout}) before it rebalances"
        )

    async def watch_dlq_topic(self, producer: Producer, topic: str, writer_holding: Callable[[], bool]) -> None:
        """Ask the broker whether the dead-letter topic exists, at start and then every `DLQ_RECHECK_S` while it is
        missing or the question could not be asked; a hold of the writer (real failed writes) ends on its own."""
        loop = asyncio.get_running_loop()
        while True:
            missing = await loop.run_in_executor(None, _topic_missing, producer, topic)
            if missing:
                self._conditions.set(
                    "dlq_unwritable",
                    topic,
                    True,
                    f"the topic {topic} does not exist (the worker never creates it): a dead letter holds the worker",
                )
            elif missing is False and not writer_holding():
                self._conditions.set("dlq_unwritable", topic, False)
                return
            await asyncio.sleep(DLQ_RECHECK_S)


def _topic_missing(producer: Producer, topic: str) -> bool | None:
    """Whether the broker says `topic` does not exist; None when it could not be asked (no broker)."""
    try:
        metadata = producer.list_topics(topic, timeout=DLQ_CHECK_TIMEOUT_S)
    except KafkaException as exc:
        log.debug("the dead-letter topic check could not run: %s", exc)
        return None
    found = metadata.topics.get(topic)
    if found is None:
        return None
    return found.error is not None and found.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART
