"""Compiled JSON Schema validators over ``schemas/``, answering with one structured error instead of raising.

Every schema is compiled once by jsonschema-rs, the fastest correct draft 2020-12 validator measured
(bench/VALIDATORS.md). A valid document costs one native ``is_valid`` call. Only a rejected document pays for
``iter_errors``, from which the most useful single error is chosen: the deepest one, a plain keyword before a
combinator (anyOf / oneOf / not), the first in schema order among equals.

``check`` never raises on a document: values that are not JSON (sets, bytes, non-string keys), NaN, huge
integers and nesting of any depth come back as a :class:`SchemaError` when the schema reads them or the
document is rejected anyway; a custom value inside a valid document is not walked (the decoder never produces
such values, and walking would cost every message a Python pass). The schemas are deliberately
non-recursive, so validation never descends below a fixed depth; the error path works on a copy pruned below
:data:`PRUNE_DEPTH` because building an error object converts the offending value, and jsonschema-rs refuses
values nested deeper than about 250 levels.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

import jsonschema_rs

__all__ = [
    "PRUNE_DEPTH",
    "SCHEMA_FILES",
    "SchemaError",
    "SchemaLoadError",
    "UnknownSchemaName",
    "Validators",
    "default_schema_directory",
]

SCHEMA_FILES: Final[Mapping[str, str]] = {
    "activity": "user_activity.schema.json",
    "profile": "user_profile.schema.json",
    "choice": "user_choice.schema.json",
    "envelope": "envelope.schema.json",
}
"""Schema name (as passed to :meth:`Validators.check`) -> file name in the schema directory."""

PRUNE_DEPTH: Final = 32
"""Containers nested deeper than this are emptied before errors are computed; no schema looks that deep."""

_DRAFT_2020_12: Final = "https://json-schema.org/draft/2020-12/schema"
_MESSAGE_LIMIT: Final = 300
_COMBINATORS: Final = frozenset({"anyOf", "oneOf", "not"})
# Keywords whose subschemas are keyed by property name or index: a false subschema there is reported by the
# keyword that holds it ("properties"), since "false" itself is not a keyword.
_CONTAINERS: Final = frozenset({"properties", "patternProperties", "prefixItems", "dependentSchemas", "$defs"})
_PLAIN_KEY: Final = re.compile(r"[A-Za-z0-9_$]+")
_SCALARS: Final = (str, int, float, bool, Decimal, type(None))


@dataclass(frozen=True, slots=True)
class SchemaError:
    """Why a document was rejected: structured, carried to the dead-letter record, never raised."""

    path: str
    """JSON path of the offending value, e.g. ``$.$events[0].$ts``; ``$`` is the document itself."""
    rule: str
    """The failing JSON Schema keyword: ``required``, ``type``, ``enum``, ``minItems``, ..."""
    message: str
    """One human-readable line."""


class SchemaLoadError(Exception):
    """A schema file is missing, is not JSON, or is not a valid draft 2020-12 schema (a deployment error)."""


class UnknownSchemaName(LookupError):
    """``check`` was asked for a schema that was not loaded (a programming error, not a bad message)."""


@dataclass(frozen=True, slots=True)
class _Compiled:
    """One schema: its compiled validator and its JSON, kept to read ``description`` for combinator errors."""

    validator: jsonschema_rs.Validator
    source: Mapping[str, Any]


def default_schema_directory() -> Path:
    """``$MICS_WORKER_SCHEMAS_DIR`` when set (the image installs the schemas there), else the repository's
    ``schemas/`` directory beside the ``worker`` package: every command finds the same schemas."""
    configured = os.environ.get("MICS_WORKER_SCHEMAS_DIR", "").strip()
    return Path(configured) if configured else Path(__file__).resolve().parent.parent / "schemas"


class Validators:
    """The compiled validators for every schema in :data:`SCHEMA_FILES`; build once, share freely."""

    __slots__ = ("_compiled",)

    def __init__(self, compiled: Mapping[str, _Compiled]) -> None:
        self._compiled = dict(compiled)

    @classmethod
    def load(cls, directory: Path | None = None) -> Validators:
        """Read and compile every schema once; raise :class:`SchemaLoadError` naming the broken file."""
        base = default_schema_directory() if directory is None else directory
        return cls({name: _compile(base / file_name) for name, file_name in SCHEMA_FILES.items()})

    @property
    def names(self) -> frozenset[str]:
        """The schema names :meth:`check` accepts."""
        return frozenset(self._compiled)

    def check(self, schema: str, document: object) -> SchemaError | None:
        """Return ``None`` when ``document`` is valid against ``schema``, else its most useful error."""
        compiled = self._compiled.get(schema)
        if compiled is None:
            known = ", ".join(sorted(self._compiled))
            raise UnknownSchemaName(f"unknown schema {schema!r}; known schemas: {known}")
        try:
            if compiled.validator.is_valid(document):
                return None
        except Exception:  # noqa: S110 - a value jsonschema-rs cannot read; the error path below names it
            pass
        return _explain(compiled, document)


def _compile(path: Path) -> _Compiled:
    """Load one schema file, check it against the draft 2020-12 meta-schema, compile it offline."""
    try:
        source = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SchemaLoadError(f"cannot read schema {path.name}: {exc}") from exc
    if not isinstance(source, dict) or source.get("$schema") != _DRAFT_2020_12:
        raise SchemaLoadError(f"schema {path.name} must be an object declaring $schema {_DRAFT_2020_12}")
    try:
        jsonschema_rs.meta.validate(source)
        validator = jsonschema_rs.Draft202012Validator(
            source,
            validate_formats=False,
            offline=True,
            # The linear-time regex engine: a pattern can never backtrack catastrophically on message data.
            pattern_options=jsonschema_rs.RegexOptions(),
        )
    except (ValueError, jsonschema_rs.ReferencingError) as exc:
        raise SchemaLoadError(f"invalid schema {path.name}: {exc}") from exc
    return _Compiled(validator=validator, source=source)


def _explain(compiled: _Compiled, document: object) -> SchemaError:
    """Compute the most useful error for a document ``is_valid`` rejected (or could not read)."""
    try:
        pruned = _json_copy(document, PRUNE_DEPTH)
    except _NotJson as exc:
        return SchemaError(_render_path(reversed(exc.location)), "type", _one_line(exc.message))
    try:
        errors = list(compiled.validator.iter_errors(pruned))
    except Exception as exc:  # never expected once pruned; still, check must not raise
        return SchemaError("$", "type", _one_line(f"document cannot be validated: {type(exc).__name__}"))
    if not errors:
        return SchemaError("$", "type", "document holds a value that is not JSON")
    return _most_useful(compiled, errors)


def _most_useful(compiled: _Compiled, errors: Iterable[jsonschema_rs.ValidationError]) -> SchemaError:
    """The deepest error, a plain keyword before a combinator, the first among equals."""
    best_rank: tuple[int, int] = (-1, -1)
    best: SchemaError | None = None
    for error in errors:
        location, rule, message = _translate(compiled, error)
        rank = (len(location), 0 if rule in _COMBINATORS else 1)
        if rank > best_rank:
            best_rank, best = rank, SchemaError(_render_path(location), rule, _one_line(message))
    assert best is not None  # callers pass a non-empty list
    return best


def _translate(compiled: _Compiled, error: jsonschema_rs.ValidationError) -> tuple[list[str | int], str, str]:
    """One jsonschema-rs error as (location of the offending value, keyword, readable message)."""
    location: list[str | int] = list(error.instance_path)
    kind = error.kind
    schema_path = error.schema_path
    rule = str(schema_path[-1]) if schema_path else kind.name
    message = error.message
    if isinstance(kind, jsonschema_rs.ValidationErrorKind.Required):
        location.append(kind.property)  # the missing value is the offending one
    elif isinstance(kind, jsonschema_rs.ValidationErrorKind.AdditionalProperties) and kind.unexpected:
        location.append(kind.unexpected[0])
        message = f"{kind.unexpected[0]!r} is not an allowed property here"
    elif isinstance(kind, jsonschema_rs.ValidationErrorKind.FalseSchema):
        rule = _false_schema_keyword(schema_path)
        message = f"{location[-1]!r} is not allowed here" if location else "no value is allowed here"
    elif rule in _COMBINATORS:
        message = _description_of(compiled.source, schema_path[:-1]) or message
    return location, rule, message


def _false_schema_keyword(schema_path: list[str | int]) -> str:
    """The keyword holding a ``false`` subschema: ``properties`` for ``properties/x: false``, else its own."""
    if len(schema_path) >= 2 and schema_path[-2] in _CONTAINERS:
        return str(schema_path[-2])
    return str(schema_path[-1]) if schema_path else "false"


def _description_of(source: Mapping[str, Any], pointer: Iterable[str | int]) -> str | None:
    """The ``description`` of the schema node at ``pointer``, which phrases a combinator's intent."""
    node: Any = source
    for step in pointer:
        try:
            node = node[step]
        except (KeyError, IndexError, TypeError):
            return None
    description = node.get("description") if isinstance(node, dict) else None
    return description if isinstance(description, str) else None


