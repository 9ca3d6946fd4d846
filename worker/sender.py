"""The sender: one planned message to its final outcome — delivered, a dead letter, or given up — never a callback.

The retry budget (`RetryPolicy`) counts exactly two things: the time the message's own requests took, and its own
backoff sleeps between attempts. Every wait for the route or the datamart is outside it: the credentials gate, the
route's shared backoff and circuit, a halt, the static rate limits and a free slot under the concurrency limit — a
pause is never a reason to give up on a message. 401/403 answers are the credentials' fault, not the message's: they
hold the datamart and do not count as attempts (but see `credentials.MAX_REFUSALS`); nor do a failed circuit probe
(an outage holds the stream instead of spilling it) and a halt answer (the configuration is wrong, not the message).
Before a 401/403 holds the datamart, its token file is re-read: a changed token sends the message again at once
(only a changed file can do that, so it cannot loop).
`Retry-After` is obeyed by the route's gate (`traffic.gate`), not by the message alone.

When the message's partition starts draining (revoke, loss, shutdown), a sleeping retry or any wait ends at once and
the message is given up (`ABANDONED`: it stays uncommitted and is read again by the partition's next owner); no new
retry starts. A request already on the wire is allowed to finish.
"""

from __future__ import annotations

import asyncio
import enum
import random
import time
from collections.abc import Mapping

from worker.assignment import Partition
from worker.credentials import MAX_REFUSALS, CredentialsGate
from worker.dlq_format.letter import DeadLetter
from worker.metrics import WorkerMetrics
from worker.mics.client import MicsClient
from worker.mics.errors import ApiResult, OutcomeKind
from worker.retry import RetryPolicy
from worker.routing import Job, Rejection
from worker.tracing import NO_TRACE, AttemptTrace, MessageTrace
from worker.traffic.control import RouteTraffic, Traffic
from worker.waits import sleep_unless

__all__ = ["Finish", "Outcome", "Sender", "http_dead_letter", "rejection_dead_letter", "send_job"]


class Finish(enum.Enum):
    """A final outcome that is not a dead letter."""

    DELIVERED = "delivered"
    ABANDONED = "abandoned"


Outcome = Finish | DeadLetter


