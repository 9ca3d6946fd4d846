"""Settling the soak's ledger and judging the run.

Verdict rules: the ledger balances (nothing missing, nothing unknown, reasons as intended, no produce failure);
every partition's committed offset moves at least every `stall_s` seconds while it has lag (stream and drain alike);
the worker catches up after the stream (total lag back to 0 within `drain_limit_s`); RSS flat (the median of the
last quarter within 10% of the median of the second quarter, after warm-up); the worker stops with status 0.
"""

from __future__ import annotations

import statistics
from collections import Counter

from soak.model import Report
from soak.settings import RSS_TOLERANCE, WARM_UP_S
from soak.sink import SinkProcess
from tests.support.ledger import read_dead_letters


def settle(report: Report, expected: dict[str, str], sink: SinkProcess, bootstrap_servers: str, dlq: str) -> None:
    """Every produced id must be accepted by the sink or be in the DLQ with its intended reason; count the rest."""
    accepted: dict[str, int] = sink.call("GET", "/_soak/ledger")["accepted"]
    dead: Counter[str] = Counter()
    reasons: dict[str, str] = {}
    for record in read_dead_letters(bootstrap_servers, dlq):
        ledger_id = record.ledger_id
        if ledger_id is None or ledger_id not in expected:
            report.unknown += 1
            continue
        dead[ledger_id] += 1
        reasons[ledger_id] = record.reason
        report.dead_lettered_by_reason[record.reason] += 1
    report.unknown += sum(1 for ledger_id in accepted if ledger_id not in expected)
    arrivals = Counter({k: v for k, v in accepted.items() if k in expected}) + dead
    report.delivered_ids = sum(1 for ledger_id in accepted if ledger_id in expected)
    report.duplicates = sum(count - 1 for count in arrivals.values() if count > 1)
    report.missing = sum(1 for ledger_id in expected if ledger_id not in arrivals)
    report.wrong_reason = sum(
        1
        for ledger_id, fate in expected.items()
        if (fate == "delivered" and ledger_id in reasons) or (fate != "delivered" and reasons.get(ledger_id) != fate)
    )


def rss_flatness(report: Report) -> tuple[float, float] | None:
    """(median RSS of the second quarter, of the last quarter) after the warm-up, in MiB."""
    steady = [s for s in report.samples if s.at_s >= WARM_UP_S and s.at_s <= report.minutes * 60]
    if len(steady) < 8:
        return None
    quarter = len(steady) // 4
    return statistics.median(s.rss_mib for s in steady[quarter : 2 * quarter]), statistics.median(
        s.rss_mib for s in steady[-quarter:]
    )


def stalled(report: Report) -> dict[str, float]:
    """`topic[p]` → its longest stretch without commit progress while behind, for those at or over `stall_s`."""
    return {
        f"{topic}[{partition}]": seconds
        for (topic, partition), seconds in sorted(report.stalls.items())
        if seconds >= report.stall_s
    }


def verdict(report: Report) -> tuple[bool, list[str]]:
    """(passed, the problems found), by the rules in this module's docstring."""
    problems = []
    if report.missing or report.unknown or report.wrong_reason or report.produce_failures:
        problems.append("the ledger does not balance")
    stalls = stalled(report)
    if stalls:
        worst = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in stalls.items())
        problems.append(
            f"{len(stalls)} partition(s) went {report.stall_s:g} s or more without commit progress while behind "
            f"({worst})"
        )
    if report.drain_error is not None:
        problems.append(report.drain_error)
    flat = rss_flatness(report)
    if flat is None or flat[1] > flat[0] * (1 + RSS_TOLERANCE):
        problems.append("RSS is not flat" if flat is not None else "too few samples to judge RSS")
    if report.stop_status != 0:
        problems.append(f"the worker exited with {report.stop_status}")
    return not problems, problems
