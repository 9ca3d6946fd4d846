"""Configuration mistakes: every one reported in a single attempt, each naming its variable, none repeating a secret."""

from __future__ import annotations

import pytest

from tests.unit.test_config import TOKEN, environ
from worker.config import ConfigError, WorkerConfig
from worker.env import Env
from worker.sensitive import is_secret_kafka_property, is_secret_variable


def refusal(**settings: str | None) -> ConfigError:
    with pytest.raises(ConfigError) as refused:
        WorkerConfig.from_env(environ(**settings))
    return refused.value


class TestEveryProblemInOneReport:
    def test_three_independent_mistakes_are_all_listed(self) -> None:
        """One attempt names every bad variable, one a line, not only the first."""
        error = refusal(HEALTH_PORT="abc", LOG_FORMAT="xml", DRAIN_TIMEOUT_S="-1")
        assert error.problems == (
            "MICS_WORKER_LOG_FORMAT='xml' is not one of json, text",
            "MICS_WORKER_HEALTH_PORT='abc' is not an integer",
            "MICS_WORKER_DRAIN_TIMEOUT_S=-1.0 is below the minimum 0.0",
        )
        assert str(error) == "3 configuration problems:\n  - " + "\n  - ".join(error.problems)

    def test_a_single_problem_is_the_whole_message(self) -> None:
        error = refusal(BOOTSTRAP_SERVERS=None)
        assert str(error) == "MICS_WORKER_BOOTSTRAP_SERVERS is required"
        assert error.problems == ("MICS_WORKER_BOOTSTRAP_SERVERS is required",)

    def test_missing_essentials_are_listed_together(self) -> None:
        error = refusal(BOOTSTRAP_SERVERS=None, TOPICS=None, ROUTES=None, DEFAULT_DATAMART_ID=None, API_TOKEN=None)
        assert error.problems == (
            "set exactly one of MICS_WORKER_TOPICS or MICS_WORKER_TOPIC_PATTERN",
            "set MICS_WORKER_ROUTES or MICS_WORKER_ROUTES_FILE: no topic has a route",
            "set MICS_WORKER_DEFAULT_DATAMART_ID or MICS_WORKER_ALLOWED_DATAMARTS",
            "MICS_WORKER_API_TOKEN / MICS_WORKER_API_TOKEN_FILE: no API token: set MICS_WORKER_API_TOKEN or "
            "MICS_WORKER_API_TOKEN_FILE",
            "MICS_WORKER_BOOTSTRAP_SERVERS is required",
        )

    def test_a_check_between_two_bad_variables_does_not_echo_them(self) -> None:
        """PROBE_INTERVAL_S is already reported: 'max below interval' would only repeat it with a default."""
        error = refusal(PROBE_INTERVAL_S="soon", PROBE_MAX_INTERVAL_S="0.5")
        assert error.problems == ("MICS_WORKER_PROBE_INTERVAL_S='soon' is not a number",)

    def test_every_bad_route_is_listed(self) -> None:
        error = refusal(ROUTES="a=activity,b,c=nope")
        assert error.problems == (
            "MICS_WORKER_ROUTES: 'b' is not topic=route",
            "MICS_WORKER_ROUTES: route 'nope' is not one of activity, profile, choice, envelope",
        )

    def test_a_zero_http_timeout_is_a_message_not_a_traceback(self) -> None:
        error = refusal(HTTP_READ_TIMEOUT_S="0")
        assert error.problems == ("MICS_WORKER_HTTP_READ_TIMEOUT_S must be a positive number of seconds",)


class TestUnknownVariables:
    def test_a_misspelt_setting_is_refused_with_the_right_spelling(self) -> None:
        error = refusal(MAX_CONCURENCY="5")
        assert len(error.problems) == 1
        assert error.problems[0].startswith(
            "MICS_WORKER_MAX_CONCURENCY is not a setting (see README, Configuration); "
            "did you mean MICS_WORKER_MAX_CONCURRENCY"
        )

    def test_a_name_like_nothing_gets_no_suggestion(self) -> None:
        error = refusal(ZZZ="1")
        assert error.problems == ("MICS_WORKER_ZZZ is not a setting (see README, Configuration)",)

    def test_unknown_variables_are_reported_with_the_other_problems(self) -> None:
        error = refusal(GROUP_IDD="g", LOG_LEVEL="LOUD")
        assert error.problems[0] == "MICS_WORKER_LOG_LEVEL='LOUD' is not one of DEBUG, INFO, WARNING, ERROR"
        assert error.problems[1].startswith("MICS_WORKER_GROUP_IDD is not a setting")
        assert "did you mean MICS_WORKER_GROUP_ID" in error.problems[1]

    def test_kafka_passthrough_variables_are_not_unknown(self) -> None:
        config = WorkerConfig.from_env(environ(KAFKA_FETCH_MAX_BYTES="1048576"))
        assert config.kafka_properties == {"fetch.max.bytes": "1048576"}

    def test_every_setting_the_worker_reads_is_known(self) -> None:
        """Setting every variable `Env` was asked for, with its own default, is accepted: nothing read is unknown."""
        env = Env(environ())
        WorkerConfig.read(env)
        defaults = {f"MICS_WORKER_{key}": reading.value for key, reading in env.readings.items() if reading.value}
        config = WorkerConfig.from_env({**defaults, **environ()})
        assert config.group_id == "mics-worker"

    def test_variables_of_other_environments_are_ignored(self) -> None:
        """Only the MICS_WORKER_ prefix is checked: PATH, MICS_SANDBOX_TOKEN and the like are not the worker's."""
        config = WorkerConfig.from_env({**environ(), "PATH": "/bin", "MICS_SANDBOX_TOKEN": "x", "MICS_WORKERS": "2"})
        assert config.topics == ("events",)


