"""What a .dockerignore keeps out of the build context: its patterns, and whether one excludes a given path.

The Dockerfile itself is read with the `dockerfile` package (BuildKit's own parser); .dockerignore has no such
package, and its rules are small: Go-style globs, `**/` for any depth, later `!` lines re-including.
"""

from __future__ import annotations

import fnmatch
from pathlib import Path


def patterns(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]


def ignored_by(rules: list[str], path: str) -> bool:
    """Whether the rules exclude `path` (or a folder above it); later `!` lines re-include."""
    parts = Path(path).parts
    candidates = ["/".join(parts[: depth + 1]) for depth in range(len(parts))]
    ignored = False
    for rule in rules:
        negated = rule.startswith("!")
        glob = rule.removeprefix("!").strip("/")
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
