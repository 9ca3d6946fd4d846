"""librdkafka settings: one builder for the worker and every tool; at-least-once settings pinned, roles kept apart."""

from __future__ import annotations

import ast
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import pytest

from worker import kafka
from worker.config import WorkerConfig
from worker.dlq import DlqSettings
from worker.dryrun import dry_run_consumer
from worker.kafka import FETCH_WAIT_MAX_MS, consumer_settings, producer_settings, subscription
from worker.mics.auth import ApiToken

SHARED_PROPERTIES = {
    "security.protocol": "SASL_SSL",
    "sasl.mechanism": "SCRAM-SHA-512",
    "sasl.username": "worker",
    "sasl.password": "kafka-Hunter2",
    "ssl.ca.location": "ca.pem",
}


def config(
    kafka_properties: Mapping[str, str] | None = None,
    *,
    topics: tuple[str, ...] = ("events",),
    topic_pattern: str | None = None,
    group_protocol: str = "classic",
    group_instance_id: str | None = None,
) -> WorkerConfig:
    return WorkerConfig(
        bootstrap_servers="broker-1:9092",
        api_token=ApiToken("tok"),
        group_id="mics-worker-test",
        topics=topics,
        topic_pattern=topic_pattern,
        group_protocol=group_protocol,  # type: ignore[arg-type]
        group_instance_id=group_instance_id,
        kafka_properties=dict(kafka_properties or {}),
    )


class TestConsumerSettings:
    def test_offsets_are_stored_only_by_the_pipeline(self) -> None:
        """Auto-store is off (the pipeline stores after delivery); auto-commit sends what was stored."""
        settings = consumer_settings(config())
        assert settings["enable.auto.offset.store"] is False
        assert settings["enable.auto.commit"] is True
        assert settings["auto.offset.reset"] == "earliest"

    def test_identity_comes_from_the_configuration(self) -> None:
        """Bootstrap servers and group id are the configured ones."""
        settings = consumer_settings(config())
        assert settings["bootstrap.servers"] == "broker-1:9092"
        assert settings["group.id"] == "mics-worker-test"

    def test_classic_protocol_uses_cooperative_sticky(self) -> None:
        """The classic group protocol rebalances incrementally with cooperative-sticky."""
        settings = consumer_settings(config())
        assert settings["partition.assignment.strategy"] == "cooperative-sticky"
        assert "session.timeout.ms" in settings
        assert "group.protocol" not in settings

    def test_consumer_protocol_leaves_assignment_to_the_broker(self) -> None:
        """With group.protocol=consumer (KIP-848) no client-side strategy or session timeout is set."""
        settings = consumer_settings(config(group_protocol="consumer"))
        assert settings["group.protocol"] == "consumer"
        assert "partition.assignment.strategy" not in settings
        assert "session.timeout.ms" not in settings

    def test_static_membership_when_an_instance_id_is_set(self) -> None:
        """A group instance id makes the member static; without one the key is absent."""
        assert consumer_settings(config(group_instance_id="worker-0"))["group.instance.id"] == "worker-0"
        assert "group.instance.id" not in consumer_settings(config())

    def test_a_resumed_partition_waits_at_most_a_short_long_poll(self) -> None:
        """librdkafka keeps one fetch per broker in flight: a long poll at a partition's end delays every resumed
        partition, so the worker shortens it from librdkafka's 500 ms; an operator may still choose."""
        assert consumer_settings(config())["fetch.wait.max.ms"] == FETCH_WAIT_MAX_MS < 500
        assert consumer_settings(config({"fetch.wait.max.ms": "500"}))["fetch.wait.max.ms"] == "500"

    def test_refuses_to_override_the_pinned_setting(self) -> None:
        """Turning auto-store back on would commit unfinished messages, so the override is refused."""
        with pytest.raises(ValueError, match=r"cannot be overridden.*enable\.auto\.offset\.store"):
            consumer_settings(config({"enable.auto.offset.store": "true"}))

    def test_passthrough_may_tune_unpinned_consumer_settings(self) -> None:
        """Other defaults, such as auto.offset.reset or the session timeout, yield to passthrough values."""
        settings = consumer_settings(config({"auto.offset.reset": "latest", "session.timeout.ms": "10000"}))
        assert settings["auto.offset.reset"] == "latest"
        assert settings["session.timeout.ms"] == "10000"


