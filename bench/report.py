"""Figures → Markdown for bench/RESULTS.md, and the targets of GitHub issue 7 checked against them.

The results file mixes generated and hand-written text: each generated section sits between
`<!-- bench:NAME -->` and `<!-- /bench:NAME -->` and is replaced by the next run that produces it, so the
tuning log written around the sections survives, and a run without `--backlog` keeps the last backlog figures.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["backlog_section", "distant_section", "large_section", "main_section", "replace_section", "targets"]

Result = dict[str, Any]

TARGET_EVENTS_PER_S = 5000
TARGET_CPU_US_PER_EVENT = 200
TARGET_BACKLOG_RSS_MIB = 200
TARGET_OWN_WORK_RATIO = 0.5
CHART_MEMORY_LIMIT_MIB = 512  # helm/mics-worker/values.yaml resources.limits.memory (512Mi)


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


def group_runs(runs: Sequence[Result]) -> dict[tuple[str, str, int], list[Result]]:
    """Runs keyed by (backend, mix, processes), in the order first seen."""
    groups: dict[tuple[str, str, int], list[Result]] = {}
    for run in runs:
        groups.setdefault((run["backend"], run["mix"], run["processes"]), []).append(run)
    return groups


def own_work(results: Result, backend: str) -> tuple[float, float, float, float | None] | None:
    """(worker CPU/event, own work, the HTTP call inside the worker, the HTTP call alone) in µs, medians.

    Own work is the CPU per event of the same worker with the `null` API (an instant answer, no I/O); the HTTP
    call inside the worker is the difference; alone is the HTTP-only ceiling. Activity mix, one process.
    """
    groups = group_runs(results["runs"])
    runs, null = groups.get((backend, "activity", 1)), groups.get(("null", "activity", 1))
    if not runs or not null:
        return None
    worker = median(r["cpu_us_per_event"] for r in runs)
    own = median(r["cpu_us_per_event"] for r in null)
    alone = [c["cpu_us_per_item"] for c in results["ceilings"] if c["kind"] == "http" and c["backend"] == backend]
    return worker, own, worker - own, median(alone) if alone else None


def targets(results: Result, backend: str) -> list[tuple[str, str, bool | None]]:
    """(target, measured, met) rows; met is None when this invocation did not measure it."""
    rows: list[tuple[str, str, bool | None]] = []
    runs = group_runs(results["runs"]).get((backend, "activity", 1))
    if runs:
        rate = median(r["events_per_s"] for r in runs)
        cpu = median(r["cpu_us_per_event"] for r in runs)
        rows.append(
            (
                f"≥ {TARGET_EVENTS_PER_S:,} events/s end to end (activity mix, {backend}, 1 process)",
                f"{rate:,.0f}",
                rate >= TARGET_EVENTS_PER_S,
            )
        )
        within = cpu <= TARGET_CPU_US_PER_EVENT
        rows.append((f"≤ {TARGET_CPU_US_PER_EVENT} µs worker CPU per event", f"{cpu:,.0f} µs", within))
    split = own_work(results, backend)
    if split is not None:
        _, own, http, _ = split
        ratio = own / http
        rows.append(
            (
                "worker's own work ≤ half the HTTP call's cost",
                f"{own:,.0f} µs vs {http:,.0f} µs (ratio {ratio:.2f})",
                ratio <= TARGET_OWN_WORK_RATIO,
            )
        )
    backlog = results.get("backlog")
    if backlog:
        peak = backlog["peak_rss_mib"]
        rows.append(
            (
                f"peak RSS ≤ {TARGET_BACKLOG_RSS_MIB} MB with a {backlog['backlog']:,}-message backlog",
                f"{peak:,.0f} MiB",
                peak * 1.048576 <= TARGET_BACKLOG_RSS_MIB,
            )
        )
    return rows


def main_section(results: Result) -> str:
    """The generated summary: machine, versions, end-to-end runs, latency, ceilings, CPU split, targets."""
    meta = results["meta"]
    out = [
        f"Run of {meta['date']} on {meta['cores']} cores ({meta['cpu_model']}), load average "
        f"{meta['loadavg_start']:.1f} at the start and {meta['loadavg_end']:.1f} at the end: the machine was "
        f"shared with other work. Each figure is the median of {meta['repeat']} runs (every run listed in brackets).",
        "",
        f"Versions: Python {meta['python']}, confluent-kafka {meta['confluent_kafka']} (librdkafka "
        f"{meta['librdkafka']}), Kafka {meta['kafka']}, orjson {meta['orjson']}, aiohttp {meta['aiohttp']}, "
        f"httptools {meta.get('httptools', '-')}, httpx {meta['httpx']}, pyreqwest {meta.get('pyreqwest', '-')}, "
        f"uvloop {meta['uvloop']}, jsonschema-rs {meta['jsonschema_rs']}. "
        f"Worker code: {meta['commit']}.",
        "",
        "### End to end: pre-produced stream, first consume to last commit",
        "",
        "| backend | mix | processes | events | events/s | steady events/s | worker CPU µs/event | peak RSS MiB "
        "| sandbox CPU µs/request | ledger |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for (backend, mix, processes), runs in group_runs(results["runs"]).items():
        rates = [r["events_per_s"] for r in runs]
        cpu = [r["cpu_us_per_event"] for r in runs]
        steady = [r["steady_events_per_s"] for r in runs if r["steady_events_per_s"]]
        balanced = all(r["balanced"] for r in runs)
        out.append(
            f"| {backend} | {mix} | {processes} | {runs[0]['events']:,} | {median(rates):,.0f} "
            f"({_list(rates, '{:,.0f}')}) | {_maybe(steady, '{:,.0f}')} "
            f"| {median(cpu):,.0f} ({_list(cpu, '{:,.0f}')}) "
            f"| {median(r['peak_rss_mib'] for r in runs):,.0f} "
            f"| {_maybe([r['sandbox_cpu_us_per_request'] for r in runs], '{:,.0f}')} "
            f"| {'balanced' if balanced else '**NOT balanced**'} |"
        )
    out += ["", "### Latency at a steady offered load (produce → arrival at the API)", ""]
    out += [
        "| backend | offered events/s | events | p50 ms | p99 ms | max ms | worker histogram p50 / p99 ms |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    by_backend: dict[str, list[Result]] = {}
    for run in results["latency"]:
        by_backend.setdefault(run["backend"], []).append(run)
    for backend, runs in by_backend.items():
        out.append(
            f"| {backend} | {runs[0]['rate_per_s']:,.0f} | {runs[0]['events']:,} "
            f"| {median(r['p50_ms'] for r in runs):.1f} ({_list([r['p50_ms'] for r in runs], '{:.1f}')}) "
            f"| {median(r['p99_ms'] for r in runs):.1f} ({_list([r['p99_ms'] for r in runs], '{:.1f}')}) "
            f"| {median(r['max_ms'] for r in runs):.0f} "
            f"| {_maybe([r['histogram_p50_ms'] for r in runs], '{:.0f}')} / "
            f"{_maybe([r['histogram_p99_ms'] for r in runs], '{:.0f}')} |"
        )
    out += ["", "### Ceilings: each half of the job alone, in this process", ""]
    out += ["| stage | items | items/s | CPU µs/item | p50 / p99 ms |", "|---|---:|---:|---:|---|"]
    ceilings: dict[str, list[Result]] = {}
    for ceiling in results["ceilings"]:
        ceilings.setdefault(ceiling["name"], []).append(ceiling)
    for name, runs in ceilings.items():
        latency = (
            f"{median(r['p50_ms'] for r in runs):.1f} / {median(r['p99_ms'] for r in runs):.1f}"
            if runs[0]["p50_ms"] is not None
            else "-"
        )
        out.append(
            f"| {name} | {runs[0]['items']:,} | {median(r['per_s'] for r in runs):,.0f} "
            f"({_list([r['per_s'] for r in runs], '{:,.0f}')}) "
            f"| {median(r['cpu_us_per_item'] for r in runs):,.1f} | {latency} |"
        )
    out += ["", "### Where the worker's CPU goes (activity mix, 1 process; µs per event)", ""]
    out += [
        "| backend | worker | own work (the same worker, null API) | HTTP call in the worker (difference) "
        "| HTTP call alone (ceiling) | own / HTTP in the worker |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for backend in meta["backends"]:
        split = own_work(results, backend) if backend != "null" else None
        if split is not None:
            worker, own, http, alone = split
            shown = f"{alone:,.0f}" if alone is not None else "-"
            out.append(f"| {backend} | {worker:,.0f} | {own:,.0f} | {http:,.0f} | {shown} | {own / http:.2f} |")
    out += ["", f"### Targets ({meta['default_backend']}, the default backend)", ""]
    out += ["| target | measured | met |", "|---|---|---|"]
    for target, measured, met in targets(results, meta["default_backend"]):
        out.append(f"| {target} | {measured} | {_verdict(met)} |")
    return "\n".join(out)


def backlog_section(results: Result) -> str:
    """The generated backlog figures (only when this invocation ran `--backlog`)."""
    run = results["backlog"]
    meta = results["meta"]
    return "\n".join(
        [
            f"Run of {meta['date']}, {meta['default_backend']}, one process, load average "
            f"{meta['loadavg_start']:.1f} to {meta['loadavg_end']:.1f}.",
            "",
            "| backlog | window s | RSS at first consume MiB | peak RSS (VmHWM) MiB | RSS at the end MiB "
            "| processed in the window | in flight at the end | SIGTERM to exit s |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|",
            f"| {run['backlog']:,} | {run['seconds']:.0f} | {run['rss_at_first_consume_mib']:.0f} "
            f"| {run['peak_rss_mib']:.0f} | {run['final_rss_mib']:.0f} | {run['processed']:,} "
            f"| {run['in_flight_at_end']:,} | {run['stop_seconds']:.1f} |",
        ]
    )


DISTANT_TARGET = 0.8  # issue 13 (e): at least 80% of the instant API's throughput


def distant_section(results: Result) -> str:
    """One worker with default settings against an instant API and a distant one, in the same run.

    Judged on the steady rate (commit progress from 10% to 90% of the stream): what the worker reaches once the
    adaptive limit has grown; the whole run (first consume to last commit) is shown beside it."""
    runs = results["distant"]
    meta = results["meta"]
    by_latency: dict[float, list[Result]] = {}
    for run in runs:
        by_latency.setdefault(run["api_latency_ms"], []).append(run)

    def steadies(group: list[Result]) -> list[float]:
        """Each run's steady rate; a run too short to have one counts with its whole-run rate."""
        return [run["steady_events_per_s"] or run["events_per_s"] for run in group]

    instant_steady = median(steadies(by_latency[0.0]))
    instant_whole = median(run["events_per_s"] for run in by_latency[0.0])
    out = [
        f"Run of {meta['date']}, {meta['default_backend']}, one process, default settings, activity mix, "
        f"{runs[0]['events']:,} events a run, runs alternated, medians; load average {meta['loadavg_start']:.1f} "
        f"to {meta['loadavg_end']:.1f}. The sandbox answers every request after the given latency.",
        "",
        "| API latency ms | steady events/s (runs) | median | of the instant API's (target ≥ 80%) "
        "| whole run events/s | of the instant API's | CPU µs/event |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for latency_ms, group in sorted(by_latency.items()):
        rates = steadies(group)
        rate = median(rates)
        whole = median(run["events_per_s"] for run in group)
        share = rate / instant_steady if instant_steady else 0.0
        verdict = "" if latency_ms == 0.0 else f" {_verdict(share >= DISTANT_TARGET)}"
        out.append(
            f"| {latency_ms:.0f} | {_list(rates, '{:,.0f}')} | {rate:,.0f} | {share:.0%}{verdict} "
            f"| {whole:,.0f} | {whole / instant_whole if instant_whole else 0.0:.0%} "
            f"| {median(run['cpu_us_per_event'] for run in group):,.0f} |"
        )
    return "\n".join(out)


def large_section(results: Result) -> str:
    """The generated large-message figures (only when this invocation ran `--large`)."""
    runs = results["large"]
    meta = results["meta"]
    first = runs[0]
    out = [
        f"Run of {meta['date']}, {meta['default_backend']}, one process, load average "
        f"{meta['loadavg_start']:.1f} to {meta['loadavg_end']:.1f}. {first['messages']:,} bare activities of "
        f"{first['message_bytes']:,} bytes on 6 partitions; the sandbox answers every request after "
        f"{first['latency_ms']:,.0f} ms, so the window fills; each run ends when the topic is consumed or "
        f"{first['time_limit_s']:.0f} s after the first consume. The chart's memory limit is "
        f"{CHART_MEMORY_LIMIT_MIB} MiB.",
        "",
        "| MAX_IN_FLIGHT_BYTES MiB | peak RSS (VmHWM) MiB | within the chart's limit | RSS at first consume MiB "
        "| max in-flight MiB (mics_worker_in_flight_bytes) | max in-flight messages | max partitions paused "
        "| consumed | processed | run s (ended by) | SIGTERM to exit s |",
        "|---:|---:|---|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for run in runs:
        fits = run["peak_rss_mib"] <= CHART_MEMORY_LIMIT_MIB
        out.append(
            f"| {run['window_mib']:,.0f} | {run['peak_rss_mib']:,.0f} | {'yes' if fits else '**no**'} "
            f"| {run['rss_at_first_consume_mib']:,.0f} | {run['max_in_flight_mib_seen']:,.1f} "
            f"| {run['max_in_flight_messages_seen']:,} | {run['max_partitions_paused_seen']} "
            f"| {run['consumed']:,} | {run['processed']:,} | {run['seconds']:.0f} ({run['ended_by']}) "
            f"| {run['stop_seconds']:.1f} |"
        )
    return "\n".join(out)


def replace_section(document: str, name: str, body: str) -> str:
    """Put `body` between the markers of section `name`, appending the section when it is not there yet."""
    begin, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    block = f"{begin}\n{body}\n{end}"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.DOTALL)
    if pattern.search(document):
        return pattern.sub(lambda _: block, document)
    return document.rstrip("\n") + f"\n\n{block}\n"


def _list(values: Sequence[float], spec: str) -> str:
    return ", ".join(spec.format(v) for v in values)


def _maybe(values: Sequence[float | None], spec: str) -> str:
    present = [v for v in values if v is not None]
    return spec.format(median(present)) if present else "-"


def _verdict(met: bool | None) -> str:
    return {True: "yes", False: "**no**", None: "not measured"}[met]
