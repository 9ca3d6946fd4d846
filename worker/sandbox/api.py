"""The Tracking API endpoints under `/v1`, answered the way the real API answers them.

Order of checks for one request: the rate limit (decided on arrival; a 429 still waits out the latency),
then added latency, then the injected fault (if any), then authentication
(401), then the path (400 malformed, 404 unknown, 405 wrong method), then the body: content type (415),
size (413), JSON (400), the schema (400, message with the JSON path), agreement with the ids in the path
(400); only then is the document stored. Faults come before authentication so that a misbehaving API
looks the same to every client, authenticated or not; the rate limit stands in front of everything, as a
gateway would, so a throttled request draws no fault.
"""

from __future__ import annotations

import asyncio
import hmac
import socket
import struct
from typing import Protocol

import orjson
from aiohttp import web

from worker.mics.selectors import id_text
from worker.sandbox import replies
from worker.sandbox.bodies import read_capped
from worker.sandbox.faults import Fault
from worker.sandbox.imports import DocumentImportsApi, is_import_path
from worker.sandbox.paths import (
    ActivityTarget,
    ChoiceTarget,
    MalformedPath,
    ProfileTarget,
    Route,
    Target,
    UnknownPath,
    allowed_methods,
    parse_target,
)
from worker.sandbox.ratelimit import retry_after_s
from worker.sandbox.state import SandboxState
from worker.sandbox.store import JsonObject

_MINIMAL_OK = b'{"status":"ok","data":{}}'
_SCHEMA_OF_ROUTE = {Route.ACTIVITY: "activity", Route.PROFILE: "profile", Route.CHOICE_PUT: "choice"}
_KIND_OF_ROUTE = {Route.ACTIVITY: "activities", Route.PROFILE: "profiles", Route.CHOICE_PUT: "choices"}
_NO_LINGER = struct.pack("ii", 1, 0)


class SchemaErrorLike(Protocol):
    """What the sandbox reads from a validation failure (worker.validation.SchemaError fits)."""

    @property
    def path(self) -> str: ...
    @property
    def rule(self) -> str: ...
    @property
    def message(self) -> str: ...


class DocumentChecker(Protocol):
    """Schema validation by name (worker.validation.Validators fits)."""

    def check(self, schema: str, document: object) -> SchemaErrorLike | None: ...


class _Rejected(Exception):
    """Carries the error response of a failed check out of the checking code."""

    def __init__(self, response: web.Response) -> None:
        super().__init__(response.status)
        self.response = response


def _reject(status: int, message: str, headers: dict[str, str] | None = None) -> _Rejected:
    return _Rejected(replies.error(status, message, headers))


