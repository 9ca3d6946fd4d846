"""The DLQ tools' pure parts: reading a dead-letter record, selecting records, replay headers, times, settings."""

from __future__ import annotations

import pytest

from worker.cli import main
from worker.config import ConfigError
from worker.dlq import (
    ESCAPED_REPLAY_COUNT_HEADER,
    REPLAY_COUNT_HEADER,
    DeadLetterRecord,
    DlqSettings,
    InspectReport,
    Selection,
    format_inspect,
    parse_time_ms,
)
from worker.dlq_format.full import dead_letter_record
from worker.dlq_format.letter import DeadLetter
from worker.kafka import Message

LETTER = DeadLetter(reason="http_503", message="service unavailable", stage="send", route="activity", http_status=503)


def dead_letter(
    *,
    letter: DeadLetter = LETTER,
    source: tuple[str, int, int] = ("events", 2, 41),
    original: list[tuple[str, bytes]] | None = None,
    timestamp_ms: int = 1_700_000_000_000,
    value: bytes = b'{"k": 1}',
) -> DeadLetterRecord:
    """A DLQ record as the worker writes it: the original headers (reserved names escaped), then the context."""
    topic, partition, offset = source
    written = dead_letter_record(
        letter,
        topic=topic,
        partition=partition,
        offset=offset,
        key=b"user-1",
        value=value,
        original_headers=original or [],
    )
    headers: list[tuple[str, str | bytes | None]] = list(written.headers)
    message = Message(
        topic="dlq", partition=0, offset=7, key=b"user-1", value=value, headers=headers, timestamp=(1, timestamp_ms)
    )
    return DeadLetterRecord.from_message(message)


class TestDeadLetterRecord:
    def test_context_headers_are_read(self) -> None:
        """Reason, source topic/partition/offset and HTTP status come from the context headers."""
        record = dead_letter()
        assert (record.reason, record.source_topic, record.source_partition, record.source_offset) == (
            "http_503",
            "events",
            2,
            41,
        )
        assert record.http_status == "503"

    def test_missing_context_reads_as_unknown(self) -> None:
        """A record without context headers has reason `unknown` and no source."""
        record = DeadLetterRecord.from_message(Message(topic="dlq", partition=0, offset=0, value=b"x"))
        assert (record.reason, record.source_topic, record.source_offset) == ("unknown", None, None)

    def test_dead_letter_time_prefers_the_header(self) -> None:
        """`mics.dlq.time` is the dead-letter time; the record timestamp (the original's) is the fallback."""
        record = dead_letter(timestamp_ms=5)
        assert record.dead_lettered_at_ms == int(record.context["mics.dlq.time"])
        bare = DeadLetterRecord.from_message(Message(topic="dlq", partition=0, offset=0, timestamp=(1, 5)))
        assert bare.dead_lettered_at_ms == 5

    def test_replay_headers_strip_context_and_keep_the_original_ones(self) -> None:
        """A replay keeps the original headers in order, drops every context header, and adds the count 1."""
        record = dead_letter(original=[("trace-id", b"abc"), ("source", b"tag")])
        assert record.replay_headers() == [("trace-id", b"abc"), ("source", b"tag"), (REPLAY_COUNT_HEADER, b"1")]

    def test_replay_count_is_incremented(self) -> None:
        """A record replayed twice before carries count 2 and is replayed with count 3."""
        record = dead_letter(original=[(REPLAY_COUNT_HEADER, b"2")])
        assert record.replay_count == 2
        assert record.replay_headers() == [(REPLAY_COUNT_HEADER, b"3")]

    @pytest.mark.parametrize(
        "count", [b"lots", b"-1", "\u00b2".encode(), b"9" * 5000], ids=["word", "negative", "superscript", "huge"]
    )
    def test_malformed_replay_count_counts_as_zero(self, count: bytes) -> None:
        """A replay count that is not a small non-negative number is read as 0 (never raises) and rewritten."""
        record = dead_letter(original=[(REPLAY_COUNT_HEADER, count)])
        assert record.replay_count == 0
        assert record.replay_headers() == [(REPLAY_COUNT_HEADER, b"1")]

    def test_the_count_comes_from_its_escaped_name(self) -> None:
        """The worker escapes the count a replayed record carried; that header is the one read."""
        record = dead_letter(original=[(REPLAY_COUNT_HEADER, b"2")])
        assert (ESCAPED_REPLAY_COUNT_HEADER, b"2") in record.headers
        assert REPLAY_COUNT_HEADER not in dict(record.headers)

    def test_a_bare_count_is_read_only_from_a_record_written_before_escaping(self) -> None:
        """An earlier worker kept `mics.replay.count` under its own name: read when no escaped count is there."""
        legacy = DeadLetterRecord.from_message(
            Message(topic="dlq", partition=0, offset=0, headers=[(REPLAY_COUNT_HEADER, b"2")])
        )
        assert legacy.replay_count == 2
        both = DeadLetterRecord.from_message(
            Message(
                topic="dlq",
                partition=0,
                offset=0,
                headers=[(REPLAY_COUNT_HEADER, b"5"), (ESCAPED_REPLAY_COUNT_HEADER, b"1")],
            )
        )
        assert both.replay_count == 1
        assert both.replay_headers() == [(REPLAY_COUNT_HEADER, b"2")]

    def test_replay_restores_one_level_of_escaped_names(self) -> None:
        """Source headers named like the worker's come back under their own names, `mics.original.*` ones too."""
        original = [("mics.dlq.reason", b"forged"), ("mics.original.x", b"1"), ("__connect.errors.topic", b"t")]
        record = dead_letter(original=original)
        assert record.reason == "http_503"
        assert record.replay_headers() == [*original, (REPLAY_COUNT_HEADER, b"1")]

    def test_a_forged_truncation_header_does_not_make_a_record_reduced(self) -> None:
        """Only the worker's own `mics.dlq.value.truncated` / `mics.dlq.reduced` mark a record as reduced."""
        record = dead_letter(original=[("mics.dlq.value.truncated", b"99"), ("mics.dlq.reduced", b"value=99")])
        assert record.reduced is None


