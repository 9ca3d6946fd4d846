"""configure_logging: JSON lines, the text format, levels, and secret masking in the finished line."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator

import pytest

from worker.logs import (
    JsonFormatter,
    MaskingFormatter,
    SecretMask,
    configure_logging,
    parse_level,
    register_secret,
)

TOKEN = "tok_live_8f3a9c2e51b04d7a"


@pytest.fixture(autouse=True)
def restore_root_logger() -> Iterator[None]:
    """Put the root logger back as pytest had it, whatever a test installed."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


def lines(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


def json_lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in lines(stream)]


class TestJson:
    def test_one_json_object_per_line_with_the_standard_fields(self) -> None:
        """Each record is one JSON line with time (ISO-8601 UTC), level, logger and message."""
        out = io.StringIO()
        configure_logging("json", "INFO", stream=out)
        logging.getLogger("worker.pipeline").info("delivered %d messages", 3)
        (record,) = json_lines(out)
        assert record["level"] == "INFO"
        assert record["logger"] == "worker.pipeline"
        assert record["message"] == "delivered 3 messages"
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", str(record["time"]))

    def test_extra_fields_are_top_level_keys(self) -> None:
        """topic, partition, offset and any other extra= field appear as keys of their own."""
        out = io.StringIO()
        configure_logging("json", "INFO", stream=out)
        logging.getLogger("worker").warning(
            "dead-lettered", extra={"topic": "t", "partition": 2, "offset": 99, "reason": "schema_invalid"}
        )
        (record,) = json_lines(out)
        assert (record["topic"], record["partition"], record["offset"]) == ("t", 2, 99)
        assert record["reason"] == "schema_invalid"

    def test_unencodable_extra_values_become_strings(self) -> None:
        """A value JSON cannot carry (here a set) is logged as its str instead of breaking the line."""
        out = io.StringIO()
        configure_logging("json", "INFO", stream=out)
        logging.getLogger("worker").info("odd", extra={"things": {1}})
        (record,) = json_lines(out)
        assert record["things"] == "{1}"

    def test_exception_is_a_string_field(self) -> None:
        """logger.exception() puts the traceback in an exception field of the same JSON line."""
        out = io.StringIO()
        configure_logging("json", "INFO", stream=out)
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            logging.getLogger("worker").exception("failed")
        (record,) = json_lines(out)
        assert isinstance(record["exception"], str)
        assert "RuntimeError: boom" in record["exception"]


class TestText:
    def test_readable_line_with_extras(self) -> None:
        """The text format reads '<time> <LEVEL> <logger>: <message> key=value'."""
        out = io.StringIO()
        configure_logging("text", "INFO", stream=out)
        logging.getLogger("worker.kafka").info("assigned", extra={"topic": "t", "partition": 1})
        (line,) = lines(out)
        assert re.fullmatch(r"\S+Z INFO  worker\.kafka: assigned topic=t partition=1", line)

    def test_traceback_follows_the_line(self) -> None:
        """An exception's traceback is printed under the log line."""
        out = io.StringIO()
        configure_logging("text", "INFO", stream=out)
        try:
            raise ValueError("bad")
        except ValueError:
            logging.getLogger("worker").exception("failed")
        assert "failed" in lines(out)[0]
        assert lines(out)[-1] == "ValueError: bad"


class TestLevels:
    def test_records_below_the_level_are_dropped(self) -> None:
        """With level WARNING, info records are not written."""
        out = io.StringIO()
        configure_logging("json", "warning", stream=out)
        logging.getLogger("worker").info("quiet")
        logging.getLogger("worker").warning("loud")
        assert [record["message"] for record in json_lines(out)] == ["loud"]

    @pytest.mark.parametrize(("text", "level"), [("debug", logging.DEBUG), ("INFO", logging.INFO), ("30", 30)])
    def test_parse_level(self, text: str, level: int) -> None:
        """Level names in any case, and numbers, are accepted."""
        assert parse_level(text) == level

    def test_unknown_level_is_refused(self) -> None:
        """A misspelt level is an error, not a silent default."""
        with pytest.raises(ValueError, match="log level"):
            configure_logging("json", "verbose")

    def test_unknown_format_is_refused(self) -> None:
        """Only json and text are formats."""
        with pytest.raises(ValueError, match="log format"):
            configure_logging("yaml", "INFO")  # type: ignore[arg-type]

    def test_reconfiguring_replaces_the_handler(self) -> None:
        """A second call swaps the worker's handler rather than adding another: each record is written once."""
        first, second = io.StringIO(), io.StringIO()
        configure_logging("json", "INFO", stream=first)
        configure_logging("text", "INFO", stream=second)
        logging.getLogger("worker").info("once")
        assert first.getvalue() == ""
        assert len(lines(second)) == 1


class TestSecretMasking:
    @pytest.mark.parametrize("fmt", ["json", "text"])
    def test_secret_is_masked_everywhere_in_the_line(self, fmt: str) -> None:
        """A registered secret in the message, an extra field or a traceback is replaced by ***."""
        out = io.StringIO()
        configure_logging(fmt, "INFO", secrets=[TOKEN], stream=out)  # type: ignore[arg-type]
        log = logging.getLogger("worker")
        log.info("header was %s", TOKEN, extra={"auth": f"{TOKEN}"})
        try:
            raise PermissionError(f"rejected {TOKEN}")
        except PermissionError:
            log.exception("call failed")
        text = out.getvalue()
        assert TOKEN not in text
        assert text.count("***") >= 3

    def test_json_escaped_form_is_masked(self) -> None:
        """A secret with a quote and a backslash is masked in its JSON-escaped form too."""
        secret = 'ab"cd\\ef-1234'
        out = io.StringIO()
        configure_logging("json", "INFO", secrets=[secret], stream=out)
        logging.getLogger("worker").info("value %s", secret)
        (record,) = json_lines(out)
        assert record["message"] == "value ***"

    def test_secret_registered_later_is_masked(self) -> None:
        """register_secret() masks a value (e.g. a re-read token) from the next line on."""
        out = io.StringIO()
        configure_logging("json", "INFO", stream=out)
        register_secret("rotated-token-5b1e")
        logging.getLogger("worker").info("now using rotated-token-5b1e")
        assert json_lines(out)[0]["message"] == "now using ***"

    def test_tiny_values_are_not_treated_as_secrets(self) -> None:
        """Values shorter than 4 characters are ignored, so they cannot blank out ordinary text."""
        out = io.StringIO()
        configure_logging("json", "INFO", secrets=["", "a"], stream=out)
        logging.getLogger("worker").info("a plain line")
        assert json_lines(out)[0]["message"] == "a plain line"

    def test_a_record_that_cannot_be_formatted_is_still_masked(self) -> None:
        """A bad %-format falls back to the raw template, masked, instead of logging's unmasked error dump."""
        formatter = MaskingFormatter(JsonFormatter(), SecretMask([TOKEN]))
        record = logging.LogRecord("worker", logging.INFO, __file__, 1, f"token {TOKEN} %d", ("nan",), None)
        line = formatter.format(record)
        assert TOKEN not in line
        assert line == "unformattable log record from worker: token *** %d"