class TestProducerSettings:
    def test_dead_letter_writes_are_idempotent_and_fully_acknowledged(self) -> None:
        """The DLQ producer is idempotent and waits for all in-sync replicas."""
        settings = producer_settings(config())
        assert settings["enable.idempotence"] is True
        assert settings["acks"] == "all"
        assert settings["bootstrap.servers"] == "broker-1:9092"

    def test_a_lost_dlq_is_noticed_within_seconds(self) -> None:
        """message.timeout.ms is bounded well below librdkafka's five-minute default."""
        assert producer_settings(config())["message.timeout.ms"] <= 60_000

    @pytest.mark.parametrize(("name", "value"), [("enable.idempotence", "false"), ("acks", "1")])
    def test_refuses_to_override_the_pinned_settings(self, name: str, value: str) -> None:
        """Weakening idempotence or acknowledgements could lose a dead letter, so the override is refused."""
        with pytest.raises(ValueError, match=f"cannot be overridden.*{name}"):
            producer_settings(config({name: value}))

    def test_passthrough_may_tune_unpinned_producer_settings(self) -> None:
        """linger.ms and compression yield to passthrough values."""
        settings = producer_settings(config({"linger.ms": "50", "compression.type": "zstd"}))
        assert settings["linger.ms"] == "50"
        assert settings["compression.type"] == "zstd"

    def test_the_two_clients_identify_themselves_apart(self) -> None:
        """Consumer and producer use different client ids, so broker logs and quotas tell them apart."""
        assert consumer_settings(config())["client.id"] != producer_settings(config())["client.id"]


class TestPassthroughRoles:
    def test_connection_and_security_settings_reach_both_clients(self) -> None:
        """SASL/SSL and other shared properties go to the consumer and the producer alike."""
        consumer = consumer_settings(config(SHARED_PROPERTIES))
        producer = producer_settings(config(SHARED_PROPERTIES))
        for name, value in SHARED_PROPERTIES.items():
            assert consumer[name] == value
            assert producer[name] == value

    @pytest.mark.parametrize(
        "name",
        [
            "group.remote.assignor",
            "partition.assignment.strategy",
            "session.timeout.ms",
            "heartbeat.interval.ms",
            "max.poll.interval.ms",
            "auto.offset.reset",
        ],
    )
    def test_consumer_properties_stay_off_the_producer(self, name: str) -> None:
        """Group and poll properties go to the consumer only."""
        properties = {name: "1"}
        assert consumer_settings(config(properties))[name] == "1"
        assert name not in producer_settings(config(properties))

    @pytest.mark.parametrize(
        "name", ["linger.ms", "batch.size", "message.timeout.ms", "compression.type", "compression.codec"]
    )
    def test_producer_properties_stay_off_the_consumer(self, name: str) -> None:
        """Batching, delivery-timeout and compression properties go to the producer only."""
        properties = {name: "1"}
        assert producer_settings(config(properties))[name] == "1"
        assert name not in consumer_settings(config(properties))

    def test_pinned_producer_settings_do_not_disturb_the_consumer(self) -> None:
        """acks/idempotence passthrough is refused by the producer builder but never reaches the consumer."""
        settings = consumer_settings(config({"acks": "1", "enable.idempotence": "false"}))
        assert "acks" not in settings
        assert "enable.idempotence" not in settings

    @pytest.mark.parametrize(
        ("name", "role"),
        [
            ("fetch.min.bytes", "consumer"),
            ("isolation.level", "consumer"),
            ("delivery.timeout.ms", "producer"),
            ("queue.buffering.max.ms", "producer"),
        ],
    )
    def test_well_known_role_properties_reach_only_their_client(self, name: str, role: str) -> None:
        """A property librdkafka defines for one client role only is not handed to the other client."""
        properties = {name: "1"}
        other = producer_settings(config(properties)) if role == "consumer" else consumer_settings(config(properties))
        assert name not in other


class TestSubscription:
    def test_topic_list(self) -> None:
        """Without a pattern the subscription is the configured topic list."""
        assert subscription(config(topics=("a", "b"))) == ["a", "b"]

    def test_pattern(self) -> None:
        """With a pattern the subscription is that one ^regex, which librdkafka treats as a pattern."""
        assert subscription(config(topics=(), topic_pattern="^events-.*")) == ["^events-.*"]


class SettingsRecorder:
    """Stands in for confluent-kafka's Consumer and Producer: keeps the settings it is given, connects nowhere."""

    built: ClassVar[list[tuple[str, dict[str, Any]]]] = []
    role = ""

    def __init__(self, settings: dict[str, Any]) -> None:
        SettingsRecorder.built.append((self.role, settings))


class RecordedConsumer(SettingsRecorder):
    role = "consumer"


