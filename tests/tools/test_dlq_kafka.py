"""`dlq inspect` and `dlq replay` against the real broker: summaries, filters, headers, refusals, no repeats."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from confluent_kafka.admin import AdminClient

from tests.fixtures.kafka import KafkaService
from tests.tools.kafka_helpers import commit, committed, dead_letter, produce, read_all
from worker.cli import main
from worker.dlq import (
    REPLAY_COUNT_HEADER,
    DlqError,
    DlqSettings,
    ReplayOptions,
    Selection,
    inspect,
    replay,
)
from worker.dlq_format.letter import DeadLetter

pytestmark = pytest.mark.integration

HTTP_503 = DeadLetter("http_503", "service unavailable", "send", "activity", http_status=503, attempts=5)
SCHEMA = DeadLetter("schema_invalid", "'$type' is a required property", "validate", "activity")
T0 = 1_700_000_000_000


@pytest.fixture
def dlq(kafka_broker: KafkaService, topic_factory: Callable[..., str]) -> tuple[str, str, str]:
    """A DLQ (2 partitions) holding dead letters from two source topics that exist: (dlq, events, profiles).

    events[0]@10..12: http_503, dead-lettered at T0, T0+1000, T0+2000; events[1]@5: schema_invalid;
    profiles[0]@3: http_503 with an original header and one earlier replay.
    """
    dlq, events, profiles = topic_factory(partitions=2), topic_factory(), topic_factory()
    records = [
        dead_letter(
            HTTP_503,
            f'{{"n": {i}}}'.encode(),
            key=f"user-{i}".encode(),
            source=(events, 0, 10 + i),
            at_ms=T0 + 1000 * i,
            partition=0,
        )
        for i in range(3)
    ]
    records.append(dead_letter(SCHEMA, b"{", key=b"user-9", source=(events, 1, 5), partition=1))
    # A replayed record that failed again: the worker kept replay's count header, escaped.
    records.append(
        dead_letter(
            HTTP_503,
            b'{"p": 1}',
            key=b"user-p",
            source=(profiles, 0, 3),
            original=[("trace", b"t-1"), (REPLAY_COUNT_HEADER, b"1")],
            at_ms=T0 + 5000,
            partition=1,
        )
    )
    produce(kafka_broker.bootstrap_servers, dlq, records)
    return dlq, events, profiles


def replay_position(kafka: KafkaService, group_id: str, dlq_topic: str) -> list[int]:
    """The default replay group's committed offsets on the two DLQ partitions (-1001: none)."""
    return committed(kafka.bootstrap_servers, f"{group_id}-dlq-replay", dlq_topic, 2)


def settings_for(kafka: KafkaService, dlq_topic: str, group: str) -> DlqSettings:
    return DlqSettings(bootstrap_servers=kafka.bootstrap_servers, dlq_topic=dlq_topic, group_id=group)


