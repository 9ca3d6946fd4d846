"""The credentials gate in-process: judged per datamart, bounded per message, never counted against retries."""

from __future__ import annotations

from tests.support.core_harness import NOT_FOUND, OK, TOPIC, CoreHarness, FakeApi, Request, envelope_activity
from worker.credentials import MAX_REFUSALS
from worker.mics.transport import RawResponse
from worker.retry import RetryPolicy

FORBIDDEN = RawResponse(403, {}, b'{"status":"error","error":"Forbidden"}')
UNAUTHORIZED = RawResponse(401, {}, b'{"status":"error","error":"Unauthorized"}')
UNAVAILABLE = RawResponse(503, {}, b'{"status":"error","error":"Service Unavailable"}')


class TestPerDatamart:
    async def test_a_revoked_datamart_holds_only_its_messages(self) -> None:
        """Datamart 2000's token is refused: its message waits (not dead-lettered), 1509 keeps flowing, readiness
        and the metric name 2000; once 2000's credentials work again its message is delivered."""
        revoked = {"2000"}

        def answer(request: Request) -> RawResponse:
            if request.datamart in revoked:
                return UNAUTHORIZED
            return NOT_FOUND if request.is_probe else OK

        api = FakeApi(answer)
        async with CoreHarness(api=api) as core:
            core.assign(0, 1)
            core.consumer.append(TOPIC, 0, envelope_activity("2000"))
            await core.until(lambda: core.sample("mics_worker_credentials_held", {"datamart": "2000"}) == 1, "hold")
            for _ in range(5):
                core.consumer.append(TOPIC, 1, envelope_activity("1509"))
            await core.until(lambda: core.stored(1) == 5, "1509's messages")
            ready, details = core.health.readiness()
            assert not ready
            assert details["held_datamarts"] == ["2000"]
            assert core.stored(0) == 0
            assert core.producer.acked == []
            revoked.clear()
            await core.until(lambda: core.stored(0) == 1, "2000's message after the token works again")
            assert core.health.readiness()[0]
            assert core.sample("mics_worker_credentials_held", {"datamart": "2000"}) == 0

    async def test_a_write_refused_while_the_probe_succeeds_is_dead_lettered_after_a_bounded_number(self) -> None:
        """403 on the write but the datamart's probe passes: the message is refused for itself, dead-lettered as
        http_403 after MAX_REFUSALS + 1 answers, instead of cycling hold → probe → resume for ever."""
        api = FakeApi(lambda request: NOT_FOUND if request.is_probe else FORBIDDEN)
        async with CoreHarness(api=api) as core:
            core.assign(0)
            core.consumer.append(TOPIC, 0, envelope_activity("2000"))
            await core.until(lambda: core.stored(0) == 1, "the dead letter")
        assert len(api.writes()) == MAX_REFUSALS + 1
        assert [probe.datamart for probe in api.requests if probe.is_probe] == ["2000"] * MAX_REFUSALS
        [record] = core.producer.acked
        assert record.header("mics.dlq.reason") == [b"http_403"]


class TestTimeHeldIsNotRetryTime:
    async def test_a_hold_longer_than_the_retry_budget_does_not_exhaust_it(self) -> None:
        """401, then a hold of ten refused probes (over 100 ms) with a 50 ms budget, then 503 and 200: delivered,
        not `retries_exhausted` — the budget counts the message's own requests and backoff sleeps only."""
        answers = [UNAUTHORIZED, UNAVAILABLE, OK]
        probes: list[Request] = []

        def answer(request: Request) -> RawResponse:
            if request.is_probe:
                probes.append(request)
                return UNAUTHORIZED if len(probes) < 10 else NOT_FOUND
            return answers.pop(0)

        budget = RetryPolicy(max_attempts=20, max_elapsed_s=0.05, base_delay_s=0.001, max_delay_s=0.005)
        async with CoreHarness(api=FakeApi(answer), retry=budget, credentials_probe_interval_s=0.011) as core:
            core.assign(0)
            core.consumer.append(TOPIC, 0, envelope_activity("1509"))
            await core.until(lambda: core.stored(0) == 1, "the outcome")
            summary = await core.stop()
        assert summary.delivered["activity"] == 1
        assert core.producer.acked == []
        assert len(probes) == 10
        assert answers == []
