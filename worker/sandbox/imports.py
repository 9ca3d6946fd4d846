"""Document imports and their executions: the bulk path, as the sandbox answers it.

Endpoints (under the Tracking API's own checks: rate limit, faults, token, then these):

- `POST /v1/datamarts/{dm}/document_imports` (JSON: `document_type`, `mime_type`, `encoding`, `name`) creates an
  import [DOC /data-ingestion/bulk-processing; /resources/.../sending-documents].
- `POST …/document_imports/{id}/executions` (an `application/x-ndjson` body, at most `max_execution_bytes`, 100 MB
  as the documentation recommends) creates an execution, answered at once with status `PENDING`.
- `GET …/document_imports/{id}/executions` lists them; `GET …/executions/{eid}` reads one.

An execution is processed asynchronously: after `processing_delay_s` it is `RUNNING`, then each line is checked
(the per-line formats of `docs/backfill.md`) and stored in the same `DocumentStore` as real-time writes, so
`/_sandbox/documents` shows bulk and real-time writes alike. It ends `SUCCEEDED` with per-line errors
(`{"line": n, "message": …}`, 1-based) or, under the `execution_failure` fault, `FAILED` with nothing stored.
The status names, the result counts and the error list's shape are not documented (UNKNOWN): the sandbox's
choice, which `worker/backfill/client.py` reads.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import random
import re
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from worker.sandbox import replies
from worker.sandbox.bodies import read_capped
from worker.sandbox.paths import UserPointSelector, decode_segment
from worker.sandbox.store import DocumentStore, JsonObject, epoch_ms

__all__ = ["DocumentImportsApi", "ImportRegistry", "ImportSettings", "is_import_path"]

MIB = 1024 * 1024
DOCUMENT_TYPES = ("USER_ACTIVITY", "USER_PROFILE", "USER_CHOICE")
_PATH = re.compile(r"^/v1/datamarts/([^/]+)/document_imports(?:/([^/]+)/executions(?:/([^/]+))?)?$")
_IDENTIFIERS = (("compartment_id", "user_account_id"), ("email_hash",), ("user_agent_id",))
_FORM = {("compartment_id", "user_account_id"): "user_account", ("email_hash",): "email_hash"}
_YIELD_EVERY = 500  # lines processed between two yields to the event loop


@dataclass(frozen=True, slots=True)
class ImportSettings:
    """Limits and faults of the bulk path (command-line flags of `python -m worker.sandbox`)."""

    max_execution_bytes: int = 100 * MIB
    processing_delay_s: float = 0.05
    line_reject: float = 0.0  # fraction of well-formed lines rejected anyway (a seeded draw per line)
    execution_failure: float = 0.0  # fraction of executions that end FAILED as a whole


@dataclass(slots=True)
class Execution:
    """One uploaded file and what its processing did."""

    id: str
    import_id: str
    datamart_id: str
    body: bytes
    status: str = "PENDING"
    creation_ts: int = field(default_factory=epoch_ms)
    total: int = 0
    success: int = 0
    errors: list[JsonObject] = field(default_factory=list)
    error: str | None = None

    def as_json(self) -> JsonObject:
        """The execution as the API's `data` member."""
        document: JsonObject = {
            "id": self.id,
            "document_import_id": self.import_id,
            "datamart_id": self.datamart_id,
            "status": self.status,
            "creation_ts": self.creation_ts,
            "result": {"total_lines": self.total, "total_success": self.success, "total_failure": len(self.errors)},
            "errors": list(self.errors),
        }
        if self.error is not None:
            document["error"] = self.error
        return document


class ImportRegistry:
    """Every import and execution of one sandbox; cleared by `/_sandbox/reset`."""

    def __init__(self) -> None:
        self.imports: dict[str, JsonObject] = {}
        self.executions: dict[str, Execution] = {}
        self._ids = itertools.count(1)

    def next_id(self) -> str:
        """A fresh id (numeric text, like the API's)."""
        return str(next(self._ids))

    def clear(self) -> None:
        """Forget everything (executions still processing finish into nothing)."""
        self.imports.clear()
        self.executions.clear()


def is_import_path(raw_path: str) -> bool:
    """Whether a path (without query) is one of the document import resources."""
    return _PATH.match(raw_path) is not None


class _LineError(Exception):
    """One line of an execution that cannot be applied; the message is the API's error line."""


