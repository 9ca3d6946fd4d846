"""The backfill's checkpoint: what is done, what was uploaded and not yet followed to its end, and the imports used.

At least once, resumable, and no double-send of what the API accepted:

- A record is *done* when its line was accepted by an execution that ended, or its dead letter was acknowledged.
  Per source partition the file keeps the contiguous mark (every offset below is done) and the done offsets above
  it, as ranges; a resumed run reads from the mark and skips the offsets above it that are done.
- Before an upload the file names the import and the executions it already has (`uploading`); after it, the new
  execution and its record positions (`executions`). A resumed run first follows every recorded execution to its end,
  and adopts an execution that appeared in an import's list while an upload was under way (a crash between the
  API's answer and the file's write), so an accepted execution is never uploaded twice.
- The range is fixed by the first run (`ranges`) together with the command's source options (`source`); a run
  with other options refuses the file rather than mixing two ranges.

Limits: the file is the only memory — delete it and a rerun sends everything again; a second backfill writing to
the same imports would confuse the adoption (each run creates its own imports, named after the run); lines
*rejected* by an execution that the resumed run only followed are not dead-lettered from the file (their bytes
are not in it): they are left undone, read again and sent again, and dead-lettered if rejected again.
Writes are atomic (temporary file, fsync, rename).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from worker.backfill.source import Position, Range

__all__ = ["Checkpoint", "CheckpointError", "PositionSet", "decode_lines", "encode_lines"]

VERSION = 1


class CheckpointError(RuntimeError):
    """The checkpoint cannot be read, or belongs to another source."""


def _key(position: Position) -> str:
    return f"{position[1]}:{position[0]}"


def _position(key: str) -> Position:
    partition, _, origin = key.partition(":")
    return (origin, int(partition))


def as_ranges(offsets: Iterable[int]) -> list[list[int]]:
    """Sorted offsets as [start, end) ranges."""
    found: list[list[int]] = []
    for offset in sorted(offsets):
        if found and found[-1][1] == offset:
            found[-1][1] += 1
        else:
            found.append([offset, offset + 1])
    return found


def from_ranges(ranges: Iterable[Iterable[int]]) -> set[int]:
    """The offsets of [start, end) ranges."""
    return {offset for start, end in ranges for offset in range(start, end)}


def encode_lines(positions: Iterable[tuple[Position, int]]) -> dict[str, Any]:
    """An execution's record positions in line order, as runs of consecutive offsets: `[key, start, count]`."""
    keys: dict[str, int] = {}
    runs: list[list[int]] = []
    for position, offset in positions:
        index = keys.setdefault(_key(position), len(keys))
        if runs and runs[-1][0] == index and runs[-1][1] + runs[-1][2] == offset:
            runs[-1][2] += 1
        else:
            runs.append([index, offset, 1])
    return {"keys": list(keys), "runs": runs}


def decode_lines(document: dict[str, Any]) -> list[tuple[Position, int]]:
    """The positions of `encode_lines`, in line order (line n is item n - 1)."""
    keys = [_position(key) for key in document["keys"]]
    return [(keys[index], offset) for index, start, count in document["runs"] for offset in range(start, start + count)]


class PositionSet:
    """Done offsets per source partition: a contiguous mark and the done offsets above it."""

    def __init__(self, starts: dict[Position, int]) -> None:
        self.marks = dict(starts)
        self.above: dict[Position, set[int]] = {position: set() for position in starts}

    def add(self, position: Position, offset: int) -> None:
        """Mark one record done."""
        mark = self.marks[position]
        if offset < mark:
            return
        above = self.above[position]
        above.add(offset)
        while mark in above:
            above.discard(mark)
            mark += 1
        self.marks[position] = mark

    def add_range(self, position: Position, start: int, end: int) -> None:
        """Mark [start, end) done at once: offsets the source showed do not exist (compaction, retention, blank
        lines), so a gap never holds the mark back."""
        if start >= end:
            return
        mark = self.marks[position]
        if start > mark:
            self.above[position].update(range(start, end))
            return
        above = self.above[position]
        mark = max(mark, end)
        if above:
            above.difference_update([offset for offset in above if offset < mark])
            while mark in above:
                above.discard(mark)
                mark += 1
        self.marks[position] = mark

    def __contains__(self, item: tuple[Position, int]) -> bool:
        position, offset = item
        return offset < self.marks.get(position, 0) or offset in self.above.get(position, ())

    def held_above(self) -> int:
        """How many done offsets wait above a mark (what a pending record of another batch holds back)."""
        return sum(len(offsets) for offsets in self.above.values())

    def to_json(self) -> dict[str, Any]:
        return {_key(p): {"mark": self.marks[p], "above": as_ranges(self.above[p])} for p in self.marks}

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> PositionSet:
        done = cls({_position(key): int(value["mark"]) for key, value in document.items()})
        for key, value in document.items():
            done.above[_position(key)] = from_ranges(value["above"])
        return done


class Checkpoint:
    """The checkpoint file of one backfill run (`path`), loaded or new, saved atomically."""

    def __init__(self, path: Path, source: dict[str, Any], ranges: dict[Position, Range], run_name: str) -> None:
        self.path = path
        self.source = source
        self.ranges = ranges
        self.run_name = run_name
        self.done = PositionSet({position: start for position, (start, _) in ranges.items()})
        self.imports: dict[str, str] = {}
        self.executions: dict[str, dict[str, Any]] = {}
        self.uploading: dict[str, Any] | None = None

    @classmethod
    def load(cls, path: Path, source: dict[str, Any]) -> Checkpoint | None:
        """The checkpoint at `path` when there is one for this same source; None when there is none."""
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"cannot read the checkpoint {path}: {exc}") from exc
        if document.get("version") != VERSION:
            raise CheckpointError(f"{path}: not a version {VERSION} backfill checkpoint")
        if document.get("source") != source:
            raise CheckpointError(f"{path} belongs to another source ({document.get('source')}); use another file")
        ranges = {_position(key): (int(r[0]), int(r[1])) for key, r in document["ranges"].items()}
        checkpoint = cls(path, source, ranges, str(document["run_name"]))
        checkpoint.done = PositionSet.from_json(document["done"])
        checkpoint.imports = dict(document["imports"])
        checkpoint.executions = dict(document["executions"])
        checkpoint.uploading = document.get("uploading")
        return checkpoint

    def remaining(self) -> int:
        """Records of the range not done yet (an upper bound: blank lines and offset gaps count)."""
        done = self.done
        return sum(max(0, end - done.marks[p]) - len(done.above[p]) for p, (_, end) in self.ranges.items())

    def complete(self) -> bool:
        """Whether every record of the range is done and nothing is left to follow."""
        return not self.executions and all(self.done.marks[p] >= end for p, (_, end) in self.ranges.items())

    def save(self) -> None:
        """Write the file atomically: a crash leaves the previous version or this one, never a mix."""
        document = {
            "version": VERSION,
            "run_name": self.run_name,
            "source": self.source,
            "ranges": {_key(p): list(r) for p, r in self.ranges.items()},
            "done": self.done.to_json(),
            "imports": self.imports,
            "executions": self.executions,
            "uploading": self.uploading,
        }
        temporary = self.path.with_name(self.path.name + ".tmp")
        with open(temporary, "w", encoding="utf-8") as file:
            json.dump(document, file, separators=(",", ":"))
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, self.path)
