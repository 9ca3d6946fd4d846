"""Flow control: why consumption is held, and which partitions to pause so memory and repeats stay bounded.

Two kinds of pause, kept apart:

- **Holds** stop the worker on purpose ("stop, don't spill"): the DLQ cannot be written (`dlq_unavailable`), the
  dead-letter rate is over the guard's limit (`dlq_rate`), or the API rejects the credentials of a datamart
  (`credentials`, per datamart). A DLQ hold pauses the whole assignment; a credentials hold only stops the held
  datamart's messages (they wait, and their partitions fill and pause like any other slow partition). Every hold
  makes the worker not ready; `FlowControl` is the one record of them, and pushes each change to the metrics and
  the health state. A route halted for a datamart (`misconfigured`: the API says the base URL or path is wrong,
  `traffic.halts`) is held the same way as a credentials hold: only its messages wait.
- **Backpressure** is per partition and never pauses the whole assignment. Each partition has an equal share of
  the window, in messages (`MAX_IN_FLIGHT`: taken and not committed, what a crash would repeat) and in bytes
  (`MAX_IN_FLIGHT_BYTES`: the records held in memory). A partition is paused when its own share is used and
  resumed when it is back under half, so a slow or retrying partition never stops one that holds nothing.
  A poll takes no more than the smallest share left among the partitions it can read, so no partition passes its
  share in messages and the total never passes `MAX_IN_FLIGHT`. Bytes are not known before a poll, so a poll also
  takes no more records than the smallest byte share left holds at the size of the largest record seen lately
  (`RecordSizes`): while record sizes hold, a partition passes its byte share by at most one record; a record larger
  than any seen lately can bring more, at most what one poll takes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Collection, Iterable
from dataclasses import dataclass

from worker.assignment import Partition
from worker.conditions import Conditions
from worker.health import Health
from worker.kafka import Consumer, KafkaException, TopicPartition
from worker.metrics import WorkerMetrics

__all__ = ["HALTING", "WAKE_WHILE_PAUSED_S", "FlowControl", "Pauser", "RecordSizes", "Window", "backpressure"]

log = logging.getLogger(__name__)
_COMMIT_REQUEST_INTERVAL_S = 0.05
WAKE_WHILE_PAUSED_S = 0.01
"""The poll's wait while a partition is paused for backpressure (see `Pauser.poll_timeout_s`)."""

HALTING = frozenset({"dlq_unavailable", "dlq_rate"})
"""Holds that pause every partition (the dead-letter path is what they protect)."""


