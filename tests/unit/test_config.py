"""WorkerConfig.from_env: a minimal environment builds; every bad setting fails at start-up naming its variable."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from worker.config import ConfigError, DlqGuardSettings, RouteRule, TrafficSettings, WorkerConfig
from worker.mics.auth import ApiToken
from worker.mics.statuses import DEFAULT_TABLE
from worker.retry import RetryPolicy
from worker.traffic.ratelimit import RateLimits

TOKEN = "tok-Sup3rSecret"
KAFKA_PASSWORD = "kafka-Hunter2"
MINIMAL = {
    "BOOTSTRAP_SERVERS": "broker-1:9092,broker-2:9092",
    "TOPICS": "events",
    "ROUTES": "events=activity",
    "DEFAULT_DATAMART_ID": "1509",
    "API_TOKEN": TOKEN,
}


def environ(**settings: str | None) -> dict[str, str]:
    """The minimal valid environment with `settings` applied (None removes one); names without the prefix."""
    merged: dict[str, str | None] = {**MINIMAL, **settings}
    return {f"MICS_WORKER_{name}": value for name, value in merged.items() if value is not None}


def build(**settings: str | None) -> WorkerConfig:
    return WorkerConfig.from_env(environ(**settings))


def write_routes(directory: Path, document: object) -> str:
    path = directory / "routes.json"
    path.write_text(document if isinstance(document, str) else json.dumps(document), encoding="utf-8")
    return str(path)


class TestMinimalEnvironment:
    def test_builds_with_documented_defaults(self) -> None:
        """Five variables are enough; everything else takes the documented default."""
        config = build()
        assert config.bootstrap_servers == "broker-1:9092,broker-2:9092"
        assert config.topics == ("events",)
        assert config.topic_pattern is None
        assert config.routes == (RouteRule("events", "activity"),)
        assert config.api_token == ApiToken(TOKEN)
        assert config.group_id == "mics-worker"
        assert config.dlq_topic == "mics-worker-dlq"
        assert config.api_base_url == "https://api.mediarithmics.com"
        assert config.http_backend == "httptools"
        assert config.health_port == 9102
        assert config.log_format == "json"
        assert config.drain_timeout_s == 30.0
        assert config.retry == RetryPolicy()
        assert config.dlq_guard == DlqGuardSettings()
        assert config.route_concurrency == {}
        assert config.kafka_properties == {}

    def test_the_default_datamart_is_allowed(self) -> None:
        """The default datamart joins the allowed list, so a message may name it explicitly."""
        config = build(ALLOWED_DATAMARTS="7, 8")
        assert config.default_datamart_id == "1509"
        assert config.allowed_datamarts == frozenset({"7", "8", "1509"})

    def test_allowed_datamarts_alone_are_enough(self) -> None:
        """Without a default, an allowed list suffices (messages must then name their datamart)."""
        config = build(DEFAULT_DATAMART_ID=None, ALLOWED_DATAMARTS="7,8")
        assert config.default_datamart_id is None
        assert config.allowed_datamarts == frozenset({"7", "8"})

    def test_values_are_trimmed_and_lists_skip_empty_items(self) -> None:
        """Surrounding white space is ignored and empty comma items are dropped."""
        config = build(TOPICS=" events , ,profiles ", ROUTES="events=activity, profiles = profile ,", GROUP_ID=" g ")
        assert config.topics == ("events", "profiles")
        assert config.routes == (RouteRule("events", "activity"), RouteRule("profiles", "profile"))
        assert config.group_id == "g"

    def test_a_topic_pattern_replaces_the_topic_list(self) -> None:
        """TOPIC_PATTERN alone subscribes by regex."""
        config = build(TOPICS=None, TOPIC_PATTERN="^events-.*", ROUTES="^events-.*=envelope")
        assert config.topics == ()
        assert config.topic_pattern == "^events-.*"
        assert config.routes == (RouteRule("^events-.*", "envelope"),)
        assert config.routes[0].is_pattern

    def test_typed_settings_are_parsed(self) -> None:
        """Integers, numbers and choices are parsed into their types."""
        config = build(
            HEALTH_PORT="0",
            DRAIN_TIMEOUT_S="2.5",
            LOG_FORMAT="text",
            LOG_LEVEL="debug",
            HTTP_BACKEND="httpx",
            GROUP_PROTOCOL="consumer",
            GROUP_INSTANCE_ID="worker-0",
            RETRY_MAX_ATTEMPTS="3",
            DLQ_GUARD_MAX_RATIO="0.25",
        )
        assert config.health_port == 0
        assert config.drain_timeout_s == 2.5
        assert config.log_format == "text"
        assert config.log_level == "DEBUG"
        assert config.http_backend == "httpx"
        assert config.group_protocol == "consumer"
        assert config.group_instance_id == "worker-0"
        assert config.retry.max_attempts == 3
        assert config.dlq_guard.max_ratio == 0.25


class TestRequiredSettings:
    @pytest.mark.parametrize("value", [None, "", "   "])
    def test_bootstrap_servers_are_required(self, value: str | None) -> None:
        """A missing or blank BOOTSTRAP_SERVERS is refused by name."""
        with pytest.raises(ConfigError, match="MICS_WORKER_BOOTSTRAP_SERVERS is required"):
            build(BOOTSTRAP_SERVERS=value)

    def test_neither_topics_nor_pattern_is_refused(self) -> None:
        """Without TOPICS or TOPIC_PATTERN there is nothing to consume."""
        with pytest.raises(ConfigError, match="exactly one of MICS_WORKER_TOPICS or MICS_WORKER_TOPIC_PATTERN"):
            build(TOPICS=None)

    def test_both_topics_and_pattern_is_refused(self) -> None:
        """TOPICS and TOPIC_PATTERN together are ambiguous."""
        with pytest.raises(ConfigError, match="exactly one of MICS_WORKER_TOPICS or MICS_WORKER_TOPIC_PATTERN"):
            build(TOPIC_PATTERN="^events")

    def test_a_pattern_must_be_a_valid_regex(self) -> None:
        """A TOPIC_PATTERN that does not compile is refused by name."""
        with pytest.raises(ConfigError, match="MICS_WORKER_TOPIC_PATTERN: '\\^\\(' is not a valid regex"):
            build(TOPICS=None, TOPIC_PATTERN="^(")

    def test_a_pattern_must_start_with_a_caret(self) -> None:
        """librdkafka treats a subscription as a regex only when it starts with ^."""
        with pytest.raises(ConfigError, match="MICS_WORKER_TOPIC_PATTERN must start with"):
            build(TOPICS=None, TOPIC_PATTERN="events-.*")

    def test_some_route_is_required(self) -> None:
        """Without ROUTES or ROUTES_FILE no message could be routed."""
        with pytest.raises(ConfigError, match="MICS_WORKER_ROUTES or MICS_WORKER_ROUTES_FILE"):
            build(ROUTES=None)

    def test_some_datamart_is_required(self) -> None:
        """Without a default or an allowed list no message could be sent anywhere."""
        with pytest.raises(ConfigError, match="MICS_WORKER_DEFAULT_DATAMART_ID or MICS_WORKER_ALLOWED_DATAMARTS"):
            build(DEFAULT_DATAMART_ID=None)


class TestRoutes:
    @pytest.mark.parametrize("item", ["events", "=activity", "events:activity"])
    def test_an_item_without_topic_and_route_is_refused(self, item: str) -> None:
        """Each ROUTES item must read topic=route."""
        with pytest.raises(ConfigError, match=r"MICS_WORKER_ROUTES: .* is not topic=route"):
            build(ROUTES=item)

    @pytest.mark.parametrize("route", ["activities", "ACTIVITY", "", "mixed"])
    def test_an_unknown_route_mode_is_refused(self, route: str) -> None:
        """Only activity, profile, choice and envelope are route modes."""
        with pytest.raises(ConfigError, match=r"MICS_WORKER_ROUTES: route .* is not one of"):
            build(ROUTES=f"events={route}")

    def test_a_pattern_route_must_be_a_valid_regex(self) -> None:
        """A route topic starting with ^ is a regex and must compile."""
        with pytest.raises(ConfigError, match="MICS_WORKER_ROUTES: '\\^\\[' is not a valid regex"):
            build(ROUTES="^[=activity")

    def test_a_pattern_may_contain_an_equals_sign(self) -> None:
        """The route is what follows the last '=', so a regex may hold one."""
        assert build(ROUTES="^a=b.*=choice").routes == (RouteRule("^a=b.*", "choice"),)

    def test_routes_file_is_read(self, tmp_path: Path) -> None:
        """ROUTES_FILE rules follow the inline ROUTES rules, in file order."""
        path = write_routes(
            tmp_path,
            {"routes": [{"topic": "profiles", "route": "profile"}, {"topic": "^mixed-", "route": "envelope"}]},
        )
        config = build(ROUTES_FILE=path)
        assert config.routes == (
            RouteRule("events", "activity"),
            RouteRule("profiles", "profile"),
            RouteRule("^mixed-", "envelope"),
        )

    def test_routes_file_alone_is_enough(self, tmp_path: Path) -> None:
        """ROUTES may be left out when ROUTES_FILE names the routes."""
        path = write_routes(tmp_path, {"routes": [{"topic": "events", "route": "activity"}]})
        assert build(ROUTES=None, ROUTES_FILE=path).routes == (RouteRule("events", "activity"),)

    def test_a_missing_routes_file_is_refused(self, tmp_path: Path) -> None:
        """A ROUTES_FILE that cannot be read is refused by name."""
        with pytest.raises(ConfigError, match="MICS_WORKER_ROUTES_FILE: cannot read"):
            build(ROUTES_FILE=str(tmp_path / "absent.json"))

    @pytest.mark.parametrize(
        ("content", "message"),
        [
            ("{not json", "cannot read"),
            ('{"routes": [], "routes": []}', "cannot read"),
            ("[]", "must hold an object with a 'routes' list"),
            ('{"routes": {"events": "activity"}}', "must hold an object with a 'routes' list"),
            ('{"routes": ["events=activity"]}', r"routes\[0\] must be an object with exactly 'topic' and 'route'"),
            ('{"routes": [{"topic": "events"}]}', r"routes\[0\] must be an object with exactly 'topic' and 'route'"),
            (
                '{"routes": [{"topic": "e", "route": "activity", "extra": 1}]}',
                r"routes\[0\] must be an object with exactly",
            ),
            ('{"routes": [{"topic": "e", "route": "nope"}]}', r"routes\[0\]: route 'nope' is not one of"),
            ('{"routes": [{"topic": "^(", "route": "activity"}]}', r"routes\[0\]: .* is not a valid regex"),
        ],
        ids=[
            "not json",
            "duplicate key",
            "not an object",
            "routes not a list",
            "entry not an object",
            "entry lacks route",
            "entry has extra key",
            "unknown route",
            "bad regex",
        ],
    )
    def test_a_malformed_routes_file_is_refused(self, tmp_path: Path, content: str, message: str) -> None:
        """A ROUTES_FILE that is not JSON or not the documented shape is refused by name, saying what is wrong."""
        with pytest.raises(ConfigError, match="MICS_WORKER_ROUTES_FILE") as raised:
            build(ROUTES_FILE=write_routes(tmp_path, content))
        assert raised.match(message)

    def test_routes_file_refuses_an_empty_topic(self, tmp_path: Path) -> None:
        """An empty topic name in ROUTES_FILE is refused, as it is in ROUTES."""
        path = write_routes(tmp_path, {"routes": [{"topic": "", "route": "activity"}]})
        with pytest.raises(ConfigError, match="MICS_WORKER_ROUTES_FILE"):
            build(ROUTES_FILE=path)


class TestTypedValues:
    @pytest.mark.parametrize(
        ("name", "value", "message"),
        [
            ("HEALTH_PORT", "http", "is not an integer"),
            ("HEALTH_PORT", "9102.5", "is not an integer"),
            ("HEALTH_PORT", "65536", "above the maximum"),
            ("HEALTH_PORT", "-1", "below the minimum"),
            ("MAX_IN_FLIGHT", "0", "below the minimum"),
            ("MAX_MESSAGE_BYTES", "1e6", "is not an integer"),
            ("CONSUME_BATCH_SIZE", "100001", "above the maximum"),
            ("DLQ_GUARD_WINDOW", "0", "below the minimum"),
            ("DRAIN_TIMEOUT_S", "soon", "is not a number"),
            ("DRAIN_TIMEOUT_S", "nan", "must be a finite number"),
            ("DRAIN_TIMEOUT_S", "-1", "below the minimum"),
            ("DLQ_GUARD_MAX_RATIO", "1.5", "above the maximum"),
            ("CREDENTIALS_PROBE_INTERVAL_S", "0", "below the minimum"),
            ("PROFILE_CONCURRENCY", "many", "is not an integer"),
        ],
    )
    def test_a_malformed_number_is_refused_by_name(self, name: str, value: str, message: str) -> None:
        """Integers and numbers that do not parse or fall outside their range name the variable."""
        with pytest.raises(ConfigError, match=f"MICS_WORKER_{name}") as raised:
            build(**{name: value})
        assert raised.match(message)

    @pytest.mark.parametrize(
        ("name", "value"),
        [("HTTP_BACKEND", "requests"), ("LOG_FORMAT", "xml"), ("LOG_LEVEL", "TRACE"), ("GROUP_PROTOCOL", "eager")],
    )
    def test_an_unknown_choice_is_refused_by_name(self, name: str, value: str) -> None:
        """Settings with a closed set of values refuse anything else, naming the variable and the choices."""
        with pytest.raises(ConfigError, match=f"MICS_WORKER_{name}='{value}' is not one of"):
            build(**{name: value})

    @pytest.mark.parametrize(
        "url",
        ["ftp://api.example.com", "api.example.com", "https://", "https://api.example.com/?x=1", "https://a.b/#f"],
    )
    def test_api_base_url_must_be_plain_http(self, url: str) -> None:
        """The API base URL must be http(s) with a host and no query or fragment."""
        with pytest.raises(ConfigError, match="MICS_WORKER_API_BASE_URL"):
            build(API_BASE_URL=url)

    @pytest.mark.parametrize(
        ("settings", "name"),
        [
            ({"RETRY_MAX_ATTEMPTS": "0"}, "MICS_WORKER_RETRY_MAX_ATTEMPTS"),
            ({"RETRY_BASE_DELAY_S": "5", "RETRY_MAX_DELAY_S": "1"}, "MICS_WORKER_RETRY_"),
            ({"HTTP_READ_TIMEOUT_S": "x"}, "MICS_WORKER_HTTP_READ_TIMEOUT_S"),
        ],
    )
    def test_inconsistent_retry_and_timeout_settings_are_refused(self, settings: dict[str, str], name: str) -> None:
        """Retry and HTTP timeout settings that do not make a valid policy name their variables."""
        with pytest.raises(ConfigError, match=name):
            build(**settings)

    @pytest.mark.parametrize("value", ["inf", "1e20"])
    def test_an_unbounded_duration_is_refused(self, value: str) -> None:
        """A duration that is infinite or beyond what a timer can wait is refused by name."""
        with pytest.raises(ConfigError, match="MICS_WORKER_DRAIN_TIMEOUT_S"):
            build(DRAIN_TIMEOUT_S=value)

    def test_a_guard_that_can_never_judge_the_ratio_is_refused(self) -> None:
        """min_samples larger than the window would switch the ratio limit off, so it is refused."""
        with pytest.raises(ConfigError, match="MICS_WORKER_DLQ_GUARD_MIN_SAMPLES"):
            build(DLQ_GUARD_WINDOW="100", DLQ_GUARD_MIN_SAMPLES="500")


class TestRouteConcurrency:
    def test_per_route_caps_are_read(self) -> None:
        """<ROUTE>_CONCURRENCY sets a cap for that route only."""
        config = build(PROFILE_CONCURRENCY="8", CHOICE_CONCURRENCY="2")
        assert config.route_concurrency == {"profile": 8, "choice": 2}

    def test_zero_means_no_cap(self) -> None:
        """A cap of 0 is the same as leaving it unset."""
        assert build(ACTIVITY_CONCURRENCY="0").route_concurrency == {}

    def test_negative_caps_are_refused(self) -> None:
        """A negative cap is refused by name."""
        with pytest.raises(ConfigError, match="MICS_WORKER_ACTIVITY_CONCURRENCY"):
            build(ACTIVITY_CONCURRENCY="-3")


class TestFlowControl:
    def test_defaults(self) -> None:
        """A 256-request ceiling with an adaptive limit starting at 20, a 1 s spread, a circuit after 10 failures,
        probes from 1 s doubling to 60 s, no rate limit, one process, the documented status table."""
        config = build()
        assert config.max_concurrency == 256
        assert config.traffic == TrafficSettings()
        assert (config.traffic.initial_concurrency, config.traffic.adaptive) == (20, True)
        assert (config.traffic.backoff_spread_s, config.traffic.circuit_failures) == (1.0, 10)
        assert (config.traffic.probe_interval_s, config.traffic.probe_max_interval_s) == (1.0, 60.0)
        assert config.traffic.rate_limits == RateLimits()
        assert config.processes == 1
        assert config.status_classes == DEFAULT_TABLE

    def test_every_setting_is_read(self) -> None:
        config = build(
            INITIAL_CONCURRENCY="8",
            ADAPTIVE_CONCURRENCY="false",
            CONCURRENCY_LATENCY_TOLERANCE="3",
            BACKOFF_SPREAD_S="0.5",
            CIRCUIT_FAILURES="0",
            PROBE_INTERVAL_S="2",
            PROBE_MAX_INTERVAL_S="30",
            HTTP_STATUS_CLASSES="404=permanent",
        )
        assert config.traffic == TrafficSettings(8, False, 3.0, 0.5, 0, 2.0, 30.0)
        assert config.status_classes.kind("activity", 404).value == "permanent"

    def test_rate_limits_are_split_among_the_processes(self) -> None:
        """The supervisor of `run --processes 4` sets PROCESSES=4: each member takes a quarter."""
        config = build(RATE_LIMIT="activity:500/s,datamart=1509:100/s", PROCESSES="4")
        assert config.traffic.rate_limits == RateLimits({"activity": 125.0}, {"1509": 25.0})

    @pytest.mark.parametrize(
        ("settings", "name", "message"),
        [
            ({"RATE_LIMIT": "activity:fast"}, "RATE_LIMIT", "positive <number>/s"),
            ({"RATE_LIMIT": "datamart=7:5/s"}, "RATE_LIMIT", "datamart 7 is not an allowed datamart"),
            ({"HTTP_STATUS_CLASSES": "200=retry"}, "HTTP_STATUS_CLASSES", "2xx always means success"),
            ({"HTTP_STATUS_CLASSES": "404:retry"}, "HTTP_STATUS_CLASSES", "is not"),
            ({"CONCURRENCY_LATENCY_TOLERANCE": "1"}, "CONCURRENCY_LATENCY_TOLERANCE", "above 1"),
            ({"INITIAL_CONCURRENCY": "0"}, "INITIAL_CONCURRENCY", "below the minimum"),
            ({"ADAPTIVE_CONCURRENCY": "maybe"}, "ADAPTIVE_CONCURRENCY", "is not one of"),
            ({"CIRCUIT_FAILURES": "-1"}, "CIRCUIT_FAILURES", "below the minimum"),
            ({"PROBE_INTERVAL_S": "10", "PROBE_MAX_INTERVAL_S": "5"}, "PROBE_MAX_INTERVAL_S", "below"),
            ({"BACKOFF_SPREAD_S": "-1"}, "BACKOFF_SPREAD_S", "below the minimum"),
            ({"PROCESSES": "0"}, "PROCESSES", "below the minimum"),
        ],
    )
    def test_bad_settings_are_refused_by_name(self, settings: dict[str, str], name: str, message: str) -> None:
        with pytest.raises(ConfigError, match=f"MICS_WORKER_{name}") as raised:
            build(**settings)
        assert message in str(raised.value)


class TestApiToken:
    def test_token_from_the_environment(self) -> None:
        """API_TOKEN is read and trimmed."""
        assert build(API_TOKEN=f"  {TOKEN}\n").api_token == ApiToken(TOKEN)

    def test_token_from_a_file(self, tmp_path: Path) -> None:
        """API_TOKEN_FILE names a file whose stripped content is the token (a mounted secret)."""
        secret = tmp_path / "token"
        secret.write_text(TOKEN + "\n", encoding="utf-8")
        assert build(API_TOKEN=None, API_TOKEN_FILE=str(secret)).api_token == ApiToken(TOKEN)

    def test_missing_token_is_refused(self) -> None:
        """Without API_TOKEN or API_TOKEN_FILE the worker cannot authenticate."""
        with pytest.raises(ConfigError, match="MICS_WORKER_API_TOKEN"):
            build(API_TOKEN=None)

    def test_both_token_sources_are_refused(self, tmp_path: Path) -> None:
        """API_TOKEN and API_TOKEN_FILE together are ambiguous."""
        secret = tmp_path / "token"
        secret.write_text(TOKEN, encoding="utf-8")
        with pytest.raises(ConfigError, match="MICS_WORKER_API_TOKEN"):
            build(API_TOKEN_FILE=str(secret))

    def test_unreadable_token_file_is_refused(self, tmp_path: Path) -> None:
        """An API_TOKEN_FILE that does not exist is refused by name."""
        with pytest.raises(ConfigError, match="MICS_WORKER_API_TOKEN_FILE"):
            build(API_TOKEN=None, API_TOKEN_FILE=str(tmp_path / "absent"))

    @pytest.mark.parametrize("token", ["tok Secret", "tok\u00e9n-Secret", "tok\x00Secret", "tok\r\nSecret"])
    def test_unusable_token_is_refused_without_quoting_it(self, token: str) -> None:
        """A token that cannot go in an Authorization header is refused, and the error never repeats it."""
        with pytest.raises(ConfigError, match="MICS_WORKER_API_TOKEN") as raised:
            build(API_TOKEN=token)
        assert "Secret" not in str(raised.value)


class TestKafkaPassthroughAndSecrets:
    def test_kafka_variables_become_librdkafka_properties(self) -> None:
        """MICS_WORKER_KAFKA_<PROP> becomes the lower-cased, dotted librdkafka property."""
        config = build(
            KAFKA_SASL_PASSWORD=KAFKA_PASSWORD,
            KAFKA_SASL_MECHANISM="SCRAM-SHA-512",
            KAFKA_SECURITY_PROTOCOL="SASL_SSL",
            KAFKA_FETCH_MAX_BYTES="1048576",
        )
        assert config.kafka_properties == {
            "sasl.password": KAFKA_PASSWORD,
            "sasl.mechanism": "SCRAM-SHA-512",
            "security.protocol": "SASL_SSL",
            "fetch.max.bytes": "1048576",
        }

    def test_the_bare_prefix_is_ignored(self) -> None:
        """A variable named exactly MICS_WORKER_KAFKA_ carries no property."""
        assert build(KAFKA_="x").kafka_properties == {}

    def test_repr_hides_the_token_and_kafka_secrets(self) -> None:
        """repr and str never show the API token or a Kafka password, secret or private key."""
        config = build(
            KAFKA_SASL_PASSWORD=KAFKA_PASSWORD,
            KAFKA_SSL_KEY_PASSWORD="kafka-KeyPass",
            KAFKA_SASL_OAUTHBEARER_CLIENT_SECRET="kafka-OAuthSecret",
            KAFKA_SSL_KEY_PEM="kafka-PrivateKeyPem",
            KAFKA_SASL_USERNAME="worker-user",
        )
        for text in (repr(config), str(config)):
            for secret in (TOKEN, KAFKA_PASSWORD, "kafka-KeyPass", "kafka-OAuthSecret", "kafka-PrivateKeyPem"):
                assert secret not in text
            assert "api_token=ApiToken(***)" in text
            assert "'sasl.password': '***'" in text
            assert "'sasl.username': '***'" in text  # librdkafka flags the username sensitive too

    def test_a_bad_setting_never_echoes_the_token(self) -> None:
        """Errors about other settings do not carry the token either."""
        with pytest.raises(ConfigError) as raised:
            build(HEALTH_PORT="x")
        assert TOKEN not in str(raised.value)
