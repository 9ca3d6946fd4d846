"""Scenario 9: a recognisable API token goes through a whole run and shows up nowhere it should not.

The run logs at DEBUG in JSON (librdkafka's debug contexts included), dead-letters messages, retries 503s and
has its token revoked and restored, so every path that formats errors or configuration is exercised. Then the
token is looked for in the worker's stderr and stdout, /metrics, /healthz and /readyz, every DLQ record, and the
reprs and error messages of the objects that hold it.
"""

from __future__ import annotations

import copy
import dataclasses
import pickle
import uuid
from pathlib import Path

import httpx
import pytest

from tests.support.events import MixSpec, generate
from tests.support.ledger import Ledger, read_dead_letters
from tests.support.scenario import Scenario, paused
from worker.config import ConfigError, WorkerConfig
from worker.mics.auth import ApiToken
from worker.mics.client import MicsClient
from worker.mics.transport import Timeouts, make_transport

MARK = uuid.uuid4().hex
TOKEN = f"SECRET-{MARK}-TOKEN"
# A librdkafka secret (unused on a PLAINTEXT listener, but configured): the log mask knows only the API token.
SASL_MARK = uuid.uuid4().hex
SASL_PASSWORD = f"SASL-{SASL_MARK}-PASSWORD"


def leaks(text: str | bytes) -> bool:
    """Whether either secret, or the first half of its distinctive middle, occurs in `text`."""
    data = text.encode() if isinstance(text, str) else text
    return any(mark[:16].encode() in data for mark in (MARK, SASL_MARK))


@pytest.mark.integration
class TestTokenNeverLeaksFromARun:
    @pytest.mark.timeout(180)
    def test_the_token_is_absent_from_logs_metrics_probes_and_dead_letters(self, scenario: Scenario) -> None:
        """Through DEBUG logs, dead letters, retries and a revoked-then-restored token, the secret never shows."""
        scenario.sandbox.set_token(TOKEN)
        messages = list(generate(300, MixSpec(invalid=0.1), seed=91))
        scenario.produce(messages[:150])
        scenario.sandbox.set_faults(p503=0.1, latency_ms=2)
        worker = scenario.start_worker(
            LOG_LEVEL="DEBUG",
            LOG_FORMAT="json",
            KAFKA_DEBUG="generic,conf,broker",
            KAFKA_SASL_PASSWORD=SASL_PASSWORD,
            RETRY_BASE_DELAY_S="0.05",
        )
        worker.wait_until(lambda: scenario.delivered_count() >= 50, 60, "the stream to flow")
        scenario.sandbox.set_token(f"rotated-{uuid.uuid4().hex}")
        # Produced after the rotation, so requests meet the revoked token however fast the first half went.
        scenario.produce(messages[150:])
        ledger = Ledger(messages)
        worker.wait_until(lambda: paused(worker, "credentials"), 30, "the credentials pause")
        surfaces = {"/readyz while paused": httpx.get(worker.url + "/readyz", timeout=5).text}
        scenario.sandbox.set_token(TOKEN)
        settlement = scenario.wait_settled(ledger, 120, worker)
        assert settlement.missing == set()
        surfaces["/metrics"] = httpx.get(worker.url + "/metrics", timeout=5).text
        surfaces["/healthz"] = httpx.get(worker.url + "/healthz", timeout=5).text
        surfaces["/readyz"] = httpx.get(worker.url + "/readyz", timeout=5).text
        assert worker.stop() == 0
        surfaces["stderr"] = worker.stderr()
        surfaces["stdout"] = worker.stdout()

        assert "rdkafka" in surfaces["stderr"].lower() or '"level":"DEBUG"' in surfaces["stderr"]
        assert scenario.sandbox.stats()["responses"].get("401", 0) > 0
        assert [name for name, text in surfaces.items() if leaks(text)] == []
        records = read_dead_letters(scenario.bootstrap_servers, scenario.dlq)
        assert records
        for record in records:
            assert not leaks(record.value or b"")
            assert [name for name, value in record.headers.items() if leaks(name) or leaks(value)] == []


@pytest.mark.integration
class TestRotatedTokensNeverLeak:
    @pytest.mark.timeout(180)
    def test_tokens_read_from_watched_files_are_absent_from_logs_metrics_and_probes(
        self, scenario: Scenario, tmp_path: Path
    ) -> None:
        """A default token and a datamart's own token, both read from files, the default one rotated mid-run by
        rewriting its file (after a revocation, so the 401 re-read path runs): no secret shows anywhere."""
        rotated = f"ROTATED-{MARK}-TOKEN"
        own = f"OWN-{MARK}-TOKEN"
        (tmp_path / "default").write_text(TOKEN)
        (tmp_path / "dm1510").write_text(own)
        tokens_file = tmp_path / "tokens.json"
        tokens_file.write_text('{"default": "default", "datamarts": {"1510": "dm1510"}}')
        scenario.sandbox.set_token(TOKEN)
        scenario.sandbox.set_datamart_token("1510", own)
        messages = list(generate(200, MixSpec(invalid=0.1), seed=92))
        scenario.produce(messages[:100])
        worker = scenario.start_worker(
            API_TOKEN="",
            API_TOKENS_FILE=str(tokens_file),
            API_TOKEN_CHECK_INTERVAL_S="0.1",
            ALLOWED_DATAMARTS="1509,1510",
            LOG_LEVEL="DEBUG",
            LOG_FORMAT="json",
        )
        worker.wait_until(lambda: scenario.delivered_count() >= 50, 60, "the stream to flow")
        scenario.sandbox.set_token(rotated)
        scenario.produce(messages[100:])
        worker.wait_until(lambda: scenario.sandbox.stats()["responses"].get("401", 0) > 0, 60, "a refused request")
        fresh = tmp_path / "default.new"
        fresh.write_text(rotated)
        fresh.replace(tmp_path / "default")
        settlement = scenario.wait_settled(Ledger(messages), 120, worker)
        assert settlement.missing == set()
        surfaces = {
            "/metrics": httpx.get(worker.url + "/metrics", timeout=5).text,
            "/healthz": httpx.get(worker.url + "/healthz", timeout=5).text,
            "/readyz": httpx.get(worker.url + "/readyz", timeout=5).text,
        }
        assert worker.stop() == 0
        surfaces["stderr"] = worker.stderr()
        surfaces["stdout"] = worker.stdout()
        assert "token file default changed" in surfaces["stderr"]
        assert [name for name, text in surfaces.items() if leaks(text)] == []
        for record in read_dead_letters(scenario.bootstrap_servers, scenario.dlq):
            assert not leaks(record.value or b"")
            assert [name for name, value in record.headers.items() if leaks(name) or leaks(value)] == []