@dataclass(frozen=True, slots=True)
class Window:
    """The window: `messages` taken and uncommitted, `bytes` of records held in memory; `batch` caps one poll."""

    messages: int
    bytes: int
    batch: int = 500

    def shares(self, partitions: int) -> tuple[int, int]:
        """One partition's share of the window, in messages and bytes."""
        n = max(1, partitions)
        return max(1, self.messages // n), max(1, self.bytes // n)


def backpressure(partitions: Collection[Partition], window: Window, paused: Collection[Partition]) -> set[Partition]:
    """The partitions that should be paused for backpressure now (given those that are): pure, per partition."""
    share_messages, share_bytes = window.shares(len(partitions))
    wanted = set()
    for partition in partitions:
        if partition in paused:
            still_full = partition.uncommitted > share_messages // 2 or partition.held_bytes > share_bytes // 2
            if still_full:
                wanted.add(partition)
        elif partition.uncommitted >= share_messages or partition.held_bytes >= share_bytes:
            wanted.add(partition)
    return wanted


class FlowControl:
    """The holds in force (one source of truth, mirrored to metrics and health)."""

    __slots__ = ("_credentials", "_halted", "_health", "_holds", "_metrics", "conditions", "running")

    def __init__(self, metrics: WorkerMetrics, health: Health, conditions: Conditions | None = None) -> None:
        self._metrics = metrics
        self._health = health
        self.conditions = conditions or Conditions(metrics.conditions, health)
        """The abnormal states' log lines, gauges and readiness details; the holds report theirs here."""
        self._holds: set[str] = set()
        self._credentials: set[str] = set()
        self._halted: set[str] = set()
        self.running = asyncio.Event()  # set while no halting hold is in force: what held messages wait for
        self.running.set()

    @property
    def halted(self) -> bool:
        """Whether every partition must be paused (the dead-letter path is held)."""
        return not self._holds.isdisjoint(HALTING)

    def held(self, reason: str) -> bool:
        return reason in self._holds

    def set_hold(self, reason: str, on: bool) -> None:
        """Start or end a hold (`dlq_unavailable`, `dlq_rate`)."""
        if on == (reason in self._holds):
            return
        if on:
            self._holds.add(reason)
        else:
            self._holds.discard(reason)
        if self.halted:
            self.running.clear()
        else:
            self.running.set()
        self._metrics.set_paused(reason, on)
        self._health.set_paused(reason, on)

    @property
    def held_datamarts(self) -> frozenset[str]:
        return frozenset(self._credentials)

    def set_credentials_held(self, datamart: str, on: bool, why: str = "") -> None:
        """Record that a datamart's credentials are (or no longer are) rejected; `why` goes in the start line."""
        if on == (datamart in self._credentials):
            return
        self.conditions.set("credentials_held", datamart, on, why)
        if on:
            self._credentials.add(datamart)
        else:
            self._credentials.discard(datamart)
        self._metrics.set_credentials_held(datamart, on)
        self._health.set_held_datamarts(sorted(self._credentials))
        any_held = bool(self._credentials)
        self._metrics.set_paused("credentials", any_held)
        self._health.set_paused("credentials", any_held)

    def set_route_halted(self, route: str, datamart: str, on: bool) -> None:
        """Record that a route is (or no longer is) halted for a datamart: a `misconfigured` hold."""
        key = f"{route}/{datamart}"
        if on == (key in self._halted):
            return
        if on:
            self._halted.add(key)
        else:
            self._halted.discard(key)
        self._health.set_halted_routes(sorted(self._halted))
        any_halted = bool(self._halted)
        self._metrics.set_paused("misconfigured", any_halted)
        self._health.set_paused("misconfigured", any_halted)

    def set_backpressure(self, paused_partitions: int) -> None:
        """Report how many partitions are paused for backpressure (the 0/1 gauge says whether any is)."""
        self._metrics.set_backpressure(paused_partitions)


class RecordSizes:
    """The size of the largest record held lately, in the window's bytes: what a poll's room in bytes is counted in.

    It follows a larger record at once and forgets it by an eighth a poll, so a burst of big records is not
    forgotten on the next poll and a stream that turned small polls in large batches again soon. Before the first
    record it knows nothing, and a poll takes one record.
    """

    __slots__ = ("largest",)

    def __init__(self) -> None:
        self.largest = 0

    def polled(self, largest_in_poll: int) -> None:
        """Record one poll's largest record (0 when the poll brought none: nothing is learned or forgotten)."""
        if largest_in_poll <= 0:
            return
        self.largest = max(largest_in_poll, self.largest - self.largest // 8)

    def records_in(self, byte_room: int) -> int:
        """How many records of the lately largest size fit in `byte_room`; at least one, since polling must go on."""
        if self.largest <= 0:
            return 1
        return max(1, byte_room // self.largest)


class Pauser:
    """Applies pause decisions to the consumer: every partition while halted, else `backpressure`'s choice.

    It also asks for a commit when finished work piles up, since a confirmed commit is what frees a partition's
    share: auto-commit alone comes once a second.
    """

    def __init__(self, consumer: Consumer, window: Window, flow: FlowControl) -> None:
        self._consumer = consumer
        self._window = window
        self._flow = flow
        self._paused: set[Partition] = set()
        self._fresh: set[Partition] = set()  # assigned since the last decision: their state is unknown here
        self._last_commit_request = 0.0
        self.record_sizes = RecordSizes()

    def assigned(self, partitions: Iterable[Partition]) -> None:
        """librdkafka keeps a partition's pause flag across a revoke: state it again for every new assignment."""
        self._fresh.update(partitions)

    def room(self, partitions: list[Partition]) -> int:
        """How many messages the next poll may take: the smallest share left among the partitions not paused (a
        batch drawn from any one of them cannot carry it past its share) and never past the whole window, in
        messages and in records of the lately largest size for bytes; at least one, since polling must go on (an
        assignment arrives inside a poll, so with none yet, one)."""
        if not partitions:
            return 1
        share, share_bytes = self._window.shares(len(partitions))
        readable = [partition for partition in partitions if partition not in self._paused]
        left = min((share - partition.uncommitted for partition in readable), default=self._window.batch)
        total_left = self._window.messages - sum(partition.uncommitted for partition in partitions)
        bytes_left = min((share_bytes - partition.held_bytes for partition in readable), default=self._window.bytes)
        total_bytes_left = self._window.bytes - sum(partition.held_bytes for partition in partitions)
        by_bytes = self.record_sizes.records_in(min(bytes_left, total_bytes_left))
        return max(1, min(self._window.batch, total_left, left, by_bytes))

    def poll_timeout_s(self, partitions: list[Partition], idle_s: float, *, halted: bool) -> float:
        """How long the next poll may wait for a message: `idle_s`, or `WAKE_WHILE_PAUSED_S` while a partition is
        paused for backpressure.

        What resumes a paused partition (its messages finishing, then a commit confirmed) is acted on between polls
        only, and a poll that has nothing to read waits its whole timeout: with `idle_s` (100 ms) each cycle of the
        window sat out up to two of them (one before the commit request, one before the resume) with nothing
        to send. A hold (`halted`) is not polled for this way: it ends on its own schedule, not the worker's progress.
        """
        if halted or not self._paused.intersection(partitions):
            return idle_s
        return min(idle_s, WAKE_WHILE_PAUSED_S)

    def apply(self, partitions: list[Partition], *, halted: bool) -> None:
        self._commit_if_behind(partitions)
        owned = set(partitions)
        self._paused &= owned
        self._fresh &= owned
        wanted = owned if halted else backpressure(partitions, self._window, self._paused)
        to_pause = (wanted - self._paused) | (wanted & self._fresh)
        to_resume = (self._paused - wanted) | (self._fresh - wanted)
        self._fresh.clear()
        if to_pause:
            self._set_paused(to_pause, paused=True)
        if to_resume:
            self._set_paused(to_resume, paused=False)
        self._paused = wanted
        self._flow.set_backpressure(0 if halted else len(wanted))

    def commit_would_help(self, partitions: list[Partition]) -> bool:
        """Whether committing the finished work now frees room: a paused partition it would resume, or a quarter of
        a partition's share (so the window as a whole never waits on more than a quarter of itself).

        Only a confirmed commit frees a share in messages, so it must be asked for before a paused partition runs
        dry: waiting for half a share (as before) let a partition finish everything it held and then wait for a
        commit round trip and a fetch with nothing to do, once a cycle.
        """
        share, _ = self._window.shares(len(partitions))
        for partition in partitions:
            finished = partition.finished_uncommitted
            if not finished:
                continue
            if finished >= max(1, share // 4):
                return True
            if partition in self._paused and partition.uncommitted - finished <= share // 2:
                return True
        return False

    def _set_paused(self, partitions: set[Partition], *, paused: bool) -> None:
        tps = [TopicPartition(*partition.key) for partition in partitions]
        try:
            if paused:
                self._consumer.pause(tps)
            else:
                self._consumer.resume(tps)
                self._start_fetching(tps)
        except KafkaException as exc:
            log.warning("pause/resume failed: %s", exc)

    def _start_fetching(self, resumed: list[TopicPartition]) -> None:
        """Seek each resumed partition to the position it resumes from anyway, so that its fetch starts now.

        librdkafka's resume only clears the pause flag; its broker thread notices on its next wake-up, which is up to
        a second away when every partition was paused (nothing else wakes it, confluent-kafka-go issue 630): under a
        full window the worker sat idle that long once a cycle. An epoch-less seek passes the partition through a
        fetch-state change, which wakes that thread at once. The position is where the resume would fetch from (the
        offset after the last message consumed), so nothing is skipped or read twice; a partition without one (none
        consumed since it was assigned or last sought) is left to the resume.
        """
        for position in self._consumer.position(resumed):
            if position.offset >= 0:
                self._consumer.seek(TopicPartition(position.topic, position.partition, position.offset))

    def _commit_if_behind(self, partitions: list[Partition]) -> None:
        """Commit (asynchronously) when `commit_would_help`, at most every 50 ms."""
        now = time.monotonic()
        if now - self._last_commit_request < _COMMIT_REQUEST_INTERVAL_S:
            return
        if self.commit_would_help(partitions):
            self._last_commit_request = now
            try:
                self._consumer.commit(asynchronous=True)
            except KafkaException as exc:
                log.debug("commit request not sent: %s", exc)
