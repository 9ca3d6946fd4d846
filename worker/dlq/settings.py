"""What the DLQ tools need from the worker's settings, the Kafka clients built from them, and the tools' error."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from worker import __version__
from worker.config import ConfigError, WorkerConfig
from worker.env import Env
from worker.kafka import (
    Consumer,
    Producer,
    make_reader,
    make_replay_producer,
    reader_settings,
    replay_producer_settings,
)
from worker.kafka_properties import kafka_properties, property_problems

if TYPE_CHECKING:
    from worker.dlq.replayer import ReplayReport

__all__ = ["DlqError", "DlqSettings"]


class DlqError(RuntimeError):
    """The tool cannot go on (missing topic, unreachable broker, a produce that failed); the message says why.

    Raised by `replay`, it carries the report of what was done (and committed) before it stopped.
    """

    report: ReplayReport | None = None


@dataclass(frozen=True, slots=True)
class DlqSettings:
    """What the DLQ tools need from the worker's settings: no API token, routes or topics.

    The clients come from `worker.kafka` (`make_reader`, `make_replay_producer`), so the tools filter the operator's
    `MICS_WORKER_KAFKA_*` properties by client role exactly as the worker does and refuse the same overrides.
    """

    bootstrap_servers: str
    dlq_topic: str = WorkerConfig.dlq_topic
    group_id: str = WorkerConfig.group_id
    kafka_properties: Mapping[str, str] = field(default_factory=dict, repr=False)  # may hold SASL secrets

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> DlqSettings:
        """Read `MICS_WORKER_BOOTSTRAP_SERVERS`, `_DLQ_TOPIC`, `_GROUP_ID`, `_KAFKA_*`; refuse what the worker would,
        and a `MICS_WORKER_*` variable neither the worker nor the tools read (a misspelt `DLQ_TOPIC` must not
        silently inspect the default topic)."""
        from worker.known_variables import unknown_variable_problems  # noqa: PLC0415 - it imports this module

        env = Env(environ)
        settings = cls.read(env)
        for problem in unknown_variable_problems(environ, env.read):
            env.problem(problem)
        env.raise_problems()
        return settings

    @classmethod
    def read(cls, env: Env) -> DlqSettings:
        """The settings through `env` (which records what the tools read: `worker.known_variables`)."""
        bootstrap = env.required("BOOTSTRAP_SERVERS")
        dlq_topic = env.text("DLQ_TOPIC", WorkerConfig.dlq_topic)
        group_id = env.text("GROUP_ID", WorkerConfig.group_id)
        properties = kafka_properties(env.environ)
        for problem in property_problems(properties):  # a misspelt property: one line, not a traceback
            env.problem(problem)
        env.raise_problems()
        settings = cls(bootstrap, dlq_topic=dlq_topic, group_id=group_id, kafka_properties=properties)
        try:  # a refused override is a usage error before anything connects
            reader_settings(bootstrap, properties, group_id=settings.group_id, client_id="check")
            replay_producer_settings(bootstrap, properties)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        return settings

    @classmethod
    def from_config(cls, config: WorkerConfig) -> DlqSettings:
        """The same settings as a running worker's."""
        return cls(config.bootstrap_servers, config.dlq_topic, config.group_id, dict(config.kafka_properties))

    def consumer(self, group_id: str) -> Consumer:
        """A consumer that never commits on its own; replay commits explicitly, inspect not at all."""
        return make_reader(
            self.bootstrap_servers,
            self.kafka_properties,
            group_id=group_id,
            client_id=f"mics-worker-dlq-tool/{__version__}",
        )

    def producer(self) -> Producer:
        """The replay producer: idempotent and `acks=all`, like the worker's dead-letter producer."""
        return make_replay_producer(self.bootstrap_servers, self.kafka_properties)
