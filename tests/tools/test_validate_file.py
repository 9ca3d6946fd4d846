"""`mics-worker validate`: NDJSON and JSON arrays, per-message errors with line numbers and paths, exit codes."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from worker.cli import main
from worker.validate_file import DECODE_RULE, Failure, FileReport, SchemaChoice, format_report, validate_stream
from worker.validation import SchemaError, Validators

EXAMPLES = Path(__file__).resolve().parents[1] / "schemas"
SCHEMAS = ("activity", "profile", "choice", "envelope")

VISIT = {
    "$type": "SITE_VISIT",
    "$session_status": "IN_SESSION",
    "$user_agent_id": "vec:1",
    "$events": [{"$ts": 1, "$event_name": "$page_view", "$properties": {}}],
}
BAD_TS = {**VISIT, "$events": [{"$ts": "soon", "$event_name": "$page_view", "$properties": {}}]}
CHOICE_ENVELOPE = {
    "type": "choice",
    "user_point": "4f0a1d2e-0b5c-4c1e-9a7d-2f3b4c5d6e7f",
    "processing_id": "p1",
    "body": {"$processing_id": "p1", "$choice_ts": 1, "$choice_acceptance_value": True},
}


@pytest.fixture(scope="module")
def validators() -> Validators:
    return Validators.load()


def ndjson(*documents: object) -> bytes:
    return b"".join(json.dumps(document).encode() + b"\n" for document in documents)


def check(
    data: bytes,
    validators: Validators,
    *,
    schema: SchemaChoice = "auto",
    max_message_bytes: int = 1_000_000,
    max_listed: int = 1000,
) -> FileReport:
    stream = io.BytesIO(data)
    return validate_stream(
        stream, validators, schema=schema, max_message_bytes=max_message_bytes, max_listed=max_listed
    )


class TestNdjson:
    def test_valid_lines_count_as_valid(self, validators: Validators) -> None:
        """Every valid line is counted and nothing is reported."""
        report = check(ndjson(VISIT, VISIT, CHOICE_ENVELOPE), validators)
        assert (report.total, report.valid, report.failures) == (3, 3, [])

    def test_failure_names_line_path_and_rule(self, validators: Validators) -> None:
        """An invalid line is reported with its 1-based line number, the JSON path and the failing keyword."""
        report = check(ndjson(VISIT, BAD_TS), validators)
        [failure] = report.failures
        assert (failure.line, failure.path, failure.rule) == (2, "$.$events[0].$ts", "type")

    def test_blank_lines_are_skipped_but_counted_in_line_numbers(self, validators: Validators) -> None:
        """Blank lines are not messages, yet line numbers still match the file."""
        data = b"\n" + ndjson(VISIT) + b"   \n\n" + ndjson(BAD_TS)
        report = check(data, validators)
        assert report.total == 2
        assert [failure.line for failure in report.failures] == [5]

    def test_decode_errors_are_reported_like_the_worker_decodes(self, validators: Validators) -> None:
        """Malformed JSON and a repeated key fail with rule `decode` at `$`, as the worker's strict codec does."""
        data = b'not json\n{"$type": "SITE_VISIT", "$type": "APP_VISIT"}\n{"x": NaN}\n'
        report = check(data, validators)
        assert [(f.line, f.path, f.rule) for f in report.failures] == [(n, "$", DECODE_RULE) for n in (1, 2, 3)]
        assert "repeats a key" in report.failures[1].message

    def test_oversized_message_is_a_decode_error(self, validators: Validators) -> None:
        """A message above the byte limit is refused, as the worker would refuse it."""
        report = check(ndjson(VISIT), validators, max_message_bytes=50)
        assert report.invalid_by_rule == {DECODE_RULE: 1}

    def test_auto_picks_envelope_for_type_and_body(self, validators: Validators) -> None:
        """`auto` checks an object with `type` and `body` as an envelope, then its body by type (path `$.body...`)."""
        broken = {**CHOICE_ENVELOPE, "body": {"$processing_id": "p1"}}
        [failure] = check(ndjson(broken), validators).failures
        assert (failure.path, failure.rule) == ("$.body.$choice_ts", "required")

    def test_auto_checks_the_user_point_selector(self, validators: Validators) -> None:
        """A profile envelope whose user_point the worker could not address is reported at `$.user_point`."""
        envelope = {
            "type": "profile",
            "user_point": "not-a-uuid",
            "compartment_id": "1",
            "user_account_id": "u",
            "body": {},
        }
        [failure] = check(ndjson(envelope), validators).failures
        assert failure.path == "$.user_point"

    def test_auto_reads_a_bare_activity_with_custom_type_and_body_as_an_activity(self, validators: Validators) -> None:
        """`$`-prefixed root keys make it an activity (the worker's rule), so custom `type`/`body` do not matter."""
        report = check(ndjson({**VISIT, "type": "purchase", "body": {"size": 42}}), validators)
        assert (report.valid, report.failures) == (1, [])

    def test_a_failure_lists_every_error_of_the_message(self, validators: Validators) -> None:
        """Two defects in one message: one failure, both errors listed, the count two."""
        [failure] = check(ndjson({**BAD_TS, "$session_status": "OPEN"}), validators).failures
        assert [(e.path, e.rule) for e in failure.errors] == [
            ("$.$events[0].$ts", "type"),
            ("$.$session_status", "enum"),
        ]
        assert failure.error_count == 2

    def test_explicit_schema_is_applied_to_every_line(self, validators: Validators) -> None:
        """With `--schema envelope`, a bare activity is an invalid envelope."""
        [failure] = check(ndjson(VISIT), validators, schema="envelope").failures
        assert failure.rule == "required"

    def test_summary_counts_invalid_by_rule_beyond_the_listing_limit(self, validators: Validators) -> None:
        """Counts cover every message even when only the first failures are listed."""
        report = check(ndjson(*[BAD_TS] * 5, VISIT), validators, max_listed=2)
        assert (report.total, report.valid, report.invalid) == (6, 1, 5)
        assert report.invalid_by_rule == {"type": 5}
        assert len(report.failures) == 2


