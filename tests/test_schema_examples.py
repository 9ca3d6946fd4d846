"""The example documents under tests/schemas/ against the schemas (convention: tests/schemas/README.md)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest

from worker.validation import PRUNE_DEPTH, SCHEMA_FILES, Validators, default_schema_directory

EXAMPLES = Path(__file__).parent / "schemas"
EXPECT_SUFFIX = ".expect.json"

# Keywords that can reject a value by themselves. Subschemas inside anyOf / oneOf / not / if are not rules of
# their own: their failure surfaces as the combinator's.
ASSERTIONS = frozenset(
    {
        "type",
        "enum",
        "const",
        "required",
        "dependentRequired",
        "minLength",
        "maxLength",
        "pattern",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "multipleOf",
        "minItems",
        "maxItems",
        "uniqueItems",
        "minProperties",
        "maxProperties",
        "anyOf",
        "oneOf",
        "not",
    }
)
NAMED_SUBSCHEMAS = frozenset({"properties", "patternProperties", "$defs", "dependentSchemas"})
SINGLE_SUBSCHEMAS = frozenset({"items", "additionalProperties", "then", "else", "propertyNames"})
LISTED_SUBSCHEMAS = frozenset({"allOf", "prefixItems"})


def _example_files(kind: str) -> list[tuple[str, Path]]:
    return [
        (schema, path)
        for schema in sorted(SCHEMA_FILES)
        for path in sorted((EXAMPLES / schema / kind).glob("*.json"))
        if not path.name.endswith(EXPECT_SUFFIX)
    ]


def _expectation(example: Path) -> dict[str, str]:
    result: dict[str, str] = json.loads(example.with_name(example.stem + EXPECT_SUFFIX).read_text("utf-8"))
    return result


def _load(path: Path) -> Any:
    return json.loads(path.read_text("utf-8"))


def _schema(schema: str) -> dict[str, Any]:
    result: dict[str, Any] = _load(default_schema_directory() / SCHEMA_FILES[schema])
    return result


def _raw_validator(schema: str) -> jsonschema_rs.Validator:
    return jsonschema_rs.Draft202012Validator(_schema(schema), offline=True)


def _rule_locations(node: object, pointer: tuple[str | int, ...] = ()) -> Iterator[tuple[str | int, ...]]:
    """Every keyword location in a schema that can reject a value on its own."""
    if node is False:
        yield pointer
        return
    if not isinstance(node, dict):
        return
    for keyword, value in node.items():
        here = (*pointer, keyword)
        if keyword in ASSERTIONS:
            yield here
        if keyword in NAMED_SUBSCHEMAS:
            for name, subschema in value.items():
                yield from _rule_locations(subschema, (*here, name))
        elif keyword in SINGLE_SUBSCHEMAS:
            yield from _rule_locations(value, here)
        elif keyword in LISTED_SUBSCHEMAS:
            for index, subschema in enumerate(value):
                yield from _rule_locations(subschema, (*here, index))


def _reach(root: dict[str, Any], node: object, seen: tuple[str, ...] = ()) -> int:
    """How many levels below its own value a schema node can make the validator look."""
    if not isinstance(node, dict):
        return 0
    deepest = 0
    for keyword, value in node.items():
        if keyword == "$ref":
            assert value.startswith("#/"), f"only local references are expected, got {value}"
            assert value not in seen, f"recursive reference {value}"
            target: Any = root
            for step in value[2:].split("/"):
                target = target[step]
            deepest = max(deepest, _reach(root, target, (*seen, value)))
        elif keyword in {"properties", "patternProperties"}:
            deepest = max([deepest, *(1 + _reach(root, sub, seen) for sub in value.values())])
        elif keyword in {"items", "additionalProperties", "propertyNames"}:
            deepest = max(deepest, 1 + _reach(root, value, seen))
        elif keyword == "prefixItems":
            deepest = max([deepest, *(1 + _reach(root, sub, seen) for sub in value)])
        elif keyword in {"allOf", "anyOf", "oneOf"}:
            deepest = max([deepest, *(_reach(root, sub, seen) for sub in value)])
        elif keyword in {"if", "then", "else", "not"}:
            deepest = max(deepest, _reach(root, value, seen))
    return deepest


@pytest.fixture(scope="module")
def validators() -> Validators:
    return Validators.load()


@pytest.mark.parametrize(("schema", "example"), _example_files("valid"), ids=lambda v: getattr(v, "stem", v))
def test_valid_example_is_accepted(validators: Validators, schema: str, example: Path) -> None:
    """A document under <schema>/valid/ passes its schema."""
    assert validators.check(schema, _load(example)) is None


@pytest.mark.parametrize(("schema", "example"), _example_files("invalid"), ids=lambda v: getattr(v, "stem", v))
def test_invalid_example_reports_the_declared_error(validators: Validators, schema: str, example: Path) -> None:
    """A document under <schema>/invalid/ is rejected with the path and rule of its .expect.json sidecar."""
    expected = _expectation(example)
    error = validators.check(schema, _load(example))
    assert error is not None
    assert (error.path, error.rule) == (expected["path"], expected["rule"])
    assert error.message


@pytest.mark.parametrize(("schema", "example"), _example_files("invalid"), ids=lambda v: getattr(v, "stem", v))
def test_invalid_example_fails_for_exactly_one_reason(schema: str, example: Path) -> None:
    """Each invalid document breaks one rule only, so it proves that rule rejects it."""
    errors = list(_raw_validator(schema).iter_errors(_load(example)))
    assert len(errors) == 1, [error.message for error in errors]


@pytest.mark.parametrize("schema", sorted(SCHEMA_FILES))
def test_every_rule_rejects_at_least_one_invalid_example(schema: str) -> None:
    """Every assertion keyword of the schema is the reason some invalid example is rejected."""
    validator = _raw_validator(schema)
    exercised = {
        tuple(error.schema_path)
        for _, example in _example_files("invalid")
        if example.parent.parent.name == schema
        for error in validator.iter_errors(_load(example))
    }
    rules = set(_rule_locations(_schema(schema)))
    uncovered = sorted("/".join(map(str, rule)) for rule in rules - exercised)
    assert rules
    assert not uncovered


@pytest.mark.parametrize("schema", sorted(SCHEMA_FILES))
def test_every_schema_has_valid_and_invalid_examples(schema: str) -> None:
    """Each schema directory holds at least one accepted and one rejected document."""
    assert any(name == schema for name, _ in _example_files("valid"))
    assert any(name == schema for name, _ in _example_files("invalid"))


def test_every_invalid_example_has_a_sidecar_and_every_sidecar_an_example() -> None:
    """The .expect.json files and the invalid documents pair up one to one."""
    for schema in SCHEMA_FILES:
        directory = EXAMPLES / schema / "invalid"
        sidecars = {p.name[: -len(EXPECT_SUFFIX)] for p in directory.glob("*" + EXPECT_SUFFIX)}
        documents = {p.stem for p in directory.glob("*.json") if not p.name.endswith(EXPECT_SUFFIX)}
        assert sidecars == documents
        for name in sidecars:
            assert set(_load(directory / (name + EXPECT_SUFFIX))) == {"path", "rule"}


@pytest.mark.parametrize("schema", sorted(SCHEMA_FILES))
def test_schema_declares_draft_2020_12_and_an_id(schema: str) -> None:
    """Each schema file names its dialect and a stable $id."""
    source = _schema(schema)
    assert source["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert source["$id"].endswith("/" + SCHEMA_FILES[schema])


@pytest.mark.parametrize("schema", sorted(SCHEMA_FILES))
def test_schema_is_not_recursive_and_looks_less_deep_than_the_pruning_depth(schema: str) -> None:
    """No schema recurses or reaches PRUNE_DEPTH levels, so deep custom values never reach the validator."""
    source = _schema(schema)
    assert _reach(source, source) < PRUNE_DEPTH
