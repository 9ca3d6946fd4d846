"""Draft 2020-12 validator candidates on realistic documents: correctness first, then microseconds per document.

Run from the repository root: `.venv/bin/python bench/validators.py`. fastjsonschema and python-jsonschema are
not project dependencies; to include them, install both in a throwaway venv and pass its site-packages:

    THROWAWAY=$(mktemp -d) && python3.11 -m venv "$THROWAWAY" && "$THROWAWAY/bin/pip" install fastjsonschema jsonschema
    .venv/bin/python bench/validators.py --extra-site "$THROWAWAY/lib/python3.11/site-packages"

Correctness is each candidate's verdict on every example under tests/schemas/ (valid ones must pass, invalid
ones must fail); a candidate with a wrong verdict is disqualified whatever its speed. Timings are the best of
several repeats of a tight loop over one already-decoded document (what the worker holds after orjson), in
CPU microseconds of this process.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import timeit
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from importlib.metadata import version
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SCHEMAS = ROOT / "schemas"
EXAMPLES = ROOT / "tests" / "schemas"
FILES = {
    "activity": "user_activity.schema.json",
    "profile": "user_profile.schema.json",
    "choice": "user_choice.schema.json",
    "envelope": "envelope.schema.json",
}
TS = 1_700_000_000_000

Verdict = Callable[[object], bool]
Explain = Callable[[object], str | None]


@dataclass(frozen=True)
class Candidate:
    """One validator: how to compile a schema into a verdict function and an error function."""

    name: str
    compile: Callable[[str, dict[str, Any]], tuple[Verdict, Explain]]


def small_activity() -> dict[str, Any]:
    """A site visit of about 350 bytes, the bulk of a tracking stream."""
    return {
        "$ts": TS,
        "$type": "SITE_VISIT",
        "$session_status": "IN_SESSION",
        "$site_id": "1023",
        "$user_identifiers": [
            {"$type": "USER_AGENT", "$user_agent_id": "vec:289388396"},
            {"$type": "USER_ACCOUNT", "$compartment_id": "1024", "$user_account_id": "account-8842"},
        ],
        "$events": [
            {"$ts": TS, "$event_name": "$page_view", "$properties": {"$url": "https://shop.example/p/1"}},
            {"$ts": TS + 500, "$event_name": "$item_view", "$properties": {"$item_id": "SKU-1"}},
        ],
    }


def session_activity() -> dict[str, Any]:
    """A closed session of 20 events with origin, location and topics: about 3 KB."""
    document = small_activity()
    document.update(
        {
            "$session_status": "CLOSED_SESSION",
            "$session_duration": 640,
            "$origin": {"$source": "google", "$channel": "organic", "$campaign_id": 1204, "$ts": TS - 5000},
            "$location": {"$source": "IP", "$country": "FR", "$city": "Paris", "$latlon": [48.8566, 2.3522]},
            "$topics": {"sport": {"running": 3, "shoes": 1.5}},
            "$events": [
                {
                    "$ts": TS + i * 1000,
                    "$event_name": "$product_view" if i % 3 else "$page_view",
                    "$properties": {"$url": f"https://shop.example/p/{i}", "$item_id": f"SKU-{i}", "price": 9.5 + i},
                }
                for i in range(20)
            ],
        }
    )
    return document


def documents() -> list[tuple[str, str, object, bool]]:
    """(label, schema, document, expected verdict): the documents timed."""
    bad_event = small_activity()
    bad_event["$events"][1]["$ts"] = -1
    no_identifier = small_activity()
    del no_identifier["$user_identifiers"]
    profile_envelope = {
        "type": "profile",
        "datamart_id": 1509,
        "user_point": {"compartment_id": 1024, "user_account_id": "account-8842"},
        "compartment_id": 1024,
        "user_account_id": "account-8842",
        "body": {"$compartment_id": 1024, "$user_account_id": "account-8842", "first_name": "Jane"},
    }
    choice = {"$processing_id": "4512", "$choice_ts": TS, "$choice_acceptance_value": True, "$channel_id": "1023"}
    bad_selector = dict(profile_envelope, user_point={"user_point_id": "x", "email_hash": "y"})
    return [
        ("activity, 350 B, valid", "activity", small_activity(), True),
        ("activity session, 3 KB, valid", "activity", session_activity(), True),
        ("envelope (profile), valid", "envelope", profile_envelope, True),
        ("choice, valid", "choice", choice, True),
        ("activity, bad event $ts (deep)", "activity", bad_event, False),
        ("activity, no identifier (root anyOf)", "activity", no_identifier, False),
        ("envelope, two selectors (oneOf)", "envelope", bad_selector, False),
    ]


def _jsonschema_rs_candidates() -> list[Candidate]:
    import jsonschema_rs

    def compiled(schema: dict[str, Any]) -> jsonschema_rs.Validator:
        return jsonschema_rs.Draft202012Validator(schema, offline=True, pattern_options=jsonschema_rs.RegexOptions())

    def with_is_valid(_: str, schema: dict[str, Any]) -> tuple[Verdict, Explain]:
        validator = compiled(schema)

        def explain(document: object) -> str | None:
            return next((error.message for error in validator.iter_errors(document)), None)

        return validator.is_valid, explain

    def with_validate(_: str, schema: dict[str, Any]) -> tuple[Verdict, Explain]:
        validator = compiled(schema)

        def verdict(document: object) -> bool:
            try:
                validator.validate(document)
            except jsonschema_rs.ValidationError:
                return False
            return True

        def explain(document: object) -> str | None:
            try:
                validator.validate(document)
            except jsonschema_rs.ValidationError as error:
                return error.message
            return None

        return verdict, explain

    return [
        Candidate(f"jsonschema-rs {version('jsonschema_rs')} is_valid", with_is_valid),
        Candidate(f"jsonschema-rs {version('jsonschema_rs')} validate (raises)", with_validate),
    ]


def _worker_candidate() -> list[Candidate]:
    from worker.validation import Validators

    validators = Validators.load(SCHEMAS)

    def build(name: str, _: dict[str, Any]) -> tuple[Verdict, Explain]:
        def verdict(document: object) -> bool:
            return validators.check(name, document) is None

        def explain(document: object) -> str | None:
            error = validators.check(name, document)
            return None if error is None else f"{error.path} {error.rule}: {error.message}"

        return verdict, explain

    return [Candidate("worker.validation.Validators.check", build)]


def _fastjsonschema_candidates() -> list[Candidate]:
    try:
        import fastjsonschema
    except ImportError:
        return []

    def build(_: str, schema: dict[str, Any]) -> tuple[Verdict, Explain]:
        validate = fastjsonschema.compile(schema)

        def explain(document: object) -> str | None:
            try:
                validate(document)
            except fastjsonschema.JsonSchemaException as error:
                return str(error.message)
            return None

        return (lambda document: explain(document) is None), explain

    return [Candidate(f"fastjsonschema {fastjsonschema.VERSION}", build)]


def _python_jsonschema_candidates() -> list[Candidate]:
    try:
        import jsonschema
        from jsonschema.exceptions import best_match
    except ImportError:
        return []

    def build(_: str, schema: dict[str, Any]) -> tuple[Verdict, Explain]:
        validator = jsonschema.Draft202012Validator(schema)

        def explain(document: object) -> str | None:
            error = best_match(validator.iter_errors(document))
            return None if error is None else error.message

        return validator.is_valid, explain

    return [Candidate(f"python-jsonschema {version('jsonschema')}", build)]


def wrong_verdicts(verdicts: dict[str, Verdict]) -> list[str]:
    """Example files (tests/schemas) on which a candidate's verdict is wrong."""
    wrong = []
    for schema in FILES:
        for kind, expected in (("valid", True), ("invalid", False)):
            for path in sorted((EXAMPLES / schema / kind).glob("*.json")):
                if path.name.endswith(".expect.json"):
                    continue
                try:
                    right = verdicts[schema](json.loads(path.read_text("utf-8"))) is expected
                except Exception:  # a crash is a wrong verdict too
                    right = False
                if not right:
                    wrong.append(f"{schema}/{kind}/{path.stem}")
    return wrong


