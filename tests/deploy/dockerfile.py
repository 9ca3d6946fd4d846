"""A small reader of Dockerfiles: enough structure (stages, instructions, COPY sources, exec forms) to test rules on.

Not a full BuildKit parser: it joins continuation lines, drops comments and splits each instruction into its keyword
and arguments, which is all the structural rules in test_dockerfile.py need.
"""

from __future__ import annotations

import fnmatch
import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Instruction:
    """One instruction: its upper-case keyword, raw argument text, and its position in the file."""

    keyword: str
    arguments: str
    index: int

    def exec_form(self) -> list[str] | None:
        """The JSON array of an exec-form instruction (`CMD ["run"]`), or None for the shell form."""
        text = self.arguments
        if self.keyword == "HEALTHCHECK":
            _, _, text = text.partition(" CMD ")
        try:
            value = json.loads(text.strip())
        except ValueError:
            return None
        return value if isinstance(value, list) and all(isinstance(item, str) for item in value) else None

    def flags_and_words(self) -> tuple[dict[str, str], list[str]]:
        """`COPY --from=builder /a /b` → ({"from": "builder"}, ["/a", "/b"])."""
        flags: dict[str, str] = {}
        words: list[str] = []
        for word in shlex.split(self.arguments):
            if word.startswith("--") and not words:
                name, _, value = word[2:].partition("=")
                flags[name] = value
            else:
                words.append(word)
        return flags, words


@dataclass(slots=True)
class Stage:
    """A build stage: the image it starts from, its name, and its instructions (FROM excluded)."""

    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def having(self, keyword: str) -> list[Instruction]:
        return [instruction for instruction in self.instructions if instruction.keyword == keyword]

    def env(self) -> dict[str, str]:
        """Every variable the stage's ENV instructions set (`ENV A=1 B=2` form)."""
        values: dict[str, str] = {}
        for instruction in self.having("ENV"):
            for word in shlex.split(instruction.arguments):
                name, sep, value = word.partition("=")
                if sep:
                    values[name] = value
        return values


def parse(text: str) -> list[Stage]:
    """Split a Dockerfile into its stages."""
    stages: list[Stage] = []
    for index, line in enumerate(_logical_lines(text)):
        keyword, _, arguments = line.partition(" ")
        keyword = keyword.upper()
        arguments = arguments.strip()
        if keyword == "FROM":
            words = arguments.split()
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base=words[0], name=name))
        elif stages:
            stages[-1].instructions.append(Instruction(keyword, arguments, index))
    return stages


def _logical_lines(text: str) -> list[str]:
    lines: list[str] = []
    pending = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and not pending):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1].rstrip() + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    if pending.strip():
        lines.append(pending.strip())
    return lines


def ignored_by(patterns: list[str], path: str) -> bool:
    """Whether a .dockerignore excludes `path` (or a folder above it); later `!` lines re-include."""
    parts = Path(path).parts
    candidates = ["/".join(parts[: depth + 1]) for depth in range(len(parts))]
    ignored = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        glob = pattern.removeprefix("!").strip("/")
        if any(_matches(glob, candidate) for candidate in candidates):
            ignored = not negated
    return ignored


def _matches(glob: str, candidate: str) -> bool:
    if glob.startswith("**/"):
        return any(
            fnmatch.fnmatchcase("/".join(candidate.split("/")[start:]), glob[3:])
            for start in range(len(candidate.split("/")))
        )
    return fnmatch.fnmatchcase(candidate, glob)


def dockerignore_patterns(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