class TestKafkaProperties:
    def test_a_property_librdkafka_does_not_have_is_one_line_naming_the_variable(self) -> None:
        error = refusal(KAFKA_BOGUS_PROP="1")
        assert error.problems == ("MICS_WORKER_KAFKA_BOGUS_PROP: librdkafka has no property 'bogus.prop'",)

    def test_a_bad_value_quotes_librdkafka(self) -> None:
        error = refusal(KAFKA_SECURITY_PROTOCOL="nope")
        assert error.problems == (
            "MICS_WORKER_KAFKA_SECURITY_PROTOCOL: librdkafka refuses 'nope': "
            'Invalid value "nope" for configuration property "security.protocol"',
        )

    def test_pinned_properties_are_refused_at_start(self) -> None:
        error = refusal(KAFKA_ENABLE_IDEMPOTENCE="false", KAFKA_REQUEST_REQUIRED_ACKS="1")
        assert error.problems == (
            "MICS_WORKER_KAFKA_ENABLE_IDEMPOTENCE: enable.idempotence cannot be overridden "
            "(at-least-once delivery depends on it)",
            "MICS_WORKER_KAFKA_REQUEST_REQUIRED_ACKS: request.required.acks cannot be overridden "
            "(at-least-once delivery depends on it)",
        )

    def test_role_specific_properties_are_accepted(self) -> None:
        config = WorkerConfig.from_env(environ(KAFKA_SESSION_TIMEOUT_MS="10000", KAFKA_LINGER_MS="20"))
        assert config.kafka_properties == {"session.timeout.ms": "10000", "linger.ms": "20"}


class TestBaseUrlAndDatamarts:
    def test_credentials_in_the_base_url_are_refused_without_repeating_them(self) -> None:
        error = refusal(API_BASE_URL="https://bob:Hunter2pw@api.example.com")
        assert error.problems == (
            "MICS_WORKER_API_BASE_URL must not hold credentials (user:password@): the token is the only credential",
        )
        assert "Hunter2pw" not in str(error)
        assert "bob" not in str(error)

    def test_a_user_alone_is_refused_too(self) -> None:
        error = refusal(API_BASE_URL="https://bob@api.example.com")
        assert "must not hold credentials" in error.problems[0]

    def test_a_malformed_url_is_a_message(self) -> None:
        error = refusal(API_BASE_URL="https://[::1/")
        assert error.problems == ("MICS_WORKER_API_BASE_URL is not a URL",)

    @pytest.mark.parametrize("datamart", [".", "..", "a\tb", "x" * 257])
    def test_an_invalid_allowed_datamart_is_refused(self, datamart: str) -> None:
        error = refusal(ALLOWED_DATAMARTS=f"1509,{datamart}")
        assert error.problems == (
            f"MICS_WORKER_ALLOWED_DATAMARTS: {datamart!r} is not a datamart id "
            "(1 to 256 characters, no control character, not . or ..)",
        )

    def test_an_invalid_default_datamart_is_refused(self) -> None:
        error = refusal(DEFAULT_DATAMART_ID="..")
        assert error.problems[0].startswith("MICS_WORKER_DEFAULT_DATAMART_ID: '..' is not a datamart id")

    def test_valid_ids_pass(self) -> None:
        config = WorkerConfig.from_env(environ(ALLOWED_DATAMARTS="1509,acme-eu,x" + "y" * 254))
        assert config.allowed_datamarts == {"1509", "acme-eu", "x" + "y" * 254}


