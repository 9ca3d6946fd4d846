"""The framing and token-file settings: read through `Env`, checked at start-up, errors naming the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.test_config import TOKEN, build
from worker.config import ConfigError


class TestFramingSettings:
    def test_plain_by_default_without_a_registry(self) -> None:
        config = build()
        assert config.framing.rules.mode_for("events") == "plain"
        assert config.framing.registry_url is None

    def test_framing_with_a_registry(self) -> None:
        config = build(
            FRAMING="auto,raw=plain",
            SCHEMA_REGISTRY_URL="http://registry:8081",
            SCHEMA_REGISTRY_VALIDATE="true",
            SCHEMA_REGISTRY_CACHE_SIZE="50",
            SCHEMA_REGISTRY_TIMEOUT_S="3",
        )
        framing = config.framing
        assert (framing.rules.mode_for("events"), framing.rules.mode_for("raw")) == ("auto", "plain")
        assert (framing.validate, framing.cache_size, framing.timeout_s) == (True, 50, 3.0)

    def test_framed_topics_need_a_registry(self) -> None:
        with pytest.raises(ConfigError, match="MICS_WORKER_SCHEMA_REGISTRY_URL"):
            build(FRAMING="confluent")

    @pytest.mark.parametrize("url", ["ftp://registry", "registry:8081", "http://user:secret@registry:8081"])
    def test_a_bad_registry_url_is_refused(self, url: str) -> None:
        with pytest.raises(ConfigError, match="SCHEMA_REGISTRY_URL") as refused:
            build(FRAMING="auto", SCHEMA_REGISTRY_URL=url)
        assert "secret" not in str(refused.value)

    def test_a_bad_framing_is_refused_by_name(self) -> None:
        with pytest.raises(ConfigError, match="MICS_WORKER_FRAMING"):
            build(FRAMING="events=avro", SCHEMA_REGISTRY_URL="http://registry:8081")


class TestTokenSettings:
    def test_a_token_file_is_watched(self, tmp_path: Path) -> None:
        path = tmp_path / "token"
        path.write_text(TOKEN)
        config = build(API_TOKEN=None, API_TOKEN_FILE=str(path), API_TOKEN_CHECK_INTERVAL_S="0.5")
        assert config.tokens.token_file == path
        assert config.tokens.check_interval_s == 0.5
        assert config.api_token.header_value() == TOKEN

    def test_a_tokens_file_gives_the_default_token(self, tmp_path: Path) -> None:
        (tmp_path / "default").write_text(TOKEN)
        (tmp_path / "other").write_text("tok-Other-0123456")
        tokens = tmp_path / "tokens.json"
        tokens.write_text('{"default": "default", "datamarts": {"1510": "other"}}')
        config = build(API_TOKEN=None, API_TOKENS_FILE=str(tokens))
        assert config.api_token.header_value() == TOKEN
        source = config.tokens.source(config.api_token, lambda _: None)
        assert source.for_datamart("1510").header_value() == "tok-Other-0123456"

    def test_a_tokens_file_without_a_default_uses_api_token(self, tmp_path: Path) -> None:
        (tmp_path / "other").write_text("tok-Other-0123456")
        tokens = tmp_path / "tokens.json"
        tokens.write_text('{"datamarts": {"1510": "other"}}')
        config = build(API_TOKENS_FILE=str(tokens))
        source = config.tokens.source(config.api_token, lambda _: None)
        assert source.for_datamart("1509").header_value() == TOKEN
        assert source.for_datamart("1510").header_value() == "tok-Other-0123456"

    def test_a_broken_tokens_file_is_refused_by_name(self, tmp_path: Path) -> None:
        tokens = tmp_path / "tokens.json"
        tokens.write_text('{"datamarts": {"1510": "missing"}}')
        with pytest.raises(ConfigError, match="MICS_WORKER_API_TOKENS_FILE"):
            build(API_TOKENS_FILE=str(tokens))

    def test_no_token_at_all_is_refused(self) -> None:
        with pytest.raises(ConfigError, match="API_TOKEN"):
            build(API_TOKEN=None)
