"""Document imports and executions over HTTP: create an import, upload an execution, read its status.

Paths [DOC /data-ingestion/bulk-processing; /resources/your-first-integration/.../sending-documents]:
`POST /v1/datamarts/:id/document_imports` (JSON `document_type`, `mime_type` `APPLICATION_X_NDJSON`, `encoding`
`utf-8`, `name`; the answer's `data.id` is the import), `POST …/document_imports/:importId/executions` (the NDJSON
body, `Content-Type: application/x-ndjson`). Reading an execution (`GET …/executions/:executionId`) and listing an
import's executions (`GET …/executions`) follow the API's resource pattern; their answer's shape (`status`,
`result.total_success`, per-line `errors`) is UNKNOWN in the public pages and modelled on the sandbox
(`worker/sandbox/imports.py`).

Host and base path come from configuration; the datamart (checked against the allowed list when planned) and the
ids the API returned are percent-encoded as one segment each. The token goes in the `Authorization` header only.

Errors: `ApiRefused` (a permanent answer: 4xx other than 408/425/429) and `ApiUnavailable` (transport errors and
retryable statuses once the retry budget is spent). A transport error or 5xx on an *upload* is ambiguous — the
execution may exist — so `upload` never retries it itself: it raises `UploadUncertain` and the runner looks at the
import's executions before uploading again.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any

import httpx

from worker import codec
from worker.mics.auth import ApiToken
from worker.mics.selectors import encode_segment
from worker.retry import RetryPolicy

__all__ = ["ApiRefused", "ApiUnavailable", "ExecutionState", "ImportClient", "UploadUncertain"]

_RETRYABLE = frozenset({408, 425, 429, 500, 502, 503, 504, 520, 521, 522, 523, 524})
_NOT_PROCESSED = frozenset({408, 425, 429})  # answers that say the request was not acted on
_LITERAL = frozenset({0, 1, 3, 5})  # v1/datamarts/:dm/document_imports/:import/executions/:execution
TERMINAL = frozenset({"SUCCEEDED", "FAILED", "CANCELED", "CANCELLED"})


class ApiRefused(RuntimeError):
    """The API refused a request for good; the message has the status and the API's error text."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


class ApiUnavailable(RuntimeError):
    """The API did not answer usefully within the retry budget."""


class UploadUncertain(RuntimeError):
    """An upload failed in a way that does not tell whether the execution was created."""


@dataclass(frozen=True, slots=True)
class ExecutionState:
    """What the API says about one execution."""

    id: str
    status: str
    total: int
    accepted: int
    errors: tuple[tuple[int, str], ...]  # (1-based line, message)
    error: str | None

    @property
    def ended(self) -> bool:
        return self.status in TERMINAL


