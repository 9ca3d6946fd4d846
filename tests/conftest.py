"""Shared pytest wiring: the Kafka broker, the sandbox API and a scenario on both are fixtures of their own modules."""

pytest_plugins = ["tests.fixtures.kafka", "tests.fixtures.sandbox", "tests.fixtures.scenario"]