class TestTokenNeverLeaksFromObjects:
    def _config(self, **extra: str) -> WorkerConfig:
        env = {
            "MICS_WORKER_BOOTSTRAP_SERVERS": "127.0.0.1:9092",
            "MICS_WORKER_TOPICS": "events",
            "MICS_WORKER_ROUTES": "events=activity",
            "MICS_WORKER_DEFAULT_DATAMART_ID": "1509",
            "MICS_WORKER_API_TOKEN": TOKEN,
            "MICS_WORKER_KAFKA_SASL_PASSWORD": SASL_PASSWORD,
            **extra,
        }
        return WorkerConfig.from_env(env)

    def test_reprs_and_formatting_of_the_config_the_token_and_the_client_hide_it(self) -> None:
        """repr, str, format and copies of WorkerConfig, ApiToken and MicsClient never show a secret."""
        config = self._config()
        token = config.api_token
        client = MicsClient(make_transport("aiohttp", Timeouts(), 1), "https://api.mediarithmics.com", token)
        shown = [
            repr(config),
            str(config),
            f"{config}",
            repr(dataclasses.asdict(config)["api_token"]),
            repr(copy.deepcopy(config)),
            repr(token),
            str(token),
            f"{token!s} {token!r}",
            repr(client),
            str(client),
        ]
        assert [text for text in shown if leaks(text)] == []
        assert token.header_value() == TOKEN  # the secret is still there for the one header that needs it

    def test_a_token_cannot_be_pickled_and_the_refusal_does_not_quote_it(self) -> None:
        """Pickling an ApiToken fails with a message that does not contain it."""
        with pytest.raises(TypeError) as refused:
            pickle.dumps(ApiToken(TOKEN))
        assert not leaks(str(refused.value))

    @pytest.mark.parametrize(
        "bad", [f"{TOKEN} tail", f"{TOKEN}\n{TOKEN}", f"{TOKEN}\x00", f"{TOKEN}é"], ids=["space", "lf", "nul", "utf8"]
    )
    def test_refusing_a_malformed_token_does_not_repeat_it(self, bad: str) -> None:
        """A token with whitespace, control or non-ASCII characters is refused without being quoted."""
        with pytest.raises(ConfigError) as refused:
            self._config(MICS_WORKER_API_TOKEN=bad)
        assert not leaks(str(refused.value))
        assert refused.value.__cause__ is None or not leaks(str(refused.value.__cause__))

    def test_a_token_file_that_is_not_utf8_is_refused_without_its_bytes(self, tmp_path: Path) -> None:
        """An undecodable token file fails with a message that carries none of its bytes."""
        path = tmp_path / "token"
        path.write_bytes(TOKEN.encode() + b"\xff\xfe")
        with pytest.raises(ConfigError) as refused:
            self._config(MICS_WORKER_API_TOKEN="", MICS_WORKER_API_TOKEN_FILE=str(path))
        assert not leaks(str(refused.value))
        assert not leaks(repr(refused.value.__context__))

    def test_token_sources_and_a_bad_tokens_file_do_not_show_a_token(self, tmp_path: Path) -> None:
        """The watched token, its source and the client built on it print no token; nor does a refused file."""
        (tmp_path / "default").write_text(TOKEN)
        (tmp_path / "bad").write_bytes(TOKEN.encode() + b" tail")
        good = tmp_path / "tokens.json"
        good.write_text('{"default": "default"}')
        config = self._config(MICS_WORKER_API_TOKEN="", MICS_WORKER_API_TOKENS_FILE=str(good))
        source = config.tokens.source(config.api_token, lambda _: None)
        client = MicsClient(make_transport("aiohttp", Timeouts(), 1), "https://api.mediarithmics.com", source)
        assert [text for text in (repr(config), repr(source), repr(client), repr(config.tokens)) if leaks(text)] == []
        assert source.for_datamart("1509").header_value() == TOKEN
        bad = tmp_path / "bad.json"
        bad.write_text('{"default": "default", "datamarts": {"1510": "bad"}}')
        with pytest.raises(ConfigError) as refused:
            self._config(MICS_WORKER_API_TOKEN="", MICS_WORKER_API_TOKENS_FILE=str(bad))
        assert not leaks(str(refused.value))
