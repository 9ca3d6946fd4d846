"""The worker's whole configuration: one frozen, typed object built in one place, validated eagerly.

Every setting comes from an environment variable with the `MICS_WORKER_` prefix (see README); routes may also come
from a JSON file. A bad value fails at start-up with a message naming the variable, never mid-stream. Secrets (the API
token, librdkafka passwords) are redacted from the repr.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, cast
from urllib.parse import urlsplit

from worker import codec
from worker.env import ENV_PREFIX, ConfigError, Env
from worker.mics.auth import ApiToken
from worker.mics.statuses import DEFAULT_TABLE, StatusTable, parse_status_classes
from worker.mics.transport import Timeouts
from worker.retry import RetryPolicy
from worker.tracing.settings import TracingSettings
from worker.traffic.ratelimit import parse_rate_limits
from worker.traffic.settings import TrafficSettings

__all__ = [
    "ENV_PREFIX",
    "ConfigError",
    "DlqGuardSettings",
    "RouteMode",
    "RouteRule",
    "TrafficSettings",
    "WorkerConfig",
]

KAFKA_PREFIX = ENV_PREFIX + "KAFKA_"

RouteMode = Literal["activity", "profile", "choice", "envelope"]
ROUTE_MODES: tuple[RouteMode, ...] = ("activity", "profile", "choice", "envelope")
_MODES_BY_NAME: dict[str, RouteMode] = {mode: mode for mode in ROUTE_MODES}
_SECRET_KAFKA_KEY = re.compile(r"password|secret|token|key\.pem|credentials", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class RouteRule:
    """Messages of topics matching `topic` (an exact name, or a regex when it starts with `^`) go to `mode`."""

    topic: str
    mode: RouteMode

    @property
    def is_pattern(self) -> bool:
        return self.topic.startswith("^")


@dataclass(frozen=True, slots=True)
class DlqGuardSettings:
    """Pause instead of spilling: trip when too large a share of recent messages, or too many in a row, dead-letter."""

    window: int = 1000
    max_ratio: float = 0.5
    min_samples: int = 200
    max_consecutive: int = 500
    cooldown_s: float = 60.0


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
    http_backend: str = "aiohttp"
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
    kafka_properties: Mapping[str, str] = field(default_factory=dict)
    tracing: TracingSettings = field(default_factory=TracingSettings)

    def __repr__(self) -> str:
        kafka = {k: ("***" if _SECRET_KAFKA_KEY.search(k) else v) for k, v in self.kafka_properties.items()}
        shown = {
            name: getattr(self, name)
            for name in self.__dataclass_fields__
            if name not in {"api_token", "kafka_properties"}
        }
        fields_text = ", ".join(f"{k}={v!r}" for k, v in shown.items())
        return f"WorkerConfig({fields_text}, api_token=ApiToken(***), kafka_properties={kafka!r})"

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> WorkerConfig:
        """Build and validate the configuration from environment variables (and the routes file they name)."""
        env = Env(environ)
        topics = env.csv("TOPICS")
        topic_pattern = env.text_or_none("TOPIC_PATTERN")
        if bool(topics) == bool(topic_pattern):
            raise ConfigError(f"set exactly one of {ENV_PREFIX}TOPICS or {ENV_PREFIX}TOPIC_PATTERN")
        if topic_pattern is not None:
            _check_regex(f"{ENV_PREFIX}TOPIC_PATTERN", topic_pattern)
            if not topic_pattern.startswith("^"):
                raise ConfigError(f"{ENV_PREFIX}TOPIC_PATTERN must start with ^ (librdkafka's regex marker)")
        routes = _routes(env)
        if not routes:
            raise ConfigError(f"set {ENV_PREFIX}ROUTES or {ENV_PREFIX}ROUTES_FILE: no topic has a route")
        default_datamart = env.text_or_none("DEFAULT_DATAMART_ID")
        allowed = frozenset(env.csv("ALLOWED_DATAMARTS"))
        if default_datamart is not None:
            allowed |= {default_datamart}
        if not allowed:
            raise ConfigError(f"set {ENV_PREFIX}DEFAULT_DATAMART_ID or {ENV_PREFIX}ALLOWED_DATAMARTS")
        base_url = env.text("API_BASE_URL", cls.api_base_url)
        parts = urlsplit(base_url)
        if parts.scheme not in {"http", "https"} or not parts.hostname or parts.query or parts.fragment:
            raise ConfigError(f"{ENV_PREFIX}API_BASE_URL must be an http(s) URL without query or fragment")
        try:
            token = ApiToken.from_env(environ, ENV_PREFIX + "API_TOKEN", ENV_PREFIX + "API_TOKEN_FILE")
        except (ValueError, OSError) as exc:
            raise ConfigError(f"{ENV_PREFIX}API_TOKEN / {ENV_PREFIX}API_TOKEN_FILE: {exc}") from None
        backend = env.choice("HTTP_BACKEND", ("aiohttp", "httpx"), cls.http_backend)
        log_format = env.choice("LOG_FORMAT", ("json", "text"), cls.log_format)
        group_protocol = env.choice("GROUP_PROTOCOL", ("classic", "consumer"), cls.group_protocol)
        try:
            retry = RetryPolicy(
                max_attempts=env.integer("RETRY_MAX_ATTEMPTS", _RETRY.max_attempts, minimum=1),
                max_elapsed_s=env.number("RETRY_MAX_ELAPSED_S", _RETRY.max_elapsed_s),
                base_delay_s=env.number("RETRY_BASE_DELAY_S", _RETRY.base_delay_s),
                max_delay_s=env.number("RETRY_MAX_DELAY_S", _RETRY.max_delay_s),
            )
        except ValueError as exc:
            raise ConfigError(f"{ENV_PREFIX}RETRY_*: {exc}") from None
        schemas_dir = env.text_or_none("SCHEMAS_DIR")
        processes = env.integer("PROCESSES", cls.processes, minimum=1, maximum=1024)
        return cls(
            bootstrap_servers=env.required("BOOTSTRAP_SERVERS"),
            api_token=token,
            group_id=env.text("GROUP_ID", cls.group_id),
            topics=tuple(topics),
            topic_pattern=topic_pattern,
            routes=routes,
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
            timeouts=Timeouts(
                connect_s=env.number("HTTP_CONNECT_TIMEOUT_S", _TIMEOUTS.connect_s),
                read_s=env.number("HTTP_READ_TIMEOUT_S", _TIMEOUTS.read_s),
                total_s=env.number("HTTP_TOTAL_TIMEOUT_S", _TIMEOUTS.total_s),
            ),
            dlq_guard=_guard_settings(env),
            credentials_probe_interval_s=env.number(
                "CREDENTIALS_PROBE_INTERVAL_S", cls.credentials_probe_interval_s, minimum=0.05
            ),
            group_protocol=cast(Literal["classic", "consumer"], group_protocol),
            group_instance_id=env.text_or_none("GROUP_INSTANCE_ID"),
            schemas_dir=Path(schemas_dir) if schemas_dir else None,
            kafka_properties=_kafka_properties(environ),
            tracing=TracingSettings(
                enabled=env.choice("TRACING", ("on", "off"), "off") == "on",
                propagate_to_api=env.choice("TRACING_PROPAGATE_TO_API", ("on", "off"), "off") == "on",
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
        raise ConfigError(
            f"{ENV_PREFIX}DLQ_GUARD_MIN_SAMPLES={settings.min_samples} exceeds {ENV_PREFIX}DLQ_GUARD_WINDOW="
            f"{settings.window}: the ratio limit could never apply"
        )
    return settings


def _traffic_settings(env: Env, processes: int, allowed: frozenset[str]) -> TrafficSettings:
    """Adaptive concurrency, shared backoff, circuit breaker, probes and `RATE_LIMIT` (split among the processes)."""
    try:
        limits = parse_rate_limits(env.text("RATE_LIMIT", ""), processes)
    except ValueError as exc:
        raise ConfigError(f"{ENV_PREFIX}RATE_LIMIT: {exc}") from None
    unknown = sorted(set(limits.datamarts) - allowed)
    if unknown:
        raise ConfigError(f"{ENV_PREFIX}RATE_LIMIT: datamart {unknown[0]} is not an allowed datamart")
    tolerance = env.number("CONCURRENCY_LATENCY_TOLERANCE", _TRAFFIC.latency_tolerance, minimum=1.0, maximum=100.0)
    if tolerance <= 1.0:
        raise ConfigError(f"{ENV_PREFIX}CONCURRENCY_LATENCY_TOLERANCE must be above 1 (a ratio to the baseline RTT)")
    probe_s = env.number("PROBE_INTERVAL_S", _TRAFFIC.probe_interval_s, minimum=0.01)
    probe_max_s = env.number("PROBE_MAX_INTERVAL_S", _TRAFFIC.probe_max_interval_s, minimum=0.01)
    if probe_max_s < probe_s:
        raise ConfigError(f"{ENV_PREFIX}PROBE_MAX_INTERVAL_S is below {ENV_PREFIX}PROBE_INTERVAL_S")
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
        raise ConfigError(f"{ENV_PREFIX}HTTP_STATUS_CLASSES: {exc}") from None


def _route_concurrency(env: Env) -> dict[str, int]:
    """Optional per-route caps under the global one, e.g. `MICS_WORKER_PROFILE_CONCURRENCY=8`."""
    limits = {route: env.integer(f"{route.upper()}_CONCURRENCY", 0) for route in ("activity", "profile", "choice")}
    return {route: limit for route, limit in limits.items() if limit > 0}


def _routes(env: Env) -> tuple[RouteRule, ...]:
    rules: list[RouteRule] = []
    for item in env.csv("ROUTES"):
        topic, sep, mode = item.rpartition("=")
        if not sep or not topic:
            raise ConfigError(f"{ENV_PREFIX}ROUTES: {item!r} is not topic=route")
        rules.append(_rule(f"{ENV_PREFIX}ROUTES", topic.strip(), mode.strip()))
    routes_file = env.text_or_none("ROUTES_FILE")
    if routes_file is not None:
        rules.extend(_routes_file(f"{ENV_PREFIX}ROUTES_FILE", Path(routes_file)))
    return tuple(rules)


def _routes_file(name: str, path: Path) -> list[RouteRule]:
    """Read `{"routes": [{"topic": "name or ^regex", "route": "activity|profile|choice|envelope"}, ...]}`."""
    try:
        document = codec.decode(path.read_bytes(), max_bytes=10_000_000)
    except (OSError, codec.DecodeError) as exc:
        raise ConfigError(f"{name}: cannot read {path}: {exc}") from None
    entries = document.get("routes") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise ConfigError(f"{name}: {path} must hold an object with a 'routes' list")
    rules = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict) or set(entry) != {"topic", "route"} or not str(entry["topic"]).strip():
            raise ConfigError(f"{name}: routes[{index}] must be an object with exactly 'topic' and 'route', non-empty")
        rules.append(_rule(f"{name} routes[{index}]", str(entry["topic"]), str(entry["route"])))
    return rules


def _rule(name: str, topic: str, mode_name: str) -> RouteRule:
    mode = _MODES_BY_NAME.get(mode_name)
    if mode is None:
        raise ConfigError(f"{name}: route {mode_name!r} is not one of {', '.join(ROUTE_MODES)}")
    if topic.startswith("^"):
        _check_regex(name, topic)
    return RouteRule(topic=topic, mode=mode)


def _check_regex(name: str, pattern: str) -> None:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ConfigError(f"{name}: {pattern!r} is not a valid regex: {exc}") from None


def _kafka_properties(environ: Mapping[str, str]) -> dict[str, str]:
    """`MICS_WORKER_KAFKA_SASL_MECHANISM=PLAIN` → `{"sasl.mechanism": "PLAIN"}` for librdkafka."""
    return {
        key[len(KAFKA_PREFIX) :].lower().replace("_", "."): value
        for key, value in environ.items()
        if key.startswith(KAFKA_PREFIX) and len(key) > len(KAFKA_PREFIX)
    }


_RETRY = RetryPolicy()
_TIMEOUTS = Timeouts()
_GUARD = DlqGuardSettings()
_TRAFFIC = TrafficSettings()
