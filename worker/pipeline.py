"""The pipeline: it runs, polls, dispatches and drains; each guarantee lives in the part named below.

Threads and loops. One asyncio loop owns all state. librdkafka's blocking `consume()` runs on a single Kafka thread
(so HTTP work never delays a poll and the group never evicts the worker); its callbacks cross to the loop through
`rebalance.RebalanceBridge`, the only cross-thread code.

A message's fate is one of: delivered (API 2xx), dead-lettered with a reason (DLQ write acknowledged), or still in
flight — and then its offset, and every later one of its partition, is not committed:
- what may be committed, and what the window holds: `assignment` (over `offsets`); outcomes: `outcomes`;
- per-key order and task supervision: `lanes`;
- retries, the retry budget and the credentials gate: `sender`, `credentials`;
- flow control towards the API (adaptive concurrency, shared backoff, circuit, halts, rate limits): `traffic`;
- dead letters (produce, acknowledgement, reduced form, backlog): `dlq_writer`, record format `dlq_format`;
- holds ("stop, don't spill") and per-partition backpressure: `flow`;
- a trace per message (off by default: `NO_TRACING` then, which builds nothing): `tracing`.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial

from worker.assignment import Assignment, Pending, TopicPartitionKey, record_size
from worker.conditions import Conditions
from worker.config import WorkerConfig
from worker.credentials import CredentialsGate, probe_with_fresh_token
from worker.flow import FlowControl, Pauser, Window
from worker.framed_plan import AwaitingSchema, MessagePlanner
from worker.health import DEFAULT_LIVENESS_TTL_S, Health
from worker.kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
    consume_available,
    consumer_settings,
    subscription,
)
from worker.lanes import Lanes
from worker.logs import RepeatFilter
from worker.metrics import WorkerMetrics
from worker.mics.client import MicsClient
from worker.outcomes import Outcomes, RunSummary
from worker.rebalance import RebalanceBridge
from worker.registry import SchemaRegistry
from worker.routing import Job, Rejection, TopicRouter, plan_message
from worker.sender import Finish, Sender
from worker.tracing import NO_TRACING, Tracing
from worker.traffic.control import Traffic
from worker.validation import Validators
from worker.waits import first_of
from worker.watch import StateWatch

__all__ = ["IDLE_POLL_TIMEOUT_S", "Pipeline", "RunSummary", "WorkerCrashed"]

log = logging.getLogger(__name__)
consume_log = logging.getLogger("worker.consume")
consume_log.addFilter(RepeatFilter(interval_s=30.0))

IDLE_POLL_TIMEOUT_S = 0.1
"""How long a poll waits for a message when nothing is paused (see `Pauser.poll_timeout_s`)."""
_PRODUCER_POLL_S = 0.01
_DRAIN_TICK_S = 0.01
_FLUSH_TIMEOUT_S = 5.0
REVOKE_DRAIN_CAP_S = DEFAULT_LIVENESS_TTL_S / 2
"""A revoke drains at most this long (and at most DRAIN_TIMEOUT_S): the Kafka thread waits meanwhile."""


class WorkerCrashed(RuntimeError):
    """A bug or a fatal client error stopped the worker; nothing was lost (unfinished messages stay uncommitted)."""


class Pipeline:
    """Runs one consumer-group member until `request_stop()`."""

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
        tracing: Tracing = NO_TRACING,
        registry: SchemaRegistry | None = None,
    ) -> None:
        self._config = config
        self._tracing = tracing
        self._consumer = consumer
        self._producer = producer
        self._client = client
        self._metrics = metrics
        self._health = health
        self._router = TopicRouter(config.routes)
        self._assignment = Assignment()
        self._conditions = Conditions(metrics.conditions, health)
        self._flow = FlowControl(metrics, health, self._conditions)
        self._window = Window(config.max_in_flight, config.max_in_flight_bytes, config.consume_batch_size)
        self._outcomes = Outcomes(
            producer=producer,
            dlq_topic=config.dlq_topic,
            guard=config.dlq_guard,
            assignment=self._assignment,
            flow=self._flow,
            metrics=metrics,
            on_fatal=self.fatal,
        )
        self._writer = self._outcomes.writer
        self._lanes = Lanes(self._process, self._outcomes.abandon, self._crashed)
        self._gate = CredentialsGate(
            self._flow, partial(probe_with_fresh_token, client), config.credentials_probe_interval_s, self._lanes.spawn
        )
        rng = rng or random.Random()
        self._traffic = Traffic(
            config.traffic,
            max_concurrency=config.max_concurrency,
            route_concurrency=config.route_concurrency,
            backoff_base_s=config.retry.base_delay_s,
            backoff_max_s=config.retry.max_delay_s,
            metrics=metrics.traffic,
            describe=client.endpoint,
            on_halt=self._flow.set_route_halted,
            rng=rng,
            conditions=self._conditions,
        )
        self._watch = StateWatch(
            self._conditions,
            metrics,
            self._traffic.routes,
            bootstrap_servers=config.bootstrap_servers,
            group_id=config.group_id,
            session_timeout_ms=consumer_settings(config).get("session.timeout.ms"),
        )
        metrics.traffic.prepare_halts(self._traffic.routes, config.allowed_datamarts)
        self._sender = Sender(
            client, config.retry, self._gate, metrics, self._traffic, max_concurrency=config.max_concurrency, rng=rng
        )
        self._pauser = Pauser(consumer, self._window, self._flow)
        self._stop = asyncio.Event()
        self._crash: BaseException | None = None
        self._drained = False  # after the shutdown drain, a revoke on close() must not wait a second time
        self._kafka_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kafka")
        self._planner = MessagePlanner(
            partial(
                plan_message,
                validators=validators,
                default_datamart_id=config.default_datamart_id,
                allowed_datamarts=config.allowed_datamarts,
                max_message_bytes=config.max_message_bytes,
            ),
            config.framing,
            registry,
            max_message_bytes=config.max_message_bytes,
        )

    # -- life cycle ------------------------------------------------------------------------------------------

    def request_stop(self) -> None:
        """Begin a graceful stop: no more polling, drain in-flight work, commit, leave the group."""
        self._stop.set()

    @property
    def summary(self) -> RunSummary:
        return self._outcomes.summary

    @property
    def in_flight(self) -> int:
        return self._assignment.in_flight

    def bridge(self) -> RebalanceBridge:
        """The callbacks to give librdkafka (rebalance, commit, error), bound to the running loop."""
        drain_s = min(self._config.drain_timeout_s, REVOKE_DRAIN_CAP_S)
        return RebalanceBridge(asyncio.get_running_loop(), self, self._metrics, drain_s)

    async def run(self, bridge: RebalanceBridge | None = None) -> RunSummary:
        """Consume until `request_stop()` (or a crash), then drain within the configured timeout, commit and close."""
        bridge = bridge or self.bridge()
        self._consumer.subscribe(
            subscription(self._config), on_assign=bridge.on_assign, on_revoke=bridge.on_revoke, on_lost=bridge.on_lost
        )
        producer_poll = asyncio.create_task(self._poll_producer(), name="dlq-producer-poll")
        dlq_check = asyncio.create_task(
            self._watch.watch_dlq_topic(
                self._producer, self._config.dlq_topic, lambda: self._flow.held("dlq_unavailable")
            ),
            name="dlq-topic-check",
        )
        try:
            await self._poll_loop()
        except Exception as exc:  # a fatal consume error or a bug: drain, close, exit non-zero
            self._crashed(exc)
        await self._drain(self._config.drain_timeout_s)
        await self._close()
        producer_poll.cancel()
        dlq_check.cancel()
        if self._crash is not None:
            raise WorkerCrashed("the worker stopped on an error; unfinished messages were left uncommitted") from (
                self._crash
            )
        return self._outcomes.summary

    def _crashed(self, error: BaseException) -> None:
        if self._crash is None:
            self._crash = error
            log.critical("stopping: %s", error, exc_info=error)
        self._stop.set()

    def fatal(self, error: KafkaError) -> None:
        """A fatal Kafka client error: the client cannot go on, so the worker exits non-zero and is restarted."""
        self._crashed(KafkaException(error))

    def client_error(self, error: KafkaError) -> None:
        """A non-fatal Kafka client error: the watch turns "all brokers down" into a condition."""
        self._watch.client_error(error)

    async def _drain(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        self._assignment.start_draining()
        self._traffic.recheck()
        self._writer.drop_drained()
        while self._assignment.in_flight and time.monotonic() < deadline:
            self._health.heartbeat()
            self._store_offsets()
            await asyncio.sleep(_DRAIN_TICK_S)
        if self._assignment.in_flight:
            log.warning("drain timed out with %d messages in flight; they stay uncommitted", self._assignment.in_flight)
        await self._lanes.cancel_all()
        self._writer.cancel()
        self._store_offsets()
        self._drained = True

    async def _close(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._kafka_thread, self._commit_and_close)
        self._kafka_thread.shutdown(wait=True)
        remaining = await loop.run_in_executor(None, self._producer.flush, _FLUSH_TIMEOUT_S)
        if remaining:
            log.error("%d dead letters were not acknowledged at exit; their offsets were not committed", remaining)
        await self._client.aclose()
        self._planner.close()
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
        while not self._stop.is_set():
            self._health.heartbeat()
            partitions = self._assignment.partitions()
            room = self._pauser.room(partitions)
            timeout_s = self._pauser.poll_timeout_s(partitions, IDLE_POLL_TIMEOUT_S, halted=self._flow.halted)
            messages = await loop.run_in_executor(
                self._kafka_thread, consume_available, self._consumer, room, timeout_s
            )
            if messages:
                self._dispatch(messages)
            self._store_offsets()
            self._apply_pauses()
            self._watch.tick()

    def _dispatch(self, messages: list[Message]) -> None:
        consumed: dict[str, int] = {}  # counted per topic once per batch: one metric increment, not one a message
        try:
            self._dispatch_each(messages, consumed)
        finally:
            for topic, count in consumed.items():
                self._metrics.consumed(topic, count)

    def _dispatch_each(self, messages: list[Message], consumed: dict[str, int]) -> None:
        largest = 0  # the largest record taken, in the window's bytes: what the next poll's room is counted in
        try:
            for message in messages:
                error = message.error()
                if error is not None:
                    self._consume_error(error)
                    continue
                topic, partition_id, offset = message.topic(), message.partition(), message.offset()
                assert topic is not None
                assert partition_id is not None
                assert offset is not None
                plan = self._planner.plan(self._router.mode_for(topic), topic, message)
                size = record_size(message)
                if isinstance(plan, Job) and plan.body is not message.value():
                    size += len(plan.body)  # the envelope's body, re-encoded: a second copy held until sent
                partition = self._assignment.take((topic, partition_id), offset, size)
                if partition is None:
                    continue  # fetched before a revoke, or a redelivery of a message already taken
                largest = max(largest, size)
                pending = Pending(message, offset, partition, size)
                pending.plan = plan
                if self._tracing.enabled:
                    pending.trace = self._tracing.begin(message, topic, partition_id, offset)
                self._outcomes.summary.consumed += 1
                consumed[topic] = consumed.get(topic, 0) + 1
                if isinstance(plan, Rejection) and not self._flow.halted:
                    self._outcomes.reject(pending, plan)
                else:
                    self._lanes.submit(pending, message.key() if isinstance(plan, Job | AwaitingSchema) else None)
        finally:
            self._pauser.record_sizes.polled(largest)
        self._metrics.set_in_flight(self._assignment.in_flight, self._assignment.held_bytes)

    def _consume_error(self, error: KafkaError) -> None:
        if error.fatal():
            raise KafkaException(error)
        self._metrics.consume_error(error.name())
        consume_log.warning("consume error (nothing taken): %s", error.str())

    async def _process(self, pending: Pending) -> bool:
        """One message to its outcome; False when it was given up (its lane gives up the rest)."""
        trace = pending.trace
        token = trace.activate()
        try:
            return await self._process_traced(pending)
        except asyncio.CancelledError:  # the drain ran out: the message stays uncommitted, its span must still end
            trace.finish("abandoned")
            raise
        finally:
            trace.deactivate(token)

    async def _process_traced(self, pending: Pending) -> bool:
        partition, trace = pending.partition, pending.trace
        while self._flow.halted:  # a hold may end and start again before this task runs: look again each time
            if partition.draining.is_set():
                self._outcomes.abandon(pending)
                return False
            started = time.monotonic() if trace.recording else 0.0
            await first_of(self._flow.running, partition.draining)
            trace.waited("hold", started)
        plan = pending.plan
        if isinstance(plan, AwaitingSchema):
            resolved = await self._planner.plan_framed(plan, partition.draining)
            if resolved is None:  # the partition drains: its next owner reads the message again
                self._outcomes.abandon(pending)
                return False
            plan = pending.plan = resolved
        if isinstance(plan, Rejection):
            self._outcomes.reject(pending, plan)
            return True
        assert plan is not None
        outcome = await self._sender.send(plan, partition, trace)
        if outcome is Finish.DELIVERED:
            self._outcomes.delivered(pending, plan.route)
            return True
        if outcome is Finish.ABANDONED:
            self._outcomes.abandon(pending)
            return False
        self._outcomes.dead_letter(pending, outcome)
        return True

    # -- offsets and pausing -------------------------------------------------------------------------------------

    def _store_offsets(self) -> None:
        moved = self._assignment.to_store()
        if moved:
            try:
                self._consumer.store_offsets(offsets=[TopicPartition(t, p, offset) for (t, p), offset in moved])
            except KafkaException as exc:
                log.warning("storing offsets failed (a rebalance is likely under way): %s", exc)
        self._metrics.set_in_flight(self._assignment.in_flight, self._assignment.held_bytes)

    def _apply_pauses(self) -> None:
        self._pauser.apply(self._assignment.partitions(), halted=self._flow.halted)

    # -- the loop side of rebalances (called through the bridge) -----------------------------------------------

    def assigned(self, keys: list[TopicPartitionKey]) -> None:
        self._assignment.assign(keys)
        self._pauser.assigned(partition for key in keys if (partition := self._assignment.get(key)) is not None)
        self._health.set_joined(True)
        self._watch.assigned()

    async def released(self, keys: list[TopicPartitionKey], *, drain: bool) -> list[tuple[TopicPartitionKey, int]]:
        """Hand partitions over: nothing new is taken from them, what was taken finishes within the revoke's drain
        budget (retries asleep in backoff are woken and given up), and their offsets are returned for the commit."""
        released = self._assignment.release(keys)
        self._traffic.recheck()
        self._writer.drop_drained()
        if drain and not self._drained:
            deadline = time.monotonic() + min(self._config.drain_timeout_s, REVOKE_DRAIN_CAP_S)
            while time.monotonic() < deadline and any(partition.in_flight for partition in released):
                self._health.heartbeat()
                await asyncio.sleep(_DRAIN_TICK_S)
        offsets = []
        for partition in released:
            partition.handed_over = True
            committable = partition.offsets.committable
            if drain and committable is not None:
                offsets.append((partition.key, committable))
        return offsets

    def commit_confirmed(self, key: TopicPartitionKey, offset: int) -> None:
        self._assignment.confirm_commit(key, offset)

    # -- background ------------------------------------------------------------------------------------------

    async def _poll_producer(self) -> None:
        """Serve the DLQ producer's delivery callbacks on the loop (they complete messages)."""
        while True:
            self._writer.poll()
            await asyncio.sleep(_PRODUCER_POLL_S)
