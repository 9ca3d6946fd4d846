"""worker.validation: compiled validators that answer with one structured error and never raise on a document."""

from __future__ import annotations

import dataclasses
import json
import shutil
from decimal import Decimal
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from worker.validation import (
    MAX_LISTED_ERRORS,
    PRUNE_DEPTH,
    SCHEMA_FILES,
    SchemaError,
    SchemaErrors,
    SchemaLoadError,
    UnknownSchemaName,
    Validators,
    default_schema_directory,
)

TS = 1_700_000_000_000
UUID = "1b4e28ba-2fa1-11d2-883f-0016d3cca427"


def activity(**fields: Any) -> dict[str, Any]:
    """A small valid site visit, with ``fields`` replacing or adding keys."""
    document: dict[str, Any] = {
        "$ts": TS,
        "$type": "SITE_VISIT",
        "$session_status": "NO_SESSION",
        "$user_identifiers": [{"$type": "USER_AGENT", "$user_agent_id": "vec:289388396"}],
        "$events": [{"$ts": TS, "$event_name": "$page_view", "$properties": {}}],
    }
    document.update(fields)
    return document


def nested_dicts(depth: int) -> dict[str, Any]:
    """``{"k": {"k": ... {}}}`` nested ``depth`` times, built without recursion."""
    root: dict[str, Any] = {}
    node = root
    for _ in range(depth):
        node["k"] = {}
        node = node["k"]
    return root


def nested_lists(depth: int) -> list[Any]:
    """``[[[...]]]`` nested ``depth`` times, built without recursion."""
    root: list[Any] = []
    node = root
    for _ in range(depth):
        node.append([])
        node = node[0]
    return root


@pytest.fixture(scope="module")
def validators() -> Validators:
    return Validators.load()


