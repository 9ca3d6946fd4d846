"""The Benthos peer's schema: the draft-07 rendering must judge activities as the worker's 2020-12 schema does.

Benthos's `json_schema` processor knows drafts 4 to 7 only, so the peer validates against `draft07()` of
schemas/user_activity.schema.json; a rendering that accepted more (or less) would make the comparison unfair.
Both schemas are compiled here with jsonschema-rs (one as draft 2020-12, one as draft 7) and run over the schema
examples of tests/schemas/activity (valid and invalid) and a generated activity stream.
"""

import json
from pathlib import Path

import jsonschema_rs
import pytest

from bench.peer_benthos import ACTIVITY_SCHEMA, draft07, pipeline_config
from tests.support.events import MixSpec, generate

EXAMPLES = Path(__file__).resolve().parents[1] / "schemas" / "activity"
ORIGINAL = json.loads(ACTIVITY_SCHEMA.read_text())
RENDERED = draft07(ORIGINAL)


def _examples() -> list[Path]:
    return sorted(p for p in EXAMPLES.glob("*/*.json") if not p.name.endswith(".expect.json"))


def test_the_rendering_speaks_draft_07_only() -> None:
    """No 2020-12 keyword survives, and every reference points into `definitions`."""
    text = json.dumps(RENDERED)
    assert RENDERED["$schema"] == "http://json-schema.org/draft-07/schema#"
    for keyword in ('"$defs"', '"prefixItems"', '"dependentRequired"', "#/$defs/", '"$id"'):
        assert keyword not in text
    assert "#/definitions/" in text


@pytest.mark.parametrize("example", _examples(), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_both_schemas_agree_on_each_example(example: Path) -> None:
    """Each valid example passes both schemas; each invalid one fails both."""
    original = jsonschema_rs.Draft202012Validator(ORIGINAL)
    rendered = jsonschema_rs.Draft7Validator(RENDERED)
    document = json.loads(example.read_bytes())
    assert original.is_valid(document) is (example.parent.name == "valid")
    assert rendered.is_valid(document) is original.is_valid(document)


def test_the_generated_stream_passes_both() -> None:
    """The activities the benchmark sends are valid under both, so both sides do the same work."""
    original = jsonschema_rs.Draft202012Validator(ORIGINAL)
    rendered = jsonschema_rs.Draft7Validator(RENDERED)
    for message in generate(300, MixSpec(profiles=0.0, choices=0.0, invalid=0.0), seed=7):
        document = json.loads(message.value)
        assert original.is_valid(document)
        assert rendered.is_valid(document)


def test_the_pipeline_sends_valid_messages_to_the_api_and_failures_to_the_dead_letter_file() -> None:
    """The switch's first case catches what json_schema flagged; the rest goes to http_client at 64 in flight."""
    config = pipeline_config(Path("e.jsonl"), Path("s.json"), Path("d.jsonl"), "http://api/x", "tok")
    cases = config["output"]["switch"]["cases"]
    assert cases[0] == {"check": "errored()", "output": {"file": {"path": "d.jsonl", "codec": "lines"}}}
    assert cases[1]["output"]["http_client"]["max_in_flight"] == 64
    assert cases[1]["output"]["http_client"]["url"] == "http://api/x"
    assert config["pipeline"]["processors"] == [{"json_schema": {"schema_path": "file://s.json"}}]
