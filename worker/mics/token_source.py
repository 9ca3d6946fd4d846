"""Where each request's API token comes from: one token per datamart (or one for all), re-read when its file changes.

mediarithmics tokens are rotated by creating a new one before the old expires; on Kubernetes the Secret is updated
in place and the mounted file changes under the running worker. So a token read from a file is watched: at most once
per `check_interval_s` a request `stat`s the file (no read while its inode, size and mtime stay the same), and a 401
or 403 forces a re-read (`refresh`) before the datamart is held, since the answer may mean "rotated" rather than
"revoked". A file caught mid-write (empty or not a valid token) keeps the previous token until the next check.
Tokens are `ApiToken`s: never printed; `on_new_secret` lets the caller mask every new value in its logs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from worker.mics.auth import ApiToken

__all__ = ["DEFAULT_CHECK_INTERVAL_S", "TokenSource", "WatchedToken", "load_tokens_file"]

log = logging.getLogger(__name__)

DEFAULT_CHECK_INTERVAL_S = 1.0
_NO_STAMP = (-1, -1, -1)


def _stamp(path: Path) -> tuple[int, int, int]:
    try:
        status = path.stat()
    except OSError:
        return _NO_STAMP
    return status.st_ino, status.st_size, status.st_mtime_ns


class WatchedToken:
    """A token held in memory, or read from a file and re-read when the file changes."""

    __slots__ = ("_checked_at", "_clock", "_interval_s", "_on_new", "_path", "_stamp", "_token")

    def __init__(
        self,
        token: ApiToken,
        path: Path | None = None,
        *,
        check_interval_s: float = DEFAULT_CHECK_INTERVAL_S,
        on_new_secret: Callable[[str], None] = lambda _: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._token = token
        self._path = path
        self._interval_s = check_interval_s
        self._on_new = on_new_secret
        self._clock = clock
        self._stamp = _stamp(path) if path is not None else _NO_STAMP
        self._checked_at = clock()

    @classmethod
    def from_file(cls, path: Path, **options: object) -> WatchedToken:
        """Read the token file once now (ValueError naming what is wrong, never the token), then watch it."""
        token = _read(path)
        if token is None:
            raise ValueError(f"cannot read a valid API token from {path.name}")
        return cls(token, path, **options)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        return f"WatchedToken({self._path.name if self._path else 'inline'})"

    def current(self) -> ApiToken:
        """The token now: a cheap stat of the file at most once per check interval."""
        if self._path is not None:
            now = self._clock()
            if now - self._checked_at >= self._interval_s:
                self._checked_at = now
                stamp = _stamp(self._path)
                if stamp != self._stamp:
                    self._reload(stamp)
        return self._token

    def refresh(self) -> bool:
        """Re-read the file whatever its stat says (after a 401/403); True when the token changed."""
        if self._path is None:
            return False
        self._checked_at = self._clock()
        return self._reload(_stamp(self._path))

    def _reload(self, stamp: tuple[int, int, int]) -> bool:
        assert self._path is not None
        token = _read(self._path)
        if token is None:
            log.warning(
                "the API token file %s cannot be read as a token now; keeping the current token", self._path.name
            )
            return False  # the stamp is kept: the next check reads it again
        self._stamp = stamp
        if token == self._token:
            return False
        self._on_new(token.header_value())
        self._token = token
        log.info("the API token file %s changed: using the new token from now on", self._path.name)
        return True


def _read(path: Path) -> ApiToken | None:
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read(64 * 1024)
        return ApiToken(text.strip())
    except (OSError, UnicodeDecodeError, ValueError):
        return None


class TokenSource:
    """The token of each datamart: its own when one is configured, else the default."""

    __slots__ = ("_default", "_per_datamart")

    def __init__(self, default: WatchedToken, per_datamart: Mapping[str, WatchedToken] | None = None) -> None:
        self._default = default
        self._per_datamart = dict(per_datamart or {})

    @classmethod
    def fixed(cls, token: ApiToken) -> TokenSource:
        """One token for every datamart, never re-read."""
        return cls(WatchedToken(token))

    def __repr__(self) -> str:
        return f"TokenSource(datamarts={sorted(self._per_datamart)})"

    def _entry(self, datamart: str | int) -> WatchedToken:
        return self._per_datamart.get(str(datamart), self._default)

    def for_datamart(self, datamart: str | int) -> ApiToken:
        return self._entry(datamart).current()

    def refresh(self, datamart: str | int) -> bool:
        """Re-read the datamart's token file; True when its token changed (then a refused request may go again)."""
        return self._entry(datamart).refresh()

    def all_current(self) -> list[ApiToken]:
        return [entry.current() for entry in (self._default, *self._per_datamart.values())]


def load_tokens_file(
    path: Path,
    default: ApiToken | None,
    default_path: Path | None,
    *,
    check_interval_s: float,
    on_new_secret: Callable[[str], None],
) -> TokenSource:
    """Read `{"default": "<file>", "datamarts": {"<id>": "<file>", ...}}` (file names relative to `path`'s folder).

    The default may instead come from the API_TOKEN / API_TOKEN_FILE setting (`default`, `default_path`), never both.
    """
    import orjson  # noqa: PLC0415 - the tokens file is read once, at start

    try:
        document = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise ValueError(f"cannot read {path.name}: {type(exc).__name__}") from None
    datamarts = document.get("datamarts", {}) if isinstance(document, dict) else None
    if not isinstance(document, dict) or set(document) - {"default", "datamarts"} or not isinstance(datamarts, dict):
        raise ValueError(f'{path.name} must hold {{"default": "<file>", "datamarts": {{"<datamart>": "<file>"}}}}')
    options = {"check_interval_s": check_interval_s, "on_new_secret": on_new_secret}

    def watched(name: object, what: str) -> WatchedToken:
        if not isinstance(name, str) or not name:
            raise ValueError(f"{path.name}: {what} must name a token file")
        return WatchedToken.from_file(path.parent / name, **options)

    if "default" in document and default is not None:
        raise ValueError(f"{path.name} has a default token and API_TOKEN / API_TOKEN_FILE is set too: keep one")
    if "default" in document:
        default_entry = watched(document["default"], "default")
    elif default is not None:
        default_entry = WatchedToken(
            default, default_path, check_interval_s=check_interval_s, on_new_secret=on_new_secret
        )
    else:
        raise ValueError(f"{path.name} has no default token (and API_TOKEN / API_TOKEN_FILE is not set)")
    per_datamart = {str(datamart): watched(name, f"datamart {datamart}") for datamart, name in datamarts.items()}
    return TokenSource(default_entry, per_datamart)
