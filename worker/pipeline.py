"""The worker's heart: consume → plan → send (or dead-letter) → store the offset, at least once, never lost.

Threads and loops. One asyncio loop owns all state. librdkafka's blocking `consume()` runs on a single Kafka thread
(so HTTP work never delays a poll and the group never evicts the worker); rebalance callbacks run on that thread
and hand the revoked partitions to the loop, which drains their in-flight messages before the commit.

A message's fate is one of: delivered (API 2xx), dead-lettered with a reason (DLQ write acknowledged), or still in
flight — and then its offset, and every later one of its partition, is not committed (`offsets.PartitionOffsets`).

Order and parallelism. Messages with the same key in a partition form a lane, sent one at a time in offset order;
different keys run in parallel up to `max_concurrency` requests. `max_in_flight` bounds memory: when that many
messages are taken but not finished, every partition is paused while polling goes on.

Stop, don't spill. Rejected credentials (401/403), an unwritable DLQ, or a dead-letter rate over the guard's limit
pause consumption and make the worker not-ready; messages fetched meanwhile are handed back (seek) untouched.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter, deque
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import AsyncExitStack, suppress
from dataclasses import dataclass, field
from functools import partial

from worker.config import WorkerConfig
from worker.deadletter import TRUNCATED_HEADER, DeadLetter, context_headers
from worker.guard import DeadLetterRateGuard
from worker.health import Health
from worker.kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition, subscription
from worker.metrics import WorkerMetrics
from worker.mics.client import MicsClient
from worker.mics.errors import ApiResult, OutcomeKind
from worker.offsets import PartitionOffsets
from worker.routing import Job, Rejection, TopicRouter, plan_message
from worker.validation import Validators

__all__ = ["Pipeline", "RunSummary", "WorkerCrashed", "consume_available", "send_job"]

log = logging.getLogger(__name__)

_TIMESTAMP_NOT_AVAILABLE = 0
_POLL_TIMEOUT_S = 0.1
_DLQ_RETRY_DELAY_S = (0.5, 30.0)
_TRUNCATED_VALUE_BYTES = 1024
HALTING_PAUSES = frozenset({"credentials", "dlq_unavailable", "dlq_rate"})

TopicPartitionKey = tuple[str, int]
Headers = list[tuple[str, str | bytes | None]]


class WorkerCrashed(RuntimeError):
    """A bug stopped the worker; nothing was lost (unfinished messages stay uncommitted), but it must restart."""


@dataclass(slots=True)
class RunSummary:
    """What one run did: the ledger the CLI prints at the end."""

    consumed: int = 0
    delivered: Counter[str] = field(default_factory=Counter)  # route -> count
    dead_lettered: Counter[str] = field(default_factory=Counter)  # reason -> count

    @property
    def finished(self) -> int:
        return sum(self.delivered.values()) + sum(self.dead_lettered.values())


class _Partition:
    """One assigned partition's offsets and work; a new object each time the partition is assigned."""

    __slots__ = ("committed", "offsets", "released", "stored", "taken_until")

    def __init__(self) -> None:
        self.offsets = PartitionOffsets()
        self.released = False  # revoked or lost: start nothing new, completions no longer move its offsets
        self.stored: int | None = None  # the offset last handed to librdkafka to commit
        self.committed: int | None = None  # the offset the group coordinator last confirmed (or where we started)
        self.taken_until: int | None = None  # one past the last offset taken

    @property
    def finished_uncommitted(self) -> int:
        """Finished messages stored past the confirmed commit: what a commit request would secure."""
        if self.stored is None or self.committed is None:
            return 0
        return max(0, self.stored - self.committed)

    @property
    def uncommitted(self) -> int:
        """Messages a crash now would repeat: everything taken past the confirmed commit (gaps count, to be safe)."""
        if self.taken_until is None or self.committed is None:
            return 0
        return max(0, self.taken_until - self.committed)


class _Pending:
    """One message between consume and its final outcome."""

    __slots__ = ("message", "partition", "plan", "tp")

    def __init__(self, message: Message, tp: TopicPartitionKey, partition: _Partition, plan: Job | Rejection):
        self.message = message
        self.tp = tp
        self.partition = partition
        self.plan = plan


