"""The Dockerfile's structure, checked without a Docker engine: what it copies exists, and the image rules hold."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from tests.deploy.dockerfile import Instruction, Stage, dockerignore_patterns, ignored_by, parse

REPO = Path(__file__).resolve().parents[2]
STAGES = parse((REPO / "Dockerfile").read_text(encoding="utf-8"))
IGNORED = dockerignore_patterns((REPO / ".dockerignore").read_text(encoding="utf-8"))
BUILDER = STAGES[0]
RUNTIME = STAGES[-1]


def _context_sources() -> list[str]:
    """Every path a COPY takes from the build context (COPY --from=<stage> takes from a stage instead)."""
    sources = []
    for stage in STAGES:
        for instruction in stage.having("COPY") + stage.having("ADD"):
            flags, words = instruction.flags_and_words()
            if "from" not in flags:
                sources.extend(words[:-1])
    return sources


def _first(stage: Stage, keyword: str, needle: str) -> Instruction:
    """The first `keyword` instruction of the stage whose arguments mention `needle`."""
    matches = [i for i in stage.having(keyword) if needle in i.arguments]
    assert matches, f"no {keyword} with {needle!r} in stage {stage.name}"
    return matches[0]


class TestBuildContext:
    def test_every_copied_path_exists_in_the_repo(self) -> None:
        """Each COPY source from the build context names a file or folder that the repository has."""
        sources = _context_sources()
        assert sources
        missing = [source for source in sources if not list(REPO.glob(source))]
        assert missing == []

    def test_no_copied_path_is_excluded_by_dockerignore(self) -> None:
        """.dockerignore leaves every COPY source in the build context."""
        assert [source for source in _context_sources() if ignored_by(IGNORED, source)] == []

    @pytest.mark.parametrize(
        "local_state",
        [
            ".venv",
            ".cache",
            ".git",
            "tests",
            "bench",
            ".mypy_cache",
            ".ruff_cache",
            ".pytest_cache",
            "worker/__pycache__",
            "worker/mics/__pycache__/client.cpython-311.pyc",
        ],
    )
    def test_dockerignore_keeps_local_state_out(self, local_state: str) -> None:
        """Local environments, tools, VCS data, tests, benchmarks and caches never reach the build context."""
        assert ignored_by(IGNORED, local_state)

    def test_add_is_not_used(self) -> None:
        """COPY only: ADD would fetch URLs and unpack archives behind the reader's back."""
        assert [i for stage in STAGES for i in stage.having("ADD")] == []


class TestStages:
    def test_is_multi_stage_on_python_311_slim(self) -> None:
        """Both stages start from python:3.11-slim, named by image only (no registry host)."""
        assert len(STAGES) >= 2
        assert {stage.base for stage in STAGES} == {"python:3.11-slim"}

    def test_runtime_takes_the_built_venv_from_the_builder(self) -> None:
        """The runtime stage copies the virtualenv out of the builder stage, not the sources."""
        copies = [i.flags_and_words() for i in RUNTIME.having("COPY")]
        assert ({"from": BUILDER.name or ""}, ["/opt/venv", "/opt/venv"]) in copies
        assert not any(words[0] == "worker" for _, words in copies)

    def test_locked_dependencies_install_before_the_source_is_copied(self) -> None:
        """The hash-checked lock gets its own layer, ahead of COPY worker, so code edits keep it cached."""
        lock_copy = _first(BUILDER, "COPY", "requirements/runtime.lock")
        lock_install = _first(BUILDER, "RUN", "runtime.lock")
        source_copy = _first(BUILDER, "COPY", "worker")
        assert lock_copy.index < lock_install.index < source_copy.index
        assert "--require-hashes" in lock_install.arguments

    def test_package_builds_offline_against_a_pinned_setuptools(self) -> None:
        """setuptools is installed pinned and hash-checked before the `--no-deps --no-build-isolation` build."""
        setuptools = _first(BUILDER, "RUN", "setuptools==")
        package = _first(BUILDER, "RUN", "--no-build-isolation")
        assert re.search(r"setuptools==[0-9.]+ --hash=sha256:[0-9a-f]{64}", setuptools.arguments)
        assert "--require-hashes" in setuptools.arguments
        assert setuptools.index < package.index
        assert "--no-deps" in package.arguments


class TestRuntimeImage:
    def test_runs_as_a_numeric_non_root_user(self) -> None:
        """USER is numeric uid:gid (Kubernetes can verify runAsNonRoot) and not root."""
        users = RUNTIME.having("USER")
        assert users
        match = re.fullmatch(r"(\d+)(?::(\d+))?", users[-1].arguments)
        assert match is not None
        assert int(match.group(1)) != 0
        assert match.group(2) is None or int(match.group(2)) != 0

    def test_entrypoint_and_cmd_are_exec_form(self) -> None:
        """ENTRYPOINT ["mics-worker"] and CMD ["run"], in exec form so SIGTERM reaches the worker itself."""
        assert RUNTIME.having("ENTRYPOINT")[-1].exec_form() == ["mics-worker"]
        assert RUNTIME.having("CMD")[-1].exec_form() == ["run"]

    def test_entrypoint_is_the_packaged_console_script(self) -> None:
        """The ENTRYPOINT names a console script that pyproject.toml declares."""
        scripts = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]
        entrypoint = RUNTIME.having("ENTRYPOINT")[-1].exec_form()
        assert entrypoint is not None
        assert entrypoint[0] in scripts

    def test_environment_suits_a_read_only_root_filesystem(self) -> None:
        """No byte-code writes, unbuffered logs, HOME and TMPDIR under /tmp."""
        env = RUNTIME.env()
        assert env["PYTHONDONTWRITEBYTECODE"] == "1"
        assert env["PYTHONUNBUFFERED"] == "1"
        assert env["HOME"].startswith("/tmp")
        assert env["TMPDIR"].startswith("/tmp")

    def test_schemas_dir_points_at_the_copied_schemas(self) -> None:
        """MICS_WORKER_SCHEMAS_DIR names the folder the runtime stage copies schemas/ into."""
        destinations = [
            words[-1]
            for flags, words in (i.flags_and_words() for i in RUNTIME.having("COPY"))
            if "from" not in flags and words[0].rstrip("/") == "schemas"
        ]
        assert destinations == [RUNTIME.env()["MICS_WORKER_SCHEMAS_DIR"]]

    def test_exposes_the_health_port(self) -> None:
        """EXPOSE 9102: /metrics, /healthz and /readyz."""
        assert [i.arguments for i in RUNTIME.having("EXPOSE")] == ["9102"]

    def test_healthcheck_runs_the_worker_check_command(self) -> None:
        """HEALTHCHECK runs `mics-worker check` in exec form (no shell in the probe)."""
        healthchecks = RUNTIME.having("HEALTHCHECK")
        assert len(healthchecks) == 1
        assert healthchecks[0].exec_form() == ["mics-worker", "check"]
