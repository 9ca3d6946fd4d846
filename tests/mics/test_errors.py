"""Outcome classification of HTTP responses and Retry-After parsing."""

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from worker.mics.errors import (
    MAX_ERROR_TEXT,
    MAX_RETRY_AFTER_S,
    OutcomeKind,
    classify,
    parse_retry_after,
    transport_failure,
)
from worker.mics.transport import (
    TransportConnectError,
    TransportConnectionReset,
    TransportProtocolError,
    TransportTimeout,
)

ERROR_BODY = b'{"status":"error","error":"Invalid $ts","error_code":"BAD_REQUEST","error_id":"e-1"}'
NOW = 1_700_000_000.0


class TestClassifyStatus:
    @pytest.mark.parametrize("status", [200, 201, 202, 204, 299])
    def test_any_2xx_is_success(self, status: int) -> None:
        """Every 2xx status is a success with reason "ok"."""
        result = classify(status, {}, b"", 0.1)
        assert (result.kind, result.status, result.reason) == (OutcomeKind.SUCCESS, status, "ok")

    @pytest.mark.parametrize("status", [408, 425, 429, 500, 502, 503, 504, 520, 521, 522, 523, 524])
    def test_retryable_statuses(self, status: int) -> None:
        """Timeouts, rate limits and gateway/server failures are retryable."""
        result = classify(status, {}, b"", 0.1)
        assert (result.kind, result.reason) == (OutcomeKind.RETRYABLE, f"http_{status}")

    @pytest.mark.parametrize("status", [401, 403])
    def test_auth_statuses(self, status: int) -> None:
        """Rejected credentials are their own kind, so the worker stops instead of dead-lettering."""
        assert classify(status, {}, b"", 0.1).kind is OutcomeKind.AUTH

    @pytest.mark.parametrize("status", [400, 404, 405, 409, 410, 413, 415, 422, 451, 499, 501, 505, 599, 100])
    def test_everything_else_is_permanent(self, status: int) -> None:
        """Other 4xx (413 included), other 5xx and 1xx codes are permanent (classify's default row: the PUTs')."""
        assert classify(status, {}, b"", 0.1).kind is OutcomeKind.PERMANENT

    def test_elapsed_time_is_kept(self) -> None:
        """The measured duration is carried through."""
        assert classify(200, {}, b"", 0.25).elapsed_s == 0.25


class TestClassifyBody:
    def test_success_exposes_the_data_member(self) -> None:
        """The envelope's data is returned on success."""
        result = classify(200, {}, b'{"status":"ok","data":{"id":"a1","n":[1,2]}}', 0.0)
        assert result.data == {"id": "a1", "n": [1, 2]}

    @pytest.mark.parametrize("body", [b"", b"not json", b"[1,2]", b'{"status":"ok"}', b"\xff\xfe"])
    def test_success_without_a_data_envelope_has_no_data(self, body: bytes) -> None:
        """An empty, non-JSON or envelope-less 2xx body is still a success, with data None."""
        result = classify(200, {}, body, 0.0)
        assert (result.kind, result.data) == (OutcomeKind.SUCCESS, None)

    def test_success_body_is_left_undecoded_when_its_data_is_not_wanted(self) -> None:
        """With keep_data=False a 2xx is a success with data None, whatever the body holds."""
        result = classify(201, {}, b'{"status":"ok","data":{"id":"a1"}}', 0.0, keep_data=False)
        assert (result.kind, result.status, result.reason, result.data) == (OutcomeKind.SUCCESS, 201, "ok", None)

    def test_error_body_is_decoded_even_when_data_is_not_wanted(self) -> None:
        """keep_data concerns success bodies only: an error still reports its fields."""
        result = classify(400, {}, ERROR_BODY, 0.0, keep_data=False)
        assert (result.error_message, result.error_code) == ("Invalid $ts", "BAD_REQUEST")

    def test_error_body_fields_are_extracted(self) -> None:
        """error, error_code and error_id of the error envelope are reported."""
        result = classify(400, {}, ERROR_BODY, 0.0)
        assert (result.error_message, result.error_code, result.error_id) == ("Invalid $ts", "BAD_REQUEST", "e-1")
        assert result.data is None

    def test_non_json_error_body_leaves_fields_empty(self) -> None:
        """An HTML error page from a proxy yields no error fields, and no crash."""
        result = classify(502, {"content-type": "text/html"}, b"<html>Bad gateway</html>", 0.0)
        assert (result.kind, result.error_message, result.error_code) == (OutcomeKind.RETRYABLE, None, None)

    def test_numeric_error_id_becomes_text_and_long_messages_are_cut(self) -> None:
        """Numbers are rendered as text and error texts are bounded."""
        body = b'{"error":"' + b"x" * (MAX_ERROR_TEXT + 50) + b'","error_id":123,"error_code":["nested"]}'
        result = classify(400, {}, body, 0.0)
        assert result.error_id == "123"
        assert result.error_code is None
        assert result.error_message == "x" * MAX_ERROR_TEXT

    def test_retry_after_seconds_are_parsed_on_429(self) -> None:
        """A delta-seconds Retry-After on a 429 is reported in seconds."""
        result = classify(429, {"retry-after": "7"}, b"", 0.0)
        assert (result.kind, result.retry_after_s) == (OutcomeKind.RETRYABLE, 7.0)

    def test_retry_after_date_is_parsed_on_503(self) -> None:
        """An HTTP-date Retry-After on a 503 becomes a delay from now."""
        when = datetime.now(UTC) + timedelta(seconds=120)
        result = classify(503, {"retry-after": format_datetime(when, usegmt=True)}, b"", 0.0)
        assert result.retry_after_s is not None
        assert 100 <= result.retry_after_s <= 120

    def test_no_retry_after_header(self) -> None:
        """Without the header retry_after_s is None."""
        assert classify(429, {}, b"", 0.0).retry_after_s is None