class ImportClient:
    """A synchronous client for the few, large requests of a backfill."""

    def __init__(
        self,
        base_url: str,
        token: ApiToken,
        *,
        retry: RetryPolicy,
        timeout_s: float,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._base = base_url.rstrip("/")
        self._retry = retry
        self._rng = random.Random()
        headers = {"Authorization": token.header_value()}
        self._http = httpx.Client(headers=headers, timeout=timeout_s, follow_redirects=False, transport=transport)

    def __repr__(self) -> str:
        return f"ImportClient({self._base!r})"

    def close(self) -> None:
        self._http.close()

    def create_import(self, datamart_id: str, document_type: str, name: str) -> str:
        """Create a document import; its id."""
        body = {"document_type": document_type, "mime_type": "APPLICATION_X_NDJSON", "encoding": "utf-8", "name": name}
        data = self._call("POST", self._imports(datamart_id), json_body=codec.encode(body))
        return _text_id(data, "document import")

    def upload(self, datamart_id: str, import_id: str, body: bytes) -> str:
        """Create one execution with `body`; its id. Raises UploadUncertain when it may or may not exist."""
        url = self._imports(datamart_id, import_id, "executions")
        data = self._call("POST", url, ndjson_body=body, retry_ambiguous=False)
        return _text_id(data, "execution")

    def execution(self, datamart_id: str, import_id: str, execution_id: str) -> ExecutionState:
        """The current state of one execution."""
        return _state(self._call("GET", self._imports(datamart_id, import_id, "executions", execution_id)))

    def execution_ids(self, datamart_id: str, import_id: str) -> list[str]:
        """The ids of every execution of an import."""
        data = self._call("GET", self._imports(datamart_id, import_id, "executions"))
        if not isinstance(data, list):
            raise ApiUnavailable("the executions list is not a list")
        return [_text_id(item, "execution") for item in data]

    def _imports(self, datamart_id: str, *rest: str) -> str:
        segments = ["v1", "datamarts", datamart_id, "document_imports", *rest]
        path = "/".join(s if i in _LITERAL else encode_segment(s) for i, s in enumerate(segments))
        return f"{self._base}/{path}"

    def _call(
        self,
        method: str,
        url: str,
        *,
        json_body: bytes | None = None,
        ndjson_body: bytes | None = None,
        retry_ambiguous: bool = True,
    ) -> Any:
        content = json_body if json_body is not None else ndjson_body
        headers = {}
        if content is not None:
            headers["Content-Type"] = "application/json" if json_body is not None else "application/x-ndjson"
        began = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            retry_after: float | None = None
            try:
                response = self._http.request(method, url, content=content, headers=headers)
            except httpx.HTTPError as exc:
                problem = f"{type(exc).__name__} on {method} {_template(url, self._base)}"
                if not retry_ambiguous:
                    raise UploadUncertain(problem) from None
            else:
                if response.is_success:
                    return _data(response)
                status = response.status_code
                problem = f"HTTP {status} on {method} {_template(url, self._base)}: {_error_text(response)}"
                if status not in _RETRYABLE:
                    raise ApiRefused(status, problem)
                if not retry_ambiguous and status not in _NOT_PROCESSED:
                    raise UploadUncertain(problem)
                retry_after = _retry_after(response)
            delay = self._retry.delay_s(attempt, retry_after, self._rng)
            if not self._retry.allows(attempt, time.monotonic() - began, delay):
                raise ApiUnavailable(f"{problem} (gave up after {attempt} attempts)")
            time.sleep(delay)


def _template(url: str, base: str) -> str:
    """The path under the base with ids left out: what an error message may say."""
    parts = url[len(base) :].split("/")
    return "/".join(p if p in {"", "v1", "datamarts", "document_imports", "executions"} else ":id" for p in parts)


def _data(response: httpx.Response) -> Any:
    try:
        document = codec.decode(response.content, max(1, len(response.content)))
    except codec.DecodeError as exc:
        raise ApiUnavailable(f"an answer that is not JSON: {exc}") from None
    if not isinstance(document, dict) or "data" not in document:
        raise ApiUnavailable("an answer without the API's data member")
    return document["data"]


def _error_text(response: httpx.Response) -> str:
    try:
        document = codec.decode(response.content, max(1, len(response.content)))
    except codec.DecodeError:
        return "(no JSON error body)"
    if isinstance(document, dict) and isinstance(document.get("error"), str):
        return " ".join(document["error"].split())[:300]
    return "(no error text)"


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return max(0.0, float(response.headers.get("Retry-After", "")))
    except ValueError:
        return None


def _text_id(data: Any, what: str) -> str:
    if isinstance(data, dict) and isinstance(data.get("id"), str | int) and str(data["id"]):
        return str(data["id"])
    raise ApiUnavailable(f"the API's answer has no {what} id")


def _state(data: Any) -> ExecutionState:
    if not isinstance(data, dict) or not isinstance(data.get("status"), str):
        raise ApiUnavailable("an execution without a status")
    result = data.get("result")
    if not isinstance(result, dict):
        result = {}
    errors = tuple(
        (int(item.get("line", 0)), str(item.get("message", "")))
        for item in data.get("errors") or ()
        if isinstance(item, dict)
    )
    return ExecutionState(
        id=_text_id(data, "execution"),
        status=data["status"],
        total=int(result.get("total_lines", 0)),
        accepted=int(result.get("total_success", 0)),
        errors=errors,
        error=str(data["error"]) if data.get("error") is not None else None,
    )
