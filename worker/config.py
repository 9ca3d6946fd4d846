"""The worker's whole configuration: one frozen, typed object built in one place, validated eagerly.

Every setting comes from an environment variable with the `MICS_WORKER_` prefix (see README), read through `Env`;
routes and the token may also come from files. Bad values fail at start-up, all in one message, each naming its
variable, never mid-stream; so does a variable no setting reads. Secrets (the API token, the librdkafka properties
`worker.sensitive` names) are redacted from the repr, which the start-up line logs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, cast

from worker.config_checks import ROUTE_MODES, RouteMode, RouteRule, check_base_url, check_regex, datamarts, routes
from worker.env import ENV_PREFIX, ConfigError, Env
from worker.input_settings import FramingSettings, TokenSettings, framing_settings, token_settings
from worker.kafka_properties import KAFKA_PREFIX, kafka_properties, property_problems
from worker.mics.auth import ApiToken
from worker.mics.statuses import DEFAULT_TABLE, StatusTable, parse_status_classes
from worker.mics.transport import BACKENDS, DEFAULT_BACKEND, Timeouts
from worker.retry import RetryPolicy
from worker.sensitive import MASK, is_secret_kafka_property
from worker.tracing.settings import TracingSettings
from worker.traffic.ratelimit import parse_rate_limits
from worker.traffic.settings import TrafficSettings

__all__ = [
    "ENV_PREFIX",
    "KAFKA_PREFIX",
    "ROUTE_MODES",
    "BackfillSettings",
    "ConfigError",
    "DlqGuardSettings",
    "RouteMode",
    "RouteRule",
    "TrafficSettings",
    "WorkerConfig",
]


@dataclass(frozen=True, slots=True)
class DlqGuardSettings:
    """Pause instead of spilling: trip when too large a share of recent messages, or too many in a row, dead-letter."""

    window: int = 1000
    max_ratio: float = 0.5
    min_samples: int = 200
    max_consecutive: int = 500
    cooldown_s: float = 60.0


@dataclass(frozen=True, slots=True)
class BackfillSettings:
    """`mics-worker backfill`'s limits (docs/backfill.md); each counts what its name says."""

    max_records: int = 50_000  # lines per execution
    max_bytes: int = 32 * 1024 * 1024  # NDJSON bytes per execution (the API recommends at most 100 MB a file)
    max_pending: int = 4  # executions uploaded and not yet ended
    poll_interval_s: float = 2.0  # between two reads of an execution's status
    execution_timeout_s: float = 3600.0  # following one execution, from its upload to its end
    execution_attempts: int = 3  # uploads of the same lines while their executions end FAILED
    http_timeout_s: float = 300.0  # one request, an upload included
    max_held: int = 200_000  # done records held above a checkpoint mark before open batches are sent early
    profile_format: Literal["force_replace", "update_strategy"] = "force_replace"


