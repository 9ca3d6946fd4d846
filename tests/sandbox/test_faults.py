"""Fault settings and the per-request fault decision."""

from __future__ import annotations

import pytest

from tests.support.clock import FakeClock
from worker.sandbox.faults import Fault, FaultInjector, FaultSettings, FaultSettingsError


class TestFaultSettings:
    def test_changes_are_applied_and_typed(self) -> None:
        """A partial update changes only the named settings, as numbers of the right type."""
        settings = FaultSettings().with_changes({"p500": 1, "retry_after_s": 3.0})
        assert settings == FaultSettings(p500=1.0, retry_after_s=3)
        assert isinstance(settings.retry_after_s, int)

    @pytest.mark.parametrize(
        "changes",
        [
            {"p999": 0.1},
            {"p500": True},
            {"p500": "0.5"},
            {"p500": 1.5},
            {"p503": -0.1},
            {"latency_ms": float("nan")},
            {"hang_s": 10**400},
            {"retry_after_s": 1.5},
            {"p429": 0.6, "p500": 0.6},
        ],
    )
    def test_invalid_changes_are_refused(self, changes: dict[str, object]) -> None:
        """Unknown names, non-numbers, out-of-range values and fractions adding up past 1 are refused."""
        with pytest.raises(FaultSettingsError):
            FaultSettings().with_changes(changes)


class TestFaultInjector:
    def test_no_faults_by_default(self) -> None:
        """Default settings never inject a fault."""
        injector = FaultInjector(FaultSettings(), seed=1)
        assert {injector.decide() for _ in range(200)} == {Fault.NONE}

    @pytest.mark.parametrize(
        ("name", "fault"),
        [
            ("p_reset", Fault.RESET),
            ("p_hang", Fault.HANG),
            ("p429", Fault.TOO_MANY_REQUESTS),
            ("p500", Fault.INTERNAL_ERROR),
            ("p503", Fault.UNAVAILABLE),
        ],
    )
    def test_a_fraction_of_one_always_injects_its_fault(self, name: str, fault: Fault) -> None:
        """With a fraction of 1 every request gets that fault."""
        injector = FaultInjector(FaultSettings().with_changes({name: 1}), seed=1)
        assert {injector.decide() for _ in range(50)} == {fault}

    def test_fractions_split_the_requests(self) -> None:
        """Fractions of 0.5 and 0.5 give both faults and nothing else."""
        injector = FaultInjector(FaultSettings(p500=0.5, p503=0.5), seed=7)
        assert {injector.decide() for _ in range(200)} == {Fault.INTERNAL_ERROR, Fault.UNAVAILABLE}

    def test_same_seed_same_sequence_and_reset_replays_it(self) -> None:
        """Two injectors with one seed agree, and reset() starts the sequence over."""
        settings = FaultSettings(p500=0.3, p_reset=0.2)
        first = FaultInjector(settings, seed=42)
        second = FaultInjector(settings, seed=42)
        sequence = [first.decide() for _ in range(100)]
        assert [second.decide() for _ in range(100)] == sequence
        first.reset()
        assert [first.decide() for _ in range(100)] == sequence

    def test_reset_restores_the_starting_settings(self) -> None:
        """reset() undoes runtime updates, back to the settings given at construction."""
        injector = FaultInjector(FaultSettings(latency_ms=5), seed=1)
        injector.update({"p500": 1, "latency_ms": 0})
        injector.reset()
        assert injector.settings == FaultSettings(latency_ms=5)

    def test_outage_window_answers_every_request_then_ends(self) -> None:
        """During the outage every request is an outage; after it, requests are normal again."""
        clock = FakeClock()
        injector = FaultInjector(FaultSettings(), seed=1, clock=clock)
        injector.update({"outage_s": 10})
        assert injector.decide() is Fault.OUTAGE
        assert injector.describe()["outage_s"] == 10
        clock.now += 9.5
        assert injector.decide() is Fault.OUTAGE
        clock.now += 1
        assert injector.decide() is Fault.NONE
        assert injector.describe()["outage_s"] == 0

    def test_outage_of_zero_ends_the_window(self) -> None:
        """Setting outage_s to 0 ends a running outage at once."""
        injector = FaultInjector(FaultSettings(), seed=1, clock=FakeClock())
        injector.update({"outage_s": 60})
        injector.update({"outage_s": 0})
        assert injector.decide() is Fault.NONE

    def test_a_refused_update_changes_nothing(self) -> None:
        """An update with one bad value leaves every setting and the outage window as they were."""
        injector = FaultInjector(FaultSettings(), seed=1, clock=FakeClock())
        with pytest.raises(FaultSettingsError):
            injector.update({"outage_s": 60, "p500": 2})
        assert injector.decide() is Fault.NONE
        assert injector.settings == FaultSettings()
