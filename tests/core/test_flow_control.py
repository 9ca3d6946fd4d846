"""Flow control towards the API in-process: shared backoff, circuit breaker, halts, rate limits, drains."""

from __future__ import annotations

import asyncio
import logging

import orjson
import pytest

from tests.support.core_harness import OK, TOPIC, CoreHarness, FakeApi, Request, envelope_activity
from tests.support.events import profile_envelope
from worker.config import TrafficSettings
from worker.mics.statuses import parse_status_classes
from worker.mics.transport import RawResponse, TransportConnectionReset
from worker.retry import RetryPolicy
from worker.traffic.ratelimit import RateLimits

NOT_FOUND = RawResponse(404, {}, b'{"status":"error","error":"Not Found"}')
UNAVAILABLE = RawResponse(503, {}, b'{"status":"error","error":"Service Unavailable"}')
FEW_ATTEMPTS = RetryPolicy(max_attempts=3, max_elapsed_s=600.0, base_delay_s=0.001, max_delay_s=0.005)
ACTIVITY = {"route": "activity"}


def throttled(retry_after_s: float) -> RawResponse:
    return RawResponse(429, {"retry-after": str(retry_after_s)}, b'{"status":"error","error":"Too Many Requests"}')


class TestSharedBackoff:
    async def test_a_429_holds_the_whole_route_and_the_retries_arrive_spread(self) -> None:
        """The first answer is 429 with Retry-After: 0.2; no other request reaches the API before 0.2 s, then the
        30 messages arrive spread over the 0.3 s window (not a wave), and all are delivered."""
        loop = asyncio.get_running_loop()
        arrivals: list[float] = []

        def answer(_request: Request) -> RawResponse:
            arrivals.append(loop.time())
            return throttled(0.2) if len(arrivals) == 1 else OK

        traffic = TrafficSettings(backoff_spread_s=0.3)
        async with CoreHarness(api=FakeApi(answer), traffic=traffic) as core:
            core.assign(0)
            for index in range(30):
                core.consumer.append(TOPIC, 0, envelope_activity("1509"), key=str(index).encode())
            await core.until(lambda: core.stored(0) == 30, "every delivery")
            assert core.sample("mics_worker_http_throttled_total", ACTIVITY) == 1
            assert core.sample("mics_worker_route_events_total", {**ACTIVITY, "event": "backoff"}) == 1
            assert (core.sample("mics_worker_route_wait_seconds_total", {**ACTIVITY, "reason": "backoff"}) or 0) > 0
        throttled_at, later = arrivals[0], arrivals[1:]
        assert len(later) == 30
        assert min(later) >= throttled_at + 0.2 - 0.005  # timers may fire a clock tick early
        assert max(later) - min(later) > 0.15  # spread over the window, not a wave
        assert core.producer.acked == []


class TestCircuit:
    async def test_an_outage_opens_the_circuit_probes_one_at_a_time_and_spills_nothing(self) -> None:
        """Every request fails (503, connection resets) while `down`: after 5 in a row the circuit opens and only one
        probe is on the wire at a time; with 3 attempts per message, nothing is dead-lettered however long it
        lasts; once the API is back every message is delivered."""
        state = {"down": True, "on_wire": 0, "most_on_wire": 0, "during_outage": 0}

        async def answer(request: Request) -> RawResponse:
            state["on_wire"] += 1
            state["most_on_wire"] = max(state["most_on_wire"], state["on_wire"])
            try:
                await asyncio.sleep(0)
                if state["down"]:
                    state["during_outage"] += 1
                    if state["during_outage"] % 2:
                        raise TransportConnectionReset("reset")
                    return UNAVAILABLE
                return OK
            finally:
                state["on_wire"] -= 1

        traffic = TrafficSettings(circuit_failures=5, probe_interval_s=0.002, probe_max_interval_s=0.01)
        async with CoreHarness(api=FakeApi(answer), retry=FEW_ATTEMPTS, traffic=traffic) as core:
            core.assign(0, 1)
            for index in range(40):
                core.consumer.append(TOPIC, index % 2, envelope_activity("1509"), key=str(index).encode())
            await core.until(lambda: core.sample("mics_worker_route_held", {**ACTIVITY, "reason": "circuit_open"}) == 1)
            state["most_on_wire"] = 0
            probes = {**ACTIVITY, "event": "probe_failed"}
            await core.until(lambda: (core.sample("mics_worker_route_events_total", probes) or 0) >= 20, "20 probes")
            assert state["most_on_wire"] == 1
            assert core.producer.acked == []
            assert core.stored(0) == core.stored(1) == 0
            state["down"] = False
            await core.until(lambda: core.stored(0) == core.stored(1) == 20, "every delivery after the outage")
            closed = core.sample("mics_worker_route_events_total", {**ACTIVITY, "event": "circuit_close"})
            assert closed == 1
            assert core.sample("mics_worker_route_held", {**ACTIVITY, "reason": "circuit_open"}) == 0
        assert core.producer.acked == []

    async def test_without_the_circuit_the_same_outage_exhausts_the_budget(self) -> None:
        """The control: CIRCUIT_FAILURES=0 and 3 attempts per message: the outage dead-letters them."""
        traffic = TrafficSettings(circuit_failures=0)
        async with CoreHarness(api=FakeApi(lambda _r: UNAVAILABLE), retry=FEW_ATTEMPTS, traffic=traffic) as core:
            core.assign(0)
            for index in range(5):
                core.consumer.append(TOPIC, 0, envelope_activity("1509"), key=str(index).encode())
            await core.until(lambda: core.stored(0) == 5, "the dead letters")
        reasons = {record.header("mics.dlq.reason")[0] for record in core.producer.acked}
        assert reasons == {b"retries_exhausted"}


