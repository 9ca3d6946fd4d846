"""The long-term API token: held in one object that never prints, logs or pickles its secret.

mediarithmics wants the token raw in ``Authorization`` (no ``Bearer`` prefix), so a token that could
break out of that header (CR, LF, any control character or whitespace) is refused at the door. Error
messages describe what is wrong with a token and never repeat it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import NoReturn

_REDACTED = "ApiToken(***)"


def _first_bad_character(value: str) -> int | None:
    """Index of the first character that is not visible ASCII (0x21-0x7E), or None."""
    for index, char in enumerate(value):
        if not "\x21" <= char <= "\x7e":
            return index
    return None


class ApiToken:
    """The API token; ``repr``/``str`` are ``ApiToken(***)``."""

    __slots__ = ("_value",)
    _value: str

    def __init__(self, value: str) -> None:
        if not isinstance(value, str) or not value:
            raise ValueError("the API token is empty")
        bad = _first_bad_character(value)
        if bad is not None:
            raise ValueError(
                f"the API token has a whitespace, control or non-ASCII character at position {bad} "
                "(only visible ASCII is allowed in an Authorization header)"
            )
        self._value = value

    @classmethod
    def from_env(cls, environ: Mapping[str, str], var: str, file_var: str) -> ApiToken:
        """Read the token from ``environ[var]`` or from the file named by ``environ[file_var]`` (stripped)."""
        inline = environ.get(var, "")
        path = environ.get(file_var, "")
        if inline and path:
            raise ValueError(f"set only one of {var} and {file_var}")
        if inline:
            return cls(inline.strip())
        if path:
            try:
                text = Path(path).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                # Not chained: a UnicodeDecodeError carries the bytes it choked on, i.e. part of the secret.
                raise ValueError(f"cannot read the API token file named by {file_var}: {type(exc).__name__}") from None
            return cls(text.strip())
        raise ValueError(f"no API token: set {var} or {file_var}")

    def header_value(self) -> str:
        """The raw token, for the ``Authorization`` header only."""
        return self._value

    def __repr__(self) -> str:
        return _REDACTED

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ApiToken):
            return NotImplemented
        return self._value == other._value

    def __hash__(self) -> int:
        return hash((ApiToken, self._value))

    def __copy__(self) -> ApiToken:
        return self  # immutable

    def __deepcopy__(self, memo: dict[int, object]) -> ApiToken:
        return self  # immutable; also keeps dataclasses.asdict() of a config working

    def __reduce__(self) -> NoReturn:
        raise TypeError("an ApiToken cannot be pickled")
