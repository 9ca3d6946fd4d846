"""The Dockerfile's rules, checked without a Docker engine (scripts/check-image builds and runs the image itself).

The Dockerfile is read with the `dockerfile` package, which wraps BuildKit's own parser: what these tests see is what
a builder sees.
"""

from __future__ import annotations

import dataclasses
import re
import shlex
import tomllib
from dataclasses import dataclass
from pathlib import Path

import dockerfile
import pytest

from tests.deploy.dockerignore import ignored_by, patterns
from worker.config import WorkerConfig

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
COMMANDS = dockerfile.parse_file(str(DOCKERFILE))
IGNORED = patterns((REPO / ".dockerignore").read_text(encoding="utf-8"))
WORKER_DRAIN_TIMEOUT_S = next(f.default for f in dataclasses.fields(WorkerConfig) if f.name == "drain_timeout_s")


@dataclass
class Stage:
    """One build stage: what its FROM names, its own name, and its instructions (FROM excluded)."""

    base: str
    name: str | None
    commands: list[dockerfile.Command]

    def having(self, keyword: str) -> list[dockerfile.Command]:
        return [command for command in self.commands if command.cmd == keyword]

    def run_lines(self) -> list[str]:
        return [command.value[0] for command in self.having("RUN")]

    def env(self) -> dict[str, str]:
        values: dict[str, str] = {}
        for command in self.having("ENV"):
            values.update(zip(command.value[::2], command.value[1::2], strict=True))
        return values

    def first(self, keyword: str, needle: str) -> dockerfile.Command:
        """The first `keyword` instruction whose text mentions `needle`."""
        matches = [command for command in self.having(keyword) if needle in command.original]
        assert matches, f"no {keyword} with {needle!r} in stage {self.name}"
        return matches[0]


def _stages() -> tuple[list[dockerfile.Command], list[Stage]]:
    """The instructions before the first FROM (global ARGs), and the stages."""
    preamble: list[dockerfile.Command] = []
    stages: list[Stage] = []
    for command in COMMANDS:
        if command.cmd == "FROM":
            words = command.value
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base=words[0], name=name, commands=[]))
        elif stages:
            stages[-1].commands.append(command)
        else:
            preamble.append(command)
    return preamble, stages


PREAMBLE, STAGES = _stages()
BUILDER = STAGES[0]
RUNTIME = STAGES[-1]


def _flags(command: dockerfile.Command) -> dict[str, str]:
    return dict(flag.removeprefix("--").partition("=")[::2] for flag in command.flags)


def _context_sources() -> list[str]:
    """Every path a COPY takes from the build context (COPY --from=<stage> takes from a stage instead)."""
    return [
        source
        for stage in STAGES
        for command in stage.having("COPY")
        if "from" not in _flags(command)
        for source in command.value[:-1]
    ]


class TestBuildContext:
    def test_every_required_copied_path_exists_in_the_repo(self) -> None:
        """Each COPY source without a wildcard names a file or folder that the repository has."""
        required = [source for source in _context_sources() if "*" not in source]
        assert required
        assert [source for source in required if not (REPO / source).exists()] == []

    def test_no_copied_path_is_excluded_by_dockerignore(self) -> None:
        """.dockerignore leaves every COPY source in the build context, the optional wheelhouse included."""
        assert [source for source in _context_sources() if ignored_by(IGNORED, source.rstrip("*"))] == []

    def test_the_wheelhouse_is_optional_and_never_committed(self) -> None:
        """The wheelhouse is copied by wildcard (a build without it works) and git ignores it."""
        assert "wheelhouse*" in _context_sources()
        assert "/wheelhouse/" in (REPO / ".gitignore").read_text(encoding="utf-8").splitlines()

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
        assert [command for command in COMMANDS if command.cmd == "ADD"] == []


