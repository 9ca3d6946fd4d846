"""The one small HTTP interface both backends implement, and the failures it may raise.

The client depends on this protocol only, so the HTTP library (aiohttp, httptools, httpx, pyreqwest) is a deployment
choice (``MICS_WORKER_HTTP_BACKEND``), measured in ``bench/HTTP_BACKENDS.md``.

Exception tree (every one is chained ``from`` the library's own exception)::

    TransportError                  the request got no HTTP response; ``reason`` names why
    ├── TransportTimeout            connect, read or total deadline passed ("timeout")
    ├── TransportConnectError       no connection could be opened ("connect_error")
    ├── TransportConnectionReset    the connection broke mid-exchange ("connection_reset")
    └── TransportProtocolError      the peer answered something that is not valid HTTP ("protocol_error")

All of them are retryable for the caller: none of them says anything about the request itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Protocol

BACKENDS: Final = ("aiohttp", "httptools", "httpx", "pyreqwest")
# httptools spends the least CPU per event end to end (about half of pyreqwest's HTTP cost inside the worker) and passes
# the contract, its own, the API-storm and the soak suites (bench/RESULTS.md, "Issue 16"); pyreqwest is the fastest
# kept client, aiohttp the pure-asyncio fallback, httpx an order of magnitude slower.
DEFAULT_BACKEND: Final = "httptools"


class TransportError(Exception):
    """The request got no HTTP response."""

    reason: str = "transport_error"


class TransportTimeout(TransportError):
    """A connect, read or total deadline passed."""

    reason = "timeout"


class TransportConnectError(TransportError):
    """No connection to the API could be opened."""

    reason = "connect_error"


class TransportConnectionReset(TransportError):
    """The connection was closed or reset before the whole response arrived."""

    reason = "connection_reset"


class TransportProtocolError(TransportError):
    """The peer's answer could not be read as HTTP."""

    reason = "protocol_error"


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Deadlines for one request; ``total_s`` bounds everything, pool waits included."""

    connect_s: float = 3.0
    read_s: float = 10.0
    total_s: float = 15.0

    def __post_init__(self) -> None:
        for name in ("connect_s", "read_s", "total_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"Timeouts.{name} must be a positive number of seconds")


@dataclass(frozen=True, slots=True)
class RawResponse:
    """What came back: the status, headers keyed in lower case, and the whole body."""

    status: int
    headers: Mapping[str, str]
    body: bytes


class Transport(Protocol):
    """Sends one HTTP request; raises only :class:`TransportError` subclasses."""

    async def request(self, method: str, url: str, headers: Mapping[str, str], body: bytes | None) -> RawResponse: ...

    async def aclose(self) -> None: ...


def make_transport(backend: str, timeouts: Timeouts, max_connections: int) -> Transport:
    """Build the named backend; its library is imported only when chosen."""
    if max_connections < 1:
        raise ValueError("max_connections must be at least 1")
    if backend == "aiohttp":
        from worker.mics.aiohttp_backend import AiohttpTransport  # noqa: PLC0415 - import only the chosen library

        return AiohttpTransport(timeouts, max_connections)
    if backend == "httptools":
        from worker.mics.httptools_backend import HttptoolsTransport  # noqa: PLC0415 - import only the chosen library

        return HttptoolsTransport(timeouts, max_connections)
    if backend == "httpx":
        from worker.mics.httpx_backend import HttpxTransport  # noqa: PLC0415 - import only the chosen library

        return HttpxTransport(timeouts, max_connections)
    if backend == "pyreqwest":
        from worker.mics.pyreqwest_backend import PyreqwestTransport  # noqa: PLC0415 - import only the chosen library

        return PyreqwestTransport(timeouts, max_connections)
    raise ValueError(f"unknown HTTP backend {backend!r}; expected one of {', '.join(BACKENDS)}")
