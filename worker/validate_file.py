"""`mics-worker validate`: check a file of messages offline, before it is produced to Kafka.

Input is NDJSON (one message per line) or one JSON array (when the first non-blank character is ``[``). Each message
goes through the worker's own strict decoding (`codec.decode`: duplicate keys, NaN, size limit) and its validators,
so a line that passes here passes the worker's decode and schema stages; every schema error of a message is
reported (up to `worker.validation.MAX_LISTED_ERRORS`, with the count of the rest). Unlike `plan_message`, nothing
depends on deployment settings: datamart permissions are not checked, because a file has no topic and no configuration.

Exit status: 0 when every message is valid, 1 when any is not, 2 on a usage error (unreadable file).
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import IO, Any, Final, Literal

from worker import codec
from worker.config import WorkerConfig
from worker.mics.selectors import selector_from_envelope
from worker.routing import is_envelope
from worker.validation import SchemaError, SchemaErrors, Validators

__all__ = [
    "DECODE_RULE",
    "Failure",
    "FileReport",
    "SchemaChoice",
    "check_document",
    "command",
    "format_report",
    "validate_stream",
]

SchemaChoice = Literal["activity", "profile", "choice", "envelope", "auto"]
DECODE_RULE: Final = "decode"
"""The rule reported for bytes that are not one acceptable JSON document (the worker's `decode_error`)."""

# Tokens of a JSON text that matter for splitting an array: strings (skipped whole), brackets, commas, bare scalars.
_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{},]|[^\s\[\]{},"]+')


@dataclass(frozen=True, slots=True)
class Failure:
    """One invalid message: where it starts in the file, its most useful error, and all its listed errors."""

    line: int
    path: str
    rule: str
    message: str
    errors: tuple[SchemaError, ...] = ()
    """Every listed error, the most useful (path, rule, message above) first."""
    error_count: int = 1
    """How many errors the message has, listed or not."""


@dataclass(slots=True)
class FileReport:
    """What a file held: counts, invalid messages by rule, and the first failures (up to the listing limit)."""

    total: int = 0
    valid: int = 0
    invalid_by_rule: Counter[str] = field(default_factory=Counter)
    failures: list[Failure] = field(default_factory=list)

    @property
    def invalid(self) -> int:
        return self.total - self.valid


def check_document(validators: Validators, schema: SchemaChoice, document: Any) -> SchemaErrors | None:
    """Validate one decoded message the way the worker's validate stage does; `auto` reads it as an `activity`
    topic does (`routing.is_envelope`), except that an envelope of any type is accepted."""
    name = schema
    if name == "auto":
        name = "envelope" if is_envelope(document) else "activity"
    errors = validators.check_all(name, document)
    if errors is not None or name != "envelope":
        return errors
    route = document["type"]
    errors = validators.check_all(route, document["body"])
    if errors is not None:
        return errors.under("$.body")
    if route != "activity":  # the worker ignores an activity's user_point, and addresses the others by it
        try:
            selector_from_envelope(document["user_point"])
        except ValueError as exc:
            return SchemaErrors((SchemaError(path="$.user_point", rule="format", message=str(exc)),), 1)
    return None


def validate_stream(
    stream: IO[bytes],
    validators: Validators,
    *,
    schema: SchemaChoice = "auto",
    max_message_bytes: int = WorkerConfig.max_message_bytes,
    max_listed: int = 1000,
) -> FileReport:
    """Check every message of an NDJSON or JSON-array stream; keep the first `max_listed` failures."""
    report = FileReport()
    source = _open(stream, max_message_bytes)
    for key, item in source.items():
        report.total += 1
        errors = SchemaErrors((item,), 1) if isinstance(item, SchemaError) else check_document(validators, schema, item)
        if errors is None:
            report.valid += 1
            continue
        first = errors.first
        report.invalid_by_rule[first.rule] += 1
        if len(report.failures) < max_listed:
            line = source.line(key)
            report.failures.append(Failure(line, first.path, first.rule, first.message, errors.errors, errors.total))
    return report


def _decode(raw: bytes, max_bytes: int) -> object:
    """The document, or the decode failure as an error of rule `decode` (never raises)."""
    try:
        return codec.decode(raw, max_bytes)
    except codec.DecodeError as exc:
        return SchemaError("$", DECODE_RULE, str(exc))


def _open(stream: IO[bytes], max_bytes: int) -> _Ndjson | _Array:
    """Read up to the first non-blank line and decide: a JSON array when it starts with `[`, else NDJSON."""
    for line_number, raw in enumerate(stream, start=1):
        text = raw.strip()
        if text.startswith(b"["):
            return _Array(raw + stream.read(), line_number)
        if text:
            return _Ndjson(stream, (line_number, text), max_bytes)
    return _Ndjson(stream, None, max_bytes)


class _Ndjson:
    """One message per line, streamed; a message's key is its line number. Blank lines are skipped."""

    def __init__(self, rest: IO[bytes], first: tuple[int, bytes] | None, max_bytes: int) -> None:
        self._rest = rest
        self._first = first
        self._max_bytes = max_bytes

    def items(self) -> Iterator[tuple[int, object]]:
        if self._first is None:
            return
        line_number, text = self._first
        yield line_number, _decode(text, self._max_bytes)
        for raw in self._rest:
            line_number += 1
            text = raw.strip()
            if text:
                yield line_number, _decode(text, self._max_bytes)

    def line(self, key: int) -> int:
        return key


class _Array:
    """One JSON array held in memory; a message's key is its index, turned into a line only when it fails.

    A strictly valid array is decoded in one call. Otherwise each element is decoded on its own, so a repeated key
    or a NaN is pinned to its element; an array whose brackets do not balance is one failure. Finding where the
    elements start costs a tokenizing scan in Python, done at most once and only when something fails.
    """

    def __init__(self, data: bytes, first_line: int) -> None:
        self._data = data
        self._first_line = first_line
        self._array_start = data.find(b"[")
        self._spans: list[tuple[int, int]] | None = None
        self._scanned = False

    def items(self) -> Iterator[tuple[int, object]]:
        try:
            document = codec.decode(self._data, len(self._data))
        except codec.DecodeError as exc:
            spans = self._element_spans()
            if spans is None:
                yield -1, SchemaError("$", DECODE_RULE, str(exc))
                return
            for index, (start, end) in enumerate(spans):
                yield index, _decode(self._data[start:end], len(self._data))
            return
        yield from enumerate(document)

    def line(self, key: int) -> int:
        spans = self._element_spans()
        if key < 0 or spans is None or key >= len(spans):
            return self._first_line
        return self._first_line + self._data.count(b"\n", self._array_start, spans[key][0])

    def _element_spans(self) -> list[tuple[int, int]] | None:
        if not self._scanned:
            self._scanned = True
            self._spans = _split_array(self._data)
        return self._spans


def _split_array(data: bytes) -> list[tuple[int, int]] | None:
    """(start, end) byte offsets of each top-level element of a JSON array text; None when it is malformed."""
    spans: list[tuple[int, int]] = []
    tokens = _TOKEN.finditer(data)
    opening = next(tokens, None)
    if opening is None or opening.group() != b"[":
        return None
    depth, start, end, after_comma = 1, -1, 0, False
    for token in tokens:
        char = token.group()[:1]
        if depth == 1 and start < 0 and char not in (b",", b"]"):
            start = token.start()
        if char in (b"[", b"{"):
            depth += 1
        elif char in (b"]", b"}"):
            depth -= 1
            if depth == 0:
                if start >= 0:
                    spans.append((start, end))
                elif after_comma:
                    return None
                return spans if char == b"]" and not data[token.end() :].strip() else None
        elif char == b"," and depth == 1:
            if start < 0:
                return None
            spans.append((start, end))
            start, after_comma = -1, True
            continue
        end = token.end()
    return None


def format_report(report: FileReport, name: str, output_format: Literal["text", "json"]) -> str:
    """The report as text (one `NAME:LINE: PATH: RULE: MESSAGE` line per error, then a summary) or one JSON object."""
    if output_format == "json":
        document = {
            "file": name,
            "total": report.total,
            "valid": report.valid,
            "invalid": report.invalid,
            "invalid_by_rule": dict(sorted(report.invalid_by_rule.items())),
            "failures": [_failure_json(f) for f in report.failures],
        }
        return codec.encode(document).decode()
    lines = [line for failure in report.failures for line in _failure_lines(name, failure)]
    if report.invalid > len(report.failures):
        lines.append(f"... {report.invalid - len(report.failures)} more invalid messages not listed")
    by_rule = ", ".join(f"{rule}={count}" for rule, count in sorted(report.invalid_by_rule.items()))
    summary = f"{report.total} messages: {report.valid} valid, {report.invalid} invalid"
    lines.append(summary + (f" ({by_rule})" if by_rule else ""))
    return "\n".join(lines)


def _listed(failure: Failure) -> tuple[SchemaError, ...]:
    return failure.errors or (SchemaError(failure.path, failure.rule, failure.message),)


def _failure_json(failure: Failure) -> dict[str, object]:
    """One failure as JSON: the most useful error's fields, then every listed error and the count."""
    errors = [{"path": e.path, "rule": e.rule, "message": e.message} for e in _listed(failure)]
    return {
        "line": failure.line,
        "path": failure.path,
        "rule": failure.rule,
        "message": failure.message,
        "errors": errors,
        "error_count": failure.error_count,
    }


def _failure_lines(name: str, failure: Failure) -> list[str]:
    """One `NAME:LINE: PATH: RULE: MESSAGE` line per listed error, then how many more the message has."""
    listed = _listed(failure)
    lines = [_printable(f"{name}:{failure.line}: {e.path}: {e.rule}: {e.message}") for e in listed]
    if failure.error_count > len(listed):
        lines.append(f"{name}:{failure.line}: ... {failure.error_count - len(listed)} more errors in this message")
    return lines


def command(
    path: str,
    *,
    schema: SchemaChoice = "auto",
    output_format: Literal["text", "json"] = "text",
    max_listed: int = 1000,
    max_message_bytes: int = WorkerConfig.max_message_bytes,
    stdin: IO[bytes] | None = None,
    stdout: IO[str] | None = None,
    stderr: IO[str] | None = None,
) -> int:
    """Run `mics-worker validate`: 0 all valid, 1 something invalid, 2 the file cannot be read."""
    validators = Validators.load()
    check = partial(
        validate_stream,
        validators=validators,
        schema=schema,
        max_message_bytes=max_message_bytes,
        max_listed=max_listed,
    )
    try:
        if path == "-":
            name = "<stdin>"
            report = check(stdin or sys.stdin.buffer)
        else:
            name = path
            with Path(path).open("rb") as stream:
                report = check(stream)
    except OSError as exc:
        (stderr or sys.stderr).write(f"mics-worker validate: cannot read {path}: {exc.strerror or exc}\n")
        return 2
    (stdout or sys.stdout).write(format_report(report, name, output_format) + "\n")
    return 1 if report.invalid else 0


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _printable(text: str) -> str:
    """Escape control characters: message data must not drive the operator's terminal."""
    return _CONTROL.sub(lambda match: f"\\x{ord(match.group()):02x}", text)