class DocumentImportsApi:
    """Answers the document import requests; `checker` validates bodies by schema name (None: no validation)."""

    def __init__(
        self,
        registry: ImportRegistry,
        store: DocumentStore,
        settings: ImportSettings,
        checker: Any,  # worker.sandbox.api.DocumentChecker (importing it here would be circular) or None
        seed: int | None,
    ) -> None:
        self._registry = registry
        self._store = store
        self._settings = settings
        self._checker = checker
        self._rng = random.Random(seed)
        self._tasks: set[asyncio.Task[None]] = set()

    async def answer(self, request: web.BaseRequest) -> web.Response:  # noqa: PLR0911 - one return per answer
        """Answer one authenticated request whose path `is_import_path`."""
        match = _PATH.match(request.raw_path.partition("?")[0])
        assert match is not None
        datamart, import_id, execution_id = (decode_segment(part) if part else None for part in match.groups())
        assert datamart is not None
        if import_id is None:
            if request.method != "POST":
                return replies.error(405, f"Method {request.method} not allowed here", {"Allow": "POST"})
            return await self._create_import(request, datamart)
        found = self._registry.imports.get(import_id)
        if found is None or found["datamart_id"] != datamart:
            return replies.error(404, f"{replies.NOT_FOUND}: no document import {import_id}")
        if execution_id is not None:
            execution = self._registry.executions.get(execution_id)
            if request.method != "GET":
                return replies.error(405, f"Method {request.method} not allowed here", {"Allow": "GET"})
            if execution is None or execution.import_id != import_id:
                return replies.error(404, f"{replies.NOT_FOUND}: no execution {execution_id}")
            return replies.ok(execution.as_json())
        if request.method == "GET":
            ids = found["execution_ids"]
            assert isinstance(ids, list)
            return replies.ok_list([self._registry.executions[i].as_json() for i in ids])
        if request.method != "POST":
            return replies.error(405, f"Method {request.method} not allowed here", {"Allow": "GET, POST"})
        return await self._create_execution(request, found)

    async def _create_import(self, request: web.BaseRequest, datamart: str) -> web.Response:  # noqa: PLR0911
        if request.content_type != replies.JSON:
            return replies.error(415, "Content-Type must be application/json")
        raw = await read_capped(request, 64 * 1024)
        try:
            document = orjson.loads(raw or b"")
        except orjson.JSONDecodeError as exc:
            return replies.error(400, f"Invalid JSON at $: {exc}")
        if not isinstance(document, dict):
            return replies.error(400, "Invalid document import at $: must be an object")
        if document.get("document_type") not in DOCUMENT_TYPES:
            return replies.error(400, f"Invalid document import at $.document_type: one of {DOCUMENT_TYPES}")
        if document.get("mime_type") != "APPLICATION_X_NDJSON":
            return replies.error(400, "Invalid document import at $.mime_type: APPLICATION_X_NDJSON only")
        if str(document.get("encoding", "")).lower() not in {"utf-8", "utf8"}:
            return replies.error(400, "Invalid document import at $.encoding: utf-8 only")
        if not isinstance(document.get("name"), str) or not document["name"]:
            return replies.error(400, "Invalid document import at $.name: a non-empty string")
        created: JsonObject = {
            "id": self._registry.next_id(),
            "datamart_id": datamart,
            "document_type": document["document_type"],
            "mime_type": "APPLICATION_X_NDJSON",
            "encoding": "utf-8",
            "name": document["name"],
        }
        self._registry.imports[str(created["id"])] = {**created, "execution_ids": []}
        return replies.ok(created)

    async def _create_execution(self, request: web.BaseRequest, found: JsonObject) -> web.Response:
        if request.content_type != "application/x-ndjson":
            return replies.error(415, "Content-Type must be application/x-ndjson")
        cap = self._settings.max_execution_bytes
        body = await read_capped(request, cap)
        if body is None:
            return replies.error(413, f"Execution body larger than {cap} bytes")
        execution = Execution(self._registry.next_id(), str(found["id"]), str(found["datamart_id"]), body)
        self._registry.executions[execution.id] = execution
        ids = found["execution_ids"]
        assert isinstance(ids, list)
        ids.append(execution.id)
        task = asyncio.create_task(self._process(execution, str(found["document_type"])))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return replies.ok(execution.as_json())

    async def _process(self, execution: Execution, document_type: str) -> None:
        await asyncio.sleep(self._settings.processing_delay_s)
        execution.status = "RUNNING"
        lines = [line for line in execution.body.split(b"\n") if line.strip()]
        execution.body = b""
        execution.total = len(lines)
        if self._rng.random() < self._settings.execution_failure:
            execution.status, execution.error = "FAILED", "execution failed (sandbox fault)"
            return
        for number, line in enumerate(lines, start=1):
            try:
                self._apply(execution.datamart_id, document_type, line)
                execution.success += 1
            except _LineError as exc:
                execution.errors.append({"line": number, "message": str(exc)})
            if number % _YIELD_EVERY == 0:
                await asyncio.sleep(0)
        execution.status = "SUCCEEDED"

    def _apply(self, datamart: str, document_type: str, line: bytes) -> None:
        try:
            document = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise _LineError(f"invalid JSON: {exc}") from None
        if not isinstance(document, dict):
            raise _LineError("a line must be a JSON object")
        if self._settings.line_reject and self._rng.random() < self._settings.line_reject:
            raise _LineError("line rejected (sandbox fault)")
        if document_type == "USER_ACTIVITY":
            self._check("activity", document, "$")
            self._store.add_activity(datamart, document)
            return
        self._apply_command(datamart, document_type, document)

    def _apply_command(self, datamart: str, document_type: str, command: JsonObject) -> None:
        if command.get("operation") != "UPSERT":
            raise _LineError("$.operation: the sandbox applies UPSERT only")
        selector = _identifier(command)
        if document_type == "USER_PROFILE":
            if command.get("force_replace") is not True and command.get("update_strategy") != "FORCE_REPLACE":
                raise _LineError("the sandbox applies force_replace=true / update_strategy=FORCE_REPLACE only")
            profile = command.get("user_profile")
            self._check("profile", profile, "$.user_profile")
            assert isinstance(profile, dict)
            compartment, account = profile.get("$compartment_id"), profile.get("$user_account_id")
            values = dict(selector.values)
            compartment = values.get("compartment_id", compartment)
            account = values.get("user_account_id", account)
            if compartment is None or account is None:
                raise _LineError("$.user_profile: $compartment_id and $user_account_id name the profile")
            self._store.put_profile(datamart, selector, str(compartment), str(account), profile)
            return
        if not isinstance(command.get("force_replace"), bool):
            raise _LineError("$.force_replace: a boolean, mandatory for UPSERT")
        choice = command.get("user_choice")
        self._check("choice", choice, "$.user_choice")
        assert isinstance(choice, dict)
        self._store.put_choice(datamart, selector, str(choice["$processing_id"]), choice)

    def _check(self, schema: str, document: object, where: str) -> None:
        if not isinstance(document, dict):
            raise _LineError(f"{where}: must be an object")
        if self._checker is not None:
            problem = self._checker.check(schema, document)
            if problem is not None:
                path = where + problem.path[1:]
                raise _LineError(f"Invalid {schema} at {path}: {problem.message} [{problem.rule}]")


