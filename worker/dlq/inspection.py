"""`dlq inspect`: read the dead-letter topic from its beginning without disturbing it, and summarise it.

It assigns the partitions itself under a throwaway group id, with auto-commit off, and never commits, so no consumer
group is left on the broker. The read is a snapshot (`worker.snapshot`): it stops at the watermarks seen at start.
"""

from __future__ import annotations

import re
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final, Literal

from worker import codec
from worker.dlq.selection import EVERY_RECORD, Selection
from worker.dlq.settings import DlqError, DlqSettings
from worker.dlq_format.headers import REPLAY_COUNT_HEADER, text_of
from worker.dlq_format.reader import DeadLetterRecord
from worker.snapshot import SnapshotError, SnapshotReader

__all__ = ["InspectReport", "format_inspect", "inspect", "printable"]

_VALUE_PREVIEW_BYTES: Final = 200


@dataclass(slots=True)
class InspectReport:
    """Counts over the records read, and the first selected ones to show."""

    topic: str
    read: int = 0
    selected: int = 0
    reduced: int = 0  # selected records the DLQ holds only in reduced form
    by_reason: Counter[str] = field(default_factory=Counter)
    by_source_topic: Counter[str] = field(default_factory=Counter)
    by_http_status: Counter[str] = field(default_factory=Counter)
    shown: list[DeadLetterRecord] = field(default_factory=list)


def inspect(
    settings: DlqSettings,
    *,
    topic: str | None = None,
    selection: Selection = EVERY_RECORD,
    limit: int | None = None,
    show: int = 5,
    timeout_s: float = 30.0,
) -> InspectReport:
    """Read the DLQ from the beginning (at most `limit` records) and summarise the selected ones; commits nothing."""
    report = InspectReport(topic or settings.dlq_topic)
    consumer = settings.consumer(f"mics-worker-dlq-inspect-{uuid.uuid4().hex}")
    try:
        reader = SnapshotReader(consumer, [report.topic], start="beginning", timeout_s=timeout_s)
        for batch in reader.batches():
            for message in batch:
                if limit is not None and report.read >= limit:
                    return report
                report.read += 1
                record = DeadLetterRecord.from_message(message)
                if selection.matches(record):
                    _count(report, record, show)
    except SnapshotError as exc:
        raise DlqError(str(exc)) from exc
    finally:
        consumer.close()
    return report


def _count(report: InspectReport, record: DeadLetterRecord, show: int) -> None:
    report.selected += 1
    report.reduced += record.reduced is not None
    report.by_reason[record.reason] += 1
    report.by_source_topic[record.source_topic or "unknown"] += 1
    report.by_http_status[record.http_status or "none"] += 1
    if len(report.shown) < show:
        report.shown.append(record)


def format_inspect(report: InspectReport, output_format: Literal["text", "json"]) -> str:
    """The inspect report as text for a terminal, or as one JSON object."""
    if output_format == "json":
        document = {
            "topic": report.topic,
            "read": report.read,
            "selected": report.selected,
            "reduced": report.reduced,
            "by_reason": dict(report.by_reason.most_common()),
            "by_source_topic": dict(report.by_source_topic.most_common()),
            "by_http_status": dict(report.by_http_status.most_common()),
            "shown": [_record_json(record) for record in report.shown],
        }
        return codec.encode(document).decode()
    lines = [
        f"dead-letter topic {report.topic}: {report.read} records read, {report.selected} selected",
        "by reason:       " + _counts(report.by_reason),
        "by source topic: " + _counts(report.by_source_topic),
        "by HTTP status:  " + _counts(report.by_http_status),
    ]
    if report.reduced:
        lines.append(f"reduced (only part of the record is in the DLQ; replay refuses them): {report.reduced}")
    for record in report.shown:
        lines.append(f"--- partition {record.partition} offset {record.offset}, {_when(record.dead_lettered_at_ms)}")
        if record.reduced is not None:
            lines.append(f"REDUCED: the DLQ holds only part of this record (cut: {record.reduced})")
        trace = record.trace_id
        if trace is not None:
            lines.append(f"trace id: {trace[0]}" + (" (from the source record)" if trace[1] == "source" else ""))
        lines.append(f"key: {_preview(record.key)}")
        lines.append(f"value: {_preview(record.value)}")
        lines.extend(f"  {name}: {value}" for name, value in record.context.items())
        if record.replay_count:
            lines.append(f"  {REPLAY_COUNT_HEADER}: {record.replay_count}")
    return "\n".join(printable(line) for line in lines)


def _record_json(record: DeadLetterRecord) -> dict[str, object]:
    trace = record.trace_id
    return {
        "partition": record.partition,
        "offset": record.offset,
        "timestamp_ms": record.timestamp_ms,
        "key": None if record.key is None else text_of(record.key[:_VALUE_PREVIEW_BYTES]),
        "value": None if record.value is None else text_of(record.value[:_VALUE_PREVIEW_BYTES]),
        "value_bytes": None if record.value is None else len(record.value),
        "context": dict(record.context),
        "replay_count": record.replay_count,
        "reduced": record.reduced,
        "trace_id": None if trace is None else trace[0],
        "trace_id_from": None if trace is None else trace[1],
    }


def _counts(counter: Counter[str]) -> str:
    return ", ".join(f"{name}={count}" for name, count in counter.most_common()) or "-"


def _when(epoch_ms: int | None) -> str:
    if epoch_ms is None:
        return "time unknown"
    try:
        moment = datetime.fromtimestamp(epoch_ms / 1000, UTC)
    except (OverflowError, ValueError, OSError):  # a record anyone wrote to the DLQ may carry any number
        return f"time out of range ({epoch_ms} ms)"
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _preview(data: bytes | None) -> str:
    if data is None:
        return "(null)"
    text = text_of(data[:_VALUE_PREVIEW_BYTES])
    return text if len(data) <= _VALUE_PREVIEW_BYTES else f"{text}... ({len(data)} bytes)"


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """Escape control characters: message data must not drive the operator's terminal."""
    return _CONTROL.sub(lambda match: f"\\x{ord(match.group()):02x}", text)
