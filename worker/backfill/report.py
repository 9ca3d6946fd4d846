"""What a backfill did: per execution the records sent, accepted and rejected with the API's error lines, and the
run's totals (read, skipped as already done, dead-lettered per reason). Printed at the end; `--report FILE` also
writes it as JSON."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from worker.dlq.inspection import printable

__all__ = ["BackfillReport", "ExecutionReport"]

MAX_ERROR_LINES = 20


@dataclass(slots=True)
class ExecutionReport:
    """One execution followed to its end."""

    datamart_id: str
    document_type: str
    import_id: str
    execution_id: str
    status: str
    sent: int
    accepted: int
    rejected: int
    errors: list[str] = field(default_factory=list)  # the first MAX_ERROR_LINES "line N: message"
    resumed: bool = False  # followed by a resumed run after the run that uploaded it stopped


@dataclass(slots=True)
class BackfillReport:
    """The run's ledger."""

    dry_run: bool = False
    read: int = 0
    skipped_done: int = 0
    planned: Counter[str] = field(default_factory=Counter)  # lines per document type
    planned_bytes: Counter[str] = field(default_factory=Counter)
    dead_lettered: Counter[str] = field(default_factory=Counter)
    executions_planned: int = 0  # a dry run's executions (a real run lists them in `executions`)
    executions: list[ExecutionReport] = field(default_factory=list)

    @property
    def accepted(self) -> int:
        return sum(e.accepted for e in self.executions)

    def text(self) -> str:
        """The human-readable report."""
        mode = "dry run (nothing sent)" if self.dry_run else "backfill"
        lines = [
            f"{mode}: read {self.read}, skipped as already done {self.skipped_done}",
            "planned lines: " + _counts(self.planned),
            "planned bytes: " + _counts(self.planned_bytes),
            f"accepted: {self.accepted}",
            "dead-lettered: " + _counts(self.dead_lettered),
        ]
        if self.dry_run:
            lines.append(f"executions it would upload: {self.executions_planned}")
        for e in self.executions:
            lines.append(
                f"  execution {e.execution_id} (import {e.import_id}, datamart {e.datamart_id}, {e.document_type}): "
                f"{e.status}, sent {e.sent}, accepted {e.accepted}, rejected {e.rejected}"
                + (" [followed after resume]" if e.resumed else "")
            )
            lines.extend(f"    {error}" for error in e.errors)
        return "\n".join(printable(line) for line in lines)  # API error text must not drive the terminal

    def write_json(self, path: Path) -> None:
        """The report as one JSON document."""
        document = {
            "dry_run": self.dry_run,
            "read": self.read,
            "skipped_done": self.skipped_done,
            "planned": dict(self.planned),
            "planned_bytes": dict(self.planned_bytes),
            "accepted": self.accepted,
            "dead_lettered": dict(self.dead_lettered),
            "executions_planned": self.executions_planned,
            "executions": [asdict(e) for e in self.executions],
        }
        path.write_text(json.dumps(document, indent=1), encoding="utf-8")


def _counts(counter: Counter[str]) -> str:
    total = sum(counter.values())
    parts = ", ".join(f"{name}={count}" for name, count in sorted(counter.items()))
    return f"{total}" + (f" ({parts})" if parts else "")
