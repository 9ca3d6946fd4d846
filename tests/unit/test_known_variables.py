"""The known settings are what the readers ask `Env` for, so nothing needs a hand-kept list; these tests keep every
place that names a `MICS_WORKER_*` variable (chart, image, scripts, docs, README) in step with the readers."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import worker
from worker.config import WorkerConfig
from worker.env import Env
from worker.known_variables import _SERVICE_LINK_SUFFIX, OTHER_READERS, known_keys, unknown_variable_problems

ROOT = Path(worker.__file__).parent.parent
_NAME = re.compile(r"\bMICS_WORKER_([A-Z0-9_]*[A-Z0-9])\b")
# Modules that build an `Env`: the worker's reader, the commands that report on it, and the registered readers.
_ENV_BUILDERS = {"config.py", "config_report.py", "known_variables.py", "cli.py"} | {
    reference.split(":")[0].removeprefix("worker.").replace(".", "/") + ".py" for reference in OTHER_READERS
}


def _known() -> set[str]:
    env = Env({})
    WorkerConfig.read(env)
    return env.read | known_keys({}, readers=OTHER_READERS)


def test_a_reader_registered_for_another_command_makes_its_keys_known(monkeypatch: pytest.MonkeyPatch) -> None:
    """A variable only the DLQ tools read (simulated: a reader asking for REPLAY_PACE) is not flagged for `run`."""
    environ = {"MICS_WORKER_REPLAY_PACE": "10"}
    assert unknown_variable_problems(environ, read=set())[0].startswith("MICS_WORKER_REPLAY_PACE is not a setting")
    monkeypatch.setattr("worker.known_variables.OTHER_READERS", (*OTHER_READERS, f"{__name__}:_reads_replay_pace"))
    assert unknown_variable_problems(environ, read=set()) == []


def _reads_replay_pace(env: Env) -> None:
    env.integer("REPLAY_PACE", 1)


def test_the_dlq_tools_read_only_what_the_worker_reads() -> None:
    """Today the tools' settings are a subset of the worker's (a shared environment configures both)."""
    env = Env({})
    WorkerConfig.read(env)
    assert known_keys({}, readers=OTHER_READERS) <= env.read


def test_only_registered_modules_build_an_env() -> None:
    """A module reading settings through its own `Env` must be in OTHER_READERS (or its keys look unknown)."""
    package = ROOT / "worker"
    builders = set()
    for path in package.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        if any(isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Env" for node in ast.walk(tree)):
            builders.add(str(path.relative_to(package)))
    assert builders <= _ENV_BUILDERS


@pytest.mark.parametrize("where", ["worker", "helm", "Dockerfile", "scripts", "docs", "README.md", "bench"])
def test_every_variable_named_in_the_repository_is_a_setting(where: str) -> None:
    """The chart, the image, the scripts and the docs set or name only variables some reader asks for."""
    known = _known()
    root = ROOT / where
    files = [root] if root.is_file() else [path for path in root.rglob("*") if path.is_file()]
    unknown = set()
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        for match in _NAME.finditer(text):
            key = match.group(1)
            after = text[match.end() :]
            if key.startswith("KAFKA_") or key in known or after.startswith(("_*", "*", " is not a setting")):
                continue  # a passthrough, a setting, a family (`RETRY_*`) or the documented misspelling example
            if _SERVICE_LINK_SUFFIX.fullmatch(key):
                continue  # Kubernetes' service links, named where they are ignored
            unknown.add(f"{path.relative_to(ROOT)}: MICS_WORKER_{key}")
    assert sorted(unknown) == []


def test_the_readme_configuration_section_documents_every_setting() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Configuration") : readme.index("\n## ", readme.index("## Configuration") + 1)]
    undocumented = sorted(key for key in _known() if not re.search(rf"\b{key}\b", section))
    assert undocumented == []
