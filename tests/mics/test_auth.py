"""The API token: validation, redaction and loading from the environment."""

import copy
import pickle
from pathlib import Path

import pytest

from worker.mics.auth import ApiToken

SECRET = "api:s3cr3t-TOKEN_value"


class TestApiToken:
    def test_header_value_is_the_raw_token(self) -> None:
        """The header value is the token itself, with no Bearer prefix."""
        assert ApiToken(SECRET).header_value() == SECRET

    def test_repr_and_str_hide_the_secret(self) -> None:
        """repr, str and format show ApiToken(***) only."""
        token = ApiToken(SECRET)
        assert repr(token) == str(token) == f"{token}" == "ApiToken(***)"
        assert SECRET not in repr([token])

    @pytest.mark.parametrize(
        "value",
        ["", "   ", "zq9 xw", "zq9\r\nX-Injected: 1", "zq9xw\n", "\tzq9xw", "zq9\x00", "zq9\x7f", "zq9ü"],
    )
    def test_rejects_tokens_unfit_for_a_header_without_echoing_them(self, value: str) -> None:
        """Empty, whitespace, control and non-ASCII tokens raise a ValueError that does not repeat them."""
        with pytest.raises(ValueError, match="API token") as caught:
            ApiToken(value)
        if value.strip():
            assert value.strip() not in str(caught.value)

    def test_cannot_be_pickled(self) -> None:
        """Pickling is refused so the secret cannot be written out by accident."""
        with pytest.raises(TypeError, match="cannot be pickled"):
            pickle.dumps(ApiToken(SECRET))

    def test_copies_are_the_same_object(self) -> None:
        """copy and deepcopy return the immutable token itself."""
        token = ApiToken(SECRET)
        assert copy.copy(token) is token
        assert copy.deepcopy(token) is token

    def test_equality_compares_values(self) -> None:
        """Two tokens with the same value are equal and hash alike."""
        assert ApiToken(SECRET) == ApiToken(SECRET)
        assert hash(ApiToken(SECRET)) == hash(ApiToken(SECRET))
        assert ApiToken(SECRET) != ApiToken(SECRET + "x")


class TestFromEnv:
    def test_inline_value_is_stripped(self) -> None:
        """A token given inline loses surrounding whitespace such as a trailing newline."""
        token = ApiToken.from_env({"TOK": f"  {SECRET}\n"}, "TOK", "TOK_FILE")
        assert token.header_value() == SECRET

    def test_file_value_is_stripped(self, tmp_path: Path) -> None:
        """A mounted secret file is read and stripped."""
        secret_file = tmp_path / "token"
        secret_file.write_text(SECRET + "\n", encoding="utf-8")
        token = ApiToken.from_env({"TOK_FILE": str(secret_file)}, "TOK", "TOK_FILE")
        assert token.header_value() == SECRET

    def test_both_set_is_ambiguous(self, tmp_path: Path) -> None:
        """Setting both the value and the file is refused rather than guessed."""
        with pytest.raises(ValueError, match="only one of TOK and TOK_FILE"):
            ApiToken.from_env({"TOK": SECRET, "TOK_FILE": str(tmp_path / "t")}, "TOK", "TOK_FILE")

    def test_neither_set_names_both_variables(self) -> None:
        """With no token configured the error names both variables."""
        with pytest.raises(ValueError, match="set TOK or TOK_FILE"):
            ApiToken.from_env({}, "TOK", "TOK_FILE")

    def test_unreadable_file_is_a_value_error(self, tmp_path: Path) -> None:
        """A missing file gives a ValueError naming the variable, not an OSError."""
        with pytest.raises(ValueError, match="TOK_FILE"):
            ApiToken.from_env({"TOK_FILE": str(tmp_path / "missing")}, "TOK", "TOK_FILE")

    def test_undecodable_file_does_not_leak_its_bytes(self, tmp_path: Path) -> None:
        """A file that is not UTF-8 is refused without its content in the message or the chain."""
        secret_file = tmp_path / "token"
        secret_file.write_bytes(b"leaky-secret-\xff\xfe")
        with pytest.raises(ValueError, match="UnicodeDecodeError") as caught:
            ApiToken.from_env({"TOK_FILE": str(secret_file)}, "TOK", "TOK_FILE")
        assert "leaky" not in str(caught.value)
        assert caught.value.__cause__ is None
        assert caught.value.__suppress_context__
