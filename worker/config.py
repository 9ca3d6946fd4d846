"""The worker's whole configuration: one frozen, typed object built in one place, validated eagerly.

Every setting comes from an environment variable with the `MICS_WORKER_` prefix (see README); routes may also come
from a JSON file. A bad value fails at start-up with a message naming the variable, never mid-stream. Secrets (the API
token, librdkafka passwords) are redacted from the repr.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, cast
from urllib.parse import urlsplit

from worker import codec
from worker.mics.auth import ApiToken
from worker.mics.transport import Timeouts
from worker.retry import RetryPolicy

__all__ = ["ENV_PREFIX", "ConfigError", "DlqGuardSettings", "RouteMode", "RouteRule", "WorkerConfig"]

ENV_PREFIX = "MICS_WORKER_"
KAFKA_PREFIX = ENV_PREFIX + "KAFKA_"

RouteMode = Literal["activity", "profile", "choice", "envelope"]
ROUTE_MODES: tuple[RouteMode, ...] = ("activity", "profile", "choice", "envelope")
_MODES_BY_NAME: dict[str, RouteMode] = {mode: mode for mode in ROUTE_MODES}
_SECRET_KAFKA_KEY = re.compile(r"password|secret|token|key\.pem|credentials", re.IGNORECASE)


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


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
    max_concurrency: int = 64
    route_concurrency: Mapping[str, int] = field(default_factory=dict)
    consume_batch_size: int = 500
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    timeouts: Timeouts = field(default_factory=Timeouts)
    dlq_guard: DlqGuardSettings = field(default_factory=DlqGuardSettings)
    credentials_probe_interval_s: float = 15.0
    group_protocol: Literal["classic", "consumer"] = "classic"
    group_instance_id: str | None = None
    schemas_dir: Path | None = None
    kafka_properties: Mapping[str, str] = field(default_factory=dict)

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
        env = _Env(environ)
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
        )


def _guard_settings(env: _Env) -> DlqGuardSettings:
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


def _route_concurrency(env: _Env) -> dict[str, int]:
    """Optional per-route caps under the global one, e.g. `MICS_WORKER_PROFILE_CONCURRENCY=8`."""
    limits = {route: env.integer(f"{route.upper()}_CONCURRENCY", 0) for route in ("activity", "profile", "choice")}
    return {route: limit for route, limit in limits.items() if limit > 0}


def _routes(env: _Env) -> tuple[RouteRule, ...]:
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


# Durations beyond a day are mistakes, and timers cannot wait for unbounded ones.
MAX_SECONDS = 86_400.0
_RETRY = RetryPolicy()
_TIMEOUTS = Timeouts()
_GUARD = DlqGuardSettings()


class _Env:
    """Typed reads of `MICS_WORKER_*` variables with errors that name the variable."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def _raw(self, key: str) -> str | None:
        value = self._environ.get(ENV_PREFIX + key)
        return value.strip() if value is not None and value.strip() else None

    def required(self, key: str) -> str:
        value = self._raw(key)
        if value is None:
            raise ConfigError(f"{ENV_PREFIX}{key} is required")
        return value

    def text(self, key: str, default: str) -> str:
        value = self._raw(key)
        return default if value is None else value

    def text_or_none(self, key: str) -> str | None:
        return self._raw(key)

    def csv(self, key: str) -> list[str]:
        value = self._raw(key)
        return [] if value is None else [item.strip() for item in value.split(",") if item.strip()]

    def choice(self, key: str, choices: tuple[str, ...], default: str, *, upper: bool = False) -> str:
        value = self._raw(key)
        if value is None:
            return default
        if upper:
            value = value.upper()
        if value not in choices:
            raise ConfigError(f"{ENV_PREFIX}{key}={value!r} is not one of {', '.join(choices)}")
        return value

    def integer(self, key: str, default: int, *, minimum: int | None = 0, maximum: int | None = None) -> int:
        value = self._raw(key)
        if value is None:
            return default
        try:
            number = int(value)
        except ValueError:
            raise ConfigError(f"{ENV_PREFIX}{key}={value!r} is not an integer") from None
        self._check_range(key, number, minimum, maximum)
        return number

    def number(self, key: str, default: float, *, minimum: float = 0.0, maximum: float | None = MAX_SECONDS) -> float:
        value = self._raw(key)
        if value is None:
            return default
        try:
            number = float(value)
        except ValueError:
            raise ConfigError(f"{ENV_PREFIX}{key}={value!r} is not a number") from None
        if not math.isfinite(number):
            raise ConfigError(f"{ENV_PREFIX}{key} must be a finite number")
        self._check_range(key, number, minimum, maximum)
        return number

    @staticmethod
    def _check_range(key: str, number: float, minimum: float | None, maximum: float | None) -> None:
        if minimum is not None and number < minimum:
            raise ConfigError(f"{ENV_PREFIX}{key}={number} is below the minimum {minimum}")
        if maximum is not None and number > maximum:
            raise ConfigError(f"{ENV_PREFIX}{key}={number} is above the maximum {maximum}")
