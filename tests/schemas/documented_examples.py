"""The documented-examples corpus (`tests/schemas/documented/`): every file read, and turned into a Kafka message.

A file is `{"source": URL, "route": ROUTE, "example": JSON, ...}`, optionally with `note`, `body_at` (the example is an
import command whose member of that name is the API body) and, for `profile` and `choice`, `envelope` (what the URL
needs beside the body: `user_point` and the ids). One loader serves the schema tests and the end-to-end test.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import orjson

__all__ = ["DOCUMENTED", "DocumentedExample", "load_documented"]

DOCUMENTED = Path(__file__).parent / "documented"

Route = Literal["activity", "profile", "choice"]


@dataclass(frozen=True, slots=True)
class DocumentedExample:
    """One documented example and what the worker is given for it."""

    name: str
    source: str
    route: Route
    example: Any
    body: Any
    envelope: dict[str, Any] | None

    def message(self) -> bytes:
        """The Kafka value: a bare activity (for an `activity`-routed topic), else an envelope of the route's type."""
        if self.route == "activity":
            return orjson.dumps(self.body)
        return orjson.dumps({"type": self.route, **(self.envelope or {}), "body": self.body})


def load_documented() -> list[DocumentedExample]:
    """Every file of the corpus, in name order."""
    examples = []
    for path in sorted(DOCUMENTED.glob("*.json")):
        case = orjson.loads(path.read_bytes())
        example = case["example"]
        body = example[case["body_at"]] if "body_at" in case else example
        examples.append(
            DocumentedExample(path.stem, case["source"], case["route"], example, body, case.get("envelope"))
        )
    return examples