class TestBase:
    def test_no_syntax_directive(self) -> None:
        """No `# syntax=` line: BuildKit would pull that frontend image from a registry before building anything."""
        text = DOCKERFILE.read_text(encoding="utf-8")
        assert not re.search(r"^\s*#\s*syntax\s*=", text, flags=re.MULTILINE | re.IGNORECASE)

    def test_base_image_is_a_build_argument(self) -> None:
        """ARG BASE_IMAGE before the first FROM (so a digest can be passed), python:3.11-slim by default."""
        args = [command.value[0] for command in PREAMBLE if command.cmd == "ARG"]
        assert "BASE_IMAGE=python:3.11-slim" in args

    def test_every_stage_starts_from_the_base_argument(self) -> None:
        """Both stages share the base: the virtualenv links to the builder's Python, which must be the runtime's."""
        assert len(STAGES) >= 2
        assert {stage.base for stage in STAGES} == {"${BASE_IMAGE}"}

    def test_default_base_names_no_registry_host(self) -> None:
        """The default is an image name only; where it comes from is the engine's business."""
        default = next(c.value[0] for c in PREAMBLE if c.cmd == "ARG").partition("=")[2]
        first, slash, _ = default.partition("/")
        assert not slash or not re.search(r"[.:]|^localhost$", first)


class TestBuilder:
    def test_runtime_takes_the_built_venv_from_the_builder(self) -> None:
        """The runtime stage copies the virtualenv out of the builder stage, not the sources."""
        copies = [(_flags(command), list(command.value)) for command in RUNTIME.having("COPY")]
        assert ({"from": BUILDER.name or ""}, ["/opt/venv", "/opt/venv"]) in copies
        assert not any(words[0] == "worker" for _, words in copies)

    def test_locked_dependencies_install_before_the_source_is_copied(self) -> None:
        """The hash-checked lock gets its own layer, ahead of COPY worker, so code edits keep it cached."""
        lock_copy = BUILDER.first("COPY", "requirements/runtime.lock")
        lock_install = BUILDER.first("RUN", "runtime.lock")
        source_copy = BUILDER.first("COPY", "worker")
        assert lock_copy.start_line < lock_install.start_line < source_copy.start_line

    @pytest.mark.parametrize("lock", ["runtime.lock", "build.lock"])
    def test_locks_install_hash_checked_wheels_only(self, lock: str) -> None:
        """Every install of a lock is hash-checked and takes wheels only: nothing is compiled from an sdist."""
        installs = [
            line for part in BUILDER.run_lines() for line in part.split("&&") if f"-r /tmp/wheels/{lock}" in line
        ]
        assert len(installs) == 1
        words = shlex.split(installs[0])
        assert {"--require-hashes", "--no-deps", "--only-binary=:all:"} <= set(words)

    def test_build_lock_pins_setuptools_as_dev_lock_does(self) -> None:
        """build.lock pins the [build-system] setuptools, hash-checked, at the version the host builds with."""
        build = (REPO / "requirements" / "build.lock").read_text(encoding="utf-8")
        dev = (REPO / "requirements" / "dev.lock").read_text(encoding="utf-8")
        pinned = re.search(r"^setuptools==(\S+) \\\n((?:\s+--hash=sha256:[0-9a-f]{64}(?: \\)?\n)+)", build, re.M)
        assert pinned is not None
        assert re.search(rf"^setuptools=={re.escape(pinned.group(1))} ", dev, re.M)
        requires = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["build-system"]["requires"]
        assert [re.split(r"[<>=!~ ]", requirement)[0] for requirement in requires] == ["setuptools"]

    def test_package_builds_offline_after_the_build_lock(self) -> None:
        """setuptools (build.lock) is in before the `--no-deps --no-build-isolation --no-index` build of the package."""
        setuptools = BUILDER.first("RUN", "build.lock")
        package = BUILDER.first("RUN", "--no-build-isolation")
        assert setuptools.start_line < package.start_line
        assert {"--no-deps", "--no-index"} <= set(package.original.split())

    def test_the_build_can_run_without_an_index(self) -> None:
        """PIP_NO_INDEX is a build argument (pip reads it from the environment) and pip looks in the wheelhouse."""
        args = [command.value[0].partition("=")[0] for command in BUILDER.having("ARG")]
        assert "PIP_NO_INDEX" in args
        wheels = next(command.value[-1] for command in BUILDER.having("COPY") if "wheelhouse*" in command.value)
        assert BUILDER.env()["PIP_FIND_LINKS"].rstrip("/") == wheels.rstrip("/")

    def test_the_installers_leave_the_virtualenv(self) -> None:
        """After the package is built, pip and setuptools are uninstalled from the virtualenv the runtime copies."""
        package = BUILDER.first("RUN", "--no-build-isolation").value[0]
        assert re.search(r"pip uninstall --yes (?=.*\bsetuptools\b)(?=.*\bpip\b)", package)


