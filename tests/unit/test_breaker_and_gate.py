"""Breaker (one probe at a time, in queue order, doubling interval) and RouteGate (shared backoff with jitter,
circuit after a run of failures, failed probes not counted)."""

from __future__ import annotations

import asyncio
import random

import pytest

from tests.support.clock import FakeClock
from worker.mics.errors import ApiResult, OutcomeKind
from worker.traffic import gate as gate_module
from worker.traffic.breaker import Breaker
from worker.traffic.gate import RouteGate


def answer(status: int | None, retry_after_s: float | None = None) -> ApiResult:
    kind = OutcomeKind.SUCCESS if status is not None and status < 300 else OutcomeKind.RETRYABLE
    return ApiResult(kind, status, "r", retry_after_s, None, None, None, None, 0.01)


class TestBreaker:
    async def test_one_probe_at_a_time_in_queue_order_and_a_failed_prober_goes_to_the_back(self) -> None:
        breaker = Breaker(0.001, 0.004)
        wake = asyncio.Event()
        assert breaker.open()
        assert not breaker.open()
        waits = [asyncio.create_task(breaker.wait(wake)) for _ in range(3)]
        first = await asyncio.wait_for(waits[0], 5)
        assert first is True
        assert breaker.probing
        assert not waits[1].done()
        again = asyncio.create_task(breaker.wait(wake))  # the failed prober queues again, behind the others
        await asyncio.sleep(0)
        breaker.probe_failed()
        assert breaker.interval_s == 0.002
        assert await asyncio.wait_for(waits[1], 5) is True
        breaker.probe_failed()
        assert breaker.interval_s == 0.004
        assert await asyncio.wait_for(waits[2], 5) is True
        breaker.probe_failed()
        assert breaker.interval_s == 0.004  # capped
        assert await asyncio.wait_for(again, 5) is True
        late = asyncio.create_task(breaker.wait(wake))
        await asyncio.sleep(0)
        assert breaker.close()
        assert await late is False
        assert not breaker.is_open

    async def test_a_released_probe_hands_over_at_once_and_a_wake_ends_a_wait(self) -> None:
        breaker = Breaker(0.001, 60.0)
        mine, theirs = asyncio.Event(), asyncio.Event()
        breaker.open()
        assert await asyncio.wait_for(breaker.wait(mine), 5) is True
        next_one = asyncio.create_task(breaker.wait(theirs))
        woken = asyncio.create_task(breaker.wait(mine))
        await asyncio.sleep(0)
        mine.set()
        assert await woken is None
        breaker.probe_released()
        assert await asyncio.wait_for(next_one, 5) is True

    async def test_a_probe_time_with_nobody_waiting_goes_to_the_next_caller(self) -> None:
        breaker = Breaker(0.001, 1.0)
        breaker.open()
        for _ in range(10_000):  # yield until the probe falls due with nobody queued (an event, not a pace)
            if breaker._due:
                break
            await asyncio.sleep(0.001)
        assert breaker._due
        assert await breaker.wait(asyncio.Event()) is True

    def test_intervals_are_validated(self) -> None:
        with pytest.raises(ValueError, match="0 < first <= max"):
            Breaker(2.0, 1.0)


class Recorder:
    def __init__(self) -> None:
        self.events: list[str] = []
        self.waited: list[tuple[str, float]] = []


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


def make_gate(recorder: Recorder, clock: FakeClock, *, failures: int = 3, spread_s: float = 1.0) -> RouteGate:
    return RouteGate(
        0.2,
        30.0,
        spread_s,
        failures,
        Breaker(0.001, 0.01),
        rng=random.Random(3),
        on_event=recorder.events.append,
        on_waited=lambda reason, seconds: recorder.waited.append((reason, seconds)),
        clock=clock,
    )


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The gate's sleeps, recorded and returned at once (as if each ran to its end)."""
    recorded: list[float] = []

    async def fake_sleep(wake: asyncio.Event, delay_s: float) -> bool:
        recorded.append(delay_s)
        return not wake.is_set()

    monkeypatch.setattr(gate_module, "sleep_unless", fake_sleep)
    return recorded