class TestParseRetryAfter:
    @pytest.mark.parametrize(("value", "seconds"), [("0", 0.0), ("5", 5.0), (" 12 ", 12.0), ("1.5", 1.5)])
    def test_delta_seconds(self, value: str, seconds: float) -> None:
        """Delta-seconds are read as seconds."""
        assert parse_retry_after(value, now=NOW) == seconds

    def test_delta_seconds_are_capped(self) -> None:
        """A huge delay is capped at MAX_RETRY_AFTER_S."""
        assert parse_retry_after("999999999999", now=NOW) == MAX_RETRY_AFTER_S

    def test_http_date_in_the_future(self) -> None:
        """An IMF-fixdate is turned into the seconds left until then."""
        assert parse_retry_after(format_datetime(datetime.fromtimestamp(NOW + 30, UTC), usegmt=True), now=NOW) == 30.0

    def test_http_date_in_the_past_means_now(self) -> None:
        """A date already passed means retry immediately."""
        assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=NOW) == 0.0

    def test_http_date_far_ahead_is_capped(self) -> None:
        """A date years ahead is capped."""
        assert parse_retry_after("Fri, 01 Jan 2100 00:00:00 GMT", now=NOW) == MAX_RETRY_AFTER_S

    def test_obsolete_date_without_zone_is_utc(self) -> None:
        """An asctime date (no zone) is taken as UTC, not local time."""
        assert parse_retry_after("Tue Nov 14 22:15:00 2023", now=NOW) == 100.0

    @pytest.mark.parametrize("value", ["", "soon", "-5", "1e3", "5 seconds", "Thu, 99 Foo 2023", "x" * 200])
    def test_garbage_is_none(self, value: str) -> None:
        """Values of neither form yield None."""
        assert parse_retry_after(value, now=NOW) is None


class TestTransportFailure:
    @pytest.mark.parametrize(
        ("error", "reason"),
        [
            (TransportTimeout(), "timeout"),
            (TransportConnectError(), "connect_error"),
            (TransportConnectionReset(), "connection_reset"),
            (TransportProtocolError(), "protocol_error"),
        ],
    )
    def test_transport_errors_are_retryable_without_status(self, error: Exception, reason: str) -> None:
        """Each transport failure is retryable, has no status and names its reason."""
        result = transport_failure(error, 0.5)  # type: ignore[arg-type]
        assert (result.kind, result.status, result.reason, result.elapsed_s) == (
            OutcomeKind.RETRYABLE,
            None,
            reason,
            0.5,
        )
