"""Shared pytest wiring: the real Kafka broker and the sandbox API are fixtures of their own modules."""

pytest_plugins = ["tests.fixtures.kafka", "tests.fixtures.sandbox"]
