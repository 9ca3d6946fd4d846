"""librdkafka settings builders: at-least-once settings pinned, group protocol, and passthrough by client role."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from worker.config import WorkerConfig
from worker.kafka import consumer_settings, producer_settings, subscription
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