@dataclass(frozen=True)  # no slots: `cls.<field>` must read the defaults in from_env
class WorkerConfig:
    """Everything the worker needs to run; build it with `from_env`."""

    bootstrap_servers: str
    api_token: ApiToken
    group_id: str = "mics-worker"
    topics: tuple[str, ...] = ()
    topic_pattern: str | None = None
    routes: tuple[RouteRule, ...] = ()
    dlq_topic: str = "mics-worker-dlq"
    api_base_url: str = "https://api.mediarithmics.com"
    default_datamart_id: str | None = None
    allowed_datamarts: frozenset[str] = frozenset()
    http_backend: str = DEFAULT_BACKEND
    health_host: str = "0.0.0.0"  # noqa: S104 - the probe and Prometheus reach the pod from outside
    health_port: int = 9102
    log_format: Literal["json", "text"] = "json"
    log_level: str = "INFO"
    drain_timeout_s: float = 30.0
    max_message_bytes: int = 1_000_000
    max_in_flight: int = 2000
    max_in_flight_bytes: int = 64 * 1024 * 1024
    max_concurrency: int = 256  # a ceiling, not the pace: the adaptive limit starts at 20 (README, "Flow control")
    route_concurrency: Mapping[str, int] = field(default_factory=dict)
    traffic: TrafficSettings = field(default_factory=TrafficSettings)
    status_classes: StatusTable = DEFAULT_TABLE
    processes: int = 1
    consume_batch_size: int = 500
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    timeouts: Timeouts = field(default_factory=Timeouts)
    dlq_guard: DlqGuardSettings = field(default_factory=DlqGuardSettings)
    credentials_probe_interval_s: float = 15.0
    group_protocol: Literal["classic", "consumer"] = "classic"
    group_instance_id: str | None = None
    schemas_dir: Path | None = None
    framing: FramingSettings = field(default_factory=FramingSettings)
    tokens: TokenSettings = field(default_factory=TokenSettings)
    kafka_properties: Mapping[str, str] = field(default_factory=dict)
    tracing: TracingSettings = field(default_factory=TracingSettings)
    backfill: BackfillSettings = field(default_factory=BackfillSettings)

    def __repr__(self) -> str:
        kafka = {k: (MASK if is_secret_kafka_property(k) else v) for k, v in self.kafka_properties.items()}
        shown = {
            name: getattr(self, name)
            for name in self.__dataclass_fields__
            if name not in {"api_token", "kafka_properties"}
        }
        fields_text = ", ".join(f"{k}={v!r}" for k, v in shown.items())
        return f"WorkerConfig({fields_text}, api_token=ApiToken(***), kafka_properties={kafka!r})"

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> WorkerConfig:
        """Build and validate the configuration from environment variables (and the files they name).

        Every problem is reported at once (one `ConfigError` listing them), unknown `MICS_WORKER_*` variables
        included: a variable no reader asks for is a misspelling (`worker.known_variables`).
        """
        from worker.known_variables import unknown_variable_problems  # noqa: PLC0415 - it imports this module

        env = Env(environ)
        config = cls.read(env)
        if not env.incomplete:
            for problem in unknown_variable_problems(environ, env.read):
                env.problem(problem)
        env.raise_problems()
        if config is None:  # pragma: no cover - read returns None only with a problem recorded
            raise ConfigError("the configuration could not be built")
        return config

    @classmethod
    def read(cls, env: Env) -> WorkerConfig | None:
        """Read every setting through `env`, recording problems there; the configuration when there were none."""
        try:
            return cls._read(env)
        except ConfigError as exc:  # a check that raised instead of recording: report it with the others
            env.problems.extend(exc.problems)
            env.incomplete = True
            return None

    @classmethod
    def _read(cls, env: Env) -> WorkerConfig | None:
        topics = env.csv("TOPICS")
        topic_pattern = env.text_or_none("TOPIC_PATTERN")
        if bool(topics) == bool(topic_pattern):
            env.problem(f"set exactly one of {ENV_PREFIX}TOPICS or {ENV_PREFIX}TOPIC_PATTERN", "TOPICS")
        pattern_name = f"{ENV_PREFIX}TOPIC_PATTERN"
        pattern_compiles = topic_pattern is not None and check_regex(env, "TOPIC_PATTERN", pattern_name, topic_pattern)
        if pattern_compiles and topic_pattern is not None and not topic_pattern.startswith("^"):
            env.problem(f"{pattern_name} must start with ^ (librdkafka's regex marker)", "TOPIC_PATTERN")
        rules = routes(env)
        if not rules:
            env.problem(f"set {ENV_PREFIX}ROUTES or {ENV_PREFIX}ROUTES_FILE: no topic has a route", "ROUTES")
        default_datamart, allowed = datamarts(env)
        base_url = env.text("API_BASE_URL", cls.api_base_url)
        check_base_url(env, base_url)
        token, tokens = token_settings(env, env.environ)
        backend = env.choice("HTTP_BACKEND", BACKENDS, cls.http_backend)
        log_format = env.choice("LOG_FORMAT", ("json", "text"), cls.log_format)
        group_protocol = env.choice("GROUP_PROTOCOL", ("classic", "consumer"), cls.group_protocol)
        retry = _retry_policy(env)
        schemas_dir = env.text_or_none("SCHEMAS_DIR")
        processes = env.integer("PROCESSES", cls.processes, minimum=1, maximum=1024)
        properties = kafka_properties(env.environ)
        for problem in property_problems(properties):
            env.problem(problem)
        config = cls(
            bootstrap_servers=env.required("BOOTSTRAP_SERVERS"),
            api_token=token or _UNREAD_TOKEN,
            group_id=env.text("GROUP_ID", cls.group_id),
            topics=tuple(topics),
            topic_pattern=topic_pattern,
            routes=rules,
            dlq_topic=env.text("DLQ_TOPIC", cls.dlq_topic),
            api_base_url=base_url,
            default_datamart_id=default_datamart,
            allowed_datamarts=allowed,
            http_backend=backend,
            health_host=env.text("HEALTH_HOST", cls.health_host),
            health_port=env.integer("HEALTH_PORT", cls.health_port, minimum=0, maximum=65535),
            log_format=cast(Literal["json", "text"], log_format),
            log_level=env.choice("LOG_LEVEL", ("DEBUG", "INFO", "WARNING", "ERROR"), "INFO", upper=True),
            drain_timeout_s=env.number("DRAIN_TIMEOUT_S", cls.drain_timeout_s),
            max_message_bytes=env.integer("MAX_MESSAGE_BYTES", cls.max_message_bytes, minimum=1),
            max_in_flight=env.integer("MAX_IN_FLIGHT", cls.max_in_flight, minimum=1),
            max_in_flight_bytes=env.integer("MAX_IN_FLIGHT_BYTES", cls.max_in_flight_bytes, minimum=1024),
            max_concurrency=env.integer("MAX_CONCURRENCY", cls.max_concurrency, minimum=1),
            route_concurrency=_route_concurrency(env),
            traffic=_traffic_settings(env, processes, allowed),
            status_classes=_status_classes(env),
            processes=processes,
            consume_batch_size=env.integer("CONSUME_BATCH_SIZE", cls.consume_batch_size, minimum=1, maximum=100_000),
            retry=retry,
            timeouts=_timeouts(env),
            dlq_guard=_guard_settings(env),
            credentials_probe_interval_s=env.number(
                "CREDENTIALS_PROBE_INTERVAL_S", cls.credentials_probe_interval_s, minimum=0.05
            ),
            group_protocol=cast(Literal["classic", "consumer"], group_protocol),
            group_instance_id=env.text_or_none("GROUP_INSTANCE_ID"),
            schemas_dir=Path(schemas_dir) if schemas_dir else None,
            framing=framing_settings(env),
            tokens=tokens,
            kafka_properties=properties,
            tracing=TracingSettings(
                enabled=env.choice("TRACING", ("on", "off"), "off") == "on",
                propagate_to_api=env.choice("TRACING_PROPAGATE_TO_API", ("on", "off"), "off") == "on",
            ),
            backfill=_backfill_settings(env),
        )
        # Every setting was read (so every problem is known) before any is judged: a bad one read as its default.
        return None if env.problems or token is None else config


