"""Reading a request body without letting a client make the sandbox hold more than a set size."""

from __future__ import annotations

from aiohttp import HttpVersion11, web

_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


async def read_capped(request: web.BaseRequest, cap: int) -> bytes | None:
    """The whole body, or None as soon as it is known to exceed `cap` bytes (declared or streamed).

    A client that asked `Expect: 100-continue` (curl does, for larger bodies) is told to go on here, once
    the declared size is known to fit; the low-level server does not do it by itself.
    """
    if request.content_length is not None and request.content_length > cap:
        return None
    if request.version == HttpVersion11 and request.headers.get("Expect", "").lower() == "100-continue":
        await request.writer.write(_CONTINUE)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_any():
        size += len(chunk)
        if size > cap:
            return None
        chunks.append(chunk)
    return b"".join(chunks)