class TestSharedBackoff:
    async def test_retry_after_holds_every_sender_and_spreads_their_resumption(
        self, recorder: Recorder, sleeps: list[float]
    ) -> None:
        """One 429 with Retry-After: 5 → each of 200 senders waits until 5 s + its own share of a 1 s spread."""
        clock = FakeClock()
        gate = make_gate(recorder, clock)
        assert gate.record(answer(429, 5.0), probe=False)
        assert gate.backing_off
        assert recorder.events == ["backoff"]
        for _ in range(200):
            assert await gate.admit(asyncio.Event()) is False
        assert all(5.0 <= delay <= 6.0 for delay in sleeps)
        assert len(set(sleeps)) == 200
        assert max(sleeps) - min(sleeps) > 0.9  # spread over the whole window, not a wave
        assert sum(1 for delay in sleeps if delay < 5.5) in range(70, 131)

    async def test_a_429_without_retry_after_backs_off_exponentially_per_429_in_a_row(self, recorder: Recorder) -> None:
        clock = FakeClock()
        gate = make_gate(recorder, clock)
        resumes = []
        for _ in range(4):
            gate.record(answer(429), probe=False)
            resumes.append(round(gate.resume_at - clock.now, 6))
        assert resumes == [0.2, 0.4, 0.8, 1.6]
        gate.record(answer(200), probe=False)
        clock.advance(10)
        gate.record(answer(429), probe=False)
        assert round(gate.resume_at - clock.now, 6) == 0.2

    async def test_a_sender_after_the_window_passes_without_waiting(
        self, recorder: Recorder, sleeps: list[float]
    ) -> None:
        clock = FakeClock()
        gate = make_gate(recorder, clock)
        gate.record(answer(503, 2.0), probe=False)
        clock.advance(3.01)
        assert await gate.admit(asyncio.Event()) is False
        assert sleeps == []
        assert not gate.backing_off
        assert gate.backoff_until == 0.0

    async def test_a_wake_ends_the_wait(self, recorder: Recorder, sleeps: list[float]) -> None:
        clock = FakeClock()
        gate = make_gate(recorder, clock)
        gate.record(answer(429, 300.0), probe=False)
        wake = asyncio.Event()
        wake.set()
        assert await gate.admit(wake) is None


class TestCircuit:
    async def test_a_run_of_failures_opens_the_circuit_and_a_failed_probe_does_not_count(
        self, recorder: Recorder
    ) -> None:
        clock = FakeClock()
        gate = make_gate(recorder, clock, failures=3)
        for status in (503, None, 200, 500, 502):  # the 200 resets the run
            assert gate.record(answer(status), probe=False)
        assert not gate.circuit.is_open
        assert gate.record(answer(None), probe=False)
        assert gate.circuit.is_open
        assert recorder.events == ["circuit_open"]
        probe = await asyncio.wait_for(gate.admit(asyncio.Event()), 5)
        assert probe is True
        assert gate.record(answer(503), probe=True) is False  # not one of the probing message's attempts
        assert recorder.events == ["circuit_open", "probe_failed"]
        assert await asyncio.wait_for(gate.admit(asyncio.Event()), 5) is True
        assert gate.record(answer(200), probe=True)
        assert not gate.circuit.is_open
        assert recorder.events[-1] == "circuit_close"
        assert gate.backoff_until == clock.now + 1.0  # waiters resume spread, not all at once

    async def test_a_429_is_no_failure_and_zero_disables_the_circuit(self, recorder: Recorder) -> None:
        clock = FakeClock()
        gate = make_gate(recorder, clock, failures=0)
        for _ in range(50):
            gate.record(answer(503), probe=False)
        assert not gate.circuit.is_open
        counting = make_gate(recorder, clock, failures=2)
        for _ in range(10):
            counting.record(answer(429), probe=False)
        assert not counting.circuit.is_open
