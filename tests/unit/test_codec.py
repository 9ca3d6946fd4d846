"""The strict JSON codec: what it refuses, and the duplicate-key detector against a reference implementation."""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from worker import codec
from worker.codec import MAX_DEPTH, DecodeError, decode, encode, has_duplicate_keys

LIMIT = 1_000_000
# No per-example deadline: the machine is shared, and speed is measured only under bench/.
PROPERTY = settings(max_examples=60, deadline=None)


def reference_has_duplicate_keys(raw: bytes) -> bool:
    """The slow, obviously right answer: Python's parser shows every (key, value) pair of every object."""
    repeated = False

    def remember(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        nonlocal repeated
        if len({key for key, _ in pairs}) != len(pairs):
            repeated = True
        return dict(pairs)

    json.loads(raw, object_pairs_hook=remember)
    return repeated


def detects_duplicates(raw: bytes) -> bool:
    """Call the detector the way `decode` does: with the document orjson parsed from the same bytes."""
    return has_duplicate_keys(raw, orjson.loads(raw))


@dataclass(frozen=True)
class Style:
    """One way of writing JSON text: separators between items and between a key and its value."""

    name: str
    item_separator: str
    key_separator: str
    ensure_ascii: bool


STYLES = [
    Style("compact", ",", ":", ensure_ascii=False),
    Style("compact ascii", ",", ":", ensure_ascii=True),
    Style("python default", ", ", ": ", ensure_ascii=True),
    Style("space before colon", ", ", " : ", ensure_ascii=False),
    Style("newline and tab before colon", ",\n  ", "\n\t:", ensure_ascii=True),
]

PYTHON_STYLES = [
    {"indent": 2, "ensure_ascii": False},
    {"separators": (", ", " : "), "ensure_ascii": False},
    {"ensure_ascii": True},
]


def render(value: object, style: Style, duplicate_in: int | None = None) -> bytes:
    """Serialise `value` in `style`; the `duplicate_in`-th non-empty object (pre-order) repeats its first key."""
    objects = itertools.count()

    def write(node: object) -> str:
        if isinstance(node, dict):
            index = next(objects) if node else None
            pairs = [f"{write(key)}{style.key_separator}{write(item)}" for key, item in node.items()]
            if index is not None and index == duplicate_in:
                pairs.append(f"{write(next(iter(node)))}{style.key_separator}null")
            return "{" + style.item_separator.join(pairs) + "}"
        if isinstance(node, list):
            return "[" + style.item_separator.join(write(item) for item in node) + "]"
        return json.dumps(node, ensure_ascii=style.ensure_ascii)

    return write(value).encode()


def count_non_empty_objects(value: object) -> int:
    if isinstance(value, dict):
        return (1 if value else 0) + sum(count_non_empty_objects(item) for item in value.values())
    if isinstance(value, list):
        return sum(count_non_empty_objects(item) for item in value)
    return 0


# Text leans towards the characters that make duplicate detection hard: quotes, backslashes, colons, spaces.
text = st.text(alphabet=st.sampled_from('ab"\\: é\u2028') | st.characters(codec="utf-8"), max_size=6)


def json_documents(strings: st.SearchStrategy[str]) -> st.SearchStrategy[object]:
    """Any JSON-like document orjson reads back exactly, with keys and string values drawn from `strings`."""
    scalars = (
        st.none()
        | st.booleans()
        | st.integers(min_value=-(2**63), max_value=2**64 - 1)
        | st.floats(allow_nan=False, allow_infinity=False)
        | strings
    )
    return st.recursive(
        scalars,
        lambda children: st.lists(children, max_size=4) | st.dictionaries(strings, children, max_size=4),
        max_leaves=24,
    )


def json_objects(strings: st.SearchStrategy[str]) -> st.SearchStrategy[dict[str, Any]]:
    """Non-empty JSON objects, so there is always an object to splice a repeated key into."""
    return st.dictionaries(strings, json_documents(strings), min_size=1, max_size=4)


documents = json_documents(text)
objects = json_objects(text)


class TestDecodeRefusals:
    @pytest.mark.parametrize("value", [None, b""])
    def test_refuses_an_empty_value(self, value: bytes | None) -> None:
        """A missing or empty Kafka value (a tombstone) is refused as empty."""
        with pytest.raises(DecodeError, match="empty value"):
            decode(value, LIMIT)

    def test_refuses_a_value_over_the_size_limit(self) -> None:
        """A value one byte over the limit is refused, naming both sizes."""
        value = b'"' + b"x" * 9 + b'"'
        assert decode(value, max_bytes=11) == "x" * 9
        with pytest.raises(DecodeError, match="11 bytes exceeds the 10-byte limit"):
            decode(value, max_bytes=10)

    @pytest.mark.parametrize("value", [b"{", b"{'a': 1}", b'{"a":1}x', b"[1,]", b"nul", b'{"a"}'])
    def test_refuses_malformed_json(self, value: bytes) -> None:
        """Truncated, single-quoted, trailing-garbage and trailing-comma text is invalid JSON."""
        with pytest.raises(DecodeError, match="invalid JSON"):
            decode(value, LIMIT)

    @pytest.mark.parametrize("value", [b'{"a":"\xff"}', b'["\xc3"]', b'{"\xed\xa0\x80":1}'])
    def test_refuses_invalid_utf8(self, value: bytes) -> None:
        """Bytes that are not UTF-8 (a stray byte, a truncated sequence, an encoded surrogate) are refused."""
        with pytest.raises(DecodeError, match="invalid JSON"):
            decode(value, LIMIT)

    def test_refuses_a_byte_order_mark(self) -> None:
        """A UTF-8 byte-order mark before the document is refused, since parsers disagree on skipping it."""
        with pytest.raises(DecodeError, match="invalid JSON"):
            decode(b"\xef\xbb\xbf{}", LIMIT)

    @pytest.mark.parametrize("value", [b'{"a":NaN}', b"[Infinity]", b"[-Infinity]", b"[1e400]", b"[-1e400]"])
    def test_refuses_non_finite_numbers(self, value: bytes) -> None:
        """NaN, Infinity and numbers that overflow a double are not JSON numbers and are refused."""
        with pytest.raises(DecodeError, match="invalid JSON"):
            decode(value, LIMIT)

    @pytest.mark.parametrize("opener", [b"[", b'{"a":', b'{"a" :'])
    def test_refuses_nesting_beyond_the_parser_limit_as_a_decode_error(self, opener: bytes) -> None:
        """Nesting deeper than orjson's limit is a DecodeError in every style, never a RecursionError."""
        closer = b"]" if opener == b"[" else b"}"
        depth = 1100
        with pytest.raises(DecodeError, match="invalid JSON"):
            decode(opener * depth + b"1" + closer * depth, LIMIT)

    def test_accepts_nesting_up_to_the_depth_limit(self) -> None:
        """A compact document nested exactly MAX_DEPTH deep decodes."""
        depth = MAX_DEPTH
        document = decode(b'{"a":' * depth + b"1" + b"}" * depth, LIMIT)
        for _ in range(depth):
            document = document["a"]
        assert document == 1

    def test_refuses_nesting_beyond_the_depth_limit(self) -> None:
        """One level past MAX_DEPTH is refused, with a message naming the limit."""
        depth = MAX_DEPTH + 1
        with pytest.raises(DecodeError, match="nesting deeper than"):
            decode(b"[" * depth + b"]" * depth, LIMIT)

    def test_verdict_on_deep_nesting_does_not_depend_on_white_space(self) -> None:
        """The same MAX_DEPTH-deep document accepted compact is accepted with a space before each colon too."""
        depth = MAX_DEPTH
        document = decode(b'{"a" :' * depth + b"1" + b"}" * depth, LIMIT)
        assert isinstance(document, dict)

    @pytest.mark.parametrize("literal", [b"18446744073709551617", b"-9223372036854775809"])
    def test_refuses_integers_that_would_lose_precision(self, literal: bytes) -> None:
        """An integer literal outside what orjson holds exactly is refused rather than rounded to a float."""
        with pytest.raises(DecodeError):
            decode(b'{"n":' + literal + b"}", LIMIT)

    def test_keeps_integers_within_64_bits_exact(self) -> None:
        """The extremes of the signed and unsigned 64-bit ranges decode as exact integers."""
        assert decode(b"[-9223372036854775808,18446744073709551615]", LIMIT) == [-(2**63), 2**64 - 1]


class TestDecodeDuplicateKeys:
    @pytest.mark.parametrize(
        "value",
        [
            b'{"a":1,"a":2}',
            b'{"a":1,"a":1}',
            b'{"a" : 1, "a" : 2}',
            b'{"a"\n:1,"a"\t:2}',
            b'{"say \\"hi\\"":1,"say \\"hi\\"":2}',
            b'{"a":1,"\\u0061":2}',
            b'{"x":{"y":[{"k":1,"k":2}]}}',
            b'[[[{"deep":{"k":true,"z":0,"k":false}}]]]',
        ],
        ids=[
            "compact",
            "same value",
            "spaces",
            "newline and tab",
            "escaped quotes",
            "unicode escape",
            "nested",
            "deep",
        ],
    )
    def test_refuses_a_repeated_key_at_any_depth(self, value: bytes) -> None:
        """An object that repeats a key, however it is written and wherever it sits, is refused."""
        with pytest.raises(DecodeError, match="repeats a key"):
            decode(value, LIMIT)

    @pytest.mark.parametrize(
        "value",
        [
            b'{"a":{"x":1},"b":{"x":2}}',
            b'[{"a":1},{"a":2}]',
            b'{"a":{"a":{"a":1}}}',
            b'{"a":"a","b":"a"}',
            b'{"a" : {"x" : 1}, "b" : {"x" : 2}}',
            b'{"k":"x\\":y","v":"\\":"}',
            b'{"a\\\\":1,"a":2}',
        ],
        ids=[
            "siblings",
            "array items",
            "nested same key",
            "key as value",
            "spaced siblings",
            "colon in value",
            "escaped backslash",
        ],
    )
    def test_accepts_the_same_key_in_different_objects(self, value: bytes) -> None:
        """The same key in sibling, nested or array-item objects, or as a string value, is no repetition."""
        assert decode(value, LIMIT) == json.loads(value)

    @pytest.mark.parametrize(
        "value", [b'{"port":":8080"}', b'{":a":1}', b'[":"]', b'{"t":"::1","u":":"}', b'{"a":{"b":[":x"]}}']
    )
    def test_accepts_strings_that_start_with_a_colon(self, value: bytes) -> None:
        """A key or string value that starts with ':' is not mistaken for a repeated key."""
        assert decode(value, LIMIT) == json.loads(value)

    @PROPERTY
    @given(objects)
    def test_no_false_positive_for_orjson_output(self, document: dict[str, Any]) -> None:
        """Compact orjson output of any document never looks like it repeats a key."""
        raw = orjson.dumps(document)
        assert not detects_duplicates(raw)
        assert decode(raw, 10 * LIMIT) == document

    @PROPERTY
    @given(documents, st.sampled_from(PYTHON_STYLES))
    def test_no_false_positive_for_python_styles(self, document: object, options: dict[str, Any]) -> None:
        """json.dumps output with indentation, spaced separators or ASCII escapes never looks repeated."""
        raw = json.dumps(document, **options).encode()
        assert not detects_duplicates(raw)
        assert not reference_has_duplicate_keys(raw)

    @PROPERTY
    @given(documents, st.sampled_from(STYLES))
    def test_agrees_with_the_reference_without_duplicates(self, document: object, style: Style) -> None:
        """Hand-rendered text in every style agrees with the reference: no key is repeated."""
        raw = render(document, style)
        assert detects_duplicates(raw) is reference_has_duplicate_keys(raw) is False

    @PROPERTY
    @given(json_objects(text), st.sampled_from(STYLES), st.data())
    def test_detects_a_spliced_duplicate(self, document: dict[str, Any], style: Style, data: st.DataObject) -> None:
        """Repeating the first key of any one object, in any style, is detected as the reference detects it."""
        target = data.draw(st.integers(min_value=0, max_value=count_non_empty_objects(document) - 1))
        raw = render(document, style, duplicate_in=target)
        assert reference_has_duplicate_keys(raw)
        assert detects_duplicates(raw)
        with pytest.raises(DecodeError, match="repeats a key"):
            decode(raw, 10 * LIMIT)


class TestEncode:
    def test_writes_compact_utf8(self) -> None:
        """Documents are serialised without white space and with non-ASCII text as raw UTF-8."""
        assert encode({"a": [1, "é"], "b": None}) == '{"a":[1,"é"],"b":null}'.encode()

    def test_round_trips_through_decode(self) -> None:
        """What encode writes, decode reads back unchanged."""
        document = {"$events": [{"$ts": 1, "$properties": {"x": 1.5, "y": True}}]}
        assert decode(encode(document), LIMIT) == document

    def test_decode_error_is_a_value_error(self) -> None:
        """DecodeError is a ValueError, so callers that catch ValueError also catch it."""
        assert issubclass(codec.DecodeError, ValueError)