def _timeouts(env: Env) -> Timeouts:
    """HTTP timeouts: each a positive number of seconds."""
    values = {}
    for name, key in (
        ("connect_s", "HTTP_CONNECT_TIMEOUT_S"),
        ("read_s", "HTTP_READ_TIMEOUT_S"),
        ("total_s", "HTTP_TOTAL_TIMEOUT_S"),
    ):
        default = getattr(_TIMEOUTS, name)
        value = env.number(key, default)
        if value <= 0:
            env.problem(f"{ENV_PREFIX}{key} must be a positive number of seconds", key)
            value = default
        values[name] = value
    return Timeouts(**values)


def _retry_policy(env: Env) -> RetryPolicy:
    attempts = env.integer("RETRY_MAX_ATTEMPTS", _RETRY.max_attempts, minimum=1)
    elapsed = env.number("RETRY_MAX_ELAPSED_S", _RETRY.max_elapsed_s)
    base = env.number("RETRY_BASE_DELAY_S", _RETRY.base_delay_s)
    ceiling = env.number("RETRY_MAX_DELAY_S", _RETRY.max_delay_s)
    try:
        return RetryPolicy(max_attempts=attempts, max_elapsed_s=elapsed, base_delay_s=base, max_delay_s=ceiling)
    except ValueError as exc:
        env.cross_problem(f"{ENV_PREFIX}RETRY_*: {exc}", "RETRY_MAX_DELAY_S", "RETRY_BASE_DELAY_S")
        return _RETRY


def _backfill_settings(env: Env) -> BackfillSettings:
    base = BackfillSettings()
    return BackfillSettings(
        max_records=env.integer("BACKFILL_MAX_RECORDS", base.max_records, minimum=1, maximum=10_000_000),
        max_bytes=env.integer("BACKFILL_MAX_BYTES", base.max_bytes, minimum=1024, maximum=100 * 1024 * 1024),
        max_pending=env.integer("BACKFILL_MAX_PENDING_EXECUTIONS", base.max_pending, minimum=1, maximum=64),
        poll_interval_s=env.number("BACKFILL_POLL_INTERVAL_S", base.poll_interval_s, minimum=0.01),
        execution_timeout_s=env.number("BACKFILL_EXECUTION_TIMEOUT_S", base.execution_timeout_s, minimum=1.0),
        execution_attempts=env.integer("BACKFILL_EXECUTION_ATTEMPTS", base.execution_attempts, minimum=1, maximum=100),
        http_timeout_s=env.number("BACKFILL_HTTP_TIMEOUT_S", base.http_timeout_s, minimum=1.0),
        max_held=env.integer("BACKFILL_MAX_HELD", base.max_held, minimum=1000),
        profile_format=cast(
            Literal["force_replace", "update_strategy"],
            env.choice("BACKFILL_PROFILE_FORMAT", ("force_replace", "update_strategy"), base.profile_format),
        ),
    )


