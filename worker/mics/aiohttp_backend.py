"""The aiohttp backend: one ``aiohttp.ClientSession`` behind the ``Transport`` protocol.

The session is opened lazily on the first request because aiohttp binds it to the running event loop.
URLs are handed over as already encoded (``yarl.URL(..., encoded=True)``): left to itself yarl would
decode ``%2E`` back into ``.`` and resolve dot-segments, undoing the client's path encoding.
Redirects are never followed, cookies are never kept and the environment's proxies are ignored.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Final

import aiohttp
from yarl import URL

from worker.mics.transport import (
    RawResponse,
    Timeouts,
    TransportConnectError,
    TransportConnectionReset,
    TransportError,
    TransportProtocolError,
    TransportTimeout,
)

# aiohttp warns (ResourceWarning) when given raw bytes over 1 MiB; larger bodies go through a BytesIO instead.
_LARGE_BODY_BYTES: Final = 512 * 1024


class AiohttpTransport:
    """Sends requests through one pooled ``aiohttp.ClientSession``."""

    def __init__(self, timeouts: Timeouts, max_connections: int) -> None:
        self._timeout = aiohttp.ClientTimeout(
            total=timeouts.total_s, sock_connect=timeouts.connect_s, sock_read=timeouts.read_s
        )
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self._max_connections, limit_per_host=0),
            timeout=self._timeout,
            cookie_jar=aiohttp.DummyCookieJar(),
            trust_env=False,
            raise_for_status=False,
        )
        return self._session

    async def request(self, method: str, url: str, headers: Mapping[str, str], body: bytes | None) -> RawResponse:
        """Send one request and read the whole response, mapping every failure onto a TransportError."""
        session = self._session or self._open()
        data = io.BytesIO(body) if body is not None and len(body) > _LARGE_BODY_BYTES else body
        try:
            async with session.request(
                method, URL(url, encoded=True), headers=headers, data=data, allow_redirects=False
            ) as response:
                payload = await response.read()
                return RawResponse(
                    response.status, {key.lower(): value for key, value in response.headers.items()}, payload
                )
        except TimeoutError as exc:  # ServerTimeoutError and the total deadline both derive from it
            raise TransportTimeout(f"aiohttp {type(exc).__name__}") from exc
        except aiohttp.ClientConnectorError as exc:
            raise TransportConnectError("could not connect to the API") from exc
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError, aiohttp.ClientOSError) as exc:
            raise TransportConnectionReset(f"aiohttp {type(exc).__name__}") from exc
        except aiohttp.ClientError as exc:
            raise TransportProtocolError(f"aiohttp {type(exc).__name__}") from exc
        except ConnectionError as exc:
            raise TransportConnectionReset(type(exc).__name__) from exc
        except OSError as exc:
            raise TransportError(type(exc).__name__) from exc

    async def aclose(self) -> None:
        """Close the session and its pooled connections (nothing to do if no request was sent)."""
        if self._session is not None:
            await self._session.close()
            self._session = None
