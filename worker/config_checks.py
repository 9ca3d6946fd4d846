"""The settings that name things — topics' routes, datamarts, the API's address — read and checked for `config`.

Each check records its problem on the `Env` (naming the variable) and goes on, so one attempt reports them all. A
refused value is never repeated when it may hold a secret (a URL's `user:password@`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from worker import codec
from worker.env import ENV_PREFIX, Env

__all__ = ["ROUTE_MODES", "RouteMode", "RouteRule", "check_base_url", "check_regex", "datamarts", "routes"]

RouteMode = Literal["activity", "profile", "choice", "envelope"]
ROUTE_MODES: tuple[RouteMode, ...] = ("activity", "profile", "choice", "envelope")
_MODES_BY_NAME: dict[str, RouteMode] = {mode: mode for mode in ROUTE_MODES}
# The reference's id (schemas/envelope.schema.json, `$defs.id`): 1..256 characters, no control character.
_DATAMART_ID = re.compile(r"[^\x00-\x1f\x7f]{1,256}")
_DOT_SEGMENTS = frozenset({".", ".."})


@dataclass(frozen=True, slots=True)
class RouteRule:
    """Messages of topics matching `topic` (an exact name, or a regex when it starts with `^`) go to `mode`."""

    topic: str
    mode: RouteMode

    @property
    def is_pattern(self) -> bool:
        return self.topic.startswith("^")


def datamarts(env: Env) -> tuple[str | None, frozenset[str]]:
    """`DEFAULT_DATAMART_ID` and the allowed set (which includes it); each a valid id, never `.` or `..`."""
    default = env.text_or_none("DEFAULT_DATAMART_ID")
    allowed = env.csv("ALLOWED_DATAMARTS")
    for key, ids in (("DEFAULT_DATAMART_ID", [default] if default else []), ("ALLOWED_DATAMARTS", allowed)):
        for datamart in ids:
            if datamart in _DOT_SEGMENTS or not _DATAMART_ID.fullmatch(datamart):
                env.problem(
                    f"{ENV_PREFIX}{key}: {datamart!r} is not a datamart id "
                    "(1 to 256 characters, no control character, not . or ..)",
                    key,
                )
    chosen = frozenset(allowed) | ({default} if default else set())
    if not chosen:
        env.problem(f"set {ENV_PREFIX}DEFAULT_DATAMART_ID or {ENV_PREFIX}ALLOWED_DATAMARTS", "ALLOWED_DATAMARTS")
    return default, chosen


def check_base_url(env: Env, url: str) -> None:
    """An http(s) URL with a host, without credentials, query or fragment; a refusal never repeats the URL."""
    name = f"{ENV_PREFIX}API_BASE_URL"
    try:
        parts = urlsplit(url)
        has_credentials = parts.username is not None or parts.password is not None
        hostname = parts.hostname
    except ValueError:  # e.g. an unbalanced [ in the host
        env.problem(f"{name} is not a URL", "API_BASE_URL")
        return
    if has_credentials:
        env.problem(
            f"{name} must not hold credentials (user:password@): the token is the only credential", "API_BASE_URL"
        )
    elif parts.scheme not in {"http", "https"} or not hostname or parts.query or parts.fragment:
        env.problem(f"{name} must be an http(s) URL without query or fragment", "API_BASE_URL")


def routes(env: Env) -> tuple[RouteRule, ...]:
    """`ROUTES` (`topic=route,…`) then the rules of the JSON file `ROUTES_FILE` names."""
    rules: list[RouteRule] = []
    for item in env.csv("ROUTES"):
        topic, sep, mode = item.rpartition("=")
        if not sep or not topic:
            env.problem(f"{ENV_PREFIX}ROUTES: {item!r} is not topic=route", "ROUTES")
            continue
        rules.extend(_rule(env, "ROUTES", f"{ENV_PREFIX}ROUTES", topic.strip(), mode.strip()))
    routes_file = env.text_or_none("ROUTES_FILE")
    from_file = _routes_file(env, Path(routes_file)) if routes_file is not None else []
    rules.extend(from_file)
    if from_file:
        source = "env + file" if env.readings["ROUTES"].source == "env" else "file"
        env.note("ROUTES", ", ".join(f"{rule.topic}={rule.mode}" for rule in rules), source)
    return tuple(rules)


def check_regex(env: Env, key: str, name: str, pattern: str) -> bool:
    """True when `pattern` compiles; else a problem about `key`."""
    try:
        re.compile(pattern)
    except re.error as exc:
        env.problem(f"{name}: {pattern!r} is not a valid regex: {exc}", key)
        return False
    return True


def _routes_file(env: Env, path: Path) -> list[RouteRule]:
    """Read `{"routes": [{"topic": "name or ^regex", "route": "activity|profile|choice|envelope"}, ...]}`."""
    name = f"{ENV_PREFIX}ROUTES_FILE"
    try:
        document = codec.decode(path.read_bytes(), max_bytes=10_000_000)
    except (OSError, codec.DecodeError) as exc:
        env.problem(f"{name}: cannot read {path}: {exc}", "ROUTES_FILE")
        return []
    entries = document.get("routes") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        env.problem(f"{name}: {path} must hold an object with a 'routes' list", "ROUTES_FILE")
        return []
    rules = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict) or set(entry) != {"topic", "route"} or not str(entry["topic"]).strip():
            env.problem(
                f"{name}: routes[{index}] must be an object with exactly 'topic' and 'route', non-empty", "ROUTES_FILE"
            )
            continue
        rules.extend(_rule(env, "ROUTES_FILE", f"{name} routes[{index}]", str(entry["topic"]), str(entry["route"])))
    return rules


def _rule(env: Env, key: str, name: str, topic: str, mode_name: str) -> list[RouteRule]:
    mode = _MODES_BY_NAME.get(mode_name)
    if mode is None:
        env.problem(f"{name}: route {mode_name!r} is not one of {', '.join(ROUTE_MODES)}", key)
        return []
    if topic.startswith("^") and not check_regex(env, key, name, topic):
        return []
    return [RouteRule(topic=topic, mode=mode)]