def _guard_settings(env: Env) -> DlqGuardSettings:
    settings = DlqGuardSettings(
        window=env.integer("DLQ_GUARD_WINDOW", _GUARD.window, minimum=1),
        max_ratio=env.number("DLQ_GUARD_MAX_RATIO", _GUARD.max_ratio, maximum=1.0),
        min_samples=env.integer("DLQ_GUARD_MIN_SAMPLES", _GUARD.min_samples, minimum=1),
        max_consecutive=env.integer("DLQ_GUARD_MAX_CONSECUTIVE", _GUARD.max_consecutive, minimum=1),
        cooldown_s=env.number("DLQ_GUARD_COOLDOWN_S", _GUARD.cooldown_s),
    )
    if settings.min_samples > settings.window:
        env.cross_problem(
            f"{ENV_PREFIX}DLQ_GUARD_MIN_SAMPLES={settings.min_samples} exceeds {ENV_PREFIX}DLQ_GUARD_WINDOW="
            f"{settings.window}: the ratio limit could never apply",
            "DLQ_GUARD_MIN_SAMPLES",
            "DLQ_GUARD_WINDOW",
        )
    return settings


def _traffic_settings(env: Env, processes: int, allowed: frozenset[str]) -> TrafficSettings:
    """Adaptive concurrency, shared backoff, circuit breaker, probes and `RATE_LIMIT` (split among the processes)."""
    try:
        limits = parse_rate_limits(env.text("RATE_LIMIT", ""), processes)
    except ValueError as exc:
        env.problem(f"{ENV_PREFIX}RATE_LIMIT: {exc}", "RATE_LIMIT")
        limits = _TRAFFIC.rate_limits
    unknown = sorted(set(limits.datamarts) - allowed)
    if unknown and allowed:
        env.cross_problem(
            f"{ENV_PREFIX}RATE_LIMIT: datamart {unknown[0]} is not an allowed datamart",
            "RATE_LIMIT",
            "ALLOWED_DATAMARTS",
        )
    tolerance = env.number("CONCURRENCY_LATENCY_TOLERANCE", _TRAFFIC.latency_tolerance, minimum=1.0, maximum=100.0)
    if tolerance <= 1.0:
        env.problem(
            f"{ENV_PREFIX}CONCURRENCY_LATENCY_TOLERANCE must be above 1 (a ratio to the baseline RTT)",
            "CONCURRENCY_LATENCY_TOLERANCE",
        )
        tolerance = _TRAFFIC.latency_tolerance
    probe_s = env.number("PROBE_INTERVAL_S", _TRAFFIC.probe_interval_s, minimum=0.01)
    probe_max_s = env.number("PROBE_MAX_INTERVAL_S", _TRAFFIC.probe_max_interval_s, minimum=0.01)
    if probe_max_s < probe_s:
        env.cross_problem(
            f"{ENV_PREFIX}PROBE_MAX_INTERVAL_S is below {ENV_PREFIX}PROBE_INTERVAL_S",
            "PROBE_MAX_INTERVAL_S",
            "PROBE_INTERVAL_S",
        )
        probe_max_s = probe_s
    return TrafficSettings(
        initial_concurrency=env.integer("INITIAL_CONCURRENCY", _TRAFFIC.initial_concurrency, minimum=1),
        adaptive=env.choice("ADAPTIVE_CONCURRENCY", ("true", "false"), "true") == "true",
        latency_tolerance=tolerance,
        backoff_spread_s=env.number("BACKOFF_SPREAD_S", _TRAFFIC.backoff_spread_s, maximum=3600.0),
        circuit_failures=env.integer("CIRCUIT_FAILURES", _TRAFFIC.circuit_failures, minimum=0),
        probe_interval_s=probe_s,
        probe_max_interval_s=probe_max_s,
        rate_limits=limits,
    )


def _status_classes(env: Env) -> StatusTable:
    try:
        return parse_status_classes(env.text("HTTP_STATUS_CLASSES", ""))
    except ValueError as exc:
        env.problem(f"{ENV_PREFIX}HTTP_STATUS_CLASSES: {exc}", "HTTP_STATUS_CLASSES")
        return DEFAULT_TABLE


def _route_concurrency(env: Env) -> dict[str, int]:
    """Optional per-route caps under the global one, e.g. `MICS_WORKER_PROFILE_CONCURRENCY=8`."""
    limits = {route: env.integer(f"{route.upper()}_CONCURRENCY", 0) for route in ("activity", "profile", "choice")}
    return {route: limit for route, limit in limits.items() if limit > 0}


_UNREAD_TOKEN = ApiToken("unread")  # stands in while problems are collected; never in a returned config
_RETRY = RetryPolicy()
_TIMEOUTS = Timeouts()
_GUARD = DlqGuardSettings()
_TRAFFIC = TrafficSettings()