class TestInspect:
    def test_summarises_by_reason_source_topic_and_status(
        self, kafka_broker: KafkaService, dlq: tuple[str, str, str], group_id: str
    ) -> None:
        """Every record is read and counted by reason, source topic and HTTP status; the first N are shown."""
        topic, events, profiles = dlq
        report = inspect(settings_for(kafka_broker, topic, group_id), show=2)
        assert (report.read, report.selected) == (5, 5)
        assert report.by_reason == {"http_503": 4, "schema_invalid": 1}
        assert report.by_source_topic == {events: 4, profiles: 1}
        assert report.by_http_status == {"503": 4, "none": 1}
        assert len({(r.partition, r.offset) for r in report.shown}) == 2  # the first two read, in consume order

    def test_reason_and_limit_narrow_the_summary(
        self, kafka_broker: KafkaService, dlq: tuple[str, str, str], group_id: str
    ) -> None:
        """`--reason` selects what is counted and shown; `--limit` bounds how many records are read."""
        settings = settings_for(kafka_broker, dlq[0], group_id)
        report = inspect(settings, selection=Selection(reasons=("schema_*",)))
        assert (report.read, report.selected, report.by_reason) == (5, 1, {"schema_invalid": 1})
        assert inspect(settings, limit=2).read == 2

    def test_commits_nothing(self, kafka_broker: KafkaService, dlq: tuple[str, str, str], group_id: str) -> None:
        """Inspecting leaves no consumer group behind on the broker: nothing was ever committed."""
        admin = AdminClient({"bootstrap.servers": kafka_broker.bootstrap_servers})
        before = {g.group_id for g in admin.list_consumer_groups(request_timeout=10).result().valid}
        inspect(settings_for(kafka_broker, dlq[0], group_id))
        after = {g.group_id for g in admin.list_consumer_groups(request_timeout=10).result().valid}
        assert not {g for g in after - before if g.startswith("mics-worker-dlq-inspect-")}

    def test_command_prints_json(
        self,
        kafka_broker: KafkaService,
        dlq: tuple[str, str, str],
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """`mics-worker dlq inspect --format json` reads its settings from MICS_WORKER_* and prints one object."""
        monkeypatch.setenv("MICS_WORKER_BOOTSTRAP_SERVERS", kafka_broker.bootstrap_servers)
        monkeypatch.setenv("MICS_WORKER_DLQ_TOPIC", dlq[0])
        assert main(["dlq", "inspect", "--format", "json", "--reason", "schema_*"]) == 0
        document = json.loads(capsys.readouterr().out)
        assert (document["read"], document["by_reason"]) == (5, {"schema_invalid": 1})
        [shown] = document["shown"]
        assert (shown["partition"], shown["value"], shown["value_bytes"]) == (1, "{", 1)
        assert shown["context"]["__connect.errors.offset"] == "5"

    def test_missing_topic_is_an_error(self, kafka_broker: KafkaService, group_id: str) -> None:
        """Inspecting a topic that does not exist says so instead of waiting."""
        with pytest.raises(DlqError, match="does not exist"):
            inspect(settings_for(kafka_broker, "no-such-dlq", group_id))


class TestReplay:
    def test_replays_to_the_original_topics_with_headers_rewritten(
        self, kafka_broker: KafkaService, dlq: tuple[str, str, str], group_id: str
    ) -> None:
        """Each record goes back to its source topic and partition, in order, with key and value intact, context
        headers removed, original headers kept and the replay count incremented."""
        topic, events, profiles = dlq
        report = replay(settings_for(kafka_broker, topic, group_id))
        assert (report.read, report.selected, report.replayed) == (5, 5, {events: 4, profiles: 1})
        [profile] = read_all(kafka_broker.bootstrap_servers, profiles)
        assert (profile.key(), profile.value()) == (b"user-p", b'{"p": 1}')
        assert profile.headers() == [("trace", b"t-1"), (REPLAY_COUNT_HEADER, b"2")]
        replayed_events = read_all(kafka_broker.bootstrap_servers, events)
        assert [(m.partition(), m.value()) for m in replayed_events] == [
            (0, b'{"n": 0}'),
            (0, b'{"n": 1}'),
            (0, b'{"n": 2}'),
            (1, b"{"),
        ]
        assert all(m.headers() == [(REPLAY_COUNT_HEADER, b"1")] for m in replayed_events)

    def test_second_run_replays_nothing(
        self, kafka_broker: KafkaService, dlq: tuple[str, str, str], group_id: str
    ) -> None:
        """The replay group commits after the acknowledged batch, so running again finds nothing new.

        (Progress is reported as records read out of the records between the start position and the end.)"""
        topic, events, _ = dlq
        settings = settings_for(kafka_broker, topic, group_id)
        progress: list[tuple[int, int]] = []
        assert replay(settings, progress=lambda done, total: progress.append((done, total))).replayed_total == 5
        assert progress[-1] == (5, 5)
        again = replay(settings)
        assert (again.read, again.replayed_total) == (0, 0)
        assert len(read_all(kafka_broker.bootstrap_servers, events)) == 4
        assert replay_position(kafka_broker, group_id, topic) == [3, 2]

    def test_records_at_the_replay_limit_are_refused(
        self, kafka_broker: KafkaService, dlq: tuple[str, str, str], group_id: str
    ) -> None:
        """A record already replayed `max_replays` times is counted as refused and not produced."""
        topic, events, profiles = dlq
        report = replay(settings_for(kafka_broker, topic, group_id), ReplayOptions(max_replays=1))
        assert (report.refused, report.replayed) == (1, {events: 4})
        assert read_all(kafka_broker.bootstrap_servers, profiles) == []

    def test_to_sends_everything_to_one_topic(
        self,
        kafka_broker: KafkaService,
        dlq: tuple[str, str, str],
        group_id: str,
        topic_factory: Callable[..., str],
    ) -> None:
        """`--to` overrides the original topic of every record."""
        target = topic_factory()
        report = replay(settings_for(kafka_broker, dlq[0], group_id), ReplayOptions(to_topic=target))
        assert report.replayed == {target: 5}
        assert len(read_all(kafka_broker.bootstrap_servers, target)) == 5

    @pytest.mark.parametrize(
        ("selection", "expected"),
        [
            (Selection(reasons=("schema_invalid",)), 1),
            (Selection(reasons=("http_5*",)), 4),
            (Selection(source_partitions=frozenset({0})), 4),
            (Selection(offset_from=11, offset_to=12), 2),
            (Selection(since_ms=T0 + 1000, until_ms=T0 + 5000), 2),
        ],
        ids=["reason", "reason-glob", "source-partition", "source-offsets", "time-window"],
    )
    def test_filters_select_what_a_dry_run_would_replay(
        self,
        kafka_broker: KafkaService,
        dlq: tuple[str, str, str],
        group_id: str,
        selection: Selection,
        expected: int,
    ) -> None:
        """Each filter selects the matching records; a dry run counts them and produces and commits nothing."""
        topic, events, profiles = dlq
        report = replay(settings_for(kafka_broker, topic, group_id), ReplayOptions(selection=selection, dry_run=True))
        assert (report.read, report.replayed_total) == (5, expected)
        assert read_all(kafka_broker.bootstrap_servers, events) == []
        assert read_all(kafka_broker.bootstrap_servers, profiles) == []
        assert all(
            offset < 0 for offset in committed(kafka_broker.bootstrap_servers, f"{group_id}-dlq-replay", topic, 2)
        )

    def test_source_topic_filter_produces_only_that_topic(
        self, kafka_broker: KafkaService, dlq: tuple[str, str, str], group_id: str
    ) -> None:
        """`--source-topic` replays only records that came from that topic."""
        topic, events, profiles = dlq
        report = replay(
            settings_for(kafka_broker, topic, group_id),
            ReplayOptions(selection=Selection(source_topics=frozenset({profiles}))),
        )
        assert (report.selected, report.replayed) == (1, {profiles: 1})
        assert read_all(kafka_broker.bootstrap_servers, events) == []

    def test_limit_stops_and_the_next_run_continues(
        self, kafka_broker: KafkaService, dlq: tuple[str, str, str], group_id: str
    ) -> None:
        """`--limit N` replays N records and commits only what it handled; the next run picks up the rest."""
        topic, events, profiles = dlq
        settings = settings_for(kafka_broker, topic, group_id)
        assert replay(settings, ReplayOptions(limit=2)).replayed_total == 2
        assert replay(settings).replayed_total == 3
        assert (
            len(read_all(kafka_broker.bootstrap_servers, events))
            + len(read_all(kafka_broker.bootstrap_servers, profiles))
            == 5
        )

    def test_resumes_from_the_committed_position(
        self, kafka_broker: KafkaService, dlq: tuple[str, str, str], group_id: str
    ) -> None:
        """A replay group's committed offsets are where it starts."""
        topic, events, _ = dlq
        commit(kafka_broker.bootstrap_servers, f"{group_id}-dlq-replay", topic, {0: 2, 1: 2})
        report = replay(settings_for(kafka_broker, topic, group_id))
        assert (report.read, report.replayed) == (1, {events: 1})

    def test_missing_destination_topic_stops_without_committing(
        self, kafka_broker: KafkaService, dlq: tuple[str, str, str], group_id: str
    ) -> None:
        """A destination the cluster does not have stops the replay before producing; the position stays."""
        topic = dlq[0]
        with pytest.raises(DlqError, match="does not exist"):
            replay(settings_for(kafka_broker, topic, group_id), ReplayOptions(to_topic="no-such-topic"))
        assert all(
            offset < 0 for offset in committed(kafka_broker.bootstrap_servers, f"{group_id}-dlq-replay", topic, 2)
        )

    def test_a_rejected_record_stops_the_replay_before_its_batch_is_committed(
        self, kafka_broker: KafkaService, topic_factory: Callable[..., str], group_id: str
    ) -> None:
        """Batches are committed once acknowledged; a record the broker refuses stops the replay, is reported as
        failed, and its batch stays uncommitted (here: batches of one, the second record too large)."""
        topic, target = topic_factory(partitions=1), topic_factory(partitions=1, config={"max.message.bytes": "2000"})
        records = [dead_letter(HTTP_503, value, source=(target, 0, 0)) for value in (b"small", b"x" * 5000)]
        produce(kafka_broker.bootstrap_servers, topic, records)
        with pytest.raises(DlqError, match="a produce failed") as stopped:
            replay(settings_for(kafka_broker, topic, group_id), ReplayOptions(batch_size=1))
        report = stopped.value.report
        assert report is not None
        assert (report.replayed, report.failed) == ({target: 1}, 1)
        assert committed(kafka_broker.bootstrap_servers, f"{group_id}-dlq-replay", topic, 1) == [1]

    def test_command_reports_and_uses_the_worker_group(
        self,
        kafka_broker: KafkaService,
        dlq: tuple[str, str, str],
        group_id: str,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """`mics-worker dlq replay` filters from flags, commits in `<GROUP_ID>-dlq-replay` and prints the ledger."""
        topic, events, _ = dlq
        monkeypatch.setenv("MICS_WORKER_BOOTSTRAP_SERVERS", kafka_broker.bootstrap_servers)
        monkeypatch.setenv("MICS_WORKER_DLQ_TOPIC", topic)
        monkeypatch.setenv("MICS_WORKER_GROUP_ID", group_id)
        assert main(["dlq", "replay", "--reason", "http_503", "--source-topic", events, "--since", str(T0 + 1)]) == 0
        output = capsys.readouterr().out
        assert f"replayed: 2 ({events}=2)" in output
        assert replay_position(kafka_broker, group_id, topic) == [3, 2]
