"""`mics-worker config`: the effective configuration, each value with its source, secrets masked, problems listed.

The rows are what `WorkerConfig.read` asked `Env` for, so a setting added to the configuration appears here without
being listed anywhere; `MICS_WORKER_KAFKA_*` rows show the librdkafka property each one sets.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from worker.config import WorkerConfig
from worker.env import ENV_PREFIX, Env
from worker.kafka_properties import kafka_properties, variable_for
from worker.known_variables import unknown_variable_problems
from worker.sensitive import MASK, is_secret_kafka_property, is_secret_variable

__all__ = ["ConfigReport", "ReportRow", "config_report", "format_report"]

_UNSET = "(unset)"


@dataclass(frozen=True, slots=True)
class ReportRow:
    """One variable: its effective value (masked when a secret) and where it came from."""

    variable: str
    value: str
    source: str


@dataclass(frozen=True, slots=True)
class ConfigReport:
    rows: tuple[ReportRow, ...]
    problems: tuple[str, ...]


def config_report(environ: Mapping[str, str]) -> ConfigReport:
    """Read the configuration as `run` would and describe every value; problems are listed, not raised."""
    env = Env(environ)
    WorkerConfig.read(env)
    unknown = [] if env.incomplete else unknown_variable_problems(environ, env.read)
    problems = [*env.problems, *unknown]
    rows = [_row(ENV_PREFIX + key, reading.value, reading.source) for key, reading in sorted(env.readings.items())]
    for name, value in sorted(kafka_properties(environ).items()):
        shown = MASK if is_secret_kafka_property(name) else value
        rows.append(ReportRow(variable_for(name), shown, f"env (librdkafka {name})"))
    return ConfigReport(tuple(rows), tuple(problems))


def _row(variable: str, value: str, source: str) -> ReportRow:
    if not value:
        return ReportRow(variable, _UNSET, source)
    return ReportRow(variable, MASK if is_secret_variable(variable) else value, source)


def format_report(report: ConfigReport) -> str:
    """Aligned `VARIABLE  value  source` lines, then the problems, if any."""
    width = max((len(row.variable) for row in report.rows), default=0)
    value_width = min(max((len(row.value) for row in report.rows), default=0), 60)
    lines = ["# effective configuration (secrets shown as ***); source: default, env or file"]
    lines += [f"{row.variable:<{width}}  {row.value:<{value_width}}  {row.source}" for row in report.rows]
    if report.problems:
        lines.append(f"# {len(report.problems)} problem(s): `mics-worker run` would refuse to start")
        lines += [f"  - {problem}" for problem in report.problems]
    return "\n".join(lines)
