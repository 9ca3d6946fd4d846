"""A reader for the small YAML subset our rule files use (PyYAML is not a project dependency).

Supported: block mappings, block sequences of mappings or scalars, ``|``/``|-``/``>``/``>-`` block scalars,
plain, single- and double-quoted scalars, blank lines and full-line comments. Anything else raises
``YamlSubsetError``, so a rule file that drifts outside the subset fails loudly instead of being misread.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_KEY = re.compile(r"(?P<key>[A-Za-z_][\w.-]*):(?:\s+(?P<value>.*))?$")
_BLOCK_INDICATORS = {"|", "|-", ">", ">-"}


class YamlSubsetError(ValueError):
    """The text uses YAML this reader does not support, or is not well-formed."""


@dataclass
class _Line:
    number: int
    indent: int
    text: str


def load(text: str) -> object:
    """Parse ``text`` into dicts, lists and strings."""
    raw = text.splitlines()
    lines = [
        _Line(number, len(line) - len(line.lstrip(" ")), line.strip())
        for number, line in enumerate(raw, start=1)
        if line.strip() and not line.lstrip().startswith("#")
    ]
    if not lines:
        return None
    value, end = _Parser(raw, lines).block(0, lines[0].indent)
    if end != len(lines):
        raise YamlSubsetError(f"line {lines[end].number}: unexpected indentation")
    return value


class _Parser:
    def __init__(self, raw: list[str], lines: list[_Line]) -> None:
        self.raw = raw
        self.lines = lines

    def block(self, index: int, indent: int) -> tuple[object, int]:
        if self.lines[index].text.startswith("- ") or self.lines[index].text == "-":
            return self.sequence(index, indent)
        return self.mapping(index, indent)

    def sequence(self, index: int, indent: int) -> tuple[list[object], int]:
        items: list[object] = []
        while index < len(self.lines) and self.lines[index].indent == indent:
            line = self.lines[index]
            if not line.text.startswith("- "):
                raise YamlSubsetError(f"line {line.number}: expected a sequence item")
            content = line.text[2:].strip()
            if _KEY.match(content):
                # A mapping that starts on the dash line: re-read that line as its first key.
                self.lines[index] = _Line(line.number, indent + 2, content)
                item, index = self.mapping(index, indent + 2)
                items.append(item)
            else:
                items.append(_scalar(content, line.number))
                index += 1
        return items, index

    def mapping(self, index: int, indent: int) -> tuple[dict[str, object], int]:
        result: dict[str, object] = {}
        while index < len(self.lines) and self.lines[index].indent == indent:
            line = self.lines[index]
            match = _KEY.match(line.text)
            if not match:
                raise YamlSubsetError(f"line {line.number}: expected 'key: value'")
            key, value = match["key"], (match["value"] or "").strip()
            if key in result:
                raise YamlSubsetError(f"line {line.number}: duplicate key {key!r}")
            index += 1
            if value in _BLOCK_INDICATORS:
                result[key], index = self.block_scalar(index, indent, value, line.number)
            elif value:
                result[key] = _scalar(value, line.number)
            elif index < len(self.lines) and self.lines[index].indent > indent:
                result[key], index = self.block(index, self.lines[index].indent)
            elif index < len(self.lines) and self.lines[index].indent == indent and self.lines[index].text[:2] == "- ":
                result[key], index = self.sequence(index, indent)
            else:
                result[key] = None
        if index < len(self.lines) and self.lines[index].indent > indent:
            raise YamlSubsetError(f"line {self.lines[index].number}: unexpected indentation")
        return result, index

    def block_scalar(self, index: int, indent: int, style: str, number: int) -> tuple[str, int]:
        body: list[_Line] = []
        while index < len(self.lines) and self.lines[index].indent > indent:
            body.append(self.lines[index])
            index += 1
        if not body:
            raise YamlSubsetError(f"line {number}: empty block scalar")
        # Re-read the raw lines (blank lines inside the block included) with the block's own indentation.
        first, last = body[0].number, body[-1].number
        margin = body[0].indent
        text_lines = [raw[margin:] for raw in self.raw[first - 1 : last]]
        if style.startswith("|"):
            text = "\n".join(text_lines)
        else:
            text = " ".join(line.strip() for line in text_lines if line.strip())
        return (text if style.endswith("-") else text + "\n"), index


def _scalar(value: str, number: int) -> str:
    if value[0] in "\"'":
        if len(value) < 2 or value[-1] != value[0]:
            raise YamlSubsetError(f"line {number}: unterminated quoted scalar")
        inner = value[1:-1]
        return inner.replace("''", "'") if value[0] == "'" else inner.replace('\\"', '"').replace("\\\\", "\\")
    if value[0] in "[{&*!|>%@`":
        raise YamlSubsetError(f"line {number}: flow or special syntax is outside the subset: {value!r}")
    if " #" in value:
        value = value.split(" #", 1)[0].rstrip()
    return value
