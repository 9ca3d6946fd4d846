"""Compiled JSON Schema validators over ``schemas/``, answering with structured errors instead of raising.

Every schema is compiled once by jsonschema-rs, the fastest correct draft 2020-12 validator measured
(bench/VALIDATORS.md). A valid document costs one native ``is_valid`` call. Only a document ``is_valid`` rejects
takes the slow path, which applies the null rule and then lists every error:

- **The null rule.** An object member whose value is ``null`` is treated as absent, everywhere (the mediarithmics
  documentation's own examples send ``null`` for unset optional fields). It lives here, in one place, not as a
  ``null`` alternative on every property: the slow path validates a copy without those members, so a document that
  fails only because of nulls is accepted. A required member given ``null`` is still an error, reported with rule
  ``type`` at its path. ``null`` items of an array are values, not absences, and are validated as such.
- **Every error.** :class:`SchemaErrors` lists up to :data:`MAX_LISTED_ERRORS` errors of a document (most useful
  first: the deepest one, a plain keyword before a combinator (anyOf / oneOf / not), schema order among equals)
  with the total count; ``first`` is the single error the dead-letter headers carry.

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
    "MAX_LISTED_ERRORS",
    "PRUNE_DEPTH",
    "SCHEMA_FILES",
    "SchemaError",
    "SchemaErrors",
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

MAX_LISTED_ERRORS: Final = 10
"""How many errors of one document are kept (the total is still counted): bounds DLQ headers and reports."""

_SUMMARY_LIMIT: Final = 1000
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


@dataclass(frozen=True, slots=True)
class SchemaErrors:
    """Every failure of one rejected document: the first :data:`MAX_LISTED_ERRORS`, most useful first, and how
    many there were in all."""

    errors: tuple[SchemaError, ...]
    """At least one; ``errors[0]`` is the most useful."""
    total: int
    """How many errors the document has, listed or not."""

    @property
    def first(self) -> SchemaError:
        """The most useful error: the one a single-error consumer (the DLQ's schema headers) reports."""
        return self.errors[0]

    def summary(self) -> str:
        """One bounded line naming every listed error by path and rule, e.g. ``2 errors: $.$ts type; $ required``."""
        noun = "error" if self.total == 1 else "errors"
        listed = "; ".join(f"{error.path} {error.rule}" for error in self.errors)
        more = f"; ... {self.total - len(self.errors)} more" if self.total > len(self.errors) else ""
        return _bounded(f"{self.total} {noun}: {listed}{more}", _SUMMARY_LIMIT)

    def under(self, prefix: str) -> SchemaErrors:
        """The same errors with paths relative to ``prefix`` (``$.body``): a body validated on its own."""
        moved = tuple(SchemaError(prefix + error.path[1:], error.rule, error.message) for error in self.errors)
        return SchemaErrors(moved, self.total)


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
        errors = self.check_all(schema, document)
        return None if errors is None else errors.first

    def check_all(self, schema: str, document: object) -> SchemaErrors | None:
        """Return ``None`` when ``document`` is valid against ``schema`` (nulls being absences), else its errors."""
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


def _explain(compiled: _Compiled, document: object) -> SchemaErrors | None:
    """Apply the null rule to a document ``is_valid`` rejected (or could not read), then list its errors."""
    nulls: set[tuple[str | int, ...]] = set()
    try:
        pruned = _json_copy(document, PRUNE_DEPTH, (), nulls)
    except _NotJson as exc:
        return _one(SchemaError(_render_path(reversed(exc.location)), "type", _one_line(exc.message)))
    try:
        if nulls and compiled.validator.is_valid(pruned):
            return None
        errors = list(compiled.validator.iter_errors(pruned))
    except Exception as exc:  # never expected once pruned; still, check must not raise
        return _one(SchemaError("$", "type", _one_line(f"document cannot be validated: {type(exc).__name__}")))
    if not errors:
        return _one(SchemaError("$", "type", "document holds a value that is not JSON"))
    return _ranked(compiled, errors, nulls)


def _one(error: SchemaError) -> SchemaErrors:
    return SchemaErrors((error,), 1)


def _ranked(
    compiled: _Compiled, errors: Iterable[jsonschema_rs.ValidationError], nulls: set[tuple[str | int, ...]]
) -> SchemaErrors:
    """Every error, most useful first: the deepest, a plain keyword before a combinator, schema order among equals."""
    ranked: list[tuple[tuple[int, int], int, SchemaError]] = []
    for index, error in enumerate(errors):
        location, rule, message = _translate(compiled, error)
        if rule == "required" and tuple(location) in nulls:
            rule, message = "type", f"{location[-1]!r} is required and cannot be null"
        rank = (len(location), 0 if rule in _COMBINATORS else 1)
        ranked.append((rank, index, SchemaError(_render_path(location), rule, _one_line(message))))
    ranked.sort(key=lambda item: (-item[0][0], -item[0][1], item[1]))
    return SchemaErrors(tuple(item[2] for item in ranked[:MAX_LISTED_ERRORS]), len(ranked))


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
    return _bounded(message, _MESSAGE_LIMIT)


def _bounded(text: str, limit: int) -> str:
    flat = " ".join(text[: 2 * limit].split())
    if len(flat) > limit or len(text) > 2 * limit:
        return flat[: limit - 3] + "..."
    return flat


class _NotJson(Exception):
    """A value JSON cannot represent; ``location`` is filled in, innermost step first, while unwinding."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        self.location: list[str | int] = []


def _json_copy(value: object, depth: int, location: tuple[str | int, ...], nulls: set[tuple[str | int, ...]]) -> object:
    """A copy of ``value`` without ``null`` object members (the null rule; their locations are added to ``nulls``)
    and with containers nested deeper than ``depth`` emptied (same type, so verdicts hold).

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
            if item is None:
                nulls.add((*location, key))
                continue
            try:
                copy[key] = _json_copy(item, depth - 1, (*location, key), nulls)
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
                items.append(_json_copy(item, depth - 1, (*location, index), nulls))
            except _NotJson as exc:
                exc.location.append(index)
                raise
        return items
    if isinstance(value, float) and not math.isfinite(value):
        raise _NotJson(f"{value} is not a JSON number (NaN and infinities are not JSON)")
    if not isinstance(value, _SCALARS):
        raise _NotJson(f"a {type(value).__name__} is not a JSON value")
    return value
