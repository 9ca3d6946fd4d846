"""The sender: one planned message to its final outcome — delivered, a dead letter, or given up — never a callback.

The retry budget (`RetryPolicy`) counts the time from the first attempt, waits for a request slot and backoff
sleeps included, minus the time the message spent held at the credentials gate: a pause is never a reason to give
up on a message. 401/403 answers are the credentials' fault, not the message's: they hold the datamart and do not
count as attempts (but see `credentials.MAX_REFUSALS`).

When the message's partition starts draining (revoke, loss, shutdown), a sleeping retry or a gate wait ends at
once and the message is given up (`ABANDONED`: it stays uncommitted and is read again by the partition's next
owner); no new retry starts. A request already on the wire is allowed to finish.
"""

from __future__ import annotations

import asyncio
import enum
import random
import time
from collections.abc import Callable, Mapping

from worker.assignment import Partition
from worker.credentials import MAX_REFUSALS, CredentialsGate
from worker.deadletter import DeadLetter
from worker.metrics import WorkerMetrics
from worker.mics.client import MicsClient
from worker.mics.errors import ApiResult, OutcomeKind
from worker.retry import RetryPolicy
from worker.routing import Job, Rejection
from worker.waits import sleep_unless

__all__ = ["Finish", "Outcome", "Sender", "http_dead_letter", "rejection_dead_letter", "send_job"]


class Finish(enum.Enum):
    """A final outcome that is not a dead letter."""

    DELIVERED = "delivered"
    ABANDONED = "abandoned"


Outcome = Finish | DeadLetter


class Sender:
    """Sends jobs with retries, shared concurrency limits and the credentials gate."""

    def __init__(
        self,
        client: MicsClient,
        policy: RetryPolicy,
        gate: CredentialsGate,
        metrics: WorkerMetrics,
        *,
        max_concurrency: int,
        route_concurrency: Mapping[str, int],
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._policy = policy
        self._gate = gate
        self._metrics = metrics
        self._rng = rng or random.Random()
        self._clock = clock
        self._concurrency = asyncio.Semaphore(max_concurrency)
        self._route_limits = {route: asyncio.Semaphore(n) for route, n in route_concurrency.items()}

    async def send(self, job: Job, partition: Partition) -> Outcome:  # noqa: PLR0911 - one return per fate
        """Send until the job is delivered, dead-lettered or given up (its partition was handed over)."""
        route, datamart, policy = job.route, job.datamart_id, self._policy
        draining = partition.draining
        attempts = refusals = 0
        started: float | None = None
        held_s = 0.0
        while True:
            if partition.handed_over:
                return Finish.ABANDONED
            if self._gate.is_held(datamart):
                held_from = self._clock()
                accepted = await self._gate.wait(datamart, draining)
                held_s += self._clock() - held_from
                if not accepted:
                    return Finish.ABANDONED
            if started is None:
                started = self._clock()
            result = await self._attempt(job)
            kind = result.kind
            if kind is OutcomeKind.SUCCESS:
                return Finish.DELIVERED
            if kind is OutcomeKind.AUTH:
                refusals += 1
                if refusals > MAX_REFUSALS:
                    return http_dead_letter(result, route, attempts + refusals)
                self._gate.hold(datamart, result)
                continue
            attempts += 1
            if kind is OutcomeKind.PERMANENT:
                return http_dead_letter(result, route, attempts)
            delay = policy.delay_s(attempts, result.retry_after_s, self._rng)
            active_s = self._clock() - started - held_s
            if not policy.allows(attempts, active_s, delay):
                return http_dead_letter(result, route, attempts, reason="retries_exhausted")
            if draining.is_set():
                return Finish.ABANDONED
            self._metrics.retry(route, result.reason)
            if not await sleep_unless(draining, delay):
                return Finish.ABANDONED

    async def _attempt(self, job: Job) -> ApiResult:
        route_limit = self._route_limits.get(job.route)
        async with self._concurrency:
            if route_limit is None:
                result = await send_job(self._client, job)
            else:
                async with route_limit:
                    result = await send_job(self._client, job)
        self._metrics.http(job.route, result.status, result.elapsed_s)
        return result


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
