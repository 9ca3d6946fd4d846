"""Executions: each closed batch uploaded exactly once and followed to its end, and what its end means.

An upload first records, in the checkpoint, the import's executions known before it; an upload whose outcome is
ambiguous (timeout, reset, 5xx) is resolved through the import's list of executions before it is tried again, and so
is one a crash interrupted (`recover`). An execution that ends `SUCCEEDED` makes its lines done, except the rejected
ones, dead-lettered `import_rejected` with the API's line error; one that ends otherwise is uploaded again up to
`BACKFILL_EXECUTION_ATTEMPTS`, then its lines are dead-lettered `import_failed`. An execution still under way after
`BACKFILL_EXECUTION_TIMEOUT_S` stops the run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from worker.backfill.batching import Batch
from worker.backfill.checkpoint import Checkpoint, decode_lines, encode_lines
from worker.backfill.client import ExecutionState, ImportClient, UploadUncertain
from worker.backfill.report import MAX_ERROR_LINES, BackfillReport, ExecutionReport
from worker.backfill.source import Position, SourceRecord
from worker.config import BackfillSettings
from worker.dlq_format.letter import DeadLetter
from worker.progress import Progress
from worker.retry import RetryPolicy

__all__ = ["ExecutionError", "Executions", "Following"]

log = logging.getLogger(__name__)

_ROUTE_OF_TYPE = {"USER_ACTIVITY": "activity", "USER_PROFILE": "profile", "USER_CHOICE": "choice"}


class ExecutionError(RuntimeError):
    """An upload or an execution cannot go on; the checkpoint holds what is done and the same command resumes."""


@dataclass(slots=True)
class Following:
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


class Executions:
    """The executions of one run: uploads, the ones being followed, and their ends."""

    def __init__(
        self,
        *,
        checkpoint: Checkpoint,
        client: ImportClient,
        settings: BackfillSettings,
        retry: RetryPolicy,
        report: BackfillReport,
        dead_letter: Callable[[SourceRecord, DeadLetter], None],
        complete: Callable[[], None],
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._checkpoint = checkpoint
        self._client = client
        self._settings = settings
        self._retry = retry
        self._report = report
        self._dead_letter = dead_letter
        self._complete = complete  # waits for the queued dead letters, marks them done, saves the checkpoint
        self._clock = clock
        self._sleep = sleep
        self._following: list[Following] = []
        self.progress = Progress(enabled=False)

    def __len__(self) -> int:
        return len(self._following)

    def send(self, batch: Batch) -> None:
        """Upload a closed batch as one execution, once fewer than `max_pending` are being followed."""
        while len(self._following) >= self._settings.max_pending:
            self.follow_round()
        self._upload(batch, attempt=1)

    def _upload(self, batch: Batch, attempt: int) -> None:
        checkpoint = self._checkpoint
        import_id = self._import_for(batch.datamart_id, batch.document_type)
        positions = [((r.origin, r.partition), r.offset) for r in batch.records]
        body = batch.body()
        self.progress.note(f"uploading {len(positions)} {batch.document_type} lines")
        execution_id = self._upload_once(batch.datamart_id, import_id, body, positions)
        checkpoint.executions[execution_id] = {
            "import": import_id,
            "datamart": batch.datamart_id,
            "type": batch.document_type,
            "attempt": attempt,
            "lines": encode_lines(positions),
        }
        checkpoint.uploading = None
        self._checkpoint.save()
        deadline = self._clock() + self._settings.execution_timeout_s
        self._following.append(
            Following(
                execution_id, import_id, batch.datamart_id, batch.document_type, positions, batch, attempt, deadline
            )
        )

    def _upload_once(self, datamart: str, import_id: str, body: bytes, positions: list[tuple[Position, int]]) -> str:
        """Upload one body exactly once: an ambiguous failure is resolved by the import's list of executions."""
        checkpoint, client = self._checkpoint, self._client
        retry = self._retry
        for attempt in range(1, retry.max_attempts + 1):
            known = client.execution_ids(datamart, import_id)
            checkpoint.uploading = {
                "import": import_id,
                "datamart": datamart,
                "known": known,
                "lines": encode_lines(positions),
            }
            self._checkpoint.save()
            try:
                return client.upload(datamart, import_id, body)
            except UploadUncertain as exc:
                log.warning("upload outcome unknown (%s); looking at the import's executions", exc)
                new = [i for i in client.execution_ids(datamart, import_id) if i not in set(known)]
                if len(new) == 1:
                    return new[0]
                if new:
                    raise ExecutionError(f"import {import_id} has {len(new)} unexpected executions") from None
                self._sleep(min(retry.max_delay_s, retry.base_delay_s * 2**attempt))
        raise ExecutionError(f"the upload to import {import_id} failed {retry.max_attempts} times")

    def _import_for(self, datamart: str, document_type: str) -> str:
        checkpoint, client = self._checkpoint, self._client
        key = f"{datamart}|{document_type}"
        found = checkpoint.imports.get(key)
        if found is None:
            name = f"{checkpoint.run_name} {document_type} datamart {datamart}"
            found = checkpoint.imports[key] = client.create_import(datamart, document_type, name)
            self._checkpoint.save()
        return found

    def follow_round(self) -> None:
        """Read every followed execution once; handle those that ended; wait a poll interval if none did."""
        client = self._client
        ended = 0
        for item in list(self._following):
            state = client.execution(item.datamart_id, item.import_id, item.execution_id)
            if state.ended:
                self._following.remove(item)
                self._finish(item, state)
                ended += 1
            elif self._clock() > item.deadline:
                raise ExecutionError(
                    f"execution {item.execution_id} is still {state.status} after "
                    f"{self._settings.execution_timeout_s:.0f} s; rerun to go on following it"
                )
        if not ended and self._following:
            self.progress.note(f"following {len(self._following)} executions")
            self._sleep(self._settings.poll_interval_s)

    def _finish(self, item: Following, state: ExecutionState) -> None:
        checkpoint = self._checkpoint
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
        self.progress.advance(accepted)
        self._complete()

    def recover(self) -> None:
        """Adopt an upload a crash interrupted, then follow every execution an earlier run left under way."""
        checkpoint, client = self._checkpoint, self._client
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
            self._checkpoint.save()
        deadline = self._clock() + self._settings.execution_timeout_s
        for execution_id, entry in _items(checkpoint.executions):
            self._following.append(
                Following(
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
            self.follow_round()


def _items(executions: dict[str, dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    yield from sorted(executions.items())
