"""The pyreqwest backend: one Rust ``reqwest`` client (hyper, tokio) behind the ``Transport`` protocol.

It spends the least CPU per request of the kept libraries (bench/HTTP_BACKENDS.md): the HTTP work runs in
native code and only the finished response crosses into Python. The client is built lazily on the first
request, like the aiohttp session. Redirects are never followed, no cookie is kept, the environment's
proxies are ignored, and responses are not decompressed (nothing asks for an encoding). TLS is rustls with the
Mozilla roots bundled in the library, not the system's trust store (README, "HTTP backends").

Failures are mapped by pyreqwest's exception types. One type is ambiguous: pyreqwest raises
``ConnectError`` both when no connection could be opened and when an open connection was reset before
any response came back -- a request that may well have reached the API. Only the connect phase of
the pool (hyper-util's ``Connect`` error kind, the one place the library names it) proves the request was
never sent; everything else under ``ConnectError`` is reported as ``connection_reset``, so a library
change in that wording can only turn a "never sent" into a "maybe sent", never the reverse.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Final

from pyreqwest.client import Client, ClientBuilder
from pyreqwest.exceptions import (
    ConnectError,
    DecodeError,
    NetworkError,
    RequestError,
    RequestTimeoutError,
)

from worker.mics.transport import (
    RawResponse,
    Timeouts,
    TransportConnectError,
    TransportConnectionReset,
    TransportError,
    TransportProtocolError,
    TransportTimeout,
)

# How hyper-util's pool names a failure while opening a connection (its ``Kind::Connect``), as pyreqwest
# passes the error's source chain along in ``details["causes"]``.
_CONNECT_PHASE: Final = "client error (Connect)"


def never_sent(error: ConnectError) -> bool:
    """True only when the error's cause chain shows the connection was never opened."""
    causes = error.details.get("causes") or []
    return any(cause.get("message") == _CONNECT_PHASE for cause in causes)


def _seconds(value: float) -> timedelta:
    return timedelta(seconds=value)


class PyreqwestTransport:
    """Sends requests through one pooled ``pyreqwest`` client."""

    def __init__(self, timeouts: Timeouts, max_connections: int) -> None:
        self._timeouts = timeouts
        self._max_connections = max_connections
        self._client: Client | None = None

    def _open(self) -> Client:
        timeouts = self._timeouts
        self._client = (
            ClientBuilder()
            .max_connections(self._max_connections)
            .pool_max_idle_per_host(self._max_connections)
            .connect_timeout(_seconds(timeouts.connect_s))
            .read_timeout(_seconds(timeouts.read_s))
            .timeout(_seconds(timeouts.total_s))
            .pool_timeout(_seconds(timeouts.total_s))
            .follow_redirects(False)
            .default_cookie_store(False)
            .no_proxy()
            .referer(False)
            .gzip(False)
            .brotli(False)
            .zstd(False)
            .deflate(False)
            .build()
        )
        return self._client

    async def request(self, method: str, url: str, headers: Mapping[str, str], body: bytes | None) -> RawResponse:
        """Send one request and read the whole response, mapping every failure onto a TransportError."""
        client = self._client or self._open()
        builder = client.request(method, url).headers(dict(headers))
        if body is not None:
            builder = builder.body_bytes(body)
        try:
            response = await builder.build().send()
            payload = await response.bytes()
        except RequestTimeoutError as exc:  # connect, read, pool and total deadlines
            raise TransportTimeout(f"pyreqwest {type(exc).__name__}") from exc
        except ConnectError as exc:
            if never_sent(exc):
                raise TransportConnectError("could not connect to the API") from exc
            raise TransportConnectionReset("pyreqwest ConnectError after the connection was open") from exc
        except NetworkError as exc:  # ReadError, WriteError: the exchange broke part way
            raise TransportConnectionReset(f"pyreqwest {type(exc).__name__}") from exc
        except DecodeError as exc:  # the peer's bytes are not an HTTP response
            raise TransportProtocolError(f"pyreqwest {type(exc).__name__}") from exc
        except RequestError as exc:  # closed client, other request-level failures: no response either way
            raise TransportError(f"pyreqwest {type(exc).__name__}") from exc
        # pyreqwest's HeaderMap is already a Mapping keyed in lower case: no per-response copy into a dict.
        return RawResponse(response.status, response.headers, bytes(payload))

    async def aclose(self) -> None:
        """Close the client and its pooled connections (nothing to do if no request was sent)."""
        if self._client is not None:
            await self._client.close()
            self._client = None
