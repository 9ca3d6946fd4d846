"""Which settings are secrets: never logged, never printed, masked in `mics-worker config` and the start-up line."""

from __future__ import annotations

import re

__all__ = ["MASK", "SENSITIVE_KAFKA_PROPERTIES", "is_secret_kafka_property", "is_secret_variable"]

MASK = "***"

# The properties librdkafka itself flags as sensitive (`_RK_SENSITIVE` in its src/rdkafka_conf.c, the flag its own
# configuration dump redacts by), as of librdkafka 2.x.
SENSITIVE_KAFKA_PROPERTIES = frozenset(
    {
        "ssl.key.location",
        "ssl.key.password",
        "ssl.key.pem",
        "ssl.ca.pem",
        "ssl.keystore.password",
        "sasl.username",
        "sasl.password",
        "sasl.oauthbearer.config",
        "sasl.oauthbearer.client.secret",
        "sasl.oauthbearer.assertion.private.key.file",
        "sasl.oauthbearer.assertion.private.key.passphrase",
        "sasl.oauthbearer.assertion.private.key.pem",
    }
)
# Anything named like a secret is one, whatever librdkafka or the worker adds later.
_SECRET_NAME = re.compile(r"password|passphrase|secret|token|key", re.IGNORECASE)


def is_secret_kafka_property(name: str) -> bool:
    """A librdkafka property (`sasl.password`) whose value must not be shown."""
    return name in SENSITIVE_KAFKA_PROPERTIES or bool(_SECRET_NAME.search(name))


# A duration or a size named after a secret (API_TOKEN_CHECK_INTERVAL_S) holds a number, not the secret.
_MEASURE_SUFFIX = re.compile(r"_(S|MS|SIZE|BYTES)$")


def is_secret_variable(name: str) -> bool:
    """A variable (with or without the `MICS_WORKER_` prefix) whose value must not be shown."""
    key = name.removeprefix("MICS_WORKER_")
    if not key.startswith("KAFKA_") and _MEASURE_SUFFIX.search(key):
        return False
    kafka_property = key.removeprefix("KAFKA_").lower().replace("_", ".") if key.startswith("KAFKA_") else None
    return bool(_SECRET_NAME.search(key)) or (kafka_property is not None and is_secret_kafka_property(kafka_property))