class TestSelection:
    def test_empty_selection_takes_everything(self) -> None:
        """No criterion: every record matches."""
        assert Selection().matches(DeadLetterRecord.from_message(Message(topic="dlq", partition=0, offset=0)))

    def test_reason_globs(self) -> None:
        """Reasons are glob patterns, any of which may match."""
        record = dead_letter()
        assert Selection(reasons=("http_5*",)).matches(record)
        assert Selection(reasons=("schema_invalid", "http_503")).matches(record)
        assert not Selection(reasons=("http_4*",)).matches(record)

    def test_source_topic_and_partition(self) -> None:
        """Source topic and partition filters compare with the context headers."""
        record = dead_letter(source=("events", 2, 41))
        assert Selection(source_topics=frozenset({"events"}), source_partitions=frozenset({2})).matches(record)
        assert not Selection(source_topics=frozenset({"profiles"})).matches(record)
        assert not Selection(source_partitions=frozenset({0})).matches(record)

    @pytest.mark.parametrize(
        ("offset_from", "offset_to", "expected"),
        [(41, 41, True), (0, 40, False), (42, None, False), (None, 41, True), (0, 0, False)],
    )
    def test_source_offset_range_is_inclusive(
        self, offset_from: int | None, offset_to: int | None, expected: bool
    ) -> None:
        """`offset_from <= source offset <= offset_to`, either bound optional (0 is a bound, not "unset")."""
        record = dead_letter(source=("events", 2, 41))
        assert Selection(offset_from=offset_from, offset_to=offset_to).matches(record) is expected

    def test_time_window_is_half_open(self) -> None:
        """`since <= dead-letter time < until`."""
        record = dead_letter()
        at = record.dead_lettered_at_ms
        assert at is not None
        assert Selection(since_ms=at, until_ms=at + 1).matches(record)
        assert not Selection(until_ms=at).matches(record)
        assert not Selection(since_ms=at + 1).matches(record)

    def test_record_without_source_offset_fails_an_offset_filter(self) -> None:
        """A record that does not say where it came from is not in any offset range."""
        record = DeadLetterRecord.from_message(Message(topic="dlq", partition=0, offset=0))
        assert not Selection(offset_from=0).matches(record)


class TestParseTime:
    def test_epoch_milliseconds(self) -> None:
        """Digits are epoch milliseconds."""
        assert parse_time_ms("1700000000123") == 1_700_000_000_123

    def test_iso_time_without_offset_is_utc(self) -> None:
        """An ISO time with no offset is read as UTC; `Z` and offsets are honoured."""
        assert parse_time_ms("2024-01-02T03:04:05") == 1_704_164_645_000
        assert parse_time_ms("2024-01-02T03:04:05Z") == 1_704_164_645_000
        assert parse_time_ms("2024-01-02T04:04:05+01:00") == 1_704_164_645_000

    def test_garbage_is_refused(self) -> None:
        """Anything else is a ValueError naming the text."""
        with pytest.raises(ValueError, match="yesterday"):
            parse_time_ms("yesterday")