class TestRuntimeImage:
    def test_runs_as_a_numeric_non_root_user(self) -> None:
        """USER is numeric uid:gid (Kubernetes can verify runAsNonRoot) and not root."""
        users = RUNTIME.having("USER")
        assert users
        match = re.fullmatch(r"(\d+)(?::(\d+))?", users[-1].value[0])
        assert match is not None
        assert int(match.group(1)) != 0
        assert match.group(2) is None or int(match.group(2)) != 0

    def test_entrypoint_and_cmd_are_exec_form(self) -> None:
        """ENTRYPOINT ["mics-worker"] and CMD ["run"], in exec form so SIGTERM reaches the worker itself."""
        entrypoint, cmd = RUNTIME.having("ENTRYPOINT")[-1], RUNTIME.having("CMD")[-1]
        assert (entrypoint.json, entrypoint.value) == (True, ("mics-worker",))
        assert (cmd.json, cmd.value) == (True, ("run",))

    def test_entrypoint_is_the_packaged_console_script(self) -> None:
        """The ENTRYPOINT names a console script that pyproject.toml declares."""
        scripts = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]
        assert RUNTIME.having("ENTRYPOINT")[-1].value[0] in scripts

    def test_standard_library_is_precompiled(self) -> None:
        """The runtime stage byte-compiles the base's standard library (sysconfig's stdlib path, whatever the base)."""
        compiles = [line for line in RUNTIME.run_lines() if "compileall" in line]
        assert len(compiles) == 1
        assert 'sysconfig.get_path("stdlib")' in compiles[0]
        compile_line = RUNTIME.first("RUN", "compileall").start_line
        assert compile_line < RUNTIME.having("USER")[-1].start_line  # as root: the stdlib belongs to root

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
            command.value[-1]
            for command in RUNTIME.having("COPY")
            if "from" not in _flags(command) and command.value[0].rstrip("/") == "schemas"
        ]
        assert destinations == [RUNTIME.env()["MICS_WORKER_SCHEMAS_DIR"]]

    def test_exposes_the_health_port(self) -> None:
        """EXPOSE 9102: /metrics, /healthz and /readyz."""
        assert [command.value for command in RUNTIME.having("EXPOSE")] == [("9102",)]

    def test_healthcheck_runs_the_worker_check_command(self) -> None:
        """HEALTHCHECK runs `mics-worker check` in exec form (no shell in the probe)."""
        healthchecks = RUNTIME.having("HEALTHCHECK")
        assert len(healthchecks) == 1
        assert (healthchecks[0].json, healthchecks[0].value) == (True, ("CMD", "mics-worker", "check"))


class TestStopTimeout:
    """`docker stop` waits 10 s by default, then SIGKILLs: shorter than the worker's drain. Every documented
    `docker run` gives it more than the drain timeout."""

    @pytest.mark.parametrize("document", ["README.md", "Dockerfile"])
    def test_documented_docker_run_outlasts_the_drain(self, document: str) -> None:
        text = (REPO / document).read_text(encoding="utf-8")
        runs = [line for line in text.splitlines() if re.match(r"\s*(?:#\s*)?(?:\$\s*)?docker run\b", line)]
        assert runs, f"{document} shows no `docker run`"
        for line in runs:
            found = re.search(r"--stop-timeout[ =](\d+)", line)
            assert found is not None, f"no --stop-timeout in {line.strip()!r}"
            assert int(found.group(1)) > WORKER_DRAIN_TIMEOUT_S, line.strip()