class TestLoad:
    def test_load_compiles_every_schema_from_the_repository(self, validators: Validators) -> None:
        """The default directory yields the four schema names of the conventions."""
        assert validators.names == {"activity", "profile", "choice", "envelope"}
        assert default_schema_directory().is_dir()

    def test_load_reads_another_directory(self, tmp_path: Path) -> None:
        """A directory passed to load is the one used."""
        for file_name in SCHEMA_FILES.values():
            shutil.copy(default_schema_directory() / file_name, tmp_path / file_name)
        (tmp_path / SCHEMA_FILES["profile"]).write_text(
            json.dumps({"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "array"})
        )
        assert Validators.load(tmp_path).check("profile", []) is None

    def test_missing_file_is_a_load_error_naming_it(self, tmp_path: Path) -> None:
        """An empty directory fails at load, not at the first message."""
        with pytest.raises(SchemaLoadError, match=r"user_activity\.schema\.json"):
            Validators.load(tmp_path)

    @pytest.mark.parametrize(
        ("content", "reason"),
        [
            ("{not json", "cannot read"),
            ('{"type": "object"}', r"\$schema"),
            ('{"$schema": "http://json-schema.org/draft-07/schema#"}', r"\$schema"),
            ('{"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "objekt"}', "invalid schema"),
        ],
    )
    def test_broken_schema_is_a_load_error(self, tmp_path: Path, content: str, reason: str) -> None:
        """Unreadable JSON, another draft or a schema failing the meta-schema is refused with the file name."""
        for file_name in SCHEMA_FILES.values():
            shutil.copy(default_schema_directory() / file_name, tmp_path / file_name)
        (tmp_path / SCHEMA_FILES["choice"]).write_text(content)
        with pytest.raises(SchemaLoadError, match=reason) as caught:
            Validators.load(tmp_path)
        assert "user_choice.schema.json" in str(caught.value)


class TestCheck:
    def test_valid_document_gives_none(self, validators: Validators) -> None:
        """A valid document has no error."""
        assert validators.check("activity", activity()) is None

    def test_unknown_schema_name_raises_a_clear_error(self, validators: Validators) -> None:
        """A schema name that was not loaded is a programming error naming the known schemas."""
        with pytest.raises(UnknownSchemaName, match=r"'user_activity'.*activity, choice, envelope, profile"):
            validators.check("user_activity", activity())

    def test_error_is_a_frozen_value(self, validators: Validators) -> None:
        """SchemaError compares by value and cannot be mutated."""
        error = validators.check("choice", {"$choice_ts": TS})
        assert error == SchemaError("$.$processing_id", "required", '"$processing_id" is a required property')
        with pytest.raises(dataclasses.FrozenInstanceError):
            error.path = "$"  # type: ignore[misc]

    @pytest.mark.parametrize("document", [None, [], "activity", 42, 1.5, True, (1, 2)])
    def test_non_object_document_is_a_type_error_at_the_root(self, validators: Validators, document: object) -> None:
        """Anything but an object is rejected at "$" with the type rule."""
        error = validators.check("envelope", document)
        assert error is not None
        assert (error.path, error.rule) == ("$", "type")

    @pytest.mark.parametrize(
        ("document", "path"),
        [
            ({"$ts": {1, 2}}, "$.$ts"),
            ({"type": "activity", "body": b"bytes"}, "$.body"),
            ({"body": {"when": object()}}, "$.body.when"),
            ({"type": "activity", "body": {}, 7: "seven"}, "$"),
            ({"type": "profile", "user_point": {(1, 2): 3}, "body": {}}, "$.user_point"),
            ({"type": "activity", "body": {"a": [0, {"b": {(1, 2): 3}}]}, "bad": 1}, "$.body.a[1].b"),
        ],
    )
    def test_value_that_is_not_json_is_named_by_path(
        self, validators: Validators, document: dict[Any, Any], path: str
    ) -> None:
        """Sets, bytes, objects and non-string keys the schema reads, or in a rejected document, are named."""
        error = validators.check("envelope", document)
        assert error is not None
        assert (error.path, error.rule) == (path, "type")

    def test_value_the_schema_never_reads_is_not_inspected(self, validators: Validators) -> None:
        """Inside a valid document, a custom value is not walked: the fast path stays one native call."""
        assert validators.check("envelope", {"type": "activity", "body": {"raw": b"bytes"}}) is None

    @pytest.mark.parametrize("number", [float("nan"), float("inf"), float("-inf")])
    def test_non_finite_float_is_rejected_as_not_json(self, validators: Validators, number: float) -> None:
        """NaN and infinities are not JSON numbers, wherever they sit."""
        error = validators.check("activity", activity(**{"$location": {"$latlon": [number, 2.35]}}))
        assert error is not None
        assert (error.path, error.rule) == ("$.$location.$latlon[0]", "type")
        assert "not a JSON number" in error.message

    @pytest.mark.parametrize("number", [2**63, 10**100, -(10**100)])
    def test_huge_integer_id_is_a_range_error(self, validators: Validators, number: int) -> None:
        """Integers beyond the int64 range are rejected by the id's bounds, not by an overflow."""
        error = validators.check("envelope", {"type": "activity", "datamart_id": number, "body": {}})
        assert error is not None
        assert error.path == "$.datamart_id"
        assert error.rule in {"maximum", "minimum"}

    def test_decimal_is_read_as_a_number(self, validators: Validators) -> None:
        """A Decimal (what a decoder may produce for exact numbers) is validated like a JSON number."""
        assert validators.check("profile", {"score": Decimal("0.7")}) is None

    @pytest.mark.parametrize("build", [nested_dicts, nested_lists])
    def test_deep_custom_value_does_not_stop_a_valid_document(self, validators: Validators, build: Any) -> None:
        """A custom value nested 100,000 levels deep is not looked into: the document stays valid."""
        assert validators.check("activity", activity(custom=build(100_000))) is None

    @pytest.mark.parametrize("build", [nested_dicts, nested_lists])
    def test_deep_custom_value_still_yields_the_real_error(self, validators: Validators, build: Any) -> None:
        """Beside deep nesting, the schema error is still found and reported."""
        document = activity(custom=build(100_000))
        del document["$session_status"]
        error = validators.check("activity", document)
        assert error is not None
        assert (error.path, error.rule) == ("$.$session_status", "required")

    def test_nesting_beyond_the_pruning_depth_in_a_wrong_place_is_a_type_error(self, validators: Validators) -> None:
        """A deep structure where a scalar belongs is reported where it starts."""
        error = validators.check("activity", activity(**{"$ts": nested_lists(PRUNE_DEPTH * 4)}))
        assert error is not None
        assert (error.path, error.rule) == ("$.$ts", "type")


class TestErrorSelection:
    def test_deepest_error_wins(self, validators: Validators) -> None:
        """With a root error and a nested one, the nested (more specific) one is reported."""
        document = activity(**{"$events": [{"$ts": -5, "$event_name": "x", "$properties": {}}]})
        del document["$session_status"]
        error = validators.check("activity", document)
        assert error is not None
        assert (error.path, error.rule) == ("$.$events[0].$ts", "minimum")

    def test_plain_keyword_wins_over_a_combinator_at_the_same_depth(self, validators: Validators) -> None:
        """An anyOf failure yields to a concrete keyword failing at the same depth."""
        document = activity(**{"$type": "PAGEVIEW", "$session_status": "OPEN"})
        error = validators.check("activity", document)
        assert error is not None
        assert (error.path, error.rule) == ("$.$session_status", "enum")

    def test_combinator_error_speaks_with_the_schema_description(self, validators: Validators) -> None:
        """An anyOf / oneOf failure reads as its intent, taken from the schema's description."""
        error = validators.check(
            "envelope", {"type": "profile", "user_point": {}, "compartment_id": 1, "user_account_id": "a", "body": {}}
        )
        assert error is not None
        assert error.rule == "oneOf"
        assert error.message.startswith("user_point needs exactly one of")

    def test_required_points_at_the_missing_property(self, validators: Validators) -> None:
        """A missing property is reported at its own path, not at its parent."""
        document = activity(**{"$user_identifiers": [{"$type": "USER_ACCOUNT", "$compartment_id": "1"}]})
        error = validators.check("activity", document)
        assert error is not None
        assert (error.path, error.rule) == ("$.$user_identifiers[0].$user_account_id", "required")

    def test_forbidden_property_is_reported_with_the_keyword_holding_it(self, validators: Validators) -> None:
        """A field another envelope type owns is named by path, with the "properties" rule."""
        error = validators.check("envelope", {"type": "activity", "processing_id": "p", "body": {}})
        assert error == SchemaError("$.processing_id", "properties", "'processing_id' is not allowed here")

    def test_unusual_keys_are_quoted_in_the_path(self, validators: Validators) -> None:
        """Keys with spaces or dots are rendered ["..."] so the path stays unambiguous."""
        error = validators.check("activity", activity(**{"$topics": {"my topic.v2": {"seg": "high"}}}))
        assert error is not None
        assert error.path == '$.$topics["my topic.v2"].seg'

    def test_message_is_one_bounded_line(self, validators: Validators) -> None:
        """A message quoting a huge, multi-line value is cut to one short line."""
        error = validators.check("envelope", {"type": "activity", "body": "line\n" * 100_000})
        assert error is not None
        assert "\n" not in error.message
        assert len(error.message) <= 300


class TestNullRule:
    """An object member given null is absent, in every schema, and only required members may not be null."""

    @pytest.mark.parametrize(
        ("schema", "document"),
        [
            ("activity", activity(**{"$user_account_id": None, "$email_hash": None, "$location": None})),
            ("activity", activity(**{"$origin": {"$campaign_id": None, "$source": "google"}, "$ttl": None})),
            ("activity", activity(**{"$email_hash": {"$hash": "h", "$email": None}})),
            ("profile", {"$compartment_id": None, "$user_account_id": None, "$creation_ts": None}),
            ("choice", {"$processing_id": "42", "$choice_ts": TS, "$choice_acceptance_value": None}),
            ("envelope", {"type": "activity", "datamart_id": None, "user_point": None, "body": {}}),
            (
                "envelope",
                {"type": "choice", "user_point": UUID, "processing_id": 1, "compartment_id": None, "body": {}},
            ),
        ],
        ids=["root-ids", "nested-origin", "closed-object", "profile", "choice", "envelope", "forbidden-field"],
    )
    def test_null_optional_members_are_accepted(self, validators: Validators, schema: str, document: object) -> None:
        """Each of these documents is invalid to the raw schema only because of its nulls, and is accepted."""
        source = json.loads((default_schema_directory() / SCHEMA_FILES[schema]).read_text("utf-8"))
        assert not jsonschema_rs.Draft202012Validator(source).is_valid(document)
        assert validators.check(schema, document) is None

    def test_a_null_required_member_is_a_type_error_at_its_path(self, validators: Validators) -> None:
        """A required member given null is named at its own path with rule type, as any other wrong type."""
        error = validators.check("activity", activity(**{"$session_status": None}))
        assert error == SchemaError("$.$session_status", "type", "'$session_status' is required and cannot be null")

    def test_a_null_inside_a_required_nested_member_is_reported_there(self, validators: Validators) -> None:
        """The null rule follows array indices: the second event's null $ts is named by its index."""
        events = [
            {"$ts": TS, "$event_name": "a", "$properties": {}},
            {"$ts": None, "$event_name": "b", "$properties": {}},
        ]
        error = validators.check("activity", activity(**{"$events": events}))
        assert error is not None
        assert (error.path, error.rule) == ("$.$events[1].$ts", "type")

    def test_null_array_items_are_values_not_absences(self, validators: Validators) -> None:
        """A null identifier or coordinate is still rejected: only object members can be absent."""
        assert validators.check("activity", activity(**{"$user_identifiers": [None]})) is not None
        assert validators.check("activity", activity(**{"$location": {"$latlon": [None, 2.35]}})) is not None

    def test_a_document_that_is_invalid_apart_from_its_nulls_stays_invalid(self, validators: Validators) -> None:
        """Stripping nulls never hides another defect: a bad $ts next to a null is still reported."""
        error = validators.check("activity", activity(**{"$ts": -1, "$location": None}))
        assert error is not None
        assert (error.path, error.rule) == ("$.$ts", "minimum")

    def test_the_document_itself_is_not_modified(self, validators: Validators) -> None:
        """The rule applies to a copy: the caller's document (and so the forwarded bytes) keeps its nulls."""
        document = activity(**{"$location": None})
        assert validators.check("activity", document) is None
        assert document["$location"] is None


class TestEveryError:
    def test_every_failure_is_listed_with_its_path_and_rule(self, validators: Validators) -> None:
        """Three independent defects come back as three errors, the most useful one first."""
        document = activity(**{"$ts": -1, "$session_status": "OPEN", "$location": {"$latlon": [91, 0]}})
        errors = validators.check_all("activity", document)
        assert errors is not None
        assert errors.total == 3
        assert {(error.path, error.rule) for error in errors.errors} == {
            ("$.$ts", "minimum"),
            ("$.$session_status", "enum"),
            ("$.$location.$latlon[0]", "maximum"),
        }
        assert errors.first == validators.check("activity", document)
        assert errors.first.path == "$.$location.$latlon[0]"

    def test_the_list_is_bounded_and_the_total_counts_the_rest(self, validators: Validators) -> None:
        """Fifteen bad events list MAX_LISTED_ERRORS errors and count all fifteen."""
        events = [{"$ts": -1, "$event_name": "e", "$properties": {}} for _ in range(15)]
        errors = validators.check_all("activity", activity(**{"$events": events}))
        assert errors is not None
        assert len(errors.errors) == MAX_LISTED_ERRORS
        assert errors.total == 15
        assert errors.summary().endswith("; ... 5 more")

    def test_summary_is_one_line_naming_each_error(self) -> None:
        """The summary the DLQ header writer can use: count, then path and rule of each listed error."""
        errors = SchemaErrors((SchemaError("$.$ts", "type", "m"), SchemaError("$", "required", "n")), 2)
        assert errors.summary() == "2 errors: $.$ts type; $ required"

    def test_summary_is_bounded(self) -> None:
        """Ten long paths still make a short single line."""
        errors = SchemaErrors(tuple(SchemaError("$." + "k" * 300, "type", "m") for _ in range(10)), 10)
        assert len(errors.summary()) <= 1000

    def test_under_moves_every_path_below_a_prefix(self) -> None:
        """A body's errors are re-rooted under $.body, all of them, keeping the total."""
        errors = SchemaErrors((SchemaError("$.$ts", "type", "m"), SchemaError("$", "required", "n")), 4)
        moved = errors.under("$.body")
        assert [error.path for error in moved.errors] == ["$.body.$ts", "$.body"]
        assert moved.total == 4

    def test_a_valid_document_has_no_errors(self, validators: Validators) -> None:
        """check_all answers None exactly when check does."""
        assert validators.check_all("activity", activity()) is None


_json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
_odd_scalars = st.binary(max_size=4) | st.sets(st.integers(), max_size=2) | st.decimals(allow_nan=False)
_keys = st.text(max_size=6) | st.sampled_from(["type", "body", "$events", "$ts", "user_point", "$type"]) | st.integers()
_documents = st.recursive(
    _json_scalars | _odd_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_keys, children, max_size=5),
    max_leaves=25,
)


@settings(max_examples=150, deadline=None)
@given(schema=st.sampled_from(sorted(SCHEMA_FILES)), document=_documents)
def test_check_never_raises_on_any_document(validators: Validators, schema: str, document: object) -> None:
    """Whatever the document, check answers None or a SchemaError with a path, a rule and a one-line message."""
    result = validators.check(schema, document)
    if result is not None:
        assert result.path.startswith("$")
        assert result.rule
        assert "\n" not in result.message