def microseconds(call: Callable[[], object], repeats: int) -> float:
    """Best-of-`repeats` CPU time of one call, in microseconds, each repeat lasting about 0.1 s.

    CPU time of this process, not wall time: on a shared 2-core machine the wall clock also counts the time
    other processes hold the cores.
    """
    timer = timeit.Timer(call, timer=time.process_time)
    number, _ = timer.autorange()
    number = max(1, number // 2)
    return min(timer.repeat(repeat=repeats, number=number)) / number * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--extra-site", action="append", default=[], help="site-packages holding more candidates")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    sys.path.extend(args.extra_site)
    sys.path.insert(0, str(ROOT))

    schemas = {name: json.loads((SCHEMAS / file).read_text("utf-8")) for name, file in FILES.items()}
    candidates = [
        *_jsonschema_rs_candidates(),
        *_worker_candidate(),
        *_fastjsonschema_candidates(),
        *_python_jsonschema_candidates(),
    ]
    docs = documents()
    print(f"Python {platform.python_version()} on {platform.machine()}: CPU µs per document, best of {args.repeats}\n")
    print("| candidate | wrong verdicts on tests/schemas | " + " | ".join(label for label, *_ in docs) + " |")
    print("|---|---|" + "---|" * len(docs))
    notes = []
    for candidate in candidates:
        built = {name: candidate.compile(name, schema) for name, schema in schemas.items()}
        wrong = wrong_verdicts({name: pair[0] for name, pair in built.items()})
        cells = []
        for _, schema, document, expected in docs:
            verdict, explain = built[schema]
            got = verdict(document)
            mark = "" if got is expected else " (wrong)"
            verdict_us = microseconds(partial(verdict, document), args.repeats)
            if expected:
                cells.append(f"{verdict_us:.2f}{mark}")
            else:
                explain_us = microseconds(partial(explain, document), args.repeats)
                cells.append(f"{verdict_us:.2f} / {explain_us:.2f}{mark}")
        print(f"| {candidate.name} | {len(wrong)} | " + " | ".join(cells) + " |")
        if wrong:
            notes.append(f"{candidate.name} gets wrong: {', '.join(wrong[:8])}{' ...' if len(wrong) > 8 else ''}")
    print("\nInvalid documents: verdict only / verdict and the error message.")
    for note in notes:
        print(f"- {note}")


if __name__ == "__main__":
    main()