class Sender:
    """Sends jobs with retries, through the routes' flow control (`traffic`) and the credentials gate."""

    def __init__(
        self,
        client: MicsClient,
        policy: RetryPolicy,
        gate: CredentialsGate,
        metrics: WorkerMetrics,
        traffic: Traffic,
        *,
        max_concurrency: int,
        rng: random.Random | None = None,
    ) -> None:
        self._client = client
        self._policy = policy
        self._gate = gate
        self._metrics = metrics
        self._traffic = traffic
        self._rng = rng or random.Random()
        self._concurrency = asyncio.Semaphore(max_concurrency)  # all routes together: the connection pool's size
        self._never = asyncio.Event()  # pacing waits end with the drain's deadline (task cancellation), not its start

    async def send(  # noqa: PLR0911, PLR0912 - one return per fate
        self, job: Job, partition: Partition, trace: MessageTrace = NO_TRACE
    ) -> Outcome:
        """Send until the job is delivered, dead-lettered or given up (its partition was handed over)."""
        route, datamart, policy = job.route, job.datamart_id, self._policy
        lane = self._traffic.routes[route]
        draining = partition.draining
        attempts = refusals = sent = 0
        budget_s = 0.0  # the message's own request time and backoff sleeps
        while True:
            if partition.handed_over:
                return Finish.ABANDONED
            if self._gate.is_held(datamart):
                started = time.monotonic() if trace.recording else 0.0
                if not await self._gate.wait(datamart, draining):
                    return Finish.ABANDONED
                trace.waited("credentials", started)
            started = time.monotonic() if trace.recording else 0.0
            ticket = await self._traffic.admit(lane, datamart, draining, self._never)
            if ticket is None:
                return Finish.ABANDONED
            trace.waited("flow_control", started)
            if _handed_over(partition):  # the revoke's drain ended while it waited for a slot: the next owner has it
                self._traffic.abandon(lane, datamart, ticket)
                return Finish.ABANDONED
            result = await self._request(job, lane, datamart, ticket, trace.attempt(route, sent))
            sent += 1
            counted = self._traffic.record(lane, datamart, ticket, result)
            kind = result.kind
            if kind is OutcomeKind.SUCCESS:
                return Finish.DELIVERED
            if kind is OutcomeKind.AUTH:
                if self._client.tokens.refresh(datamart):  # rotated, not revoked: go again with the new token
                    continue
                refusals += 1
                if refusals > MAX_REFUSALS:
                    return http_dead_letter(result, route, attempts + refusals)
                self._gate.hold(datamart, result)
                continue
            if not counted:  # a failed probe or a halt answer: the route's wait comes next, not a retry
                continue
            attempts += 1
            if kind is OutcomeKind.PERMANENT:
                return http_dead_letter(result, route, attempts)
            delay = policy.delay_s(attempts, None, self._rng)
            budget_s += result.elapsed_s
            if not policy.allows(attempts, budget_s, delay):
                return http_dead_letter(result, route, attempts, reason="retries_exhausted")
            if draining.is_set():
                return Finish.ABANDONED
            self._metrics.retry(route, result.reason)
            trace.retry_scheduled(attempts, delay, result.reason)
            if not await sleep_unless(draining, delay):
                return Finish.ABANDONED
            budget_s += delay

    async def _request(
        self, job: Job, lane: RouteTraffic, datamart: str, ticket: int, attempt: AttemptTrace
    ) -> ApiResult:
        """The request itself, under the global cap; an admitted request given up here returns its slot."""
        try:
            async with self._concurrency:
                result = await send_job(self._client, job, attempt.request_headers)
        except BaseException:
            self._traffic.abandon(lane, datamart, ticket)
            attempt.end(_CANCELLED)
            raise
        attempt.end(result)
        self._metrics.http(job.route, result.status, result.elapsed_s)
        return result


_CANCELLED = ApiResult(OutcomeKind.RETRYABLE, None, "cancelled", None, None, None, None, None, 0.0)
"""What an attempt span records when its request was cancelled (the drain ran out) before an answer."""


def _handed_over(partition: Partition) -> bool:
    """Read afresh after an await (a plain attribute test would stay narrowed by the one before it)."""
    return partition.handed_over


async def send_job(client: MicsClient, job: Job, trace_headers: Mapping[str, str] | None = None) -> ApiResult:
    """Make the one API call a planned message stands for (`trace_headers`: propagated trace context, if any)."""
    if job.route == "activity":
        return await client.post_activity(job.datamart_id, job.body, trace_headers=trace_headers)
    assert job.selector is not None
    if job.route == "profile":
        assert job.compartment_id is not None
        assert job.user_account_id is not None
        return await client.put_profile(
            job.datamart_id,
            job.selector,
            job.compartment_id,
            job.user_account_id,
            job.body,
            trace_headers=trace_headers,
        )
    assert job.processing_id is not None
    return await client.put_choice(
        job.datamart_id, job.selector, job.processing_id, job.body, trace_headers=trace_headers
    )


def http_dead_letter(result: ApiResult, route: str, attempts: int, reason: str | None = None) -> DeadLetter:
    """The dead letter for a request the API (or the client) refused for good."""
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


def rejection_dead_letter(rejection: Rejection) -> DeadLetter:
    """The dead letter for a message that could not be planned (decode, validate, route)."""
    error = rejection.schema_error
    return DeadLetter(
        reason=rejection.reason,
        message=rejection.message,
        stage=rejection.stage,
        route=rejection.route,
        schema_path=error.path if error else None,
        schema_rule=error.rule if error else None,
        schema_errors=rejection.schema_errors.summary() if rejection.schema_errors else None,
    )
