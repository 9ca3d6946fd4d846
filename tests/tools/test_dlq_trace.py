"""The DLQ tools and the trace context: `dlq inspect` shows the trace id, `dlq replay` carries the worker's on."""

from __future__ import annotations

import orjson

from worker.dlq import DeadLetterRecord, InspectReport, format_inspect
from worker.dlq_format.full import dead_letter_record
from worker.dlq_format.letter import DeadLetter
from worker.kafka import Message

LETTER = DeadLetter(reason="http_400", message="bad", stage="send", route="activity", http_status=400)
SOURCE_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
WORKER_TRACE = "0af7651916cd43dd8448eb211c80319c"
SOURCE_PARENT = f"00-{SOURCE_TRACE}-00f067aa0ba902b7-01".encode()
WORKER_PARENT = f"00-{WORKER_TRACE}-b7ad6b7169203331-01".encode()


def dead_letter(original: list[tuple[str, bytes]], worker_trace: list[tuple[str, bytes | None]]) -> DeadLetterRecord:
    """A DLQ record as the worker writes it, read back as the tools read it."""
    written = dead_letter_record(
        LETTER,
        topic="events",
        partition=0,
        offset=5,
        key=None,
        value=b"{}",
        original_headers=original,
        trace_headers=worker_trace,
    )
    headers: list[tuple[str, str | bytes | None]] = list(written.headers)
    return DeadLetterRecord.from_message(Message(topic="dlq", partition=0, offset=0, value=b"{}", headers=headers))


class TestTraceId:
    def test_the_workers_traceparent_gives_the_trace_id(self) -> None:
        """Tracing was on: the id is the worker's (its dead-letter span's trace), whatever the source carried."""
        record = dead_letter([("traceparent", SOURCE_PARENT)], [("traceparent", WORKER_PARENT)])
        assert record.trace_id == (WORKER_TRACE, "worker")

    def test_without_the_workers_the_sources_is_shown_as_such(self) -> None:
        """Tracing was off: the source's escaped `traceparent` gives the trace id, labelled as the source's."""
        record = dead_letter([("traceparent", SOURCE_PARENT)], [])
        assert record.trace_id == (SOURCE_TRACE, "source")

    def test_a_forged_context_header_is_no_trace_id(self) -> None:
        """Garbage under the name is no trace id; a producer's name look-alike is escaped, never the worker's."""
        assert dead_letter([("traceparent", b"00-zz-01")], []).trace_id is None
        assert dead_letter([("TRACEPARENT", SOURCE_PARENT)], []).trace_id == (SOURCE_TRACE, "source")
        assert dead_letter([], []).trace_id is None

    def test_inspect_shows_it_in_text_and_json(self) -> None:
        record = dead_letter([], [("traceparent", WORKER_PARENT)])
        source_only = dead_letter([("traceparent", SOURCE_PARENT)], [])
        report = InspectReport(topic="dlq", read=2, selected=2, shown=[record, source_only])
        text = format_inspect(report, "text")
        assert f"trace id: {WORKER_TRACE}\n" in text
        assert f"trace id: {SOURCE_TRACE} (from the source record)" in text
        shown = orjson.loads(format_inspect(report, "json"))["shown"]
        assert [(item["trace_id"], item["trace_id_from"]) for item in shown] == [
            (WORKER_TRACE, "worker"),
            (SOURCE_TRACE, "source"),
        ]


class TestReplayHeaders:
    def test_the_workers_trace_context_replaces_the_sources(self) -> None:
        """Replayed, the record carries the dead letter's `traceparent` (the trace goes on from it), not the
        source's, and never two of them."""
        record = dead_letter(
            [("traceparent", SOURCE_PARENT), ("tracestate", b"src=1"), ("x", b"1")],
            [("traceparent", WORKER_PARENT), ("tracestate", b"w=1")],
        )
        headers = record.replay_headers()
        assert [value for name, value in headers if name == "traceparent"] == [WORKER_PARENT]
        assert [value for name, value in headers if name == "tracestate"] == [b"w=1"]
        assert ("x", b"1") in headers
        assert not any(name.startswith("mics.original.") for name, _ in headers)

    def test_without_the_workers_the_sources_is_restored(self) -> None:
        """Tracing was off when it was dead-lettered: the source's own context goes back under its name."""
        record = dead_letter([("traceparent", SOURCE_PARENT)], [])
        headers = record.replay_headers()
        assert [value for name, value in headers if name == "traceparent"] == [SOURCE_PARENT]