def _identifier(command: JsonObject) -> UserPointSelector:
    """The one user identifier of a command line (the documentation allows only one per line)."""
    present = [names for names in _IDENTIFIERS if any(name in command for name in names)]
    if len(present) != 1:
        raise _LineError("exactly one identifier per line: compartment_id+user_account_id, email_hash or user_agent_id")
    names = present[0]
    values = tuple((name, command.get(name)) for name in names)
    if not all(isinstance(value, str) and value for _, value in values):
        raise _LineError(f"identifier {'+'.join(names)}: non-empty strings")
    return UserPointSelector(_FORM.get(names, "user_agent_id"), tuple((n, str(v)) for n, v in values))


def add_import_arguments(parser: argparse.ArgumentParser) -> None:
    """The bulk path's flags on `python -m worker.sandbox`'s parser."""
    group = parser.add_argument_group("document imports (bulk path)")
    group.add_argument("--max-execution-bytes", type=int, default=100 * MIB, help="413 above (default: 100 MiB)")
    group.add_argument("--import-delay-s", type=float, default=0.05, help="seconds an execution stays PENDING")
    group.add_argument("--import-line-reject", type=float, default=0.0, help="fraction of lines rejected anyway")
    group.add_argument("--import-failure", type=float, default=0.0, help="fraction of executions ending FAILED")


def import_settings(args: argparse.Namespace) -> ImportSettings:
    """The flags of `add_import_arguments`, checked."""
    fractions = (args.import_line_reject, args.import_failure)
    if args.max_execution_bytes < 1 or args.import_delay_s < 0 or not all(0 <= f <= 1 for f in fractions):
        raise ValueError("--max-execution-bytes >= 1, --import-delay-s >= 0, fractions within [0, 1]")
    return ImportSettings(args.max_execution_bytes, args.import_delay_s, *fractions)
