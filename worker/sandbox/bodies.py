"""Reading a request body without letting a client make the sandbox hold more than a set size."""

from __future__ import annotations

from aiohttp import web


async def read_capped(request: web.BaseRequest, cap: int) -> bytes | None:
    """The whole body, or None as soon as it is known to exceed `cap` bytes (declared or streamed)."""
    if request.content_length is not None and request.content_length > cap:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_any():
        size += len(chunk)
        if size > cap:
            return None
        chunks.append(chunk)
    return b"".join(chunks)
