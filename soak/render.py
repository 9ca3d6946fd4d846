"""The soak's report as Markdown (soak/RESULTS.md): load, ledger, catching up, CPU, memory, and every partition."""

from __future__ import annotations

import argparse
import os
import platform
import re
from typing import Any

from soak.model import Report, Sample
from soak.settings import (
    OUTAGE_EVERY_S,
    OUTAGE_S,
    RATE_LIMIT_SHARE,
    REPO_ROOT,
    RSS_TOLERANCE,
    SOAK_FAULTS,
    WARM_UP_S,
    WORKER_SETTINGS,
)
from soak.verdict import rss_flatness, verdict
from tests.support.worker_process import worker_env
from worker import __version__


def render(report: Report, args: argparse.Namespace) -> str:
    ok, problems = verdict(report)
    lines = [
        "# Soak results",
        "",
        f"`scripts/soak --minutes {args.minutes:g}` on {report.started}: worker {__version__}, Python "
        f"{platform.python_version()}, {os.cpu_count()} cores shared with other jobs (load average "
        f"{report.load_before[0]:.1f} at the start, {report.load_after[0]:.1f} at the end).",
        "",
        f"**Verdict: {'PASS' if ok else 'FAIL'}**" + ("" if ok else f" ({'; '.join(problems)})"),
        "",
        f"Rules: the ledger balances; every partition's committed offset moves at least every {report.stall_s:g} s "
        f"while it has lag; after the stream the worker catches up (total lag 0) within {report.drain_limit_s:g} s; "
        f"RSS flat within {RSS_TOLERANCE:.0%}; the worker stops with status 0.",
        "",
        *_load(report, args),
        *_ledger(report),
        *_cpu_and_memory(report),
        *_partitions(report, args),
    ]
    return "\n".join(lines)


def _load(report: Report, args: argparse.Namespace) -> list[str]:
    return [
        "## Load",
        "",
        (
            f"- Calibration (one worker draining a 40,000-message backlog, no faults, this machine, right before): "
            f"**{report.calibrated:.0f} messages/s**; the soak ran at {args.rate_share:.0%} of it."
            if report.calibrated is not None
            else "- Rate given on the command line."
        ),
        _bench_reference(report.rate),
        f"- Stream: **{report.rate:.0f} messages/s** for {report.minutes:g} min = {report.produced:,} messages "
        f"(`generate()` mix: ~70% activities, 15% profiles, 15% choices, 2% invalid of three kinds), "
        f"{args.partitions} + {args.partitions} partitions; the producer was at most {report.producer_behind_s:.1f} s "
        f"behind its schedule; {report.produce_failures} produce failures.",
        f"- Faults (one seeded draw per request): {_faults_text()}; plus a full outage (503 to everything) of "
        f"{OUTAGE_S:g} s every {OUTAGE_EVERY_S / 60:g} min.",
        f"- Worker: one process, HTTP backend {args.backend}, defaults except {_worker_settings_text()}.",
        "",
    ]


def _ledger(report: Report) -> list[str]:
    if report.drain_error is None:
        caught_up = (
            f"After the stream ended ({report.stream_s:.0f} s in) the worker caught up (every partition committed to "
            f"its end) in **{report.drain_s:.0f} s** (the verdict allows {report.drain_limit_s:g} s; checked every "
            f"{_interval(report):g} s)"
        )
    else:
        caught_up = f"{report.drain_error.capitalize()} (the verdict allows {report.drain_limit_s:g} s)"
    return [
        "## Ledger",
        "",
        "| produced | delivered (distinct ids) | dead-lettered | missing | unknown | wrong reason | duplicates |",
        "|---|---|---|---|---|---|---|",
        f"| {report.produced:,} | {report.delivered_ids:,} | {sum(report.dead_lettered_by_reason.values()):,} | "
        f"{report.missing} | {report.unknown} | {report.wrong_reason} | {report.duplicates} |",
        "",
        "Dead-lettered by reason: "
        + (", ".join(f"{k} {v}" for k, v in sorted(report.dead_lettered_by_reason.items())) or "none")
        + ". Retries by reason: "
        + (", ".join(f"{k} {v:.0f}" for k, v in sorted(report.retries_by_reason.items())) or "none")
        + f". The sink answered: {_responses_text(report.sink_stats)}.",
        "",
        f"{caught_up}; SIGTERM then stopped it with status {report.stop_status}.",
        "",
    ]


def _cpu_and_memory(report: Report) -> list[str]:
    whole, stream = report.cpu_share(), report.cpu_share(until_s=report.stream_s)
    lines = ["## CPU and memory (worker process, from /proc)", ""]
    if whole is not None and stream is not None:
        lines.append(
            f"Worker CPU share: **{whole:.0%} of one core** over the run, {stream:.0%} while the stream ran "
            f"({os.cpu_count()} cores on the machine). A worker that falls behind at a low share is waiting, "
            "not busy."
        )
    flat = rss_flatness(report)
    if flat is not None:
        steady = [s for s in report.samples if s.at_s <= report.minutes * 60]
        change = (flat[1] - flat[0]) / flat[0]
        lines.append(
            f"RSS: median of the second quarter {flat[0]:.1f} MiB, of the last quarter {flat[1]:.1f} MiB "
            f"({change:+.1%}; flat means within {RSS_TOLERANCE:.0%}, after a {WARM_UP_S:.0f} s warm-up). "
            f"Peak {max(s.rss_mib for s in steady):.1f} MiB."
        )
    else:
        lines.append(f"RSS: too few samples after the {WARM_UP_S:.0f} s warm-up to judge flatness (8 needed).")
    lines += [
        "",
        "| minute | RSS MiB | CPU share | outcomes | sink accepted | total lag | max partition lag | paused |",
        "|---|---|---|---|---|---|---|---|",
    ]
    previous: Sample | None = None
    for sample in _per_minute(report.samples):
        share = "-"
        if previous is not None and sample.at_s > previous.at_s:
            share = f"{(sample.cpu_s - previous.cpu_s) / (sample.at_s - previous.at_s):.0%}"
        lines.append(
            f"| {sample.at_s / 60:.0f} | {sample.rss_mib:.1f} | {share} | {sample.outcomes:,.0f} | "
            f"{sample.accepted:,} | {sum(sample.lag.values()):,} | {max(sample.lag.values(), default=0):,} | "
            f"{_pause_reasons(sample.paused)} |"
        )
        previous = sample
    lines.append("")
    return lines


