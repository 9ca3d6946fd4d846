"""Records the DLQ holds only in reduced form, on the real broker: inspect says so, replay refuses them."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from tests.fixtures.kafka import KafkaService
from tests.tools.kafka_helpers import Record, committed, dead_letter, produce, read_all
from worker.dlq import DlqSettings, format_inspect, format_replay, inspect, replay
from worker.dlq_format.full import context_headers
from worker.dlq_format.headers import TRUNCATED_HEADER
from worker.dlq_format.letter import DeadLetter

pytestmark = pytest.mark.integration

HTTP_503 = DeadLetter("http_503", "service unavailable", "send", "activity", http_status=503, attempts=5)
BIG_HEADERS = [(f"h{i}", b"x" * 500) for i in range(20)]  # 10 kB of headers: over the reduced form's bound


@pytest.fixture
def reduced_dlq(kafka_broker: KafkaService, topic_factory: Callable[..., str]) -> tuple[str, str]:
    """(dlq, events): events[0]@7 reduced for its value, @8 whole, @9 reduced for its headers."""
    dlq, events = topic_factory(partitions=1), topic_factory()
    produce(
        kafka_broker.bootstrap_servers,
        dlq,
        [
            dead_letter(HTTP_503, b"v" * 5000, key=b"user-big", source=(events, 0, 7), reduced=True, partition=0),
            dead_letter(HTTP_503, b'{"n": 1}', key=b"user-1", source=(events, 0, 8), partition=0),
            dead_letter(
                HTTP_503, b'{"n": 2}', key=b"user-2", source=(events, 0, 9), original=BIG_HEADERS, reduced=True
            ),
        ],
    )
    return dlq, events


def settings_for(kafka: KafkaService, dlq_topic: str, group: str) -> DlqSettings:
    return DlqSettings(bootstrap_servers=kafka.bootstrap_servers, dlq_topic=dlq_topic, group_id=group)


def test_replay_refuses_reduced_records_and_moves_past_them(
    kafka_broker: KafkaService, reduced_dlq: tuple[str, str], group_id: str
) -> None:
    """Only part of a reduced record is in the DLQ: it is counted as refused, not produced, and the replay group
    moves past it, while the whole record beside it is replayed; the ledger says why and where the whole one is."""
    dlq, events = reduced_dlq
    report = replay(settings_for(kafka_broker, dlq, group_id))
    assert (report.read, report.reduced, report.replayed) == (3, 2, {events: 1})
    assert [m.value() for m in read_all(kafka_broker.bootstrap_servers, events)] == [b'{"n": 1}']
    assert committed(kafka_broker.bootstrap_servers, f"{group_id}-dlq-replay", dlq, 1) == [3]
    text = format_replay(report)
    assert "refused, reduced in the DLQ" in text
    assert "__connect.errors.topic/partition/offset headers say where the whole record is): 2" in text


def test_inspect_shows_which_records_are_reduced_and_what_was_cut(
    kafka_broker: KafkaService, reduced_dlq: tuple[str, str], group_id: str
) -> None:
    """The summary counts reduced records; each shown one says what was cut (text and JSON)."""
    dlq, _ = reduced_dlq
    report = inspect(settings_for(kafka_broker, dlq, group_id))
    assert (report.read, report.reduced) == (3, 2)
    text = format_inspect(report, "text")
    assert "reduced (only part of the record is in the DLQ; replay refuses them): 2" in text
    assert "REDUCED: the DLQ holds only part of this record (cut: value=5000)" in text
    assert "REDUCED: the DLQ holds only part of this record (cut: headers=20/10050)" in text
    shown = json.loads(format_inspect(report, "json"))["shown"]
    assert [record["reduced"] for record in shown] == ["value=5000", None, "headers=20/10050"]


def test_a_truncated_record_from_an_earlier_worker_is_refused_too(
    kafka_broker: KafkaService, topic_factory: Callable[..., str], group_id: str
) -> None:
    """Before the reduced form, a worker marked a cut value with `mics.dlq.value.truncated` alone: still refused."""
    dlq, events = topic_factory(), topic_factory()
    headers = [*context_headers(events, 0, 7, HTTP_503), (TRUNCATED_HEADER, b"2000000")]
    produce(kafka_broker.bootstrap_servers, dlq, [Record(b'{"big": "aaaa', headers=headers)])
    report = replay(settings_for(kafka_broker, dlq, group_id))
    assert (report.reduced, report.replayed_total) == (1, 0)
    assert read_all(kafka_broker.bootstrap_servers, events) == []