class RecordedProducer(SettingsRecorder):
    role = "producer"


def every_client(monkeypatch: pytest.MonkeyPatch, properties: Mapping[str, str]) -> list[tuple[str, dict[str, Any]]]:
    """(role, settings) of every client the worker and the tools build, from the same operator properties."""
    monkeypatch.setattr(kafka, "Consumer", RecordedConsumer)
    monkeypatch.setattr(kafka, "Producer", RecordedProducer)
    monkeypatch.setattr(SettingsRecorder, "built", [])
    worker_config = config(properties)
    tools = DlqSettings.from_config(worker_config)
    kafka.make_consumer(worker_config)
    kafka.make_dlq_producer(worker_config)
    tools.consumer("inspect-or-replay")
    tools.producer()
    dry_run_consumer(worker_config, "dry-run")
    return SettingsRecorder.built


class TestOneBuilderForTheWorkerAndTheTools:
    def test_every_client_is_built(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Worker consumer and producer, the DLQ tools' consumer and producer, the dry run's consumer."""
        roles = [role for role, _ in every_client(monkeypatch, {})]
        assert roles == ["consumer", "producer", "consumer", "producer", "consumer"]

    @pytest.mark.parametrize(
        "name",
        [
            "group.remote.assignor",
            "session.timeout.ms",
            "fetch.min.bytes",
            "auto.offset.reset",
            "isolation.level",
            "enable.auto.commit",
        ],
    )
    def test_a_consumer_property_never_reaches_a_producer(self, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
        """Whichever client builds it, a consumer-only property goes to consumers only."""
        for role, settings in every_client(monkeypatch, {name: "7"}):
            assert (name in settings) is (role == "consumer"), (role, settings.get("client.id"))

    @pytest.mark.parametrize(
        "name", ["linger.ms", "compression.type", "delivery.timeout.ms", "partitioner", "queue.buffering.max.ms"]
    )
    def test_a_producer_property_never_reaches_a_consumer(self, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
        """Whichever client builds it, a producer-only property goes to producers only, with the operator's value."""
        for role, settings in every_client(monkeypatch, {name: "7"}):
            assert settings.get(name) == ("7" if role == "producer" else None), (role, settings.get("client.id"))

    def test_shared_properties_reach_every_client(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """SASL/SSL settings reach all five clients."""
        for _, settings in every_client(monkeypatch, SHARED_PROPERTIES):
            assert {name: settings[name] for name in SHARED_PROPERTIES} == SHARED_PROPERTIES

    def test_every_client_carries_the_pinned_settings(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Consumers never auto-store offsets; producers are idempotent with acks=all, tools included."""
        for role, settings in every_client(monkeypatch, {}):
            if role == "consumer":
                assert settings["enable.auto.offset.store"] is False
            else:
                assert (settings["enable.idempotence"], settings["acks"]) == (True, "all")

    def test_the_tools_consumers_never_commit_on_their_own(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """The operator's `enable.auto.commit=true` (fine for the worker) never reaches a tool's consumer."""
        consumers = [s for role, s in every_client(monkeypatch, {"enable.auto.commit": "true"}) if role == "consumer"]
        worker, *tools = consumers
        assert worker["enable.auto.commit"] == "true"
        assert [tool["enable.auto.commit"] for tool in tools] == [False, False]

    @pytest.mark.parametrize(
        "name", ["acks", "request.required.acks", "enable.idempotence", "enable.auto.offset.store"]
    )
    def test_a_pinned_override_is_refused_by_the_one_builder(self, name: str) -> None:
        """`client_settings` refuses an override of its role's pinned settings, whoever calls it."""
        role = "consumer" if name == "enable.auto.offset.store" else "producer"
        with pytest.raises(ValueError, match="cannot be overridden"):
            kafka.client_settings(role, "k:9092", {name: "0"}, client_id="any")

    def test_only_the_kafka_module_constructs_clients(self) -> None:
        """No other module under worker/ calls Consumer(), Producer() or AdminClient(): settings cannot fork again."""
        package = Path(kafka.__file__).parent
        offenders = []
        for path in sorted(package.rglob("*.py")):
            if path.name == "kafka.py" and path.parent == package:
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Call) and _called_name(node.func) in {"Consumer", "Producer", "AdminClient"}:
                    offenders.append(f"{path.relative_to(package)}:{node.lineno}")
        assert offenders == []


def _called_name(func: ast.expr) -> str | None:
    if isinstance(func, ast.Name):
        return func.id
    return func.attr if isinstance(func, ast.Attribute) else None
