"""How fast `mics-worker validate` checks a file: 100,000 typical activities as NDJSON and as one JSON array.

Run from the repository root: `.venv/bin/python bench/validate_speed.py [--count N]`. The target is at least
50,000 lines per second on one core. Only the checking is timed (file generation is not).
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
import uuid
from pathlib import Path

from worker.validate_file import validate_stream
from worker.validation import Validators


def activity(rng: random.Random, index: int) -> dict[str, object]:
    """A site visit of about 350 bytes: two identifiers, one or two events, as a tag would send it."""
    ts = 1_700_000_000_000 + index * 1000
    events: list[dict[str, object]] = [
        {"$ts": ts, "$event_name": "$page_view", "$properties": {"$url": f"https://shop.example/p/{index}"}}
    ]
    if rng.random() < 0.3:
        events.append({"$ts": ts + 500, "$event_name": "$item_view", "$properties": {"$item_id": str(index % 997)}})
    return {
        "$ts": ts,
        "$type": "SITE_VISIT",
        "$session_status": "IN_SESSION",
        "$site_id": "1023",
        "$user_identifiers": [
            {"$type": "USER_AGENT", "$user_agent_id": f"vec:{rng.randrange(10**9)}"},
            {"$type": "USER_ACCOUNT", "$compartment_id": "1", "$user_account_id": f"acct-{index}"},
        ],
        "$unique_key": str(uuid.uuid1()),
        "$events": events,
    }


def measure(path: Path, validators: Validators) -> tuple[float, float, int]:
    """(CPU seconds, wall seconds, messages) for one check of the file.

    CPU time is the figure for "one core": on a shared machine the wall clock also counts other processes' turns.
    """
    cpu_started, wall_started = time.process_time(), time.perf_counter()
    with path.open("rb") as stream:
        report = validate_stream(stream, validators)
    cpu, wall = time.process_time() - cpu_started, time.perf_counter() - wall_started
    assert report.invalid == 0, report.failures[:3]
    return cpu, wall, report.total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3, help="best of N runs")
    arguments = parser.parse_args()
    count, repeat = arguments.count, arguments.repeat
    rng = random.Random(7)
    documents = [activity(rng, index) for index in range(count)]
    validators = Validators.load()
    with tempfile.TemporaryDirectory() as scratch:
        ndjson = Path(scratch) / "activities.ndjson"
        ndjson.write_text("".join(json.dumps(document, separators=(",", ":")) + "\n" for document in documents))
        array = Path(scratch) / "activities.json"
        array.write_text(json.dumps(documents, indent=1))
        size = ndjson.stat().st_size
        print(f"{count} activities, {size / count:.0f} bytes each on average (NDJSON)")
        for label, path in (("NDJSON", ndjson), ("JSON array", array)):
            cpu, wall, total = min(measure(path, validators) for _ in range(repeat))
            print(
                f"{label:>10}: {total} messages in {cpu:.2f} s of CPU = {total / cpu:,.0f} messages/s per core"
                f" (wall {wall:.2f} s = {total / wall:,.0f}/s)"
            )


if __name__ == "__main__":
    main()