class TrackingApi:
    """Answers every request outside `/_sandbox`; `checker` None skips schema validation."""

    def __init__(self, state: SandboxState, checker: DocumentChecker | None) -> None:
        self._state = state
        self._checker = checker
        self._limiter = state.limiter  # never replaced: reset() and updates change it in place
        settings = state.settings
        self._imports = DocumentImportsApi(state.imports, state.store, settings.imports, checker, settings.seed)

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        """Answer (or, when a fault says so, drop) one API request, and journal it."""
        target: Target | UnknownPath | MalformedPath
        try:
            target = parse_target(request.raw_path.partition("?")[0])
            route = target.route(request.method) or Route.UNKNOWN
        except (UnknownPath, MalformedPath) as exc:
            target, route = exc, Route.UNKNOWN
        throttled = self._throttled(target) if self._limiter.active else None
        faults = self._state.faults
        if faults.settings.latency_ms > 0:
            await asyncio.sleep(faults.settings.latency_ms / 1000)
        if throttled is not None:
            self._journal(request, route, throttled.status)
            return throttled
        fault = faults.decide()
        if fault is Fault.NONE:
            try:
                self._authenticate(request, target)
                response = await self._answer(request, target, route)
            except _Rejected as rejected:
                response = rejected.response
        elif fault is Fault.RESET or fault is Fault.HANG:
            self._journal(request, route, None, fault.value)
            await self._drop(request, fault)
            return web.Response(status=499)  # never sent: the connection is gone
        else:
            response = self._fault_response(fault)
        self._journal(request, route, response.status)
        return response

    def _throttled(self, target: Target | UnknownPath | MalformedPath) -> web.Response | None:
        """Pass the request through the rate limiter; its 429 when refused, None when admitted."""
        datamart = None if isinstance(target, UnknownPath | MalformedPath) else target.datamart_id
        refusal = self._limiter.admit(datamart)
        if refusal is None:
            return None
        wait_s, scope = refusal
        headers = {"Retry-After": str(retry_after_s(wait_s))}
        return replies.error(429, f"Too Many Requests (sandbox rate limit: {scope})", headers)

    def _journal(self, request: web.BaseRequest, route: Route, status: int | None, dropped: str | None = None) -> None:
        raw_path, _, query = request.raw_path.partition("?")
        self._state.journal.record(
            request.method,
            route.value,
            raw_path=raw_path,
            query=query,
            host=request.headers.get("Host"),
            status=status,
            dropped=dropped,
        )

    def _fault_response(self, fault: Fault) -> web.Response:
        if fault is Fault.OUTAGE:
            return replies.error(503, "Service Unavailable (sandbox outage window)")
        if fault is Fault.TOO_MANY_REQUESTS:
            retry_after = str(self._state.faults.settings.retry_after_s)
            return replies.error(429, "Too Many Requests (sandbox fault)", {"Retry-After": retry_after})
        if fault is Fault.INTERNAL_ERROR:
            return replies.error(500, "Internal Server Error (sandbox fault)")
        return replies.error(503, "Service Unavailable (sandbox fault)")

    async def _drop(self, request: web.BaseRequest, fault: Fault) -> None:
        """Reset the connection (RST), or hold it for `hang_s` and then close it, answering nothing.

        The request body is read first, so the client is waiting for its answer when the connection goes
        (a reset during its upload would surface as a write error, which it might not even report).
        """
        await read_capped(request, self._state.settings.max_body_bytes)
        if fault is Fault.HANG:
            await asyncio.sleep(self._state.faults.settings.hang_s)
        transport = request.transport
        if transport is None or transport.is_closing():
            return
        if fault is Fault.RESET:
            sock = transport.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _NO_LINGER)
            transport.abort()
        else:
            transport.close()

    def _authenticate(self, request: web.BaseRequest, target: Target | UnknownPath | MalformedPath) -> None:
        """The datamart's own token when one is set for it (`datamart_tokens`), else the sandbox's token."""
        presented = request.headers.get("Authorization", "").encode("utf-8", "surrogateescape")
        datamart = None if isinstance(target, UnknownPath | MalformedPath) else target.datamart_id
        if not hmac.compare_digest(presented, self._state.token_bytes_for(datamart)):
            raise _reject(401, "Authentication failed: missing or invalid API token")

    async def _answer(
        self, request: web.BaseRequest, target: Target | UnknownPath | MalformedPath, route: Route
    ) -> web.Response:
        if isinstance(target, MalformedPath):
            raise _reject(400, f"Malformed path: {target}")
        if isinstance(target, UnknownPath):
            if is_import_path(request.raw_path.partition("?")[0]):
                return await self._imports.answer(request)
            raise _reject(404, f"{replies.NOT_FOUND}: {target}")
        if route is Route.UNKNOWN:
            allow = ", ".join(allowed_methods(target))
            raise _reject(405, f"Method {request.method} not allowed here", {"Allow": allow})
        if isinstance(target, ChoiceTarget) and route is not Route.CHOICE_PUT:
            return self._read_choice(target)
        raw_body = await self._read_body(request)
        if self._state.settings.minimal:
            self._state.store.count_only(_KIND_OF_ROUTE[route])
            return web.Response(body=_MINIMAL_OK, content_type=replies.JSON)
        body = self._checked_body(raw_body, _SCHEMA_OF_ROUTE[route])
        store = self._state.store
        if isinstance(target, ActivityTarget):
            return replies.ok(store.add_activity(target.datamart_id, body))
        if isinstance(target, ProfileTarget):
            _require_same(body, "$compartment_id", target.compartment_id)
            _require_same(body, "$user_account_id", target.user_account_id)
            return replies.ok(
                store.put_profile(
                    target.datamart_id, target.user_point, target.compartment_id, target.user_account_id, body
                )
            )
        _require_same(body, "$processing_id", target.processing_id)
        return replies.ok(store.put_choice(target.datamart_id, target.user_point, target.processing_id, body))

    def _read_choice(self, target: ChoiceTarget) -> web.Response:
        store = self._state.store
        if target.change_log:
            history = store.choice_change_log(target.datamart_id, target.user_point, target.processing_id)
            if history is None:
                raise _reject(404, replies.NOT_FOUND)
            return replies.ok_list(list(history))
        choice = store.get_choice(target.datamart_id, target.user_point, target.processing_id)
        if choice is None:
            raise _reject(404, replies.NOT_FOUND)
        return replies.ok(choice)

    async def _read_body(self, request: web.BaseRequest) -> bytes:
        if request.content_type != replies.JSON:
            raise _reject(415, "Content-Type must be application/json")
        cap = self._state.settings.max_body_bytes
        body = await read_capped(request, cap)
        if body is None:
            raise _reject(413, f"Request body larger than {cap} bytes")
        return body

    def _checked_body(self, raw_body: bytes, schema: str) -> JsonObject:
        try:
            body = orjson.loads(raw_body)
        except orjson.JSONDecodeError as exc:
            raise _reject(400, f"Invalid JSON at $: {exc}") from None
        if not isinstance(body, dict):
            raise _reject(400, f"Invalid {schema} at $: the body must be a JSON object [type]")
        if self._checker is not None:
            problem = self._checker.check(schema, body)
            if problem is not None:
                raise _reject(400, f"Invalid {schema} at {problem.path}: {problem.message} [{problem.rule}]")
        return body


def _require_same(body: JsonObject, field: str, path_value: str) -> None:
    """A body id, when present, must name the same thing as the path, compared as id text (``1.0`` is ``1``).

    A ``null`` id is absent, as the validators' null rule has it.
    """
    value = body.get(field)
    if value is None:
        return
    try:
        same = id_text(value) == path_value
    except ValueError:
        same = False
    if not same:
        raise _reject(400, f"Invalid body at $.{field}: {value!r} does not match the path's {path_value!r}")