class TestSecrets:
    @pytest.mark.parametrize(
        "name",
        ["sasl.password", "sasl.username", "sasl.oauthbearer.config", "ssl.key.pem", "ssl.keystore.password",
         "sasl.oauthbearer.client.secret", "ssl.ca.pem", "some.future.token"],
    )  # fmt: skip
    def test_librdkafka_sensitive_and_secret_named_properties(self, name: str) -> None:
        assert is_secret_kafka_property(name)

    @pytest.mark.parametrize("name", ["security.protocol", "sasl.mechanism", "bootstrap.servers", "linger.ms"])
    def test_ordinary_properties_are_shown(self, name: str) -> None:
        assert not is_secret_kafka_property(name)

    def test_variables(self) -> None:
        assert is_secret_variable("MICS_WORKER_API_TOKEN")
        assert is_secret_variable("MICS_WORKER_KAFKA_SASL_OAUTHBEARER_CONFIG")
        assert is_secret_variable("MICS_WORKER_KAFKA_SASL_USERNAME")
        assert not is_secret_variable("MICS_WORKER_KAFKA_SECURITY_PROTOCOL")
        assert not is_secret_variable("MICS_WORKER_CREDENTIALS_PROBE_INTERVAL_S")
        # A duration named after the token is a number, shown; the token file's contents stay secret.
        assert not is_secret_variable("MICS_WORKER_API_TOKEN_CHECK_INTERVAL_S")
        assert is_secret_variable("MICS_WORKER_API_TOKEN_FILE")

    def test_the_oauthbearer_config_is_masked_in_the_repr(self) -> None:
        """The start-up line logs the repr: a client secret inside sasl.oauthbearer.config must not reach it."""
        config = WorkerConfig.from_env(environ(KAFKA_SASL_OAUTHBEARER_CONFIG="clientId=w clientSecret=Sh0uldNotShow"))
        assert "Sh0uldNotShow" not in repr(config)
        assert "'sasl.oauthbearer.config': '***'" in repr(config)

    def test_no_problem_message_repeats_the_token(self) -> None:
        error = refusal(API_TOKEN=TOKEN + " x", MAX_CONCURENCY="1")
        assert TOKEN not in str(error)


class TestTheToolsCheckKafkaPropertiesToo:
    def test_a_misspelt_property_stops_dlq_inspect_with_one_line(self) -> None:
        from worker.dlq.settings import DlqSettings

        with pytest.raises(ConfigError) as refused:
            DlqSettings.from_env({"MICS_WORKER_BOOTSTRAP_SERVERS": "b:9092", "MICS_WORKER_KAFKA_LINGERMS": "5"})
        assert str(refused.value) == "MICS_WORKER_KAFKA_LINGERMS: librdkafka has no property 'lingerms'"

    def test_a_misspelt_dlq_topic_is_not_silently_the_default(self) -> None:
        from worker.dlq.settings import DlqSettings

        with pytest.raises(ConfigError) as refused:
            DlqSettings.from_env({"MICS_WORKER_BOOTSTRAP_SERVERS": "b:9092", "MICS_WORKER_DLQ_TOPC": "my-dlq"})
        assert str(refused.value) == (
            "MICS_WORKER_DLQ_TOPC is not a setting (see README, Configuration); did you mean MICS_WORKER_DLQ_TOPIC?"
        )

    def test_the_worker_settings_in_a_shared_environment_are_known_to_the_tools(self) -> None:
        from worker.dlq.settings import DlqSettings

        settings = DlqSettings.from_env(
            {"MICS_WORKER_BOOTSTRAP_SERVERS": "b:9092", "MICS_WORKER_MAX_CONCURRENCY": "9", "MICS_WORKER_ROUTES": "x"}
        )
        assert settings.dlq_topic == "mics-worker-dlq"


class TestAReaderThatRaises:
    def test_its_error_is_reported_with_the_others_and_nothing_is_called_unknown(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A check written as `raise ConfigError` (not `env.problem`) still joins the report; since reading stopped
        there, the variables after it are not flagged as unknown (they were simply not reached)."""

        def raising(env: Env) -> object:
            env.problem("MICS_WORKER_LOG_FORMAT='xml' is not one of json, text", "LOG_FORMAT")
            raise ConfigError("MICS_WORKER_GUARD: raised by a check")

        monkeypatch.setattr(WorkerConfig, "_read", classmethod(lambda cls, env: raising(env)))
        error = refusal(LOG_FORMAT="xml", MAX_CONCURRENCY="5")
        assert error.problems == (
            "MICS_WORKER_LOG_FORMAT='xml' is not one of json, text",
            "MICS_WORKER_GUARD: raised by a check",
        )


SERVICE_LINKS = {
    "SERVICE_HOST": "10.0.0.7",
    "SERVICE_PORT": "9102",
    "SERVICE_PORT_METRICS": "9102",
    "PORT": "tcp://10.0.0.7:9102",
    "PORT_9102_TCP": "tcp://10.0.0.7:9102",
    "PORT_9102_TCP_PROTO": "tcp",
    "PORT_9102_TCP_PORT": "9102",
    "PORT_9102_TCP_ADDR": "10.0.0.7",
    "DLQ_SERVICE_HOST": "10.0.0.8",  # another Service, `mics-worker-dlq`
    "DLQ_PORT_80_TCP": "tcp://10.0.0.8:80",
}


class TestKubernetesServiceLinks:
    """A Service named `mics-worker` makes Kubernetes add MICS_WORKER_SERVICE_HOST and friends to every pod."""

    def test_service_link_variables_are_not_unknown(self) -> None:
        config = WorkerConfig.from_env(environ(**SERVICE_LINKS))
        assert config.health_port == 9102

    def test_a_lone_port_variable_is_still_a_mistake(self) -> None:
        error = refusal(PORT="9102")
        assert error.problems[0].startswith("MICS_WORKER_PORT is not a setting")
