"""A producer's headers under the worker's reserved names, on the real broker: never read as the worker's context,
given back under their own names by replay; and the replay count that comes back escaped when a replay fails again."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from tests.fixtures.kafka import KafkaService
from tests.tools.kafka_helpers import dead_letter, produce, read_all
from worker.dlq import (
    ESCAPED_REPLAY_COUNT_HEADER,
    REPLAY_COUNT_HEADER,
    DlqSettings,
    ReplayOptions,
    format_inspect,
    format_replay,
    inspect,
    replay,
)
from worker.dlq_format.letter import DeadLetter

pytestmark = pytest.mark.integration

HTTP_503 = DeadLetter("http_503", "service unavailable", "send", "activity", http_status=503, attempts=5)
FORGED = [
    ("mics.dlq.reason", b"schema_invalid"),
    ("mics.dlq.http.status", b"418"),
    ("mics.dlq.value.truncated", b"99"),
    ("__connect.errors.topic", b"somewhere-else"),
    ("mics.original.kept", b"one level"),
    ("trace", b"t-9"),
]


def settings_for(kafka: KafkaService, dlq_topic: str, group: str) -> DlqSettings:
    return DlqSettings(bootstrap_servers=kafka.bootstrap_servers, dlq_topic=dlq_topic, group_id=group)


class TestForgedContext:
    def test_inspect_reports_the_workers_context_not_the_producers(
        self, kafka_broker: KafkaService, topic_factory: Callable[..., str], group_id: str
    ) -> None:
        """Forged `mics.dlq.*` / `__connect.errors.*` source headers reach the DLQ escaped; inspect reads the
        worker's reason, status and source topic, and does not take the record for a reduced one."""
        dlq, events = topic_factory(), topic_factory()
        produce(
            kafka_broker.bootstrap_servers,
            dlq,
            [dead_letter(HTTP_503, b'{"n": 1}', source=(events, 0, 4), original=FORGED)],
        )
        report = inspect(settings_for(kafka_broker, dlq, group_id))
        assert (report.by_reason, report.by_http_status, report.by_source_topic) == (
            {"http_503": 1},
            {"503": 1},
            {events: 1},
        )
        assert report.reduced == 0
        [shown] = json.loads(format_inspect(report, "json"))["shown"]
        assert shown["context"]["mics.dlq.reason"] == "http_503"
        assert "mics.dlq.value.truncated" not in shown["context"]
        assert shown["reduced"] is None

    def test_replay_restores_the_producers_header_names_and_values(
        self, kafka_broker: KafkaService, topic_factory: Callable[..., str], group_id: str
    ) -> None:
        """Replay sends the record back with every source header under its original name (one `mics.original.`
        level removed), in order, the worker's context dropped, and a replay count of 1."""
        dlq, events = topic_factory(), topic_factory()
        produce(
            kafka_broker.bootstrap_servers,
            dlq,
            [dead_letter(HTTP_503, b'{"n": 1}', source=(events, 0, 4), original=FORGED)],
        )
        report = replay(settings_for(kafka_broker, dlq, group_id))
        assert (report.replayed, report.reduced, report.refused) == ({events: 1}, 0, 0)
        [replayed] = read_all(kafka_broker.bootstrap_servers, events)
        assert replayed.value() == b'{"n": 1}'
        assert replayed.headers() == [*FORGED, (REPLAY_COUNT_HEADER, b"1")]


class TestReplayCount:
    def test_a_replay_that_fails_again_carries_its_count_back(
        self, kafka_broker: KafkaService, topic_factory: Callable[..., str], group_id: str
    ) -> None:
        """Replayed, failed again (the worker escapes replay's count header), replayed again: the count reaches 2;
        with `--max-replays 2` the third time is refused."""
        dlq, events = topic_factory(), topic_factory()
        settings = settings_for(kafka_broker, dlq, group_id)
        produce(kafka_broker.bootstrap_servers, dlq, [dead_letter(HTTP_503, b"v", source=(events, 0, 0))])
        for expected_count in (1, 2):
            assert replay(settings).replayed_total == 1
            message = read_all(kafka_broker.bootstrap_servers, events)[-1]
            assert (REPLAY_COUNT_HEADER, str(expected_count).encode()) in message.headers()
            failed_again = dead_letter(  # as the worker writes it when the replayed record fails
                HTTP_503,
                message.value(),
                key=message.key(),
                source=(events, 0, message.offset() or 0),
                original=message.headers() or [],
            )
            assert (ESCAPED_REPLAY_COUNT_HEADER, str(expected_count).encode()) in failed_again.headers
            produce(kafka_broker.bootstrap_servers, dlq, [failed_again])
        refused = replay(settings, ReplayOptions(max_replays=2))
        assert (refused.replayed_total, refused.refused_counts) == (0, {2: 1})

    def test_a_forged_count_only_makes_replay_refuse_and_says_how_to_override(
        self, kafka_broker: KafkaService, topic_factory: Callable[..., str], group_id: str
    ) -> None:
        """A producer's own `mics.replay.count: 7` is read as the count (it is in the record's headers): the replay
        refuses, naming the count and `--max-replays`; a higher `--max-replays` replays it with count 8."""
        dlq, events = topic_factory(), topic_factory()
        forged = [(REPLAY_COUNT_HEADER, b"7")]
        produce(
            kafka_broker.bootstrap_servers, dlq, [dead_letter(HTTP_503, b"v", source=(events, 0, 0), original=forged)]
        )
        report = replay(settings_for(kafka_broker, dlq, group_id), ReplayOptions(dry_run=True))
        assert (report.replayed_total, report.refused_counts) == (0, {7: 1})
        text = format_replay(report)
        assert "count 7: 1" in text
        assert "--max-replays=3" in text
        assert "a higher --max-replays replays them" in text
        overridden = replay(settings_for(kafka_broker, dlq, group_id), ReplayOptions(max_replays=8))
        assert overridden.replayed == {events: 1}
        [replayed] = read_all(kafka_broker.bootstrap_servers, events)
        assert replayed.headers() == [(REPLAY_COUNT_HEADER, b"8")]
