"""Health: liveness from heartbeats and readiness from group membership and pauses, on a hand-driven clock."""

from __future__ import annotations

import pytest

from tests.support.clock import FakeClock
from worker.health import Health


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def health(clock: FakeClock) -> Health:
    return Health(liveness_ttl_s=30.0, clock=clock)


def ready_worker(clock: FakeClock) -> Health:
    health = Health(liveness_ttl_s=30.0, clock=clock)
    health.set_joined(True)
    return health


class TestLiveness:
    def test_alive_at_start(self, health: Health) -> None:
        """Creation counts as a heartbeat, so a starting worker is alive."""
        alive, details = health.liveness()
        assert alive
        assert details["status"] == "alive"

    def test_stalls_when_heartbeats_stop(self, health: Health, clock: FakeClock) -> None:
        """Without a heartbeat for the TTL, the worker is not alive, and the details say how long it has been."""
        clock.advance(30.0)
        alive, details = health.liveness()
        assert not alive
        assert details["status"] == "stalled"
        assert details["last_heartbeat_age_s"] == 30.0

    def test_heartbeat_keeps_it_alive(self, health: Health, clock: FakeClock) -> None:
        """A heartbeat within the TTL restarts the countdown."""
        clock.advance(29.0)
        health.heartbeat()
        clock.advance(29.0)
        assert health.liveness()[0]

    def test_recovers_after_a_new_heartbeat(self, health: Health, clock: FakeClock) -> None:
        """A stalled worker that beats again is alive again."""
        clock.advance(60.0)
        health.heartbeat()
        assert health.liveness()[0]

    def test_rejects_a_non_positive_ttl(self) -> None:
        """A TTL of zero would make the worker permanently dead: refused."""
        with pytest.raises(ValueError, match="liveness_ttl_s"):
            Health(liveness_ttl_s=0)


class TestReadiness:
    def test_not_ready_before_joining(self, health: Health) -> None:
        """A worker that has not joined its group is not ready, with reason not_joined."""
        ready, details = health.readiness()
        assert not ready
        assert details["reasons"] == ["not_joined"]

    def test_ready_when_joined_and_alive(self, clock: FakeClock) -> None:
        """Joined, alive and not paused means ready, with no reasons."""
        ready, details = ready_worker(clock).readiness()
        assert ready
        assert details == {
            "status": "ready",
            "reasons": [],
            "joined": True,
            "paused": [],
            "held_datamarts": [],
            "halted_routes": [],
            "conditions": {},
        }

    def test_not_ready_when_stalled(self, clock: FakeClock) -> None:
        """A joined worker whose poll loop stalled is not ready."""
        health = ready_worker(clock)
        clock.advance(31.0)
        ready, details = health.readiness()
        assert not ready
        assert details["reasons"] == ["stalled"]

    @pytest.mark.parametrize("reason", ["credentials", "dlq_unavailable", "dlq_rate"])
    def test_deliberate_pauses_make_it_unready(self, clock: FakeClock, reason: str) -> None:
        """Pausing for credentials or the DLQ makes the worker unready until the pause is lifted."""
        health = ready_worker(clock)
        health.set_paused(reason, True)
        ready, details = health.readiness()
        assert not ready
        assert details["reasons"] == [f"paused_{reason}"]
        health.set_paused(reason, False)
        assert health.readiness()[0]

    def test_backpressure_keeps_it_ready(self, clock: FakeClock) -> None:
        """Backpressure is normal flow control: the worker stays ready, and the pause is still reported."""
        health = ready_worker(clock)
        health.set_paused("backpressure", True)
        ready, details = health.readiness()
        assert ready
        assert details["paused"] == ["backpressure"]

    def test_leaving_the_group_makes_it_unready(self, clock: FakeClock) -> None:
        """set_joined(False) (e.g. while shutting down) makes a ready worker unready."""
        health = ready_worker(clock)
        health.set_joined(False)
        assert not health.readiness()[0]

    def test_unknown_pause_reason_is_refused(self, health: Health) -> None:
        """A pause reason outside the closed set is a programming error."""
        with pytest.raises(ValueError, match="pause reason"):
            health.set_paused("lunch", True)