def _partitions(report: Report, args: argparse.Namespace) -> list[str]:
    lines = [
        "## Partitions",
        "",
        f"Lag is the broker's view: high watermark minus the group's committed offset, sampled every {args.sample_s:g} "
        f"s. Throughput is messages committed per second from the first sample to the last (stream and drain, "
        f"{_span(report):.0f} s). The longest stretch without commit progress while behind is measured between "
        f"samples (up to one interval more than the truth); {report.stall_s:g} s or more fails the verdict.",
        "",
        "| partition | committed | committed/s | max lag | longest stretch without commit progress while behind (s) |",
        "|---|---|---|---|---|",
    ]
    rates = report.committed_per_s()
    last = report.samples[-1] if report.samples else None
    for key in report.partitions:
        stretch = report.stalls.get(key, 0.0)
        mark = " **stalled**" if stretch >= report.stall_s else ""
        committed = last.committed.get(key, 0) if last is not None else 0
        max_lag = max(s.lag.get(key, 0) for s in report.samples)
        lines.append(
            f"| {key[0]}[{key[1]}] | {committed:,} | {rates.get(key, 0.0):,.1f} | {max_lag:,} | {stretch:.0f}{mark} |"
        )
    lines.append("")
    return lines


def _span(report: Report) -> float:
    return report.samples[-1].at_s - report.samples[0].at_s if len(report.samples) > 1 else 0.0


def _interval(report: Report) -> float:
    samples = report.samples
    return round(_span(report) / (len(samples) - 1)) if len(samples) > 1 else 0.0


def _bench_reference(rate: float) -> str:
    """The benchmark's figure for the same mix and setup (bench/RESULTS.md), when it has one, beside the soak's rate."""
    results = REPO_ROOT / "bench" / "RESULTS.md"
    text = results.read_text(encoding="utf-8") if results.exists() else ""
    found = re.search(r"^\| aiohttp \| mixed \| 1 \| [\d,]+ \| ([\d,]+)", text, re.MULTILINE)
    if found is None:
        return "- No benchmark figure for the mixed stream in bench/RESULTS.md to compare with."
    figure = float(found.group(1).replace(",", ""))
    return (
        f"- Benchmark (bench/RESULTS.md, mixed stream, aiohttp, 1 process, its latest run): {figure:,.0f} events/s; "
        f"the soak's rate is {rate / figure:.0%} of it."
    )


def _pause_reasons(series: list[str]) -> str:
    """`mics_worker_paused{reason="x"}` keys → `x, y`, or `-`."""
    reasons = [match.group(1) for key in series if (match := re.search(r'reason="([^"]*)"', key))]
    return ", ".join(reasons) or "-"


def _per_minute(samples: list[Sample]) -> list[Sample]:
    chosen: dict[int, Sample] = {}
    for sample in samples:
        chosen.setdefault(int(sample.at_s // 60), sample)
    if samples and samples[-1] not in chosen.values():
        chosen[int(samples[-1].at_s // 60) + 1] = samples[-1]  # the last look, at the end of the drain
    return [chosen[minute] for minute in sorted(chosen)]


def _worker_settings_text() -> str:
    """The settings the soak's worker runs with beyond the essentials: the harness's own plus the soak's."""
    harness = worker_env(
        bootstrap_servers="", api_base_url="", api_token="", topics="", routes="", dlq_topic="", group_id=""
    )
    essentials = {"BOOTSTRAP_SERVERS", "API_BASE_URL", "API_TOKEN", "TOPICS", "ROUTES", "DLQ_TOPIC", "GROUP_ID"}
    chosen = {name.removeprefix("MICS_WORKER_"): value for name, value in harness.items()}
    chosen = {name: value for name, value in chosen.items() if name not in essentials}
    chosen.update(WORKER_SETTINGS)
    return ", ".join(f"{name}={value}" for name, value in sorted(chosen.items()))


def _faults_text() -> str:
    return (
        f"latency {SOAK_FAULTS['latency_ms']:g} ms, 503 {SOAK_FAULTS['p503']:.1%}, reset {SOAK_FAULTS['p_reset']:.1%}, "
        f"hang "
        f"{SOAK_FAULTS['p_hang']:.1%} for {SOAK_FAULTS['hang_s']:g} s (read timeout "
        f"{WORKER_SETTINGS['HTTP_READ_TIMEOUT_S']} s); 429 with Retry-After from a token bucket at "
        f"{RATE_LIMIT_SHARE:g}x the stream's rate (met when the worker catches up after an outage)"
    )


def _responses_text(stats: dict[str, Any]) -> str:
    responses = stats.get("responses", {})
    dropped = stats.get("dropped", {})
    parts = [f"{status} x{count:,}" for status, count in sorted(responses.items())]
    parts += [f"{kind} x{count:,}" for kind, count in sorted(dropped.items())]
    return ", ".join(parts) or "nothing"
