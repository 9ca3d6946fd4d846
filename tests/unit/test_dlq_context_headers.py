"""Dead-letter context headers: Kafka Connect names where Connect has them, mics.dlq.* for the rest."""

from __future__ import annotations

import pytest

from worker import __version__
from worker.dlq_format.full import context_headers
from worker.dlq_format.headers import CONNECT_PREFIX, MICS_PREFIX, escape_name, is_context_header
from worker.dlq_format.letter import DeadLetter

CONNECT_NAMES = [
    "__connect.errors.topic",
    "__connect.errors.partition",
    "__connect.errors.offset",
    "__connect.errors.stage",
    "__connect.errors.exception.class.name",
    "__connect.errors.exception.message",
]
OPTIONAL_NAMES = [
    "mics.dlq.route",
    "mics.dlq.http.status",
    "mics.dlq.schema.path",
    "mics.dlq.schema.rule",
    "mics.dlq.api.error.code",
    "mics.dlq.api.error.id",
]


def headers_of(letter: DeadLetter, topic: str = "events", partition: int = 3, offset: int = 41) -> dict[str, str]:
    """The context headers as a name -> text mapping (after checking names are unique and values are bytes)."""
    pairs = context_headers(topic, partition, offset, letter)
    assert len({name for name, _ in pairs}) == len(pairs)
    assert all(isinstance(value, bytes) for _, value in pairs)
    return {name: value.decode() for name, value in pairs}


class TestContextHeaders:
    def test_connect_headers_locate_the_record_and_the_failure(self) -> None:
        """Topic, partition, offset, stage, exception class and message use Kafka Connect's header names."""
        headers = headers_of(DeadLetter("schema_invalid", "bad $ts", "validate"), "events", 3, 41)
        assert {name: headers[name] for name in CONNECT_NAMES} == {
            "__connect.errors.topic": "events",
            "__connect.errors.partition": "3",
            "__connect.errors.offset": "41",
            "__connect.errors.stage": "validate",
            "__connect.errors.exception.class.name": "worker.SchemaInvalid",
            "__connect.errors.exception.message": "bad $ts",
        }

    def test_connect_headers_come_first(self) -> None:
        """The Connect headers lead the list, in Connect's order, followed by the mics.dlq ones."""
        names = [name for name, _ in context_headers("t", 0, 0, DeadLetter("unroutable", "m", "route"))]
        assert names[: len(CONNECT_NAMES)] == CONNECT_NAMES
        assert all(name.startswith(MICS_PREFIX) for name in names[len(CONNECT_NAMES) :])

    def test_every_known_field_has_its_header(self) -> None:
        """A fully described failure carries reason, route, status, attempts, schema and API error details."""
        letter = DeadLetter(
            reason="http_400",
            message="rejected",
            stage="send",
            route="profile",
            http_status=400,
            attempts=3,
            schema_path="$.body.$ts",
            schema_rule="type",
            api_error_code="BAD_REQUEST_DATA",
            api_error_id="err-42",
        )
        headers = headers_of(letter)
        assert headers["mics.dlq.reason"] == "http_400"
        assert headers["mics.dlq.route"] == "profile"
        assert headers["mics.dlq.http.status"] == "400"
        assert headers["mics.dlq.attempts"] == "3"
        assert headers["mics.dlq.schema.path"] == "$.body.$ts"
        assert headers["mics.dlq.schema.rule"] == "type"
        assert headers["mics.dlq.api.error.code"] == "BAD_REQUEST_DATA"
        assert headers["mics.dlq.api.error.id"] == "err-42"
        assert headers["__connect.errors.exception.class.name"] == "worker.HttpError"

    def test_unknown_optional_fields_are_omitted(self) -> None:
        """Optional headers are left out when their value is unknown, rather than sent empty."""
        headers = headers_of(DeadLetter("decode_error", "empty value", "decode"))
        assert not set(OPTIONAL_NAMES) & set(headers)
        assert headers["mics.dlq.attempts"] == "0"

    def test_version_and_time_are_always_present(self) -> None:
        """Every record says which worker version wrote it and when, in epoch milliseconds."""
        headers = headers_of(DeadLetter("unroutable", "m", "route"))
        assert headers["mics.dlq.worker.version"] == __version__
        assert headers["mics.dlq.time"].isdigit()
        assert len(headers["mics.dlq.time"]) >= 13

    @pytest.mark.parametrize(
        ("reason", "class_name"),
        [
            ("decode_error", "worker.DecodeError"),
            ("schema_invalid", "worker.SchemaInvalid"),
            ("unroutable", "worker.Unroutable"),
            ("forbidden_datamart", "worker.ForbiddenDatamart"),
            ("retries_exhausted", "worker.RetriesExhausted"),
            ("http_422", "worker.HttpError"),
        ],
    )
    def test_each_reason_has_a_stable_class_name(self, reason: str, class_name: str) -> None:
        """The Connect exception class header is a stable name per failure kind; HTTP answers share one."""
        headers = headers_of(DeadLetter(reason, "m", "send"))
        assert headers["__connect.errors.exception.class.name"] == class_name
        assert headers["mics.dlq.reason"] == reason

    def test_message_is_flattened_to_one_line(self) -> None:
        """Line breaks, tabs and runs of spaces in the message become single spaces."""
        headers = headers_of(DeadLetter("http_500", "  upstream\r\nfailed:\t\tretry   later \n", "send"))
        assert headers["__connect.errors.exception.message"] == "upstream failed: retry later"

    def test_long_message_is_truncated_with_an_ellipsis(self) -> None:
        """A message over 1,000 characters is cut to 1,000, the last one an ellipsis."""
        message = headers_of(DeadLetter("http_500", "x" * 5000, "send"))["__connect.errors.exception.message"]
        assert message == "x" * 999 + "…"

    def test_a_message_of_exactly_the_limit_is_kept_whole(self) -> None:
        """A 1,000-character message is not truncated."""
        message = headers_of(DeadLetter("http_500", "y" * 1000, "send"))["__connect.errors.exception.message"]
        assert message == "y" * 1000

    def test_non_ascii_values_are_utf8(self) -> None:
        """Header values are UTF-8 text, so non-ASCII topics and messages survive."""
        pairs = dict(context_headers("événements", 0, 0, DeadLetter("unroutable", "type « x »", "route")))
        assert pairs["__connect.errors.topic"] == "événements".encode()
        assert pairs["__connect.errors.exception.message"] == "type « x »".encode()


