"""What tracing costs (GitHub issue 17): worker CPU per event with tracing off, on at 100% and on at 1% sampling.

    PYTHONPATH=. .venv/bin/python -m bench.tracing [--events 10000] [--repeat 3] [--baseline TREE]

`--baseline TREE` adds the worker of another source tree (e.g. main before tracing: `git archive main | tar -x -C
TREE`) as a fourth mode, run by this harness (bench/baseline_site), to compare "off" with the code before tracing.

Same harness as `scripts/bench` (a real broker, the sandbox in `--minimal` mode, the real worker process, aiohttp,
the activity mix, one process), the three modes interleaved in each round so a noisy neighbour hits all of them. The
spans go over OTLP/HTTP to a receiver in this process (`tests.support.otlp_receiver`), so the export's cost is in
the worker's figure. Writes the `tracing` section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
from pathlib import Path
from statistics import median

from bench import report
from bench.datasets import produce_dataset
from bench.run import REPO_ROOT, RESULTS, _kafka, say
from bench.worker_run import WorkerRun, measure_worker
from tests.support.otlp_receiver import OtlpReceiver
from tests.support.sandbox_process import SandboxProcess
from worker.mics.transport import DEFAULT_BACKEND

BASELINE = "main before tracing (baseline tree)"
MODES: dict[str, tuple[dict[str, str], dict[str, str]]] = {
    # mode -> (MICS_WORKER_* settings, OTEL_* variables); the stream carries no traceparent: every trace is a root
    "off": ({}, {}),
    "on, 100% sampled": ({"TRACING": "on"}, {"OTEL_TRACES_SAMPLER": "parentbased_always_on"}),
    "on, 1% sampled": (
        {"TRACING": "on"},
        {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.01"},
    ),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.tracing", description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--baseline", type=Path, help="another tree's worker, measured as the first mode")
    args = parser.parse_args(argv)
    modes = dict(MODES)
    if args.baseline is not None:
        site = REPO_ROOT / "bench" / "baseline_site"
        baseline = {"PYTHONPATH": f"{site}{os.pathsep}{REPO_ROOT}", "BENCH_WORKER_TREE": str(args.baseline.resolve())}
        modes = {BASELINE: ({}, baseline), **modes}
    runs: dict[str, list[WorkerRun]] = {mode: [] for mode in modes}
    spans: dict[str, list[int]] = {mode: [] for mode in modes}
    with _kafka() as (bootstrap_servers, _version), SandboxProcess("--minimal") as sandbox, OtlpReceiver() as sink:
        dataset = produce_dataset(bootstrap_servers, "activity", args.events)
        for round_ in range(args.repeat):
            for mode, (settings, otel) in modes.items():
                say(f"round {round_ + 1}/{args.repeat}: tracing {mode}")
                before = len(sink.received())
                raw = {"OTEL_EXPORTER_OTLP_ENDPOINT": sink.endpoint, **otel} if settings else otel
                run = measure_worker(
                    bootstrap_servers, sandbox, dataset, backend=DEFAULT_BACKEND, extra_env=settings, raw_env=raw
                )
                runs[mode].append(run)
                spans[mode].append(len(sink.received()) - before)
    section = _section(args, runs, spans)
    print(section)
    RESULTS.write_text(report.replace_section(RESULTS.read_text(), "tracing", section))
    say(f"wrote {RESULTS}")
    return 0 if all(run.ledger.balanced for mode_runs in runs.values() for run in mode_runs) else 1


def _section(args: argparse.Namespace, runs: dict[str, list[WorkerRun]], spans: dict[str, list[int]]) -> str:
    date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"{args.events:,} events (activity mix), {DEFAULT_BACKEND}, 1 process, {args.repeat} interleaved rounds, "
        f"medians; {date}, {os.cpu_count()} cores. `PYTHONPATH=. .venv/bin/python -m bench.tracing`.",
        "",
        "| tracing | worker CPU µs/event | runs (µs/event) | events/s | spans exported per run | ledger |",
        "|---|---|---|---|---|---|",
    ]
    off = median(run.cpu_us_per_event for run in runs["off"])
    for mode, mode_runs in runs.items():
        cpu = [run.cpu_us_per_event for run in mode_runs]
        change = "" if mode == "off" else f" ({(median(cpu) / off - 1) * 100:+.0f}% against off)"
        lines.append(
            f"| {mode} | {median(cpu):.0f}{change} | {', '.join(f'{value:.0f}' for value in cpu)} "
            f"| {median(run.events_per_s for run in mode_runs):,.0f} | {median(spans[mode]):,.0f} "
            f"| {'balanced' if all(run.ledger.balanced for run in mode_runs) else '**NOT balanced**'} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