class TestJsonArray:
    def test_array_elements_are_messages(self, validators: Validators) -> None:
        """A file starting with `[` is one array; each element is checked."""
        report = check(json.dumps([VISIT, CHOICE_ENVELOPE]).encode(), validators)
        assert (report.total, report.valid) == (2, 2)

    def test_failing_element_is_reported_at_the_line_it_starts_on(self, validators: Validators) -> None:
        """In a pretty-printed array, a failure names the line where the element begins."""
        data = ("\n" + json.dumps([VISIT, BAD_TS], indent=2)).encode()
        [failure] = check(data, validators).failures
        start_line = 2 + data.decode().split("\n")[1:].index("  {", 2)  # the second element's opening brace
        assert (failure.line, failure.path) == (start_line, "$.$events[0].$ts")

    def test_repeated_key_is_pinned_to_its_element(self, validators: Validators) -> None:
        """A repeated key makes only its own element fail, on its own line; the others are still checked."""
        data = b'[\n  {"a": [1, "]"]},\n  {"k": 1,\n   "k": 2},\n  ' + json.dumps(VISIT).encode() + b"\n]\n"
        report = check(data, validators)
        assert report.total == 3
        assert [(f.line, f.rule) for f in report.failures] == [(2, "required"), (3, DECODE_RULE)]

    def test_broken_array_is_one_decode_failure(self, validators: Validators) -> None:
        """An array whose brackets do not balance cannot be split, so it fails as a whole."""
        report = check(b"[\n" + json.dumps(VISIT).encode() + b",\n", validators)
        assert [(f.line, f.rule) for f in report.failures] == [(1, DECODE_RULE)]

    def test_trailing_comma_is_not_accepted(self, validators: Validators) -> None:
        """`[x,]` is not JSON: it is reported, not silently read as `[x]`."""
        report = check(b"[" + json.dumps(VISIT).encode() + b",]", validators)
        assert report.invalid == 1


class TestSchemaExamples:
    @pytest.mark.parametrize("schema", SCHEMAS)
    def test_example_files_are_judged_as_the_schema_tests_expect(
        self, schema: SchemaChoice, validators: Validators
    ) -> None:
        """The repository's example documents as NDJSON: each invalid one fails at its line as its .expect.json says.

        Valid envelope examples may still fail under `$.body`: `validate` also checks an envelope's body against its
        type's schema, as the worker does, while the envelope examples exercise the envelope schema alone.
        """
        valid = sorted((EXAMPLES / schema / "valid").glob("*.json"))
        invalid = sorted(p for p in (EXAMPLES / schema / "invalid").glob("*.json") if ".expect." not in p.name)
        documents = [json.loads(p.read_text()) for p in valid + invalid]
        report = check(ndjson(*documents), validators, schema=schema)
        expected = []
        for line, path in enumerate(invalid, start=len(valid) + 1):
            expect = json.loads(path.with_name(path.name.replace(".json", ".expect.json")).read_text())
            expected.append((line, expect["path"], expect["rule"]))
        on_valid = [f for f in report.failures if f.line <= len(valid)]
        assert all(schema == "envelope" and f.path.startswith("$.body.") for f in on_valid)
        assert [(f.line, f.path, f.rule) for f in report.failures if f.line > len(valid)] == expected


