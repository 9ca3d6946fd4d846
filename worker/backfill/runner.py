"""The backfill loop: read, plan with the worker's rules, batch, upload, follow each execution to its end, record.

The order of a run: recover what the checkpoint says was under way (adopt an upload that happened before a crash,
follow every recorded execution to its end), then read the range, skipping what is done. Each record is planned by
`worker.routing.plan_message` — the worker's own decode → validate → route decision — and either becomes a line of
its (datamart, document type) batch or a dead letter with the worker's reason. A closed batch is uploaded as one
execution; at most `max_pending` executions are followed at once.

Stop, don't spill: an API that refuses the credentials or stays unavailable past the retry budget, or a DLQ that
cannot be written, stops the run (`BackfillError`) with the checkpoint intact; the rerun resumes. Only a line the
API rejected, an execution that failed every attempt, or a record the bulk format cannot express is dead-lettered.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from worker.backfill.batching import Batch, Batcher
from worker.backfill.checkpoint import Checkpoint
from worker.backfill.client import ApiRefused, ApiUnavailable, ImportClient
from worker.backfill.deadletters import DeadLetterError, DeadLetters
from worker.backfill.executions import ExecutionError, Executions
from worker.backfill.lines import NotImportable, line_for
from worker.backfill.report import BackfillReport
from worker.backfill.source import FileSource, Position, SourceRecord, TopicSource
from worker.config import RouteMode, WorkerConfig
from worker.dlq_format.letter import DeadLetter
from worker.progress import Progress
from worker.routing import Rejection, plan_message
from worker.sender import rejection_dead_letter
from worker.validation import Validators

__all__ = ["BackfillError", "Runner"]

log = logging.getLogger(__name__)


class BackfillError(RuntimeError):
    """The run stopped; the checkpoint holds what is done and the same command resumes."""


class Runner:
    """One backfill run over a source, against one API (`client`) and one DLQ (`dead_letters`)."""

    def __init__(
        self,
        config: WorkerConfig,
        *,
        source: TopicSource | FileSource,
        mode_for: Callable[[str], RouteMode | None],
        validators: Validators,
        checkpoint: Checkpoint | None,
        client: ImportClient | None,
        dead_letters: DeadLetters | None,
        progress: bool = False,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._config = config
        self._settings = config.backfill
        self._source = source
        self._mode_for = mode_for
        self._validators = validators
        self._checkpoint = checkpoint
        self._dead_letters = dead_letters
        self._show_progress = progress
        self._report = BackfillReport(dry_run=checkpoint is None)
        self._executions: Executions | None = None
        if checkpoint is not None and client is not None:
            self._executions = Executions(
                checkpoint=checkpoint,
                client=client,
                settings=self._settings,
                retry=config.retry,
                report=self._report,
                dead_letter=self._dead_letter,
                complete=lambda: self._complete_dead_letters(force_save=True),
                clock=clock,
                sleep=sleep,
            )
        self._batcher = Batcher(self._settings.max_records, self._settings.max_bytes)
        self._progress = Progress(enabled=False)
        self._next: dict[Position, int] = {}  # per partition, the offset after the last record read

    @property
    def report(self) -> BackfillReport:
        return self._report

    def run(self) -> BackfillReport:
        """Run to the end of the range; raises BackfillError when it must stop (the checkpoint is kept)."""
        checkpoint = self._checkpoint
        ranges = checkpoint.ranges if checkpoint is not None else self._source.ranges()
        if checkpoint is not None:
            checkpoint.save()
        total = checkpoint.remaining() if checkpoint is not None else sum(e - s for s, e in ranges.values())
        executions = self._executions
        with Progress(total=total, unit="rec", scaled=True, enabled=self._show_progress) as self._progress:
            if executions is not None:
                executions.progress = self._progress
            try:
                if executions is not None:
                    executions.recover()
                starts = self._starts(ranges)
                self._next = {position: start for position, (start, _) in starts.items()}
                for records in self._source.records(starts):
                    self._handle(records)
                self._close_gaps({position: end for position, (_, end) in starts.items()})
                for batch in self._batcher.drain():
                    self._send(batch)
                while executions is not None and len(executions):
                    executions.follow_round()
                self._complete_dead_letters(force_save=True)
                if checkpoint is not None and not checkpoint.complete():
                    log.warning("the range has records left undone; rerun with the same checkpoint to send them")
            except (ApiRefused, ApiUnavailable, DeadLetterError, ExecutionError) as exc:
                raise BackfillError(str(exc)) from exc
        return self._report

    def _starts(self, ranges: dict[Position, tuple[int, int]]) -> dict[Position, tuple[int, int]]:
        if self._checkpoint is None:
            return ranges
        marks = self._checkpoint.done.marks
        return {position: (max(start, marks[position]), end) for position, (start, end) in ranges.items()}

    def _handle(self, records: list[SourceRecord]) -> None:
        done = self._checkpoint.done if self._checkpoint is not None else None
        report = self._report
        skipped = 0
        for record in records:
            report.read += 1
            position = (record.origin, record.partition)
            if done is not None:
                gap = record.offset - self._next[position]
                done.add_range(position, self._next[position], record.offset)  # offsets that do not exist
                self._next[position] = record.offset + 1
                skipped += max(0, gap)
            if done is not None and (position, record.offset) in done:
                skipped += 1
                continue
            self._plan(record)
        report.skipped_done += skipped
        self._progress.advance(skipped)
        self._complete_dead_letters()
        if done is not None and done.held_above() > self._settings.max_held:
            for batch in self._batcher.drain():  # bound what the checkpoint holds above its marks
                self._send(batch)

    def _close_gaps(self, ends: dict[Position, int]) -> None:
        """After the source ended: offsets past each partition's last record up to its end do not exist."""
        if self._checkpoint is not None:
            for position, end in ends.items():
                self._checkpoint.done.add_range(position, self._next[position], end)

    def _plan(self, record: SourceRecord) -> None:
        outcome = plan_message(
            self._mode_for(record.origin),
            record.value,
            validators=self._validators,
            default_datamart_id=self._config.default_datamart_id,
            allowed_datamarts=self._config.allowed_datamarts,
            max_message_bytes=self._config.max_message_bytes,
        )
        if isinstance(outcome, Rejection):
            self._dead_letter(record, rejection_dead_letter(outcome))
            return
        try:
            line = line_for(outcome, self._settings.profile_format)
        except NotImportable as exc:
            self._dead_letter(record, DeadLetter("bulk_unsupported", str(exc), "route", outcome.route))
            return
        self._report.planned[line.document_type] += 1
        self._report.planned_bytes[line.document_type] += len(line.data) + 1
        for batch in self._batcher.add(line, record):
            self._send(batch)

    def _dead_letter(self, record: SourceRecord, letter: DeadLetter) -> None:
        self._report.dead_lettered[letter.reason] += 1
        if self._dead_letters is None:  # dry run: counted only
            self._progress.advance(1)
            return
        self._dead_letters.write(record, letter)

    def _complete_dead_letters(self, *, force_save: bool = False) -> None:
        """Wait for the queued dead letters, mark their records done and save (a crash in between repeats them)."""
        if self._dead_letters is None or self._checkpoint is None:
            return
        flushed = self._dead_letters.flush()
        for record in flushed:
            self._checkpoint.done.add((record.origin, record.partition), record.offset)
        self._progress.advance(len(flushed))
        if force_save or flushed:
            self._save()

    def _save(self) -> None:
        assert self._checkpoint is not None
        self._checkpoint.save()

    def _send(self, batch: Batch) -> None:
        if self._executions is None:  # dry run: counted only
            self._progress.advance(len(batch.records))
            self._report.executions_planned += 1
            return
        self._executions.send(batch)


def run_name() -> str:
    """A name for this run's document imports: when it started, and a short unique suffix."""
    return f"mics-worker backfill {datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ} {uuid.uuid4().hex[:8]}"
