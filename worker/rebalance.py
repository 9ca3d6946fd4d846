"""The rebalance bridge: the only code that crosses from librdkafka's Kafka thread to the event loop.

librdkafka calls back (assign, revoke, lost, commit, error) on the thread that runs `consume()`. The bridge hands
each to the loop, which owns all state: assignments and releases run there and the thread waits for them, bounded
in time; commit confirmations and fatal errors are posted without waiting. A revoke waits for the revoked
partitions' in-flight messages to finish (at most `drain_s`, kept well under the liveness TTL: while it waits, the
poll loop cannot beat), then commits their offsets synchronously, so a graceful rebalance causes no duplicate.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Protocol, TypeVar

from worker.assignment import TopicPartitionKey
from worker.kafka import Consumer, KafkaError, KafkaException, TopicPartition
from worker.metrics import WorkerMetrics

__all__ = ["RebalanceBridge", "RebalanceHandler"]

log = logging.getLogger(__name__)

T = TypeVar("T")
_ASSIGN_TIMEOUT_S = 5.0
_MARGIN_S = 5.0


class RebalanceHandler(Protocol):
    """What the loop side does; the pipeline implements it."""

    def assigned(self, keys: list[TopicPartitionKey]) -> None: ...

    async def released(self, keys: list[TopicPartitionKey], *, drain: bool) -> list[tuple[TopicPartitionKey, int]]:
        """Release partitions (after draining them when `drain`); return the offsets to commit."""
        ...

    def commit_confirmed(self, key: TopicPartitionKey, offset: int) -> None: ...

    def fatal(self, error: KafkaError) -> None: ...

    def client_error(self, error: KafkaError) -> None:
        """A non-fatal client error (the abnormal states watch for "all brokers down")."""
        ...


class RebalanceBridge:
    """librdkafka's callbacks, run on the Kafka thread, handed to the loop."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, handler: RebalanceHandler, metrics: WorkerMetrics, drain_s: float
    ) -> None:
        self._loop = loop
        self._handler = handler
        self._metrics = metrics
        self._drain_s = drain_s

    def on_assign(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        keys = _keys(partitions)
        self._metrics.rebalance("assign", keys)
        log.info("assigned %s", _describe(keys))
        self._wait(self._on_loop(self._handler.assigned, keys), _ASSIGN_TIMEOUT_S)

    def on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        keys = _keys(partitions)
        self._metrics.rebalance("revoke", keys)
        log.info("revoked %s: finishing their in-flight messages, then committing", _describe(keys))
        offsets = self._wait(self._handler.released(keys, drain=True), self._drain_s + _MARGIN_S)
        if not offsets:
            return
        to_commit = [TopicPartition(topic, partition, offset) for (topic, partition), offset in offsets]
        try:
            # Stored as well as committed: librdkafka's auto-commit on unassign would otherwise write back older
            # stored offsets over this commit.
            consumer.store_offsets(offsets=to_commit)
            committed = consumer.commit(offsets=to_commit, asynchronous=False) or []
        except KafkaException as exc:
            log.warning("commit on revoke failed: %s", exc)
            return
        for tp in committed:
            if tp.error is not None:
                log.warning("commit on revoke failed for %s[%d]: %s", tp.topic, tp.partition, tp.error)

    def on_lost(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        keys = _keys(partitions)
        self._metrics.rebalance("lost", keys)
        log.warning("lost %s: their offsets will not be committed", _describe(keys))
        self._wait(self._handler.released(keys, drain=False), _ASSIGN_TIMEOUT_S)

    def on_commit(self, error: KafkaError | None, partitions: list[TopicPartition]) -> None:
        """librdkafka's commit callback: note (on the loop) what the group coordinator confirmed."""
        if error is not None:
            if error.code() != KafkaError._NO_OFFSET:
                log.warning("offset commit failed: %s", error.str())
            return
        for tp in partitions:
            if tp.error is None and tp.offset >= 0:
                self._metrics.committed(tp.topic, tp.partition, tp.offset)
                self._post(self._handler.commit_confirmed, (tp.topic, tp.partition), tp.offset)

    def on_error(self, error: KafkaError) -> None:
        """A client error callback: a fatal one stops the worker (it exits non-zero and is restarted); the others feed
        the abnormal states (`watch`)."""
        if error.fatal():
            self._post(self._handler.fatal, error)
        else:
            self._post(self._handler.client_error, error)

    def _post(self, callback: Callable[..., None], *args: object) -> None:
        try:
            self._loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:  # the loop is closed: the process is exiting
            log.debug("dropped a Kafka callback after the loop closed")

    @staticmethod
    async def _on_loop(callback: Callable[[list[TopicPartitionKey]], None], keys: list[TopicPartitionKey]) -> None:
        callback(keys)

    def _wait(self, coroutine: Coroutine[object, object, T], timeout_s: float) -> T | None:
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        try:
            return future.result(timeout_s)
        except FutureTimeout:
            future.cancel()
            log.error("the event loop did not answer a rebalance callback in %.0f s", timeout_s)
            return None


def _keys(partitions: list[TopicPartition]) -> list[TopicPartitionKey]:
    return [(tp.topic, tp.partition) for tp in partitions]


def _describe(keys: list[TopicPartitionKey]) -> str:
    return ", ".join(f"{topic}[{partition}]" for topic, partition in keys) or "nothing"
