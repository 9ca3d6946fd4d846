"""Settings for the worker's inputs and credentials: Schema Registry framing, and token files watched per datamart.

Read from `MICS_WORKER_*` variables through `Env` (by `config.WorkerConfig.from_env`), validated at start-up.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from worker.env import ENV_PREFIX, Env
from worker.framing import FramingRules, parse_framing
from worker.mics.auth import ApiToken
from worker.mics.token_source import DEFAULT_CHECK_INTERVAL_S, TokenSource, WatchedToken, load_tokens_file
from worker.sensitive import MASK

__all__ = ["FramingSettings", "TokenSettings", "framing_settings", "token_settings"]


@dataclass(frozen=True, slots=True)
class FramingSettings:
    """How each topic's values are framed, and the registry that holds the writers' schemas."""

    rules: FramingRules = field(default_factory=FramingRules)
    registry_url: str | None = None
    validate: bool = False
    cache_size: int = 1000
    timeout_s: float = 10.0


@dataclass(frozen=True, slots=True)
class TokenSettings:
    """Which token files to watch: API_TOKEN_FILE's (the default), API_TOKENS_FILE's per-datamart map."""

    token_file: Path | None = None
    tokens_file: Path | None = None
    check_interval_s: float = DEFAULT_CHECK_INTERVAL_S

    def source(self, token: ApiToken, on_new_secret: Callable[[str], None]) -> TokenSource:
        """The running worker's token source (`on_new_secret` is given each new token, to mask it in the logs)."""
        mask = on_new_secret
        if self.tokens_file is not None:
            default = None if _default_in_file(self.tokens_file) else token
            return load_tokens_file(
                self.tokens_file,
                default,
                self.token_file,
                check_interval_s=self.check_interval_s,
                on_new_secret=mask,
            )
        return TokenSource(
            WatchedToken(token, self.token_file, check_interval_s=self.check_interval_s, on_new_secret=mask)
        )


def _default_in_file(path: Path) -> bool:
    import orjson  # noqa: PLC0415

    try:
        document = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return False
    return isinstance(document, dict) and "default" in document


def framing_settings(env: Env) -> FramingSettings:
    """The framing rules and the registry; each problem goes to `env`'s report (the defaults stand in)."""
    try:
        rules = parse_framing(env.text("FRAMING", "plain"))
    except ValueError as exc:
        env.problem(f"{ENV_PREFIX}FRAMING: {exc}", "FRAMING")
        rules = parse_framing("plain")
    url = env.text_or_none("SCHEMA_REGISTRY_URL")
    if url is not None:
        parts = urlsplit(url)
        if parts.scheme not in {"http", "https"} or not parts.hostname or parts.username or parts.password:
            env.problem(
                f"{ENV_PREFIX}SCHEMA_REGISTRY_URL must be an http(s) URL without credentials in it",
                "SCHEMA_REGISTRY_URL",
            )
    if rules.uses_registry and url is None:
        env.cross_problem(
            f"{ENV_PREFIX}FRAMING reads framed values: set {ENV_PREFIX}SCHEMA_REGISTRY_URL",
            "FRAMING",
            "SCHEMA_REGISTRY_URL",
        )
    return FramingSettings(
        rules=rules,
        registry_url=url,
        validate=env.choice("SCHEMA_REGISTRY_VALIDATE", ("true", "false"), "false") == "true",
        cache_size=env.integer("SCHEMA_REGISTRY_CACHE_SIZE", 1000, minimum=1, maximum=1_000_000),
        timeout_s=env.number("SCHEMA_REGISTRY_TIMEOUT_S", 10.0, minimum=0.1, maximum=300.0),
    )


def token_settings(env: Env, environ: Mapping[str, str]) -> tuple[ApiToken | None, TokenSettings]:
    """The default token (from API_TOKEN, API_TOKEN_FILE or API_TOKENS_FILE's default) and what to watch.

    None when a problem was recorded in `env`'s report (the token is never part of the message)."""
    token_file = env.text_or_none("API_TOKEN_FILE")
    tokens_file = env.text_or_none("API_TOKENS_FILE")
    settings = TokenSettings(
        token_file=Path(token_file) if token_file else None,
        tokens_file=Path(tokens_file) if tokens_file else None,
        check_interval_s=env.number("API_TOKEN_CHECK_INTERVAL_S", DEFAULT_CHECK_INTERVAL_S, minimum=0.05),
    )
    names = f"{ENV_PREFIX}API_TOKEN / {ENV_PREFIX}API_TOKEN_FILE"
    has_default = bool(env.text_or_none("API_TOKEN") or token_file)
    token: ApiToken | None = None
    if has_default or settings.tokens_file is None:
        try:
            token = ApiToken.from_env(environ, ENV_PREFIX + "API_TOKEN", ENV_PREFIX + "API_TOKEN_FILE")
        except (ValueError, OSError) as exc:
            env.problem(f"{names}: {exc}", "API_TOKEN")
            return None, settings
        if token_file and not env.text_or_none("API_TOKEN"):
            env.note("API_TOKEN", MASK, f"file ({ENV_PREFIX}API_TOKEN_FILE)")
    if settings.tokens_file is not None:
        try:
            source = load_tokens_file(
                settings.tokens_file, token, settings.token_file, check_interval_s=1.0, on_new_secret=lambda _: None
            )
        except ValueError as exc:
            env.problem(f"{ENV_PREFIX}API_TOKENS_FILE: {exc}", "API_TOKENS_FILE")
            return None, settings
        token = source.for_datamart("")  # the default
    return token, settings
