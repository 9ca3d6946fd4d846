"""The typed mediarithmics Tracking API client: five endpoints and a credentials probe.

Where a request goes is decided by configuration alone. :class:`ApiPaths` builds every URL from the
configured base, fixed literals and :func:`~worker.mics.selectors.encode_segment` values, then checks
the result still has the configured scheme, host, port and path prefix and exactly the expected number
of segments. :class:`MicsClient` never raises for what happens on the wire: each call returns an
:class:`~worker.mics.errors.ApiResult` (transport failures are RETRYABLE; a value that cannot form a
safe URL is PERMANENT and is never sent).

This is the hot path, so everything that does not depend on the message (URL prefix, header dicts,
each datamart's prefix) is computed once per client.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from time import perf_counter
from types import TracebackType
from typing import Final
from urllib.parse import urlsplit

from worker import __version__
from worker.mics.auth import ApiToken
from worker.mics.errors import (
    ApiResult,
    OutcomeKind,
    classify,
    rejected_request,
    transport_failure,
)
from worker.mics.selectors import UserPointSelector, UserPointUuid, encode_segment
from worker.mics.statuses import DEFAULT_TABLE, StatusTable
from worker.mics.token_source import TokenSource
from worker.mics.transport import Transport, TransportError

USER_AGENT: Final = f"mics-event-worker/{__version__}"
# The credentials probe reads the choice of a user point that cannot exist: cheap, authenticated,
# modelled by the sandbox, and answered 404 "Resource Not Found" when the token is accepted.
PROBE_SELECTOR: Final = UserPointUuid("00000000-0000-0000-0000-000000000000")
PROBE_PROCESSING_ID: Final = "0"
_DATAMART_CACHE_SIZE: Final = 1024
_DOT_SEGMENTS: Final = frozenset({".", ".."})


class UnsafeUrlError(ValueError):
    """A built URL left the configured scheme, host, port or path prefix (a bug, never sent)."""


def _validated_base(base_url: str) -> tuple[str, str, str]:
    """(scheme, netloc, path without trailing slash) of a usable base URL, or ValueError."""
    if not base_url.isascii() or not base_url.isprintable() or any(c.isspace() for c in base_url):
        raise ValueError("the API base URL must be printable ASCII without whitespace")
    if "?" in base_url or "#" in base_url:
        raise ValueError("the API base URL must have no query or fragment")
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https"):
        raise ValueError("the API base URL must be http or https")
    if not parts.hostname or "@" in parts.netloc:
        raise ValueError("the API base URL must name a host and carry no credentials")
    try:
        parts.port  # noqa: B018 - parsing the port is the validation
    except ValueError as exc:
        raise ValueError("the API base URL has an invalid port") from exc
    path = parts.path.rstrip("/")
    if any(segment in (".", "..") for segment in path.split("/")):
        raise ValueError("the API base URL path must not contain dot-segments")
    return parts.scheme, parts.netloc, path


class ApiPaths:
    """Builds and checks the endpoint URLs under one base URL."""

    __slots__ = ("_datamarts", "_netloc", "_prefix", "_prefix_path", "_prefix_slashes", "_scheme")

    def __init__(self, base_url: str) -> None:
        self._scheme, self._netloc, base_path = _validated_base(base_url)
        self._prefix_path = base_path + "/v1/datamarts/"
        self._prefix = f"{self._scheme}://{self._netloc}{self._prefix_path}"
        self._prefix_slashes = self._prefix_path.count("/")
        self._datamarts: dict[tuple[type, str | int], str] = {}

    @property
    def prefix(self) -> str:
        """``<base>/v1/datamarts/``: every URL this object builds starts with it."""
        return self._prefix

    def _datamart(self, datamart_id: str | int) -> str:
        key = (type(datamart_id), datamart_id)
        try:
            prefix = self._datamarts.get(key)
        except TypeError:  # an unhashable value (a list or an object from a message) is no id
            raise ValueError("a datamart id must be a non-empty string or a non-negative integer") from None
        if prefix is None:
            # A whole segment of dots, even encoded, is resolved like `..` by URL parsers.
            if datamart_id in _DOT_SEGMENTS:
                raise ValueError("a datamart id cannot be . or ..")
            prefix = self._prefix + encode_segment(datamart_id)
            if len(self._datamarts) < _DATAMART_CACHE_SIZE:
                self._datamarts[key] = prefix
        return prefix

    def _checked(self, url: str, segments_after_datamart: int) -> str:
        parts = urlsplit(url)
        if (
            parts.scheme != self._scheme
            or parts.netloc != self._netloc
            or parts.query
            or parts.fragment
            or not parts.path.startswith(self._prefix_path)
            or parts.path.count("/") != self._prefix_slashes + segments_after_datamart
        ):
            raise UnsafeUrlError("a built URL left its configured target")
        return url

    def activity(self, datamart_id: str | int) -> str:
        """``…/v1/datamarts/<dm>/user_activities``."""
        return self._checked(self._datamart(datamart_id) + "/user_activities", 1)

    def _user_point(self, datamart_id: str | int, selector: UserPointSelector) -> str:
        return self._datamart(datamart_id) + "/user_points/" + selector.path_segment()

    def profile(
        self,
        datamart_id: str | int,
        selector: UserPointSelector,
        compartment_id: str | int,
        user_account_id: str | int,
    ) -> str:
        """``…/user_points/<sel>/user_profiles/compartment_id=<c>/user_account_id=<u>``."""
        url = (
            self._user_point(datamart_id, selector)
            + "/user_profiles/compartment_id="
            + encode_segment(compartment_id)
            + "/user_account_id="
            + encode_segment(user_account_id)
        )
        return self._checked(url, 5)

    def choice(self, datamart_id: str | int, selector: UserPointSelector, processing_id: str | int) -> str:
        """``…/user_points/<sel>/user_choices/processing_id=<p>``."""
        url = self._user_point(datamart_id, selector) + "/user_choices/processing_id=" + encode_segment(processing_id)
        return self._checked(url, 4)

    def choice_change_log(self, datamart_id: str | int, selector: UserPointSelector, processing_id: str | int) -> str:
        """``…/user_points/<sel>/user_choices/processing_id=<p>/change_log``."""
        return self._checked(self.choice(datamart_id, selector, processing_id) + "/change_log", 5)

    def template(self, route: str) -> str:
        """The route's method and URL under the configured base, with placeholders for every id (for logs)."""
        user_point = self._prefix + "{datamart_id}/user_points/{selector}"
        if route == "activity":
            return f"POST {self._prefix}{{datamart_id}}/user_activities"
        if route == "profile":
            return f"PUT {user_point}/user_profiles/compartment_id={{c}}/user_account_id={{u}}"
        return f"PUT {user_point}/user_choices/processing_id={{p}}"


