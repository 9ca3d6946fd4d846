"""`mics-worker config`: every setting read, its effective value, secrets masked, and where each value came from."""

from __future__ import annotations

from pathlib import Path

import pytest

from worker.cli import main
from worker.config_report import ReportRow, config_report

TOKEN = "tok-Sup3rSecret"
MINIMAL = {
    "MICS_WORKER_BOOTSTRAP_SERVERS": "broker:9092",
    "MICS_WORKER_TOPICS": "events",
    "MICS_WORKER_ROUTES": "events=activity",
    "MICS_WORKER_DEFAULT_DATAMART_ID": "1509",
    "MICS_WORKER_API_TOKEN": TOKEN,
}


def rows(environ: dict[str, str]) -> dict[str, ReportRow]:
    return {row.variable: row for row in config_report(environ).rows}


def test_values_from_the_environment_and_defaults_say_so() -> None:
    report = rows({**MINIMAL, "MICS_WORKER_GROUP_ID": "team-a"})
    assert report["MICS_WORKER_GROUP_ID"] == ReportRow("MICS_WORKER_GROUP_ID", "team-a", "env")
    assert report["MICS_WORKER_DLQ_TOPIC"] == ReportRow("MICS_WORKER_DLQ_TOPIC", "mics-worker-dlq", "default")
    assert report["MICS_WORKER_HEALTH_PORT"] == ReportRow("MICS_WORKER_HEALTH_PORT", "9102", "default")
    assert report["MICS_WORKER_GROUP_INSTANCE_ID"] == ReportRow("MICS_WORKER_GROUP_INSTANCE_ID", "(unset)", "default")


def test_the_token_and_kafka_secrets_are_masked() -> None:
    report = rows(
        {
            **MINIMAL,
            "MICS_WORKER_KAFKA_SASL_OAUTHBEARER_CONFIG": "clientSecret=Sh0uldNotShow",
            "MICS_WORKER_KAFKA_SASL_PASSWORD": "Hunter2",
            "MICS_WORKER_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        }
    )
    assert report["MICS_WORKER_API_TOKEN"] == ReportRow("MICS_WORKER_API_TOKEN", "***", "env")
    assert report["MICS_WORKER_KAFKA_SASL_OAUTHBEARER_CONFIG"] == ReportRow(
        "MICS_WORKER_KAFKA_SASL_OAUTHBEARER_CONFIG", "***", "env (librdkafka sasl.oauthbearer.config)"
    )
    assert report["MICS_WORKER_KAFKA_SASL_PASSWORD"].value == "***"
    assert report["MICS_WORKER_KAFKA_SECURITY_PROTOCOL"] == ReportRow(
        "MICS_WORKER_KAFKA_SECURITY_PROTOCOL", "SASL_SSL", "env (librdkafka security.protocol)"
    )
    text = repr(config_report({**MINIMAL, "MICS_WORKER_KAFKA_SASL_PASSWORD": "Hunter2"}))
    assert TOKEN not in text
    assert "Hunter2" not in text


def test_values_read_from_files_say_file(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n", encoding="utf-8")
    routes_file = tmp_path / "routes.json"
    routes_file.write_text('{"routes": [{"topic": "^ev-.*", "route": "envelope"}]}', encoding="utf-8")
    environ = {k: v for k, v in MINIMAL.items() if k != "MICS_WORKER_API_TOKEN"}
    report = rows(
        {**environ, "MICS_WORKER_API_TOKEN_FILE": str(token_file), "MICS_WORKER_ROUTES_FILE": str(routes_file)}
    )
    assert report["MICS_WORKER_API_TOKEN"] == ReportRow(
        "MICS_WORKER_API_TOKEN", "***", "file (MICS_WORKER_API_TOKEN_FILE)"
    )
    assert report["MICS_WORKER_ROUTES"] == ReportRow(
        "MICS_WORKER_ROUTES", "events=activity, ^ev-.*=envelope", "env + file"
    )


def test_the_command_prints_the_table_and_exits_0(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _only(monkeypatch, {**MINIMAL, "MICS_WORKER_LOG_LEVEL": "debug"})
    assert main(["config"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "# effective configuration (secrets shown as ***); source: default, env or file"
    assert [line.split() for line in lines if line.startswith("MICS_WORKER_LOG_LEVEL ")] == [
        ["MICS_WORKER_LOG_LEVEL", "debug", "env"]
    ]
    assert not any(TOKEN in line for line in lines)


def test_the_command_lists_every_problem_and_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _only(monkeypatch, {**MINIMAL, "MICS_WORKER_MAX_CONCURENCY": "5", "MICS_WORKER_KAFKA_BOGUS_PROP": "1"})
    assert main(["config"]) == 2
    out = capsys.readouterr().out
    tail = out.splitlines()[-3:]
    assert tail[0] == "# 2 problem(s): `mics-worker run` would refuse to start"
    assert tail[1] == "  - MICS_WORKER_KAFKA_BOGUS_PROP: librdkafka has no property 'bogus.prop'"
    assert tail[2].startswith("  - MICS_WORKER_MAX_CONCURENCY is not a setting")


def test_run_prints_every_problem_before_anything_starts(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _only(monkeypatch, {**MINIMAL, "MICS_WORKER_HEALTH_PORT": "x", "MICS_WORKER_ALLOWED_DATAMARTS": ".."})
    with pytest.raises(SystemExit) as exited:
        main(["run"])
    assert exited.value.code == 2
    assert capsys.readouterr().err == (
        "mics-worker: 2 configuration problems:\n"
        "  - MICS_WORKER_ALLOWED_DATAMARTS: '..' is not a datamart id "
        "(1 to 256 characters, no control character, not . or ..)\n"
        "  - MICS_WORKER_HEALTH_PORT='x' is not an integer\n"
    )


def _only(monkeypatch: pytest.MonkeyPatch, environ: dict[str, str]) -> None:
    """The process environment with exactly these MICS_WORKER_* variables."""
    import os

    for name in [name for name in os.environ if name.startswith("MICS_WORKER_")]:
        monkeypatch.delenv(name)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