class TestHalt:
    async def test_a_wrong_base_path_halts_the_route_instead_of_dead_lettering(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Every activity POST answers 404: nothing is dead-lettered, the worker is not ready and names the route,
        one ERROR line names the method, the URL template and the status (no message ids); probes go one at a time
        at a doubling interval; when the path works again the route resumes and every message is delivered."""
        state = {"fixed": False}
        api = FakeApi(lambda _r: OK if state["fixed"] else NOT_FOUND)
        halted = {**ACTIVITY, "datamart": "1509"}
        with caplog.at_level(logging.INFO, logger="worker.traffic.halts"):
            async with CoreHarness(api=api) as core:
                core.assign(0)
                for index in range(20):
                    core.consumer.append(TOPIC, 0, envelope_activity("1509"), key=f"user-{index}".encode())
                await core.until(lambda: core.sample("mics_worker_route_halted", halted) == 1, "the halt")
                ready, details = core.health.readiness()
                assert not ready
                assert "paused_misconfigured" in details["reasons"]  # type: ignore[operator]
                assert details["halted_routes"] == ["activity/1509"]
                await core.until(lambda: len(api.writes()) >= 5, "a few probes")
                assert core.producer.acked == []
                assert core.stored(0) == 0
                state["fixed"] = True
                await core.until(lambda: core.stored(0) == 20, "every delivery after the fix")
                assert core.health.readiness()[0]
                assert core.sample("mics_worker_route_halted", halted) == 0
        errors = [record for record in caplog.records if record.levelno == logging.ERROR]
        assert len(errors) == 1
        line = errors[0].getMessage()
        assert "HTTP 404" in line
        assert "POST http://api.test/v1/datamarts/{datamart_id}/user_activities" in line
        assert "user-" not in line
        assert core.producer.acked == []

    async def test_only_the_datamart_that_answers_404_is_held(self) -> None:
        api = FakeApi(lambda request: NOT_FOUND if request.datamart == "2000" else OK)
        async with CoreHarness(api=api) as core:
            core.assign(0, 1)
            core.consumer.append(TOPIC, 0, envelope_activity("2000"))
            await core.until(lambda: core.health.readiness()[1]["halted_routes"] == ["activity/2000"], "the halt")
            for _ in range(5):
                core.consumer.append(TOPIC, 1, envelope_activity("1509"))
            await core.until(lambda: core.stored(1) == 5, "1509's messages")
            assert core.stored(0) == 0
            assert core.producer.acked == []

    async def test_a_404_on_a_profile_put_is_dead_lettered_not_halted(self) -> None:
        """The user point may not exist: that message is dead-lettered as http_404 and the route goes on."""
        envelope = profile_envelope("ledger-1", 7)
        envelope["datamart_id"] = "1509"
        async with CoreHarness(api=FakeApi(lambda _r: NOT_FOUND)) as core:
            core.assign(0)
            core.consumer.append(TOPIC, 0, orjson.dumps(envelope))
            await core.until(lambda: core.stored(0) == 1, "the dead letter")
            assert core.health.readiness()[1]["halted_routes"] == []
        [record] = core.producer.acked
        assert record.header("mics.dlq.reason") == [b"http_404"]

    async def test_the_table_can_be_overridden(self) -> None:
        """HTTP_STATUS_CLASSES=activity:404=permanent: the activity 404 is dead-lettered again."""

        table = parse_status_classes("activity:404=permanent")
        async with CoreHarness(api=FakeApi(lambda _r: NOT_FOUND), status_classes=table) as core:
            core.assign(0)
            core.consumer.append(TOPIC, 0, envelope_activity("1509"))
            await core.until(lambda: core.stored(0) == 1, "the dead letter")
        [record] = core.producer.acked
        assert record.header("mics.dlq.reason") == [b"http_404"]


class TestRateLimit:
    async def test_a_static_rate_spaces_requests_after_the_burst(self) -> None:
        """activity:20/s: a burst of 20, then one request every 50 ms: the j-th request after the burst arrives no
        sooner than j x 50 ms after the first (a late timer only delays one; none is ever ahead of the budget)."""
        loop = asyncio.get_running_loop()
        arrivals: list[float] = []

        def answer(_request: Request) -> RawResponse:
            arrivals.append(loop.time())
            return OK

        traffic = TrafficSettings(rate_limits=RateLimits({"activity": 20.0}))
        async with CoreHarness(api=FakeApi(answer), traffic=traffic) as core:
            core.assign(0)
            for index in range(25):
                core.consumer.append(TOPIC, 0, envelope_activity("1509"), key=str(index).encode())
            await core.until(lambda: core.stored(0) == 25, "every delivery")
            waited = core.sample("mics_worker_route_wait_seconds_total", {**ACTIVITY, "reason": "rate_limit"})
            assert (waited or 0) > 0
        ordered = sorted(arrivals)
        first = ordered[0]
        for index, arrived in enumerate(ordered[20:], start=1):
            assert arrived - first >= index * 0.05 - 0.005, (index, arrived - first)


class TestDrains:
    @pytest.mark.parametrize("cause", ["circuit", "halt", "backoff", "rate_limit"])
    async def test_a_revoke_wakes_messages_waiting_at_the_route(self, cause: str) -> None:
        """Messages wait at an open circuit, a halt, a 300 s backoff or a 1/min rate: a revoke hands the partition
        over at once, the waiting messages uncommitted, nothing dead-lettered."""
        answers = {
            "circuit": lambda _r: UNAVAILABLE,
            "halt": lambda _r: NOT_FOUND,
            "backoff": lambda _r: throttled(300),
            "rate_limit": lambda _r: OK,
        }
        traffic = TrafficSettings(
            circuit_failures=1,
            probe_interval_s=300.0,
            probe_max_interval_s=300.0,
            rate_limits=RateLimits({"activity": 1 / 60}),
        )
        async with CoreHarness(api=FakeApi(answers[cause]), traffic=traffic, drain_timeout_s=30.0) as core:
            assert core.pipeline is not None
            core.assign(0)
            for index in range(3):
                core.consumer.append(TOPIC, 0, envelope_activity("1509"), key=str(index).encode())
            reason = "halt" if cause == "halt" else cause
            delivered = 1 if cause == "rate_limit" else 0  # the bucket's burst of one lets the first through
            await core.until(lambda: core.pipeline is not None and core.pipeline.in_flight == 3 - delivered, "taken")
            await core.until(lambda: _waiting(core, reason), f"a wait at the {cause}")
            loop = asyncio.get_running_loop()
            started = loop.time()
            core.consumer.rebalance("revoke", [(TOPIC, 0)])
            await core.until(lambda: core.pipeline is not None and core.pipeline.in_flight == 0, "the hand-over")
            assert loop.time() - started < 10.0  # woken: far below the 300 s waits and the drain budget
        assert core.committed(0) == delivered
        assert core.producer.acked == []


def _waiting(core: CoreHarness, reason: str) -> bool:
    """The route shows the wait (its events or held gauges; the rate limit by the requests it let through)."""
    if reason == "rate_limit":
        return len(core.api.writes()) == 1
    if reason == "halt":
        return core.sample("mics_worker_route_halted", {**ACTIVITY, "datamart": "1509"}) == 1
    held = "circuit_open" if reason == "circuit" else "backoff"
    return core.sample("mics_worker_route_held", {**ACTIVITY, "reason": held}) == 1


class TestAdaptiveConcurrency:
    async def test_the_limit_follows_an_api_that_serves_four_requests_at_a_time(self) -> None:
        """An API answering 429 (no Retry-After) beyond 4 concurrent requests: the route's limit comes down from
        20 to the API's capacity, the throttled share falls once it has, and nothing is dead-lettered."""
        state = {"on_wire": 0, "answers": 0, "late_429s": 0}
        count = 800

        async def answer(_request: Request) -> RawResponse:
            state["on_wire"] += 1
            try:
                await asyncio.sleep(0)
                await asyncio.sleep(0)
                state["answers"] += 1
                if state["on_wire"] > 4:
                    if state["answers"] > count // 2:
                        state["late_429s"] += 1
                    return RawResponse(429, {}, b"{}")
                return OK
            finally:
                state["on_wire"] -= 1

        async with CoreHarness(api=FakeApi(answer)) as core:
            core.assign(0, 1, 2, 3)
            for index in range(count):
                core.consumer.append(TOPIC, index % 4, envelope_activity("1509"), key=str(index).encode())
            await core.until(lambda: sum(core.stored(p) for p in range(4)) == count, "every delivery")
            limit = core.sample("mics_worker_concurrency_limit", ACTIVITY)
            throttled = core.sample("mics_worker_http_throttled_total", ACTIVITY)
        assert limit is not None
        # AIMD saw-tooths around the capacity (x0.7 after a throttled interval, +sqrt(limit) after a clean one; on a
        # loaded machine more clean intervals pass between throttled ones), so a sample lands from about 4 to 10:
        # below the 20 it started from by more than one cut, and the 429s stayed rare (below).
        assert limit < 20 * 0.7
        assert throttled is not None
        assert throttled > 0
        assert state["late_429s"] < 0.2 * (state["answers"] - count // 2)
        assert core.producer.acked == []