class TestIsContextHeader:
    @pytest.mark.parametrize(
        "name", [*CONNECT_NAMES, "mics.dlq.reason", "mics.dlq.time", CONNECT_PREFIX + "future", MICS_PREFIX + "x"]
    )
    def test_recognises_headers_added_by_dead_lettering(self, name: str) -> None:
        """Every header under either prefix is a context header (stripped on replay)."""
        assert is_context_header(name)

    def test_the_trace_context_on_a_dlq_record_is_the_workers(self) -> None:
        """A bare `traceparent` / `tracestate` on a DLQ record is the worker's (the source's are escaped)."""
        assert is_context_header("traceparent")
        assert is_context_header("tracestate")
        assert escape_name("traceparent") == "mics.original.traceparent"
        assert escape_name("TRACEPARENT") == "mics.original.TRACEPARENT"
        assert escape_name("tracestate") == "mics.original.tracestate"

    @pytest.mark.parametrize(
        "name", ["traceparent2", "mics.dlq", "mics.other", "__connect.error.topic", "X-mics.dlq.reason", ""]
    )
    def test_leaves_the_producers_headers_alone(self, name: str) -> None:
        """Headers the producer set, including look-alikes, are not context headers."""
        assert not is_context_header(name)

    def test_every_generated_header_is_recognised(self) -> None:
        """Whatever context_headers emits, is_context_header recognises, so a replay strips all of it."""
        letter = DeadLetter("http_400", "m", "send", "choice", 400, 2, "$", "type", "C", "I")
        assert all(is_context_header(name) for name, _ in context_headers("t", 1, 2, letter))