class Pipeline:
    """Runs one consumer-group member until `request_stop()`; see the module docstring for the rules it keeps."""

    def __init__(
        self,
        config: WorkerConfig,
        *,
        consumer: Consumer,
        producer: Producer,
        client: MicsClient,
        validators: Validators,
        metrics: WorkerMetrics,
        health: Health,
        rng: random.Random | None = None,
    ) -> None:
        self._config = config
        self._consumer = consumer
        self._producer = producer
        self._client = client
        self._validators = validators
        self._metrics = metrics
        self._health = health
        self._rng = rng or random.Random()
        self._router = TopicRouter(config.routes)
        self._guard = DeadLetterRateGuard(config.dlq_guard)
        self._summary = RunSummary()
        self._partitions: dict[TopicPartitionKey, _Partition] = {}
        self._dirty: set[TopicPartitionKey] = set()
        self._lanes: dict[tuple[str, int, bytes], deque[_Pending]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._in_flight = 0
        self._load = 0  # in flight + finished but uncommitted: what a crash now would repeat
        self._pauses: set[str] = set()
        self._halted = False  # paused for a reason that hands fetched messages back instead of taking them
        self._partitions_paused = False
        self._assignment_changed = False
        self._concurrency = asyncio.Semaphore(config.max_concurrency)
        self._route_limits = {route: asyncio.Semaphore(n) for route, n in config.route_concurrency.items()}
        self._credentials_ok = asyncio.Event()
        self._credentials_ok.set()
        self._dlq_backlog: deque[tuple[_Pending, DeadLetter, Headers]] = deque()
        self._dlq_retrying = False
        self._stop = asyncio.Event()
        self._crash: BaseException | None = None
        self._last_commit_request = 0.0
        self._drained = False  # after the shutdown drain, a revoke on close() must not wait a second time
        self._kafka_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kafka")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._plan = partial(
            plan_message,
            validators=validators,
            default_datamart_id=config.default_datamart_id,
            allowed_datamarts=config.allowed_datamarts,
            max_message_bytes=config.max_message_bytes,
        )

    # -- life cycle ------------------------------------------------------------------------------------------

    def request_stop(self) -> None:
        """Begin a graceful stop: no more polling, drain in-flight work, commit, leave the group."""
        self._stop.set()

    @property
    def summary(self) -> RunSummary:
        return self._summary

    @property
    def in_flight(self) -> int:
        return self._in_flight

    async def run(self) -> RunSummary:
        """Consume until `request_stop()`, then drain within the configured timeout, commit and close."""
        self._loop = asyncio.get_running_loop()
        self._consumer.subscribe(
            subscription(self._config),
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )
        async with AsyncExitStack() as background:
            producer_poll = asyncio.create_task(self._poll_producer(), name="dlq-producer-poll")
            background.push_async_callback(_cancel, producer_poll)
            poll = asyncio.create_task(self._poll_loop(), name="kafka-poll")
            stop = asyncio.create_task(self._stop.wait(), name="stop-request")
            await asyncio.wait({poll, stop}, return_when=asyncio.FIRST_COMPLETED)
            stop.cancel()
            await poll  # re-raises a fatal poll error after the stop flag is set
            await self._drain(self._config.drain_timeout_s)
        await self._close()
        if self._crash is not None:
            raise WorkerCrashed("a worker task failed; unfinished messages were left uncommitted") from self._crash
        return self._summary

    async def _drain(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while self._in_flight and time.monotonic() < deadline:
            self._store_offsets()
            await asyncio.sleep(0.05)
        if self._in_flight:
            log.warning("drain timed out with %d messages in flight; they stay uncommitted", self._in_flight)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._store_offsets()
        self._drained = True

    async def _close(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._kafka_thread, self._commit_and_close)
        self._kafka_thread.shutdown(wait=True)
        remaining = self._producer.flush(5.0)
        if remaining:
            log.error("%d dead letters were not acknowledged at exit; their offsets were not committed", remaining)
        await self._client.aclose()
        self._health.set_joined(False)

    def _commit_and_close(self) -> None:
        try:
            self._consumer.commit(asynchronous=False)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError._NO_OFFSET:
                log.warning("final commit failed: %s", exc)
        self._consumer.close()

    # -- polling and dispatch ----------------------------------------------------------------------------------

    async def _poll_loop(self) -> None:
        loop = asyncio.get_running_loop()
        batch_size, window = self._config.consume_batch_size, self._config.max_in_flight
        while not self._stop.is_set():
            self._health.heartbeat()
            # Never take more than the window has room for: a crash repeats at most MAX_IN_FLIGHT messages.
            room = max(1, min(batch_size, window - self._load))
            messages = await loop.run_in_executor(
                self._kafka_thread, consume_available, self._consumer, room, _POLL_TIMEOUT_S
            )
            if messages:
                self._dispatch(messages)
            self._store_offsets()
            self._apply_pauses()

    def _dispatch(self, messages: list[Message]) -> None:
        handed_back: set[TopicPartitionKey] = set()
        for message in messages:
            error = message.error()
            if error is not None:
                self._on_consume_error(error)
                continue
            topic, partition_id, offset = message.topic(), message.partition(), message.offset()
            assert topic is not None
            assert partition_id is not None
            assert offset is not None
            tp = (topic, partition_id)
            if self._halted:
                # Not ours to process now: rewind so the message is fetched again once the pause lifts.
                if tp not in handed_back:
                    handed_back.add(tp)
                    self._consumer.seek(TopicPartition(topic, partition_id, offset))
                continue
            partition = self._partitions.get(tp)
            if partition is None:
                continue  # fetched before a revoke: the partition's next owner reads it from the committed offset
            if partition.committed is None:
                partition.committed = offset  # consumption starts at the committed position
            try:
                partition.offsets.track(offset)
                partition.taken_until = offset + 1
            except ValueError:
                log.warning(
                    "skipping %s[%d]@%d: already taken (a redelivery after a seek)", topic, partition_id, offset
                )
                continue
            self._in_flight += 1
            self._summary.consumed += 1
            self._metrics.consumed(topic)
            plan = self._plan(self._router.mode_for(topic), message.value())
            pending = _Pending(message, tp, partition, plan)
            if isinstance(plan, Rejection):
                self._reject(pending, plan)
            else:
                self._enqueue(pending, message.key())
        self._metrics.set_in_flight(self._in_flight)

    def _on_consume_error(self, error: KafkaError) -> None:
        if error.fatal():
            raise KafkaException(error)
        log.warning("consume error: %s", error.str())

    def _enqueue(self, pending: _Pending, key: bytes | None) -> None:
        if key is None:
            self._spawn(self._send(pending))
            return
        lane_key = (pending.tp[0], pending.tp[1], key)
        lane = self._lanes.get(lane_key)
        if lane is None:
            self._lanes[lane_key] = deque()
            self._spawn(self._run_lane(lane_key, pending))
        else:
            lane.append(pending)

    async def _run_lane(self, lane_key: tuple[str, int, bytes], pending: _Pending) -> None:
        """Send one key's messages strictly one after another, in offset order."""
        lane = self._lanes[lane_key]
        try:
            while True:
                await self._send(pending)
                if not lane:
                    return
                pending = lane.popleft()
        finally:
            del self._lanes[lane_key]

    def _spawn(self, coroutine: Coroutine[object, object, None]) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        """A task that dies of a bug would leave its message in flight forever (its partition never committed past
        it): stop the worker instead, so the process exits non-zero and the message is redelivered after a restart."""
        self._tasks.discard(task)
        if task.cancelled() or task.exception() is None:
            return
        if self._crash is None:
            self._crash = task.exception()
            log.critical("a worker task failed; stopping", exc_info=self._crash)
            self._stop.set()

    # -- sending -----------------------------------------------------------------------------------------------

    async def _send(self, pending: _Pending) -> None:
        job = pending.plan
        assert isinstance(job, Job)
        route = job.route
        policy = self._config.retry
        started = time.monotonic()
        attempts = 0
        route_limit = self._route_limits.get(route)
        while True:
            if pending.partition.released:
                self._abandon(pending)
                return
            if not self._credentials_ok.is_set():
                await self._credentials_ok.wait()
                continue
            attempts += 1
            async with self._concurrency:
                if route_limit is None:
                    result = await send_job(self._client, job)
                else:
                    async with route_limit:
                        result = await send_job(self._client, job)
            self._metrics.http(route, result.status, result.elapsed_s)
            kind = result.kind
            if kind is OutcomeKind.SUCCESS:
                self._delivered(pending, route)
                return
            if kind is OutcomeKind.AUTH:
                attempts -= 1  # the message is fine; the credentials are not
                self._credentials_rejected(result)
                continue
            if kind is OutcomeKind.PERMANENT:
                self._dead_letter(pending, _http_dead_letter(result, route, attempts))
                return
            delay = policy.delay_s(attempts, result.retry_after_s, self._rng)
            if not policy.allows(attempts, time.monotonic() - started, delay):
                letter = _http_dead_letter(result, route, attempts, reason="retries_exhausted")
                self._dead_letter(pending, letter)
                return
            self._metrics.retry(route, result.reason)
            await asyncio.sleep(delay)

    def _credentials_rejected(self, result: ApiResult) -> None:
        if not self._credentials_ok.is_set():
            return
        log.error("the API rejected the credentials (HTTP %s): pausing until they work again", result.status)
        self._credentials_ok.clear()
        self._set_pause("credentials", True)
        self._spawn(self._probe_credentials())

    async def _probe_credentials(self) -> None:
        datamart = self._config.default_datamart_id or min(self._config.allowed_datamarts)
        while True:
            await asyncio.sleep(self._config.credentials_probe_interval_s)
            result = await self._client.probe_credentials(datamart)
            if result.kind in (OutcomeKind.SUCCESS, OutcomeKind.PERMANENT):
                log.info("the API accepts the credentials again: resuming")
                self._set_pause("credentials", False)
                self._credentials_ok.set()
                return

    # -- outcomes ----------------------------------------------------------------------------------------------

    def _delivered(self, pending: _Pending, route: str) -> None:
        self._summary.delivered[route] += 1
        self._metrics.delivered(route)
        timestamp_type, timestamp_ms = pending.message.timestamp()
        if timestamp_type != _TIMESTAMP_NOT_AVAILABLE:
            self._metrics.end_to_end(route, max(0.0, time.time() - timestamp_ms / 1000))
        self._guard.record(False)
        self._complete(pending)

    def _reject(self, pending: _Pending, rejection: Rejection) -> None:
        error = rejection.schema_error
        if rejection.reason == "schema_invalid":
            self._metrics.validation_failed(rejection.route or "unknown")
        letter = DeadLetter(
            reason=rejection.reason,
            message=rejection.message,
            stage=rejection.stage,
            route=rejection.route,
            schema_path=error.path if error else None,
            schema_rule=error.rule if error else None,
        )
        self._dead_letter(pending, letter)

    def _dead_letter(self, pending: _Pending, letter: DeadLetter) -> None:
        # Judged at decision time, not at the DLQ's ack: a batch of bad messages must not all spill before it trips.
        if self._guard.record(True) and "dlq_rate" not in self._pauses:
            self._trip_guard()
        message = pending.message
        original = message.headers() or []
        headers: Headers = list(original.items() if isinstance(original, dict) else original)
        headers.extend(context_headers(pending.tp[0], pending.tp[1], message.offset() or 0, letter))
        self._produce_dead_letter(pending, letter, headers)

    def _produce_dead_letter(self, pending: _Pending, letter: DeadLetter, headers: Headers) -> None:
        message = pending.message
        value = message.value()
        if any(name == TRUNCATED_HEADER for name, _ in headers):
            value = (value or b"")[:_TRUNCATED_VALUE_BYTES]
        timestamp_type, timestamp_ms = message.timestamp()
        try:
            self._producer.produce(
                self._config.dlq_topic,
                value=value,
                key=message.key(),
                headers=headers,
                timestamp=timestamp_ms if timestamp_type != _TIMESTAMP_NOT_AVAILABLE else 0,
                on_delivery=partial(self._on_dead_letter_ack, pending, letter, headers),
            )
        except (BufferError, KafkaException) as exc:
            if _too_large(exc):
                self._dead_letter_truncated(pending, letter, headers)
            else:
                self._dead_letter_failed(pending, letter, headers, str(exc))

    def _dead_letter_truncated(self, pending: _Pending, letter: DeadLetter, headers: Headers) -> None:
        """A value too large for the DLQ would wedge its partition forever: dead-letter its first bytes instead,
        with its full size in a header; the context headers still say where the whole value is in its source."""
        size = len(pending.message.value() or b"")
        log.warning("a %d-byte value is too large for the dead-letter topic: dead-lettering its first bytes", size)
        self._produce_dead_letter(pending, letter, [*headers, (TRUNCATED_HEADER, str(size).encode())])

    def _on_dead_letter_ack(
        self,
        pending: _Pending,
        letter: DeadLetter,
        headers: Headers,
        error: KafkaError | None,
        _record: Message,
    ) -> None:
        if error is not None:
            if error.code() == KafkaError.MSG_SIZE_TOO_LARGE and all(name != TRUNCATED_HEADER for name, _ in headers):
                self._dead_letter_truncated(pending, letter, headers)
            else:
                self._dead_letter_failed(pending, letter, headers, error.str())
            return
        self._metrics.dlq_write(True)
        if not self._dlq_backlog and "dlq_unavailable" in self._pauses:
            log.info("the dead-letter topic accepts writes again: resuming")
            self._set_pause("dlq_unavailable", False)
        route = letter.route or "unknown"
        self._summary.dead_lettered[letter.reason] += 1
        self._metrics.dead_lettered(route, letter.reason)
        self._complete(pending)

    def _dead_letter_failed(self, pending: _Pending, letter: DeadLetter, headers: Headers, why: str) -> None:
        """Keep the record and its offset open; pause until the DLQ takes writes again."""
        self._metrics.dlq_write(False)
        if "dlq_unavailable" not in self._pauses:
            log.error("cannot write to the dead-letter topic (%s): pausing, nothing is committed past it", why)
            self._set_pause("dlq_unavailable", True)
        self._dlq_backlog.append((pending, letter, headers))
        if not self._dlq_retrying:
            self._dlq_retrying = True
            self._spawn(self._retry_dead_letters())

    async def _retry_dead_letters(self) -> None:
        """One task re-sends the backlog with a doubling delay; failures during a round join the next round."""
        delay = _DLQ_RETRY_DELAY_S[0]
        try:
            while self._dlq_backlog:
                await asyncio.sleep(delay)
                delay = min(delay * 2, _DLQ_RETRY_DELAY_S[1])
                batch, self._dlq_backlog = self._dlq_backlog, deque()
                for pending, letter, headers in batch:
                    if pending.partition.released:
                        self._abandon(pending)
                    else:
                        self._produce_dead_letter(pending, letter, headers)
        finally:
            self._dlq_retrying = False

    def _trip_guard(self) -> None:
        cooldown = self._config.dlq_guard.cooldown_s
        log.error("dead-letter rate over the guard's limit: pausing for %.0f s", cooldown)
        self._set_pause("dlq_rate", True)
        if cooldown > 0:
            asyncio.get_running_loop().call_later(cooldown, self._end_guard_cooldown)

    def _end_guard_cooldown(self) -> None:
        self._guard.reset()
        self._set_pause("dlq_rate", False)

    def _complete(self, pending: _Pending) -> None:
        self._in_flight -= 1
        partition = pending.partition
        if not partition.released and partition.offsets.complete(pending.message.offset() or 0) is not None:
            self._dirty.add(pending.tp)

    def _abandon(self, pending: _Pending) -> None:
        """The partition goes to another member, which processes the message again; here it only leaves the window."""
        self._in_flight -= 1

    def _store_offsets(self) -> None:
        if not self._dirty:
            return
        offsets = []
        for tp in self._dirty:
            partition = self._partitions.get(tp)
            if partition is not None and partition.offsets.committable is not None:
                partition.stored = partition.offsets.committable
                offsets.append(TopicPartition(tp[0], tp[1], partition.stored))
        self._dirty.clear()
        if offsets:
            try:
                self._consumer.store_offsets(offsets=offsets)
            except KafkaException as exc:
                log.warning("storing offsets failed (a rebalance is likely under way): %s", exc)
        self._metrics.set_in_flight(self._in_flight)

    # -- pausing -------------------------------------------------------------------------------------------------

    def _set_pause(self, reason: str, paused: bool) -> None:
        if paused:
            self._pauses.add(reason)
        else:
            self._pauses.discard(reason)
        self._halted = not self._pauses.isdisjoint(HALTING_PAUSES)
        self._metrics.set_paused(reason, paused)
        self._health.set_paused(reason, paused)

    def _commit_if_behind(self) -> None:
        """Ask for a commit (asynchronous) once a quarter of the window is finished but uncommitted, so the window
        empties as work finishes; auto-commit alone would let a second's worth of throughput pile up."""
        finished = sum(partition.finished_uncommitted for partition in self._partitions.values())
        now = time.monotonic()
        if finished >= max(1, self._config.max_in_flight // 4) and now - self._last_commit_request >= 0.05:
            self._last_commit_request = now
            try:
                self._consumer.commit(asynchronous=True)
            except KafkaException as exc:
                log.debug("commit request not sent: %s", exc)

    def _apply_pauses(self) -> None:
        """Backpressure counts every message a crash would repeat: taken and not yet committed."""
        window = self._config.max_in_flight
        self._commit_if_behind()
        uncommitted = sum(partition.uncommitted for partition in self._partitions.values())
        self._load = load = max(self._in_flight, uncommitted)
        if load >= window and "backpressure" not in self._pauses:
            self._set_pause("backpressure", True)
        elif load <= window // 2 and "backpressure" in self._pauses:
            self._set_pause("backpressure", False)
        want_paused = bool(self._pauses)
        # An assignment change re-applies the state to every partition: librdkafka keeps a partition's pause flag
        # across a revoke, so one handed back after a pause ended would otherwise never be fetched again.
        if want_paused == self._partitions_paused and not self._assignment_changed:
            return
        self._assignment_changed = False
        try:
            assignment = self._consumer.assignment()
            if want_paused:
                self._consumer.pause(assignment)
            else:
                self._consumer.resume(assignment)
        except KafkaException as exc:
            log.warning("pause/resume failed: %s", exc)
            return
        self._partitions_paused = want_paused

    # -- rebalancing (called on the Kafka thread, inside consume()) -----------------------------------------------

    def _on_assign(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self._partitions[(tp.topic, tp.partition)] = _Partition()
        self._metrics.rebalance("assign", [(tp.topic, tp.partition) for tp in partitions])
        self._health.set_joined(True)
        self._assignment_changed = True
        log.info("assigned %s", _describe(partitions))

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._metrics.rebalance("revoke", [(tp.topic, tp.partition) for tp in partitions])
        log.info("revoked %s: finishing their in-flight messages, then committing", _describe(partitions))
        offsets = self._call_on_loop(self._release(partitions, drain=True), self._config.drain_timeout_s + 5)
        if offsets:
            try:
                # Stored as well as committed: librdkafka's auto-commit on unassign would otherwise write back the
                # older stored offsets over this commit.
                consumer.store_offsets(offsets=offsets)
                committed = consumer.commit(offsets=offsets, asynchronous=False) or []
            except KafkaException as exc:
                log.warning("commit on revoke failed: %s", exc)
                return
            for tp in committed:
                if tp.error is None:
                    self._metrics.committed(tp.topic, tp.partition, tp.offset)
                else:
                    log.warning("commit on revoke failed for %s[%d]: %s", tp.topic, tp.partition, tp.error)

    def _on_lost(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._metrics.rebalance("lost", [(tp.topic, tp.partition) for tp in partitions])
        log.warning("lost %s: their offsets will not be committed", _describe(partitions))
        self._call_on_loop(self._release(partitions, drain=False), 5.0)

    def _call_on_loop(
        self, coroutine: Coroutine[object, object, list[TopicPartition]], timeout_s: float
    ) -> list[TopicPartition] | None:
        assert self._loop is not None
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        try:
            return future.result(timeout_s)
        except FutureTimeout:
            future.cancel()
            log.error("the event loop did not release partitions in %.0f s", timeout_s)
            return None

    async def _release(self, partitions: list[TopicPartition], *, drain: bool) -> list[TopicPartition]:
        """Hand partitions over and return the offsets to commit.

        Nothing new is taken from them (their messages fetched before the revoke are skipped), what was taken is
        finished within the drain timeout, so a rebalance causes no duplicate; what the timeout cuts off is left to
        the next owner, which reads it again from the committed offset.
        """
        owned = {
            key: partition
            for key in ((tp.topic, tp.partition) for tp in partitions)
            if (partition := self._partitions.pop(key, None)) is not None
        }
        if drain and not self._drained:
            deadline = time.monotonic() + self._config.drain_timeout_s
            while time.monotonic() < deadline and any(p.offsets.in_flight for p in owned.values()):
                await asyncio.sleep(0.01)
        committable = []
        for (topic, partition_id), partition in owned.items():
            partition.released = True
            self._dirty.discard((topic, partition_id))
            if drain and partition.offsets.committable is not None:
                committable.append(TopicPartition(topic, partition_id, partition.offsets.committable))
        return committable

    def on_commit(self, error: KafkaError | None, partitions: list[TopicPartition]) -> None:
        """librdkafka's commit callback (Kafka thread): note what the group coordinator confirmed."""
        if error is not None:
            if error.code() != KafkaError._NO_OFFSET:
                log.warning("offset commit failed: %s", error.str())
            return
        for tp in partitions:
            if tp.error is not None or tp.offset < 0:
                continue
            partition = self._partitions.get((tp.topic, tp.partition))
            if partition is not None:
                partition.committed = max(partition.committed or 0, tp.offset)
            self._metrics.committed(tp.topic, tp.partition, tp.offset)

    # -- background ------------------------------------------------------------------------------------------

    async def _poll_producer(self) -> None:
        """Serve the DLQ producer's delivery callbacks on the loop (they complete messages)."""
        while True:
            self._producer.poll(0)
            await asyncio.sleep(0.01)


async def send_job(client: MicsClient, job: Job) -> ApiResult:
    """Make the one API call a planned message stands for."""
    if job.route == "activity":
        return await client.post_activity(job.datamart_id, job.body)
    assert job.selector is not None
    if job.route == "profile":
        assert job.compartment_id is not None
        assert job.user_account_id is not None
        return await client.put_profile(
            job.datamart_id, job.selector, job.compartment_id, job.user_account_id, job.body
        )
    assert job.processing_id is not None
    return await client.put_choice(job.datamart_id, job.selector, job.processing_id, job.body)


def _http_dead_letter(result: ApiResult, route: str, attempts: int, reason: str | None = None) -> DeadLetter:
    return DeadLetter(
        reason=reason or (f"http_{result.status}" if result.status is not None else result.reason),
        message=result.error_message or result.reason,
        stage="send",
        route=route,
        http_status=result.status,
        attempts=attempts,
        api_error_code=result.error_code,
        api_error_id=result.error_id,
    )


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


def _too_large(exc: BufferError | KafkaException) -> bool:
    return isinstance(exc, KafkaException) and exc.args[0].code() == KafkaError.MSG_SIZE_TOO_LARGE


def _describe(partitions: list[TopicPartition]) -> str:
    return ", ".join(f"{tp.topic}[{tp.partition}]" for tp in partitions) or "nothing"


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with suppress(asyncio.CancelledError):
        await task
