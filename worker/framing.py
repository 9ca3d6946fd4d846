"""Schema Registry framing: find the writer's schema id in a Kafka value (or header) and the JSON payload behind it.

Confluent's serializers write a value as a magic byte 0, a 4-byte big-endian schema id, then the payload; since
2025 confluent-kafka can instead put the id in a `__value_schema_id` header (magic byte 1 and a 16-byte schema GUID,
or magic byte 0 and the 4-byte id) and leave the value bare. A topic says how its values are framed:

- `plain`: values are JSON as they are (a leading 0 byte is a `decode_error`, as it always was);
- `confluent`: every value is framed, by prefix or header; anything else is a bad frame (`decode_error`);
- `auto`: framed when the value starts with byte 0 or carries the header, plain otherwise. No JSON text starts
  with byte 0 (strict decoding refuses it), so the test is exact.

Unframing never copies more than the payload slice, and the original bytes stay on the message for the DLQ.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "FRAMING_MODES",
    "VALUE_SCHEMA_ID_HEADER",
    "BadFrame",
    "Framed",
    "FramingMode",
    "FramingRules",
    "SchemaRef",
    "parse_framing",
    "unframe",
]

FramingMode = Literal["auto", "plain", "confluent"]
FRAMING_MODES: tuple[FramingMode, ...] = ("auto", "plain", "confluent")
VALUE_SCHEMA_ID_HEADER = "__value_schema_id"

_MAGIC_ID = 0  # followed by a 4-byte big-endian schema id
_MAGIC_GUID = 1  # followed by a 16-byte schema GUID (header form only)
_PREFIX_BYTES = 5
_GUID_HEADER_BYTES = 17

HeaderValue = bytes | str | None
Headers = Sequence[tuple[str, HeaderValue]] | Mapping[str, HeaderValue] | None


@dataclass(frozen=True, slots=True)
class SchemaRef:
    """The writer's schema: a numeric id or a GUID (exactly one is set)."""

    schema_id: int | None = None
    guid: str | None = None

    def __str__(self) -> str:
        return f"schema id {self.schema_id}" if self.schema_id is not None else f"schema guid {self.guid}"


@dataclass(frozen=True, slots=True)
class Framed:
    """A value's JSON payload and, when it was framed, the writer's schema."""

    payload: bytes | None
    schema: SchemaRef | None


@dataclass(frozen=True, slots=True)
class BadFrame:
    """The value claims a framing it does not follow: dead-lettered `decode_error` with this reason."""

    message: str


@dataclass(frozen=True, slots=True)
class FramingRules:
    """`topic=mode` rules (a topic may be a `^regex`, first match wins) and the mode of every other topic."""

    rules: tuple[tuple[str, FramingMode], ...] = ()
    default: FramingMode = "plain"

    def mode_for(self, topic: str) -> FramingMode:
        for pattern, mode in self.rules:
            if pattern == topic or (pattern.startswith("^") and re.match(pattern, topic)):
                return mode
        return self.default

    @property
    def uses_registry(self) -> bool:
        return self.default != "plain" or any(mode != "plain" for _, mode in self.rules)


def parse_framing(text: str) -> FramingRules:
    """`auto`, or `confluent,events=plain,^raw-.*=plain`: a bare mode sets the default, `topic=mode` one topic."""
    default: FramingMode = "plain"
    rules: list[tuple[str, FramingMode]] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        topic, sep, mode_name = item.rpartition("=")
        mode = _mode(mode_name.strip())
        if not sep:
            default = mode
            continue
        topic = topic.strip()
        if not topic:
            raise ValueError(f"{item!r} is not topic=mode")
        if topic.startswith("^"):
            try:
                re.compile(topic)
            except re.error as exc:
                raise ValueError(f"{topic!r} is not a valid regex: {exc}") from None
        rules.append((topic, mode))
    return FramingRules(tuple(rules), default)


def _mode(name: str) -> FramingMode:
    for mode in FRAMING_MODES:
        if mode == name:
            return mode
    raise ValueError(f"framing {name!r} is not one of {', '.join(FRAMING_MODES)}")


def unframe(mode: FramingMode, value: bytes | None, headers: Headers) -> Framed | BadFrame:
    """Split a value into its schema reference and JSON payload as the topic's framing says."""
    if mode == "plain":
        return Framed(value, None)
    header = _schema_header(headers)
    if header is not None:
        return _from_header(header, value)
    if value and value[0] == _MAGIC_ID:
        if len(value) <= _PREFIX_BYTES:
            return BadFrame(f"a framed value needs more than {_PREFIX_BYTES} bytes, it has {len(value)}")
        return Framed(value[_PREFIX_BYTES:], SchemaRef(schema_id=int.from_bytes(value[1:_PREFIX_BYTES], "big")))
    if mode == "confluent":
        first = "empty" if not value else f"starts with byte {value[0]}"
        return BadFrame(f"not Schema Registry framed: the value is {first} and has no {VALUE_SCHEMA_ID_HEADER} header")
    return Framed(value, None)


def _schema_header(headers: Headers) -> bytes | None:
    """The last `__value_schema_id` header's value (b"" when it has none), or None without the header."""
    found: bytes | None = None
    pairs = headers.items() if isinstance(headers, Mapping) else (headers or ())
    for name, raw in pairs:
        if name == VALUE_SCHEMA_ID_HEADER:
            found = raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else (raw or b"")
    return found


def _from_header(header: bytes, value: bytes | None) -> Framed | BadFrame:
    if len(header) == _GUID_HEADER_BYTES and header[0] == _MAGIC_GUID:
        return Framed(value, SchemaRef(guid=str(uuid.UUID(bytes=header[1:]))))
    if len(header) == _PREFIX_BYTES and header[0] == _MAGIC_ID:
        return Framed(value, SchemaRef(schema_id=int.from_bytes(header[1:], "big")))
    return BadFrame(
        f"the {VALUE_SCHEMA_ID_HEADER} header is not a schema id ({len(header)} bytes; expected magic byte 1 and a "
        "16-byte GUID, or magic byte 0 and a 4-byte id)"
    )
