"""`mics-worker check`: probe a health URL and say why it failed, for a person reading an exec probe's output.

Uses `http.client` directly so that proxy variables in the environment never reroute a probe.
"""

from __future__ import annotations

import http.client
from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = ["ProbeResult", "probe"]

_HTTP_OK = 200
_BODY_SHOWN = 300  # characters of a failing answer's body: the readiness detail, not a page


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """`ok` when the URL answered 200; otherwise `reason` says what happened instead."""

    ok: bool
    reason: str

    @property
    def exit_status(self) -> int:
        return 0 if self.ok else 1


def probe(url: str, timeout_s: float) -> ProbeResult:
    """GET `url` once within `timeout_s` seconds (connect and read each)."""
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        return ProbeResult(ok=False, reason=f"{url} is not an http(s) URL with a host")
    connection_type = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        connection = connection_type(parts.hostname, parts.port, timeout=timeout_s)
        try:
            connection.request("GET", target)
            answer = connection.getresponse()
            status, body = answer.status, answer.read(_BODY_SHOWN * 4)
        finally:
            connection.close()
    except TimeoutError:
        return ProbeResult(ok=False, reason=f"{url}: no answer within {timeout_s:g} s")
    except ConnectionRefusedError:
        return ProbeResult(ok=False, reason=f"{url}: connection refused (is the worker running, on this port?)")
    except (OSError, http.client.HTTPException, ValueError) as exc:
        return ProbeResult(ok=False, reason=f"{url}: {type(exc).__name__}: {exc}")
    if status == _HTTP_OK:
        return ProbeResult(ok=True, reason=f"{url}: 200")
    detail = " ".join(body.decode("utf-8", "replace").split())[:_BODY_SHOWN]
    return ProbeResult(ok=False, reason=f"{url}: HTTP {status}" + (f": {detail}" if detail else ""))
