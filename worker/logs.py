"""Logging set-up: one JSON object per line for machines, or a readable line for people, secrets masked.

JSON lines carry ``time`` (ISO-8601 UTC), ``level``, ``logger``, ``message``, every field passed with
``extra=`` (``topic``, ``partition``, ``offset``, ...) and, when there is one, the exception as a string
field. Whatever the format, every registered secret is replaced by ``***`` in the finished line: the token
should never reach a log call in the first place, and this is the net under that rule.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Final, Literal, TextIO

import orjson

LogFormat = Literal["json", "text"]

MASK: Final = "***"
_MIN_SECRET_LENGTH: Final = 4
"""Shorter values would mask ordinary words and digits all over the logs; a real token is far longer."""

_RESERVED: Final = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}
"""LogRecord's own attributes; anything else on a record came from ``extra=``."""


def _utc_iso(created: float) -> str:
    whole = int(created)
    millis = int((created - whole) * 1000)
    return f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(whole))}.{millis:03d}Z"


def _extras(record: logging.LogRecord) -> dict[str, object]:
    return {key: value for key, value in record.__dict__.items() if key not in _RESERVED}


def _exception_text(formatter: logging.Formatter, record: logging.LogRecord) -> str | None:
    parts = []
    if record.exc_info:
        parts.append(formatter.formatException(record.exc_info))
    elif record.exc_text:
        parts.append(record.exc_text)
    if record.stack_info:
        parts.append(formatter.formatStack(record.stack_info))
    return "\n".join(parts) if parts else None


class JsonFormatter(logging.Formatter):
    """One JSON object per record, encoded by orjson (values it cannot encode become their ``str``)."""

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, object] = {
            "time": _utc_iso(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in _extras(record).items():
            document.setdefault(key, value)
        exception = _exception_text(self, record)
        if exception is not None:
            document["exception"] = exception
        try:
            return orjson.dumps(document, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
        except orjson.JSONEncodeError:  # e.g. an int beyond 64 bits, or nesting too deep
            return orjson.dumps({key: str(value) for key, value in document.items()}).decode()


class TextFormatter(logging.Formatter):
    """``<time> <LEVEL> <logger>: <message> key=value ...`` with the traceback, if any, on following lines."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{_utc_iso(record.created)} {record.levelname:<5} {record.name}: {record.getMessage()}"
        extras = _extras(record)
        if extras:
            line += " " + " ".join(f"{key}={value}" for key, value in extras.items())
        exception = _exception_text(self, record)
        if exception is not None:
            line += "\n" + exception
        return line


class SecretMask:
    """The set of values to mask, and the masking itself; shared by every handler it is installed on.

    Each secret is also registered in its JSON-escaped and ``repr`` forms, which is how it would appear
    inside a JSON string or a repr'd exception message when it contains quotes, backslashes or control
    characters.
    """

    def __init__(self, secrets: Sequence[str] = ()) -> None:
        self._lock = threading.Lock()
        self._needles: tuple[str, ...] = ()
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str) -> None:
        """Mask ``secret`` from now on (values shorter than 4 characters are ignored)."""
        if len(secret) < _MIN_SECRET_LENGTH:
            return
        forms = {secret, orjson.dumps(secret).decode()[1:-1], repr(secret)[1:-1]}
        with self._lock:
            # Longest first, so a secret that contains another one is masked whole.
            self._needles = tuple(sorted(set(self._needles) | forms, key=len, reverse=True))

    def mask(self, line: str) -> str:
        """``line`` with every registered secret replaced by ``***``."""
        for needle in self._needles:
            if needle in line:
                line = line.replace(needle, MASK)
        return line


class MaskingFormatter(logging.Formatter):
    """Formats with an inner formatter, then masks the finished line: no field or traceback escapes it."""

    def __init__(self, inner: logging.Formatter, secrets: SecretMask) -> None:
        super().__init__()
        self.inner = inner
        self.secrets = secrets

    def format(self, record: logging.LogRecord) -> str:
        try:
            line = self.inner.format(record)
        except Exception:  # logging's own error path would print the raw arguments, unmasked
            line = f"unformattable log record from {record.name}: {record.msg!s}"
        return self.secrets.mask(line)


class RepeatFilter(logging.Filter):
    """Lets one line of each kind through per interval and counts the rest in the next one that passes.

    Why: a client retrying a dead broker every few milliseconds writes the same line dozens of times a second, which
    buries everything else in an incident. Lines are alike when they differ only in elapsed times ("after 0ms") or in
    librdkafka's own count of lines it held back ("3 identical error(s) suppressed").
    Safe to share between threads (librdkafka's callbacks and the event loop both log).
    """

    _COUNTS = re.compile(r"\b\d+ ?(?=ms\b)|\b\d+(?= identical error)")

    def __init__(self, interval_s: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.interval_s = interval_s
        self._clock = clock
        self._lock = threading.Lock()
        self._last: dict[tuple[int, str], tuple[float, int]] = {}  # kind -> (when it last passed, suppressed since)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        kind = (record.levelno, self._COUNTS.sub("#", message))
        now = self._clock()
        with self._lock:
            passed_at, suppressed = self._last.get(kind, (None, 0))
            if passed_at is not None and now - passed_at < self.interval_s:
                self._last[kind] = (passed_at, suppressed + 1)
                return False
            self._last[kind] = (now, 0)
            if len(self._last) > 1000:  # a flood of distinct lines: forget the old kinds rather than grow
                self._last = {kind: (now, 0)}
        if suppressed:
            record.msg = f"{message} ({suppressed} more like this in the last {self.interval_s:g} s were not logged)"
            record.args = None
        return True


_HANDLER_NAME: Final = "mics-worker"
_active_mask = SecretMask()


def parse_level(level: str) -> int:
    """The numeric level for a name (any case) or a number; ``ValueError`` for anything else."""
    text = level.strip()
    if text.isdigit():
        return int(text)
    value = logging.getLevelNamesMapping().get(text.upper())
    if value is None:
        raise ValueError(f"unknown log level {level!r}")
    return value


def configure_logging(
    fmt: LogFormat,
    level: str,
    secrets: Sequence[str] = (),
    *,
    stream: TextIO | None = None,
    trace_ids: bool = False,
) -> None:
    """Install the worker's handler on the root logger (replacing a previous one), writing to stderr.

    Stdout stays free for the output of CLI sub-commands such as ``dlq inspect``. Calling it again swaps
    the format and level, and adds ``secrets`` to the ones already masked. ``trace_ids`` (tracing on) adds the
    current span's ``trace_id`` and ``span_id`` to every line logged while one is current.
    """
    if fmt not in ("json", "text"):
        raise ValueError(f"unknown log format {fmt!r}")
    numeric_level = parse_level(level)
    for secret in secrets:
        _active_mask.add(secret)
    inner: logging.Formatter = JsonFormatter() if fmt == "json" else TextFormatter()
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(MaskingFormatter(inner, _active_mask))
    if trace_ids:
        from worker.tracing.logs import TraceIdFilter  # noqa: PLC0415 - imports OpenTelemetry: only when tracing

        handler.addFilter(TraceIdFilter())
    root = logging.getLogger()
    for previous in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(previous)
        previous.close()
    root.addHandler(handler)
    root.setLevel(numeric_level)


def register_secret(secret: str) -> None:
    """Mask one more value in every line from now on (e.g. a token re-read from its file)."""
    _active_mask.add(secret)