def _render_path(location: Iterable[str | int]) -> str:
    """``$`` then ``.key`` for plain keys (``$``-prefixed keys stay readable), ``["key"]`` else, ``[i]``."""
    parts = ["$"]
    for step in location:
        if isinstance(step, int):
            parts.append(f"[{step}]")
        elif _PLAIN_KEY.fullmatch(step):
            parts.append(f".{step}")
        else:
            parts.append(f"[{json.dumps(step)}]")
    return "".join(parts)


def _one_line(message: str) -> str:
    """Collapse to one line and bound the length: messages quote the offending value, which may be huge."""
    flat = " ".join(message[: 2 * _MESSAGE_LIMIT].split())
    if len(flat) > _MESSAGE_LIMIT or len(message) > 2 * _MESSAGE_LIMIT:
        return flat[: _MESSAGE_LIMIT - 3] + "..."
    return flat


class _NotJson(Exception):
    """A value JSON cannot represent; ``location`` is filled in, innermost step first, while unwinding."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        self.location: list[str | int] = []


def _json_copy(value: object, depth: int) -> object:
    """A copy of ``value`` with containers nested deeper than ``depth`` emptied (same type, so verdicts hold).

    Raises :class:`_NotJson` for a value JSON cannot represent: jsonschema-rs would raise on it, or read NaN as
    null and report a confusing ``null``. Recursion is bounded by ``depth``.
    """
    if isinstance(value, dict):
        if depth <= 0:
            return {}
        copy: dict[str, object] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise _NotJson(f"object key {key!r} is not a string ({type(key).__name__})")
            try:
                copy[key] = _json_copy(item, depth - 1)
            except _NotJson as exc:
                exc.location.append(key)
                raise
        return copy
    if isinstance(value, list | tuple):
        if depth <= 0:
            return []
        items: list[object] = []
        for index, item in enumerate(value):
            try:
                items.append(_json_copy(item, depth - 1))
            except _NotJson as exc:
                exc.location.append(index)
                raise
        return items
    if isinstance(value, float) and not math.isfinite(value):
        raise _NotJson(f"{value} is not a JSON number (NaN and infinities are not JSON)")
    if not isinstance(value, _SCALARS):
        raise _NotJson(f"a {type(value).__name__} is not a JSON value")
    return value
