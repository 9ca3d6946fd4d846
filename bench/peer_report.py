"""The side-by-side table of `scripts/bench --peer benthos` (GitHub issue 16) and its two goals.

Everything in it comes from one invocation, so its ratios hold even on a shared machine where absolute figures
drift: the worker on each backend and with the null API (its own work, the floor), and Benthos on the same events
against the same sandbox. Medians over `--repeat`.
"""

from __future__ import annotations

from typing import Any

from bench.report import group_runs, median

__all__ = ["GOAL_OVER_FLOOR", "GOAL_OVER_PEER", "peer_section"]

GOAL_OVER_FLOOR = 2.5  # worker CPU per event at most 2.5x the null-API floor of the same run
GOAL_OVER_PEER = 2.0  # worker events per CPU-second at least 2x Benthos's (its best variant)

Result = dict[str, Any]


def _worker_cpu(results: Result) -> dict[str, float]:
    """Median CPU µs per event of each backend's runs (activity mix, one process)."""
    return {
        backend: median(run["cpu_us_per_event"] for run in runs)
        for (backend, mix, processes), runs in group_runs(results["runs"]).items()
        if mix == "activity" and processes == 1
    }


def _peer_cpu(results: Result) -> dict[str, float]:
    variants: dict[str, list[float]] = {}
    for run in results["peer"]:
        variants.setdefault(run["variant"], []).append(run["cpu_us_per_event"])
    return {variant: median(values) for variant, values in variants.items()}


def _per_cpu_second(us: float) -> str:
    return f"{1e6 / us:,.0f}"


def peer_section(results: Result) -> str:
    """The Markdown table and the two ratios against their goals."""
    meta = results["meta"]
    worker, peer = _worker_cpu(results), _peer_cpu(results)
    lines = [
        f"Measured {meta['date']}, commit {meta['commit']}, {meta['events']:,} activities, x{meta['repeat']} "
        f"(medians), load average {meta['loadavg_start']:.1f} at the start. Absolute figures move with the "
        "machine's load; the ratios are taken within this one run.",
        "",
        "| who | CPU µs / event | events per CPU-second | ledger |",
        "|---|---:|---:|---|",
    ]
    for backend, us in worker.items():
        name = "worker, null API (own work: the floor)" if backend == "null" else f"worker, {backend}"
        balanced = all(r["balanced"] for r in results["runs"] if r["backend"] == backend and r["mix"] == "activity")
        lines.append(f"| {name} | {us:,.0f} | {_per_cpu_second(us)} | {'balanced' if balanced else 'NOT BALANCED'} |")
    for variant, us in peer.items():
        balanced = all(r["balanced"] for r in results["peer"] if r["variant"] == variant)
        ledger = "balanced" if balanced else "NOT BALANCED"
        lines.append(f"| Benthos, {variant} | {us:,.0f} | {_per_cpu_second(us)} | {ledger} |")
    lines += ["", *_ratios(worker, peer)]
    return "\n".join(lines)


def _ratios(worker: dict[str, float], peer: dict[str, float]) -> list[str]:
    floor = worker.get("null")
    best_peer = min(peer.values()) if peer else None
    rows = [
        f"| backend | CPU / floor (goal ≤ {GOAL_OVER_FLOOR}) | events per CPU-s / Benthos's best "
        f"(goal ≥ {GOAL_OVER_PEER}) |",
        "|---|---:|---:|",
    ]
    for backend, us in worker.items():
        if backend == "null":
            continue
        over_floor = f"{us / floor:.2f} {'met' if us / floor <= GOAL_OVER_FLOOR else 'not met'}" if floor else "n/a"
        over_peer = (
            f"{best_peer / us:.2f} {'met' if best_peer / us >= GOAL_OVER_PEER else 'not met'}" if best_peer else "n/a"
        )
        rows.append(f"| {backend} | {over_floor} | {over_peer} |")
    return rows
