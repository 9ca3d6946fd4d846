"""The sandbox's own control API under `/_sandbox`: no authentication, no faults, loopback use only.

`GET stats`, `GET documents`, `GET requests`, `GET|PUT faults`, `GET|PUT rate_limit`, `GET arrivals`,
`PUT token` (`{"token": …}`, or `{"token": …, "datamart": …}` for that datamart alone), `POST reset`, and the
Schema Registry subset's `PUT schemas` / `PUT registry` (`worker/sandbox/registry.py`); answers are plain
JSON documents (not the API's `status`/`data` envelope), errors the API's error body.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable

import orjson
from aiohttp import web

from worker.sandbox import replies
from worker.sandbox.bodies import read_capped
from worker.sandbox.faults import FaultSettingsError
from worker.sandbox.ratelimit import RateLimitSettingsError
from worker.sandbox.registry import RegistrySettingsError
from worker.sandbox.state import SandboxState

PREFIX = "/_sandbox"
MAX_ADMIN_BODY = 64 * 1024
#: `GET arrivals` answers at most this many buckets (window_s / bucket_s).
MAX_ARRIVAL_BUCKETS = 100_000


class TokenError(ValueError):
    """A token the HTTP header could not carry unchanged."""


def check_token(token: object) -> str:
    """Accept a token only if it survives as an `Authorization` value: non-empty, printable, unpadded."""
    if not isinstance(token, str) or not token:
        raise TokenError("the token must be a non-empty string")
    if token != token.strip() or not token.isprintable() or not token.isascii():
        raise TokenError("the token must be printable ASCII without surrounding whitespace")
    return token


class _BadAdminRequest(Exception):
    """An admin request the sandbox cannot act on; answered 400."""


class AdminApi:
    """Reads and steers one sandbox's state."""

    def __init__(self, state: SandboxState) -> None:
        self._state = state
        self._routes: dict[tuple[str, str], Callable[[web.BaseRequest], Awaitable[web.Response]]] = {
            ("GET", "stats"): self._stats,
            ("GET", "documents"): self._documents,
            ("GET", "requests"): self._requests,
            ("GET", "faults"): self._faults,
            ("PUT", "faults"): self._set_faults,
            ("GET", "rate_limit"): self._rate_limit,
            ("PUT", "rate_limit"): self._set_rate_limit,
            ("GET", "arrivals"): self._arrivals,
            ("PUT", "token"): self._set_token,
            ("POST", "reset"): self._reset,
            ("PUT", "schemas"): self._register_schema,
            ("PUT", "registry"): self._set_registry,
        }

    async def handle(self, request: web.BaseRequest) -> web.Response:
        """Dispatch one `/_sandbox/<name>` request."""
        name = request.raw_path.partition("?")[0].removeprefix(PREFIX + "/")
        action = self._routes.get((request.method, name))
        if action is not None:
            try:
                return await action(request)
            except _BadAdminRequest as exc:
                return replies.error(400, str(exc))
        allowed = [method for method, known in self._routes if known == name]
        if allowed:
            return replies.error(405, f"Method {request.method} not allowed here", {"Allow": ", ".join(allowed)})
        return replies.error(404, f"{replies.NOT_FOUND}: unknown sandbox admin path")

    async def _stats(self, _: web.BaseRequest) -> web.Response:
        return replies.json_response(self._state.journal.stats(self._state.store.counts()))

    async def _documents(self, _: web.BaseRequest) -> web.Response:
        return replies.json_response(self._state.store.documents())

    async def _requests(self, _: web.BaseRequest) -> web.Response:
        return replies.json_response(self._state.journal.recent())

    async def _faults(self, _: web.BaseRequest) -> web.Response:
        return replies.json_response(self._state.faults.describe())

    async def _set_faults(self, request: web.BaseRequest) -> web.Response:
        changes = await _json_object(request)
        try:
            self._state.faults.update(changes)
        except FaultSettingsError as exc:
            raise _BadAdminRequest(str(exc)) from None
        return replies.json_response(self._state.faults.describe())

    async def _rate_limit(self, _: web.BaseRequest) -> web.Response:
        return replies.json_response(self._state.limiter.describe())

    async def _set_rate_limit(self, request: web.BaseRequest) -> web.Response:
        changes = await _json_object(request)
        try:
            self._state.limiter.update(changes)
        except RateLimitSettingsError as exc:
            raise _BadAdminRequest(str(exc)) from None
        return replies.json_response(self._state.limiter.describe())

    async def _arrivals(self, request: web.BaseRequest) -> web.Response:
        window_s = _positive_query_number(request, "window_s", 10.0)
        bucket_s = _positive_query_number(request, "bucket_s", 0.1)
        if window_s / bucket_s > MAX_ARRIVAL_BUCKETS:
            raise _BadAdminRequest(f"window_s / bucket_s must be at most {MAX_ARRIVAL_BUCKETS}")
        return replies.json_response(self._state.limiter.arrivals(window_s, bucket_s))

    async def _set_token(self, request: web.BaseRequest) -> web.Response:
        document = await _json_object(request)
        datamart = document.get("datamart")
        if datamart is not None and (not isinstance(datamart, str) or not datamart):
            raise _BadAdminRequest("datamart must be a non-empty string")
        try:
            token = check_token(document.get("token"))
        except TokenError as exc:
            raise _BadAdminRequest(str(exc)) from None
        if datamart is None:
            self._state.token = token
        else:
            self._state.datamart_tokens[datamart] = token.encode("utf-8")
        return replies.json_response({"status": "ok"})

    async def _register_schema(self, request: web.BaseRequest) -> web.Response:
        try:
            record = self._state.registry.register(await _json_object(request))
        except RegistrySettingsError as exc:
            raise _BadAdminRequest(str(exc)) from None
        return replies.json_response(record)

    async def _set_registry(self, request: web.BaseRequest) -> web.Response:
        available = (await _json_object(request)).get("available")
        if not isinstance(available, bool):
            raise _BadAdminRequest("available must be true or false")
        self._state.registry.available = available
        return replies.json_response({"available": available, "reads": self._state.registry.reads})

    async def _reset(self, _: web.BaseRequest) -> web.Response:
        self._state.reset()
        return replies.json_response({"status": "ok"})


def _positive_query_number(request: web.BaseRequest, name: str, default: float) -> float:
    text = request.query.get(name)
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        raise _BadAdminRequest(f"{name} must be a number") from None
    if not math.isfinite(value) or value <= 0:
        raise _BadAdminRequest(f"{name} must be a finite number > 0")
    return value


async def _json_object(request: web.BaseRequest) -> dict[str, object]:
    raw = await read_capped(request, MAX_ADMIN_BODY)
    if raw is None:
        raise _BadAdminRequest(f"the body is larger than {MAX_ADMIN_BODY} bytes")
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise _BadAdminRequest(f"invalid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise _BadAdminRequest("the body must be a JSON object")
    return document
