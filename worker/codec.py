"""JSON in and out of the worker: the only module that imports orjson.

Decoding is strict on purpose. What the worker validates must be exactly what the API will read, so input that
parsers disagree on is refused rather than guessed at: invalid UTF-8, a byte-order mark, NaN/Infinity, nesting
deeper than orjson's limit, and objects that repeat a key (orjson keeps the last value, other parsers the first).
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

__all__ = ["DecodeError", "decode", "encode", "has_duplicate_keys"]

# A key written with white space before its colon, or an escaped quote (which can put `":` inside a string), makes the
# cheap byte count below inexact; such documents take the exact slow path.
_INEXACT_KEY_COUNT = re.compile(rb'"[ \t\r\n]+:|\\"')


class DecodeError(ValueError):
    """The bytes are not one well-formed JSON document the worker accepts."""


def decode(value: bytes | None, max_bytes: int) -> Any:
    """Parse a Kafka value, refusing empty, oversized, malformed or ambiguous JSON with a one-line reason."""
    if not value:
        raise DecodeError("empty value")
    if len(value) > max_bytes:
        raise DecodeError(f"value of {len(value)} bytes exceeds the {max_bytes}-byte limit")
    try:
        document = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise DecodeError(f"invalid JSON: {exc}") from exc
    try:
        repeated = has_duplicate_keys(value, document)
    except RecursionError as exc:
        raise DecodeError("invalid JSON: nesting too deep") from exc
    if repeated:
        raise DecodeError("invalid JSON: an object repeats a key")
    return document


def encode(document: object) -> bytes:
    """Serialise a document for the API (compact UTF-8 JSON)."""
    return orjson.dumps(document)


def has_duplicate_keys(raw: bytes, document: object) -> bool:
    """Tell whether the JSON text `raw` (already parsed into `document`) repeats a key inside some object.

    Fast path: in compact JSON without escaped quotes, every written key is followed by exactly one `":`, so the
    number of `":` in the bytes equals the number of keys written; the parsed document holds fewer exactly when a
    key was repeated. Anything else is re-parsed with a hook that sees every key.
    """
    if _INEXACT_KEY_COUNT.search(raw) is None:
        return raw.count(b'":') != _count_keys(document)
    try:
        json.loads(raw, object_pairs_hook=_refuse_repeated_keys)
    except _RepeatedKeyError:
        return True
    return False


class _RepeatedKeyError(Exception):
    pass


def _refuse_repeated_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise _RepeatedKeyError
    return result


def _count_keys(document: object) -> int:
    """Total number of keys over every object in the document (iterative: nesting may be ~1,000 deep)."""
    count = 0
    pending = [document]
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            count += len(node)
            pending.extend(child for child in node.values() if isinstance(child, dict | list))
        elif isinstance(node, list):
            pending.extend(child for child in node if isinstance(child, dict | list))
    return count
