"""The operator's librdkafka properties (`MICS_WORKER_KAFKA_*`): read and checked at start, each problem naming
its variable.

`MICS_WORKER_KAFKA_SASL_MECHANISM=PLAIN` is `sasl.mechanism=PLAIN`. librdkafka itself judges each name and value (its
own table of properties, through confluent-kafka, without creating a client), so a misspelt property fails at start
with one line instead of a traceback when the first client is built. The settings at-least-once rests on are pinned.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from worker.env import ENV_PREFIX
from worker.sensitive import is_secret_kafka_property

__all__ = ["KAFKA_PREFIX", "PINNED", "PINNED_ALIASES", "kafka_properties", "property_problems", "variable_for"]

KAFKA_PREFIX = ENV_PREFIX + "KAFKA_"

# The at-least-once guarantee depends on these; user overrides of them are refused.
PINNED: dict[Literal["consumer", "producer"], dict[str, Any]] = {
    "consumer": {"enable.auto.offset.store": False},
    "producer": {"enable.idempotence": True, "acks": "all"},
}
PINNED_ALIASES = {"request.required.acks": "acks"}


def kafka_properties(environ: Mapping[str, str]) -> dict[str, str]:
    """`MICS_WORKER_KAFKA_SASL_MECHANISM=PLAIN` → `{"sasl.mechanism": "PLAIN"}`."""
    return {
        key[len(KAFKA_PREFIX) :].lower().replace("_", "."): value
        for key, value in environ.items()
        if key.startswith(KAFKA_PREFIX) and len(key) > len(KAFKA_PREFIX)
    }


def variable_for(name: str) -> str:
    """The variable that sets property `name`: `sasl.mechanism` → `MICS_WORKER_KAFKA_SASL_MECHANISM`."""
    return KAFKA_PREFIX + name.upper().replace(".", "_")


def property_problems(properties: Mapping[str, str]) -> list[str]:
    """One line per property librdkafka refuses or the worker pins, naming the variable; never a secret's value."""
    from worker.kafka import librdkafka_refusal  # noqa: PLC0415 - worker.kafka imports the configuration

    pinned = {name for role in PINNED.values() for name in role}
    problems = []
    for name, value in properties.items():
        variable = variable_for(name)
        if PINNED_ALIASES.get(name, name) in pinned:
            problems.append(f"{variable}: {name} cannot be overridden (at-least-once delivery depends on it)")
            continue
        refusal = librdkafka_refusal(name, value)
        if refusal is None:
            continue
        if refusal.startswith("No such configuration property"):
            problems.append(f"{variable}: librdkafka has no property {name!r}")
        elif is_secret_kafka_property(name):
            problems.append(f"{variable}: librdkafka refuses the value (not shown: a secret)")
        else:
            problems.append(f"{variable}: librdkafka refuses {value!r}: {refusal}")
    return problems
