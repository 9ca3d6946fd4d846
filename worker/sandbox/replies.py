"""The API's response bodies: `{"status":"ok","data":…}`, the list envelope, and the error body.

The shapes follow mediarithmics' own client code; the `error_code` names are the sandbox's own (the real
codes are not documented), one per status.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping

import orjson
from aiohttp import web

JSON = "application/json"

ERROR_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    429: "TOO_MANY_REQUESTS",
    500: "INTERNAL_SERVER_ERROR",
    503: "SERVICE_UNAVAILABLE",
}

NOT_FOUND = "Resource Not Found"


def json_response(document: object, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    """Any JSON document as a response."""
    return web.Response(body=orjson.dumps(document), status=status, content_type=JSON, headers=headers)


def ok(data: object) -> web.Response:
    """A 200 with one resource."""
    return json_response({"status": "ok", "data": data})


def ok_list(items: list[object]) -> web.Response:
    """A 200 with a complete (single-page) list."""
    count = len(items)
    return json_response(
        {"status": "ok", "data": items, "count": count, "first_result": 0, "max_results": count, "total": count}
    )


def error(status: int, message: str, headers: Mapping[str, str] | None = None) -> web.Response:
    """An error response with a fresh `error_id`, as the API answers every failure."""
    body = {
        "status": "error",
        "error": message,
        "error_code": ERROR_CODES[status],
        "error_id": str(uuid.uuid4()),
    }
    return json_response(body, status=status, headers=headers)
