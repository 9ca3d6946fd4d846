"""The distant-API section (issue 13, scenario e): judged on the steady rate against the instant API's, medians."""

from __future__ import annotations

from typing import Any

from bench.report import distant_section


def run(latency_ms: float, steady: float | None, whole: float) -> dict[str, Any]:
    return {
        "api_latency_ms": latency_ms,
        "steady_events_per_s": steady,
        "events_per_s": whole,
        "events": 40_000,
        "cpu_us_per_event": 200.0,
    }


META = {"date": "2026-11-29 22:08 UTC", "default_backend": "pyreqwest", "loadavg_start": 1.0, "loadavg_end": 1.0}


def test_the_verdict_is_the_steady_median_against_the_instant_apis() -> None:
    """Steady medians 2,000 and 1,700 (85%): met, although the whole runs are only 70% apart."""
    runs = [run(0.0, 2_000, 2_000), run(30.0, 1_700, 1_400), run(0.0, 2_100, 2_000), run(30.0, 1_600, 1_400)]
    runs.append(run(0.0, 1_900, 2_000))
    runs.append(run(30.0, 1_800, 1_400))
    text = distant_section({"distant": runs, "meta": META})
    rows = {
        line.split("|")[1].strip(): line
        for line in text.splitlines()
        if line.startswith("| 0 ") or line.startswith("| 30 ")
    }
    assert "| 2,000 | 100% |" in rows["0"]
    assert "| 1,700 | 85% yes |" in rows["30"]
    assert "| 1,400 | 70% |" in rows["30"]


def test_a_distant_api_below_80_percent_is_not_met() -> None:
    """Steady 1,500 against 2,000 (75%): not met; a run without a steady figure falls back to its whole run."""
    runs = [run(0.0, None, 2_000), run(30.0, 1_500, 1_500)]
    text = distant_section({"distant": runs, "meta": META})
    assert "| 75% **no** |" in text
