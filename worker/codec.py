"""JSON in and out of the worker: the only module that imports orjson.

Decoding is strict on purpose. What the worker validates must be exactly what the API will read, so input that
parsers disagree on is refused rather than guessed at: invalid UTF-8, a byte-order mark, NaN/Infinity, integers
beyond 64 bits (orjson would round them to floats), objects that repeat a key (orjson keeps the last value, other
parsers the first), and nesting deeper than `MAX_DEPTH` (real events are a few levels deep; deeper input only costs).

This runs for every message, so each check has a fast path in C (orjson, `bytes` scans) and walks the parsed
document in Python only when the bytes say it might matter.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

__all__ = ["MAX_DEPTH", "DecodeError", "decode", "encode", "has_duplicate_keys"]

MAX_DEPTH = 128

# Byte sequences that make the key count of the fast path inexact (see has_duplicate_keys): an escaped quote or any
# \u escape (either can put `":` in a decoded string), white space before a colon, and a string that starts with a
# colon (an opening quote follows `[ { , :` or white space).
_INEXACT_KEY_COUNT = (
    b'\\"', b"\\u", b" :", b"\t:", b"\n:", b"\r:", b'[":', b'{":', b',":', b':":', b' ":', b'\n":', b'\t":', b'\r":',
)  # fmt: skip
# Every digit made "0", everything else blanked: a run of 19 digits is the only way to write an integer beyond 64 bits.
_DIGITS_AS_ZEROS = bytes(0x30 if 0x30 <= byte <= 0x39 else 0x20 for byte in range(256))
_NINETEEN_DIGITS = b"0" * 19
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
    # A document cannot nest deeper than it has opening brackets.
    if value.count(b"{") + value.count(b"[") > MAX_DEPTH and _depth(document) > MAX_DEPTH:
        raise DecodeError(f"invalid JSON: nesting deeper than {MAX_DEPTH} levels")
    if _NINETEEN_DIGITS in value.translate(_DIGITS_AS_ZEROS) and _has_integer_beyond_64_bits(value, document):
        raise DecodeError("invalid JSON: an integer beyond 64 bits cannot be kept exactly")
    if has_duplicate_keys(value, document):
        raise DecodeError("invalid JSON: an object repeats a key")
    return document


def encode(document: object) -> bytes:
    """Serialise a document for the API (compact UTF-8 JSON)."""
    return orjson.dumps(document)


def has_duplicate_keys(raw: bytes, document: object) -> bool:
    """Tell whether the JSON text `raw` (already parsed into `document`, at most MAX_DEPTH deep) repeats a key.

    Three tiers, cheapest first. Canonical text (what orjson and most compact producers write) is the parsed
    document re-encoded, whose keys are unique by construction. Otherwise, when `raw` has none of the inexact
    sequences, each key it writes is followed by exactly one `":`, and so is each key of the re-encoded document
    (its strings hold no quote and start with no colon): the raw text has more `":` exactly when it repeats a key.
    Anything else is re-parsed with a hook that sees every key."""
    canonical = orjson.dumps(document)
    if canonical == raw:
        return False
    if not any(sequence in raw for sequence in _INEXACT_KEY_COUNT):
        return raw.count(b'":') != canonical.count(b'":')
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


def _has_integer_beyond_64_bits(raw: bytes, document: object) -> bool:
    """Whether an integer literal falls outside orjson's exact range. orjson turns such literals into floats, so a
    float of that size must be in the document too (strings of digits alone do not count)."""
    out_of_range = any(not -(2**63) <= int(match) < 2**64 for match in _LONG_INTEGER.findall(raw))
    return out_of_range and _holds_a_huge_integral_float(document)


def _holds_a_huge_integral_float(document: object) -> bool:
    pending = [document]
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)
        elif isinstance(node, float) and abs(node) >= _FLOAT_FROM_BIG_INTEGER and node.is_integer():
            return True
    return False


def _depth(document: object) -> int:
    """Nesting depth of containers (iterative: the document may be 1,000 deep)."""
    deepest = 0
    pending: list[tuple[object, int]] = [(document, 1)]
    while pending:
        node, level = pending.pop()
        if isinstance(node, dict | list):
            deepest = max(deepest, level)
            children = node.values() if isinstance(node, dict) else node
            pending.extend((child, level + 1) for child in children if isinstance(child, dict | list))
    return deepest