class TestSettings:
    def test_from_env_reads_the_worker_variables(self) -> None:
        """Bootstrap, DLQ topic, group and librdkafka properties come from MICS_WORKER_*; no token is needed."""
        settings = DlqSettings.from_env(
            {
                "MICS_WORKER_BOOTSTRAP_SERVERS": "k:9092",
                "MICS_WORKER_DLQ_TOPIC": "dead",
                "MICS_WORKER_GROUP_ID": "workers",
                "MICS_WORKER_KAFKA_SASL_PASSWORD": "hunter2",
            }
        )
        assert (settings.bootstrap_servers, settings.dlq_topic, settings.group_id) == ("k:9092", "dead", "workers")
        assert settings.kafka_properties == {"sasl.password": "hunter2"}
        assert "hunter2" not in repr(settings)

    def test_defaults(self) -> None:
        """Without DLQ_TOPIC and GROUP_ID the worker's defaults apply."""
        settings = DlqSettings.from_env({"MICS_WORKER_BOOTSTRAP_SERVERS": "k:9092"})
        assert (settings.dlq_topic, settings.group_id) == ("mics-worker-dlq", "mics-worker")

    def test_bootstrap_is_required(self) -> None:
        """No bootstrap servers is a configuration error naming the variable."""
        with pytest.raises(ConfigError, match="MICS_WORKER_BOOTSTRAP_SERVERS"):
            DlqSettings.from_env({})

    @pytest.mark.parametrize("variable", ["MICS_WORKER_KAFKA_ACKS", "MICS_WORKER_KAFKA_ENABLE_AUTO_OFFSET_STORE"])
    def test_an_override_the_worker_refuses_is_refused_here_too(self, variable: str) -> None:
        """The tools run with the worker's environment and refuse the same pinned overrides, before connecting."""
        with pytest.raises(ConfigError, match="cannot be overridden"):
            DlqSettings.from_env({"MICS_WORKER_BOOTSTRAP_SERVERS": "k:9092", variable: "1"})


class TestFormats:
    def test_inspect_text_escapes_record_data(self) -> None:
        """Keys, values and header values shown to an operator cannot carry terminal escape sequences."""
        record = dead_letter(value=b"\x1b]0;owned\x07", letter=DeadLetter("decode_error", "bad \x1b[2J", "decode"))
        report = InspectReport(topic="dlq", read=1, selected=1, shown=[record])
        text = format_inspect(report, "text")
        assert "\x1b" not in text
        assert "\\x1b]0;owned\\x07" in text

    def test_inspect_truncates_long_values(self) -> None:
        """Values are shown up to 200 bytes, with the full size."""
        report = InspectReport(topic="dlq", shown=[dead_letter(value=b"v" * 1000)])
        assert f"value: {'v' * 200}... (1000 bytes)" in format_inspect(report, "text")

    def test_a_dead_letter_time_out_of_range_is_shown_not_raised(self) -> None:
        """A DLQ record anyone wrote may carry any time: shown as out of range instead of stopping inspect."""
        record = DeadLetterRecord.from_message(
            Message(topic="dlq", partition=0, offset=0, value=b"x", headers=[("mics.dlq.time", b"9" * 18)])
        )
        report = InspectReport(topic="dlq", shown=[record])
        assert f"time out of range ({'9' * 18} ms)" in format_inspect(report, "text")


class TestCommandUsage:
    def test_bad_time_is_a_usage_error(
        self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """`dlq replay --since` that is not a time exits 2 before anything connects to Kafka."""
        monkeypatch.setenv("MICS_WORKER_BOOTSTRAP_SERVERS", "127.0.0.1:1")
        assert main(["dlq", "replay", "--dry-run", "--since", "last tuesday"]) == 2
        assert "last tuesday" in capsys.readouterr().err

    def test_missing_bootstrap_is_a_usage_error(
        self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """`dlq inspect` without MICS_WORKER_BOOTSTRAP_SERVERS exits 2 and names the variable."""
        monkeypatch.delenv("MICS_WORKER_BOOTSTRAP_SERVERS", raising=False)
        assert main(["dlq", "inspect"]) == 2
        assert "MICS_WORKER_BOOTSTRAP_SERVERS" in capsys.readouterr().err

    def test_group_without_dry_run_is_a_usage_error(self, capsys: pytest.CaptureFixture[str]) -> None:
        """`run --group` only makes sense with `--dry-run`."""
        assert main(["run", "--group", "g"]) == 2
        assert "--dry-run" in capsys.readouterr().err