class TestCommand:
    def test_exit_zero_when_everything_is_valid(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """`mics-worker validate FILE` exits 0 and prints a summary for a valid file."""
        path = tmp_path / "ok.ndjson"
        path.write_bytes(ndjson(VISIT, VISIT))
        assert main(["validate", str(path)]) == 0
        assert capsys.readouterr().out.strip() == "2 messages: 2 valid, 0 invalid"

    def test_exit_one_and_text_lines_when_something_fails(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A failure prints `FILE:LINE: PATH: RULE: MESSAGE` and the summary by rule, and exits 1."""
        path = tmp_path / "bad.ndjson"
        path.write_bytes(ndjson(VISIT, BAD_TS) + b"{]\n")
        assert main(["validate", str(path)]) == 1
        lines = capsys.readouterr().out.splitlines()
        assert lines[0].startswith(f"{path}:2: $.$events[0].$ts: type: ")
        assert lines[1].startswith(f"{path}:3: $: decode: ")
        assert lines[2] == "3 messages: 1 valid, 2 invalid (decode=1, type=1)"

    def test_json_format_is_one_parseable_object(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """`--format json` prints one object with the counts and the failures."""
        path = tmp_path / "bad.ndjson"
        path.write_bytes(ndjson(BAD_TS))
        assert main(["validate", "--format", "json", str(path)]) == 1
        document = json.loads(capsys.readouterr().out)
        assert document["invalid_by_rule"] == {"type": 1}
        message = document["failures"][0]["message"]
        assert document["failures"][0] == {
            "line": 1,
            "path": "$.$events[0].$ts",
            "rule": "type",
            "message": message,
            "errors": [{"path": "$.$events[0].$ts", "rule": "type", "message": message}],
            "error_count": 1,
        }

    def test_text_lists_every_error_of_a_message(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """A message with two defects prints two lines, both at the message's line."""
        path = tmp_path / "bad.ndjson"
        path.write_bytes(ndjson({**BAD_TS, "$session_status": "OPEN"}))
        assert main(["validate", str(path)]) == 1
        lines = capsys.readouterr().out.splitlines()
        assert lines[0].startswith(f"{path}:1: $.$events[0].$ts: type: ")
        assert lines[1].startswith(f"{path}:1: $.$session_status: enum: ")
        assert lines[2] == "1 messages: 0 valid, 1 invalid (type=1)"

    def test_text_counts_the_errors_beyond_the_listed_ones(self) -> None:
        """A message with more errors than listed says how many more."""
        listed = tuple(SchemaError(f"$.$events[{i}].$ts", "type", "m") for i in range(10))
        failure = Failure(4, "$.$events[0].$ts", "type", "m", listed, 25)
        text = format_report(FileReport(total=1, failures=[failure]), "f.ndjson", "text")
        assert "f.ndjson:4: $.$events[9].$ts: type: m" in text
        assert "f.ndjson:4: ... 15 more errors in this message" in text

    def test_control_characters_in_the_text_report_are_escaped(self) -> None:
        """Whatever a message carries, the text report cannot send terminal escape sequences."""
        report = FileReport(total=1, failures=[Failure(1, '$["\x1b[2J"]', "type", "bad \x1b[2J value")])
        text = format_report(report, "f.ndjson", "text")
        assert "\x1b" not in text
        assert 'f.ndjson:1: $["\\x1b[2J"]: type: bad \\x1b[2J value' in text

    def test_unreadable_file_exits_two(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """A file that cannot be opened is a usage error (exit 2), not a validation failure."""
        assert main(["validate", str(tmp_path / "missing.ndjson")]) == 2
        assert "cannot read" in capsys.readouterr().err

    def test_bad_option_exits_two(self) -> None:
        """An unknown schema name is rejected by the argument parser with exit status 2."""
        with pytest.raises(SystemExit) as exit_info:
            main(["validate", "--schema", "order", "-"])
        assert exit_info.value.code == 2
