"""The httpx backend: one ``httpx.AsyncClient`` behind the ``Transport`` protocol.

httpx has no overall deadline of its own, so ``Timeouts.total_s`` is enforced with ``asyncio.timeout``.
Redirects are never followed and the environment (proxies, ``.netrc``) is ignored: only the
configured base URL decides where a request goes, and no ambient credential is ever added.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from http.cookiejar import CookieJar, DefaultCookiePolicy

import httpx

from worker.mics.transport import (
    RawResponse,
    Timeouts,
    TransportConnectError,
    TransportConnectionReset,
    TransportError,
    TransportProtocolError,
    TransportTimeout,
)


def _cookie_free_jar() -> CookieJar:
    """A jar that accepts no cookie: the API is stateless and nothing should ride along between requests."""
    return CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))


class HttpxTransport:
    """Sends requests through one pooled ``httpx.AsyncClient``."""

    def __init__(self, timeouts: Timeouts, max_connections: int) -> None:
        self._total_s = timeouts.total_s
        self._client = httpx.AsyncClient(
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            timeout=httpx.Timeout(
                connect=timeouts.connect_s,
                read=timeouts.read_s,
                write=timeouts.read_s,
                pool=timeouts.total_s,
            ),
            follow_redirects=False,
            trust_env=False,
            cookies=httpx.Cookies(_cookie_free_jar()),
        )

    async def request(self, method: str, url: str, headers: Mapping[str, str], body: bytes | None) -> RawResponse:
        """Send one request and read the whole response, mapping every failure onto a TransportError."""
        try:
            async with asyncio.timeout(self._total_s):
                response = await self._client.request(method, url, headers=headers, content=body)
        except TimeoutError as exc:
            raise TransportTimeout("the request exceeded its total deadline") from exc
        except httpx.TimeoutException as exc:
            raise TransportTimeout(f"httpx {type(exc).__name__}") from exc
        except httpx.ConnectError as exc:
            raise TransportConnectError("could not connect to the API") from exc
        except (httpx.ReadError, httpx.WriteError, httpx.CloseError, httpx.RemoteProtocolError) as exc:
            raise TransportConnectionReset(f"httpx {type(exc).__name__}") from exc
        except httpx.HTTPError as exc:
            raise TransportProtocolError(f"httpx {type(exc).__name__}") from exc
        except ConnectionError as exc:
            raise TransportConnectionReset(type(exc).__name__) from exc
        except OSError as exc:
            raise TransportError(type(exc).__name__) from exc
        return RawResponse(response.status_code, dict(response.headers.items()), response.content)

    async def aclose(self) -> None:
        """Close every pooled connection."""
        await self._client.aclose()
