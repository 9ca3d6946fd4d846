"""The command line explains itself: every option has help, `run --help` points to the settings, `--version` works."""

from __future__ import annotations

import argparse

import pytest

from worker import __version__
from worker.cli import _parser, main


def _parsers(parser: argparse.ArgumentParser, path: str = "mics-worker") -> list[tuple[str, argparse.ArgumentParser]]:
    found = [(path, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += _parsers(sub, f"{path} {name}")
    return found


def test_every_option_and_argument_of_every_command_has_help() -> None:
    missing = [
        f"{path} {action.option_strings or action.dest}"
        for path, parser in _parsers(_parser())
        for action in parser._actions
        if not isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)) and not action.help
    ]
    assert missing == []


def test_the_format_options_explain_their_choices(capsys: pytest.CaptureFixture[str]) -> None:
    for command in (["validate", "--help"], ["dlq", "inspect", "--help"]):
        with pytest.raises(SystemExit):
            main(command)
        text = " ".join(capsys.readouterr().out.split())
        assert "--format {text,json} text (default):" in text
        assert "json: " in text


def test_run_help_points_to_the_settings_table_and_the_config_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["run", "--help"])
    assert exited.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "MICS_WORKER_ prefix" in text
    assert "Configuration table of the README" in text
    assert "`mics-worker config` prints the effective values and where each came from" in text


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out == f"mics-worker {__version__}\n"


def test_the_config_command_is_listed(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "config print the effective configuration" in text