def _refused(error: ValueError) -> ApiResult:
    return rejected_request("unsafe_url" if isinstance(error, UnsafeUrlError) else "invalid_path_value")


def _scrubbed(result: ApiResult, secret: str) -> ApiResult:
    """Mask the token should an error body ever echo it: it must not reach logs or the DLQ."""
    texts = (result.error_code, result.error_id, result.error_message)
    if not any(text and secret in text for text in texts):
        return result
    code, error_id, message = (None if text is None else text.replace(secret, "***") for text in texts)
    return replace(result, error_code=code, error_id=error_id, error_message=message)


class MicsClient:
    """Calls the mediarithmics API through a ``Transport``; never raises for what happens on the wire.

    ``decode_write_answers=False`` leaves the ``data`` of successful writes unread (None): the worker never looks
    at it, and decoding it cost about 5% of the client's CPU per request (bench/RESULTS.md).
    """

    def __init__(
        self,
        transport: Transport,
        base_url: str,
        token: ApiToken | TokenSource,
        *,
        decode_write_answers: bool = True,
        statuses: StatusTable = DEFAULT_TABLE,
    ) -> None:
        self._transport = transport
        self._decode_write_answers = decode_write_answers
        self._paths = ApiPaths(base_url)
        self._activity_kinds = statuses.for_route("activity")
        self._profile_kinds = statuses.for_route("profile")
        self._choice_kinds = statuses.for_route("choice")
        self._tokens = token if isinstance(token, TokenSource) else TokenSource.fixed(token)
        self._headers: dict[str, tuple[str, dict[str, str], dict[str, str]]] = {}  # datamart → secret, read, write

    @property
    def tokens(self) -> TokenSource:
        """Where each datamart's token comes from (re-read on a 401/403 before holding the datamart)."""
        return self._tokens

    def _headers_for(self, datamart_id: str | int) -> tuple[str, dict[str, str], dict[str, str]]:
        """The datamart's token and headers, rebuilt only when its token changed."""
        secret = self._tokens.for_datamart(datamart_id).header_value()
        key = str(datamart_id)
        cached = self._headers.get(key)
        if cached is not None and cached[0] == secret:
            return cached
        read = {"Authorization": secret, "Accept": "application/json", "User-Agent": USER_AGENT}
        built = (secret, read, {**read, "Content-Type": "application/json"})
        self._headers[key] = built
        return built

    def __repr__(self) -> str:
        return f"MicsClient({self._paths.prefix!r})"

    def endpoint(self, route: str) -> str:
        """``POST <base>/v1/datamarts/{datamart_id}/user_activities`` and the like: what a log may name."""
        return self._paths.template(route)

    async def _send(
        self,
        method: str,
        url: str,
        body: bytes | None,
        kinds: tuple[OutcomeKind, ...],
        datamart_id: str | int,
        *,
        trace_headers: Mapping[str, str] | None = None,
    ) -> ApiResult:
        secret, read_headers, write_headers = self._headers_for(datamart_id)
        headers = read_headers if body is None else write_headers
        if trace_headers:  # `traceparent` when tracing propagates to the API (off by default)
            headers = {**trace_headers, **headers}
        started = perf_counter()
        try:
            response = await self._transport.request(method, url, headers, body)
        except TransportError as error:
            return transport_failure(error, perf_counter() - started)
        elapsed_s = perf_counter() - started
        keep_data = body is None or self._decode_write_answers
        result = classify(response.status, response.headers, response.body, elapsed_s, keep_data=keep_data, kinds=kinds)
        if result.kind is not OutcomeKind.SUCCESS:
            return _scrubbed(result, secret)
        return result

    async def post_activity(
        self, datamart_id: str | int, body: bytes, *, trace_headers: Mapping[str, str] | None = None
    ) -> ApiResult:
        """``POST /v1/datamarts/<dm>/user_activities`` with an already-encoded User Activity."""
        try:
            url = self._paths.activity(datamart_id)
        except ValueError as error:
            return _refused(error)
        return await self._send("POST", url, body, self._activity_kinds, datamart_id, trace_headers=trace_headers)

    async def put_profile(
        self,
        datamart_id: str | int,
        selector: UserPointSelector,
        compartment_id: str | int,
        user_account_id: str | int,
        body: bytes,
        *,
        trace_headers: Mapping[str, str] | None = None,
    ) -> ApiResult:
        """``PUT …/user_points/<sel>/user_profiles/compartment_id=<c>/user_account_id=<u>``."""
        try:
            url = self._paths.profile(datamart_id, selector, compartment_id, user_account_id)
        except ValueError as error:
            return _refused(error)
        return await self._send("PUT", url, body, self._profile_kinds, datamart_id, trace_headers=trace_headers)

    async def put_choice(
        self,
        datamart_id: str | int,
        selector: UserPointSelector,
        processing_id: str | int,
        body: bytes,
        *,
        trace_headers: Mapping[str, str] | None = None,
    ) -> ApiResult:
        """``PUT …/user_points/<sel>/user_choices/processing_id=<p>``."""
        try:
            url = self._paths.choice(datamart_id, selector, processing_id)
        except ValueError as error:
            return _refused(error)
        return await self._send("PUT", url, body, self._choice_kinds, datamart_id, trace_headers=trace_headers)

    async def get_choice(
        self, datamart_id: str | int, selector: UserPointSelector, processing_id: str | int
    ) -> ApiResult:
        """``GET …/user_points/<sel>/user_choices/processing_id=<p>``; 404 when the user point has none."""
        try:
            url = self._paths.choice(datamart_id, selector, processing_id)
        except ValueError as error:
            return _refused(error)
        return await self._send("GET", url, None, self._choice_kinds, datamart_id)

    async def get_choice_change_log(
        self, datamart_id: str | int, selector: UserPointSelector, processing_id: str | int
    ) -> ApiResult:
        """``GET …/processing_id=<p>/change_log``: past states of the choice, newest last."""
        try:
            url = self._paths.choice_change_log(datamart_id, selector, processing_id)
        except ValueError as error:
            return _refused(error)
        return await self._send("GET", url, None, self._choice_kinds, datamart_id)

    async def probe_credentials(self, datamart_id: str | int) -> ApiResult:
        """Check the token again with a cheap authenticated GET.

        AUTH while the token is rejected; SUCCESS on a 2xx or a 404 (the API let us in and found
        nothing, as expected); otherwise as classified (RETRYABLE: ask again later).
        """
        result = await self.get_choice(datamart_id, PROBE_SELECTOR, PROBE_PROCESSING_ID)
        if result.status == 404:
            return replace(
                result,
                kind=OutcomeKind.SUCCESS,
                reason="ok",
                error_code=None,
                error_id=None,
                error_message=None,
            )
        return result

    async def aclose(self) -> None:
        """Close the transport and its connections."""
        await self._transport.aclose()

    async def __aenter__(self) -> MicsClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()
