"""The one rule for tests that need an external binary (helm, yq, promtool): fail in CI, skip on a workstation.

CI (`.ci/run`, with `CI` set) must run every check, so a missing tool there is a failure that says which tool and how
to install it. A developer machine without Go cannot build them, and a skip with the same hint is fine there.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NoReturn

import pytest

__all__ = ["in_ci", "require_tool"]


def in_ci() -> bool:
    """Whether this run is CI's: `CI` set to anything but empty, "0" or "false"."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false")


def require_tool(name: str, path: Path | str | None, install_hint: str) -> str:
    """`path` when it is an executable file; otherwise fail (in CI) or skip (elsewhere), naming the tool and the fix.

    Call it from a test or a fixture, not at import: a failure while collecting a module would stop the whole run.
    """
    if path is None or not Path(path).is_file() or not os.access(path, os.X_OK):
        _missing(f"{name} is not installed ({path or 'not on PATH'}): {install_hint}")
    return str(path)


def _missing(message: str) -> NoReturn:
    if in_ci():
        pytest.fail(f"CI needs this tool: {message}", pytrace=False)
    pytest.skip(message)
