"""JSON in and out of the worker: the only module that imports orjson.

Decoding is strict on purpose. What the worker validates must be exactly what the API will read, so input that
parsers disagree on is refused rather than guessed at: invalid UTF-8, a byte-order mark, NaN/Infinity, integers
beyond 64 bits (orjson would round them to floats), objects that repeat a key (orjson keeps the last value, other
parsers the first), and nesting deeper than `MAX_DEPTH` (real events are a few levels deep; deeper input only costs).
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

__all__ = ["MAX_DEPTH", "DecodeError", "decode", "encode", "has_duplicate_keys"]

MAX_DEPTH = 128

# When none of these occurs, every `":` in the bytes ends exactly one written key (see has_duplicate_keys): a key
# written with white space before its colon, an escaped quote, or a string that starts with a colon (an opening
# quote follows `[ { , :` or white space) would make the count inexact, so such documents take the exact slow path.
_INEXACT_KEY_COUNT = re.compile(rb'"[ \t\r\n]+:|\\"|[\[{,:\s]":')
# An integer literal of 19 or more digits, outside a fraction or exponent: only these can exceed 64 bits.
_LONG_INTEGER = re.compile(rb"(?<![\d.eE+-])-?\d{19,}(?![\d.eE])")
_FLOAT_FROM_BIG_INTEGER = 9.2e18


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
    keys, depth, big_float = _shape(document)
    if depth > MAX_DEPTH:
        raise DecodeError(f"invalid JSON: nesting deeper than {MAX_DEPTH} levels")
    if big_float and _has_integer_beyond_64_bits(value):
        raise DecodeError("invalid JSON: an integer beyond 64 bits cannot be kept exactly")
    if _repeats_a_key(value, keys):
        raise DecodeError("invalid JSON: an object repeats a key")
    return document


def encode(document: object) -> bytes:
    """Serialise a document for the API (compact UTF-8 JSON)."""
    return orjson.dumps(document)


def has_duplicate_keys(raw: bytes, document: object) -> bool:
    """Tell whether the JSON text `raw` (already parsed into `document`) repeats a key inside some object."""
    return _repeats_a_key(raw, _shape(document)[0])


def _repeats_a_key(raw: bytes, keys: int) -> bool:
    """Fast path: in compact JSON without escaped quotes or colon-led strings, each written key is followed by
    exactly one `":`, so the bytes hold more `":` than the parsed objects hold keys exactly when a key repeats.
    Anything else is re-parsed with a hook that sees every key."""
    if _INEXACT_KEY_COUNT.search(raw) is None:
        return raw.count(b'":') != keys
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


def _has_integer_beyond_64_bits(raw: bytes) -> bool:
    """Whether an integer literal falls outside orjson's exact range (only asked when a huge float was parsed)."""
    return any(not -(2**63) <= int(match) < 2**64 for match in _LONG_INTEGER.findall(raw))


def _shape(document: object) -> tuple[int, int, bool]:
    """(keys over every object, nesting depth, whether a float may come from a huge integer) in one iterative walk."""
    keys = 0
    depth = 0
    big_float = False
    pending: list[tuple[object, int]] = [(document, 1)]
    while pending:
        node, level = pending.pop()
        if isinstance(node, dict):
            keys += len(node)
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            if isinstance(node, float) and abs(node) >= _FLOAT_FROM_BIG_INTEGER and node.is_integer():
                big_float = True
            continue
        depth = max(depth, level)
        for child in children:
            if isinstance(child, dict | list):
                pending.append((child, level + 1))
            elif isinstance(child, float) and abs(child) >= _FLOAT_FROM_BIG_INTEGER and child.is_integer():
                big_float = True
    return keys, depth, big_float
