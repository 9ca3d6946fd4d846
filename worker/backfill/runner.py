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
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from worker.backfill.batching import Batch, Batcher
from worker.backfill.checkpoint import Checkpoint, decode_lines, encode_lines
from worker.backfill.client import ApiRefused, ApiUnavailable, ExecutionState, ImportClient, UploadUncertain
from worker.backfill.deadletters import DeadLetterError, DeadLetters
from worker.backfill.lines import NotImportable, line_for
from worker.backfill.progress import Progress
from worker.backfill.report import MAX_ERROR_LINES, BackfillReport, ExecutionReport
from worker.backfill.source import FileSource, Position, SourceRecord, TopicSource
from worker.config import RouteMode, WorkerConfig
from worker.deadletter import DeadLetter
from worker.routing import Rejection, plan_message
from worker.sender import rejection_dead_letter
from worker.validation import Validators

__all__ = ["BackfillError", "Runner"]

log = logging.getLogger(__name__)

_ROUTE_OF_TYPE = {"USER_ACTIVITY": "activity", "USER_PROFILE": "profile", "USER_CHOICE": "choice"}


class BackfillError(RuntimeError):
    """The run stopped; the checkpoint holds what is done and the same command resumes."""


@dataclass(slots=True)
class _Following:
    """An uploaded execution being followed to its end."""

    execution_id: str
    import_id: str
    datamart_id: str
    document_type: str
    positions: list[tuple[Position, int]]
    batch: Batch | None  # None: uploaded by an earlier run (its records are not in memory)
    attempt: int
    deadline: float
    resumed: bool = False


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
        self._client = client
        self._dead_letters = dead_letters
        self._show_progress = progress
        self._clock = clock
        self._sleep = sleep
        self._following: list[_Following] = []
        self._report = BackfillReport(dry_run=checkpoint is None)
        self._batcher = Batcher(self._settings.max_records, self._settings.max_bytes)
        self._progress = Progress(None, enabled=False)
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
        with Progress(total, enabled=self._show_progress) as self._progress:
            try:
                if checkpoint is not None:
                    self._recover(checkpoint)
                starts = self._starts(ranges)
                self._next = {position: start for position, (start, _) in starts.items()}
                for records in self._source.records(starts):
                    self._handle(records)
                self._close_gaps({position: end for position, (_, end) in starts.items()})
                for batch in self._batcher.drain():
                    self._send(batch)
                while self._following:
                    self._follow_round()
                self._complete_dead_letters(force_save=True)
            except (ApiRefused, ApiUnavailable, DeadLetterError) as exc:
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

    # -- uploads -----------------------------------------------------------------------------------------------

    def _send(self, batch: Batch) -> None:
        if self._checkpoint is None:
            self._progress.advance(len(batch.records))
            self._report.executions_planned += 1
            return
        while len(self._following) >= self._settings.max_pending:
            self._follow_round()
        self._upload(batch, attempt=1)

    def _upload(self, batch: Batch, attempt: int) -> None:
        checkpoint, client = self._checkpoint, self._client
        assert checkpoint is not None
        assert client is not None
        import_id = self._import_for(batch.datamart_id, batch.document_type)
        positions = [((r.origin, r.partition), r.offset) for r in batch.records]
        body = batch.body()
        self._progress.note(f"uploading {len(positions)} {batch.document_type} lines")
        execution_id = self._upload_once(batch.datamart_id, import_id, body, positions)
        checkpoint.executions[execution_id] = {
            "import": import_id,
            "datamart": batch.datamart_id,
            "type": batch.document_type,
            "attempt": attempt,
            "lines": encode_lines(positions),
        }
        checkpoint.uploading = None
        self._save()
        deadline = self._clock() + self._settings.execution_timeout_s
        self._following.append(
            _Following(
                execution_id, import_id, batch.datamart_id, batch.document_type, positions, batch, attempt, deadline
            )
        )

    def _upload_once(self, datamart: str, import_id: str, body: bytes, positions: list[tuple[Position, int]]) -> str:
        """Upload one body exactly once: an ambiguous failure is resolved by the import's list of executions."""
        checkpoint, client = self._checkpoint, self._client
        assert checkpoint is not None
        assert client is not None
        retry = self._config.retry
        for attempt in range(1, retry.max_attempts + 1):
            known = client.execution_ids(datamart, import_id)
            checkpoint.uploading = {
                "import": import_id,
                "datamart": datamart,
                "known": known,
                "lines": encode_lines(positions),
            }
            self._save()
            try:
                return client.upload(datamart, import_id, body)
            except UploadUncertain as exc:
                log.warning("upload outcome unknown (%s); looking at the import's executions", exc)
                new = [i for i in client.execution_ids(datamart, import_id) if i not in set(known)]
                if len(new) == 1:
                    return new[0]
                if new:
                    raise BackfillError(f"import {import_id} has {len(new)} unexpected executions") from None
                self._sleep(min(retry.max_delay_s, retry.base_delay_s * 2**attempt))
        raise BackfillError(f"the upload to import {import_id} failed {retry.max_attempts} times")

    def _import_for(self, datamart: str, document_type: str) -> str:
        checkpoint, client = self._checkpoint, self._client
        assert checkpoint is not None
        assert client is not None
        key = f"{datamart}|{document_type}"
        found = checkpoint.imports.get(key)
        if found is None:
            name = f"{checkpoint.run_name} {document_type} datamart {datamart}"
            found = checkpoint.imports[key] = client.create_import(datamart, document_type, name)
            self._save()
        return found

    # -- following executions ----------------------------------------------------------------------------------

    def _follow_round(self) -> None:
        """Read every followed execution once; handle those that ended; wait a poll interval if none did."""
        client = self._client
        assert client is not None
        ended = 0
        for item in list(self._following):
            state = client.execution(item.datamart_id, item.import_id, item.execution_id)
            if state.ended:
                self._following.remove(item)
                self._finish(item, state)
                ended += 1
            elif self._clock() > item.deadline:
                raise BackfillError(
                    f"execution {item.execution_id} is still {state.status} after "
                    f"{self._settings.execution_timeout_s:.0f} s; rerun to go on following it"
                )
        if not ended and self._following:
            self._progress.note(f"following {len(self._following)} executions")
            self._sleep(self._settings.poll_interval_s)

    def _finish(self, item: _Following, state: ExecutionState) -> None:
        checkpoint = self._checkpoint
        assert checkpoint is not None
        failed = state.status != "SUCCEEDED"
        rejected = {} if failed else dict(state.errors)
        accepted = 0 if failed else len(item.positions) - len(rejected)
        self._report.executions.append(
            ExecutionReport(
                item.datamart_id,
                item.document_type,
                item.import_id,
                item.execution_id,
                state.status,
                sent=len(item.positions),
                accepted=accepted,
                rejected=len(rejected),
                errors=[f"line {n}: {m}" for n, m in state.errors[:MAX_ERROR_LINES]]
                + ([state.error] if state.error else []),
                resumed=item.resumed,
            )
        )
        del checkpoint.executions[item.execution_id]
        if failed and item.batch is not None and item.attempt < self._settings.execution_attempts:
            self._upload(item.batch, item.attempt + 1)  # the same lines again, as a new execution
            return
        for number, (position, offset) in enumerate(item.positions, start=1):
            if failed or number in rejected:
                if item.batch is not None:
                    reason, message = (
                        ("import_failed", state.error or state.status)
                        if failed
                        else (
                            "import_rejected",
                            rejected[number],
                        )
                    )
                    letter = DeadLetter(reason, message, "import", _ROUTE_OF_TYPE.get(item.document_type))
                    self._dead_letter(item.batch.records[number - 1], letter)
                # else: uploaded by an earlier run, its bytes are gone: left undone, read and sent again
            else:
                checkpoint.done.add(position, offset)
        if state.accepted != accepted and not failed:
            log.warning(
                "execution %s: the API counts %d accepted, its error lines leave %d",
                item.execution_id,
                state.accepted,
                accepted,
            )
        self._progress.advance(accepted)
        self._complete_dead_letters(force_save=True)

    def _recover(self, checkpoint: Checkpoint) -> None:
        """Adopt an upload a crash interrupted, then follow every execution an earlier run left under way."""
        client = self._client
        assert client is not None
        uploading = checkpoint.uploading
        if uploading is not None:
            ids = client.execution_ids(uploading["datamart"], uploading["import"])
            new = [i for i in ids if i not in set(uploading["known"])]
            if len(new) == 1:
                doc_type = next(k.split("|", 1)[1] for k, v in checkpoint.imports.items() if v == uploading["import"])
                checkpoint.executions[new[0]] = {
                    "import": uploading["import"],
                    "datamart": uploading["datamart"],
                    "type": doc_type,
                    "attempt": 1,
                    "lines": uploading["lines"],
                }
            checkpoint.uploading = None
            self._save()
        deadline = self._clock() + self._settings.execution_timeout_s
        for execution_id, entry in _items(checkpoint.executions):
            self._following.append(
                _Following(
                    execution_id,
                    entry["import"],
                    entry["datamart"],
                    entry["type"],
                    decode_lines(entry["lines"]),
                    None,
                    int(entry["attempt"]),
                    deadline,
                    resumed=True,
                )
            )
        while self._following:
            self._follow_round()


def _items(executions: dict[str, dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    yield from sorted(executions.items())


def run_name() -> str:
    """A name for this run's document imports: when it started, and a short unique suffix."""
    return f"mics-worker backfill {datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ} {uuid.uuid4().hex[:8]}"
