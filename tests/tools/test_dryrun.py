"""`run --dry-run` against the real broker: per-route and per-reason counts, no commits, no token needed."""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import pytest

from tests.fixtures.kafka import KafkaService
from tests.tools.kafka_helpers import Record, commit, committed, produce
from worker.cli import main
from worker.dryrun import config_for_dry_run, dry_run

pytestmark = pytest.mark.integration

VISIT = {
    "$type": "SITE_VISIT",
    "$session_status": "IN_SESSION",
    "$user_agent_id": "vec:1",
    "$events": [{"$ts": 1, "$event_name": "$page_view", "$properties": {}}],
}
PROFILE = {
    "type": "profile",
    "user_point": {"user_agent_id": "vec:1"},
    "compartment_id": "1",
    "user_account_id": "u-1",
    "body": {"tier": "gold"},
}
CHOICE = {
    "type": "choice",
    "user_point": {"email_hash": "h"},
    "processing_id": "p-1",
    "body": {"$processing_id": "p-1", "$choice_ts": 1, "$choice_acceptance_value": True},
}


def encode(document: object) -> bytes:
    return json.dumps(document).encode()


@pytest.fixture
def topics(kafka_broker: KafkaService, topic_factory: Callable[..., str]) -> tuple[str, str]:
    """An activity topic (one partition, 7 messages: 3 sendable, 4 dead letters) and a mixed envelope topic (2)."""
    events, mixed = topic_factory(partitions=1), topic_factory(partitions=2)
    produce(
        kafka_broker.bootstrap_servers,
        events,
        [
            Record(encode(VISIT)),
            Record(b'{"$type": "SITE_VISIT",'),  # decode_error
            Record(encode(VISIT)),
            Record(encode({**VISIT, "$session_status": "SOMETIMES"})),  # schema_invalid
            Record(encode({"type": "activity", "datamart_id": "99", "body": VISIT})),  # forbidden_datamart
            Record(encode(PROFILE)),  # unroutable: a profile on an activity topic
            Record(encode(VISIT)),
        ],
    )
    produce(
        kafka_broker.bootstrap_servers,
        mixed,
        [Record(encode(PROFILE), partition=0), Record(encode(CHOICE), partition=1)],
    )
    return events, mixed


def environment(kafka: KafkaService, events: str, mixed: str) -> dict[str, str]:
    """The worker's settings for the two topics, without any API token."""
    return {
        "MICS_WORKER_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "MICS_WORKER_TOPICS": f"{events},{mixed}",
        "MICS_WORKER_ROUTES": f"{events}=activity,{mixed}=envelope",
        "MICS_WORKER_DEFAULT_DATAMART_ID": "1",
    }


class TestDryRun:
    def test_counts_what_would_be_sent_and_dead_lettered(
        self, kafka_broker: KafkaService, topics: tuple[str, str]
    ) -> None:
        """Every message is planned as the pipeline would: sends per route, dead letters per reason."""
        events, mixed = topics
        report = dry_run(config_for_dry_run(environment(kafka_broker, events, mixed)))
        assert report.consumed == 9
        assert report.would_send == {"activity": 3, "profile": 1, "choice": 1}
        assert report.would_dead_letter == {
            "decode_error": 1,
            "schema_invalid": 1,
            "forbidden_datamart": 1,
            "unroutable": 1,
        }
        assert [(e.topic, e.offset, e.reason) for e in report.examples][:2] == [
            (events, 1, "decode_error"),
            (events, 3, "schema_invalid"),
        ]

    def test_given_group_starts_at_its_committed_offsets_and_commits_nothing(
        self, kafka_broker: KafkaService, topics: tuple[str, str], group_id: str
    ) -> None:
        """With a group, the dry run covers only what that group would process next, and leaves its offsets alone."""
        events, mixed = topics
        commit(kafka_broker.bootstrap_servers, group_id, events, {0: 4})
        commit(kafka_broker.bootstrap_servers, group_id, mixed, {0: 1, 1: 1})
        report = dry_run(config_for_dry_run(environment(kafka_broker, events, mixed)), group=group_id)
        assert report.consumed == 3
        assert report.would_send == {"activity": 1}
        assert report.would_dead_letter == {"forbidden_datamart": 1, "unroutable": 1}
        assert committed(kafka_broker.bootstrap_servers, group_id, events, 1) == [4]
        assert committed(kafka_broker.bootstrap_servers, group_id, mixed, 2) == [1, 1]

    def test_command_resolves_a_topic_pattern_and_prints_the_ledger(
        self,
        kafka_broker: KafkaService,
        topics: tuple[str, str],
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """`mics-worker run --dry-run` works without an API token and matches TOPIC_PATTERN against the cluster."""
        events, mixed = topics
        for name, value in environment(kafka_broker, events, mixed).items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("MICS_WORKER_TOPICS")
        monkeypatch.setenv("MICS_WORKER_TOPIC_PATTERN", f"^{re.escape(events)}$")
        for name in ("MICS_WORKER_API_TOKEN", "MICS_WORKER_API_TOKEN_FILE"):
            monkeypatch.delenv(name, raising=False)
        assert main(["run", "--dry-run"]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert lines[0].startswith(f"dry run over {events} (group mics-worker-dry-run-")
        assert lines[1:4] == [
            "consumed: 7",
            "would send: 3 (activity=3)",
            "would dead-letter: 4 (decode_error=1, forbidden_datamart=1, schema_invalid=1, unroutable=1)",
        ]
