"""Watched token files: a rewritten file is picked up by a cheap stat check or on demand, per datamart."""

from __future__ import annotations

import os
from pathlib import Path

import orjson
import pytest

from worker.mics.auth import ApiToken
from worker.mics.token_source import TokenSource, WatchedToken, load_tokens_file


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def rewrite(path: Path, text: str) -> None:
    """Replace the file the way a Secret update does: a new file renamed over the old one."""
    fresh = path.with_suffix(".new")
    fresh.write_text(text)
    os.replace(fresh, path)


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "token"
    path.write_text("old-token-0123456789\n")
    return path


class TestWatchedToken:
    def test_a_rewritten_file_is_used_after_the_check_interval(self, token_file: Path) -> None:
        clock = Clock()
        seen: list[str] = []
        watched = WatchedToken.from_file(token_file, check_interval_s=1.0, clock=clock, on_new_secret=seen.append)
        rewrite(token_file, "new-token-0123456789")
        assert watched.current().header_value() == "old-token-0123456789"  # not checked yet: no stat per request
        clock.now = 1.0
        assert watched.current().header_value() == "new-token-0123456789"
        assert seen == ["new-token-0123456789"]

    def test_refresh_reads_at_once_and_says_whether_the_token_changed(self, token_file: Path) -> None:
        watched = WatchedToken.from_file(token_file, check_interval_s=3600.0)
        assert watched.refresh() is False
        rewrite(token_file, "new-token-0123456789")
        assert watched.refresh() is True
        assert watched.current().header_value() == "new-token-0123456789"
        assert watched.refresh() is False

    @pytest.mark.parametrize("content", ["", "   \n", "two words"])
    def test_a_file_caught_mid_write_keeps_the_current_token(self, token_file: Path, content: str) -> None:
        clock = Clock()
        watched = WatchedToken.from_file(token_file, check_interval_s=1.0, clock=clock)
        rewrite(token_file, content)
        clock.now = 5.0
        assert watched.current().header_value() == "old-token-0123456789"
        rewrite(token_file, "new-token-0123456789")  # the writer finishes: the next check takes it
        clock.now = 10.0
        assert watched.current().header_value() == "new-token-0123456789"

    def test_a_removed_file_keeps_the_current_token(self, token_file: Path) -> None:
        watched = WatchedToken.from_file(token_file, check_interval_s=0.0)
        token_file.unlink()
        assert watched.refresh() is False
        assert watched.current().header_value() == "old-token-0123456789"

    def test_an_inline_token_never_changes(self) -> None:
        watched = WatchedToken(ApiToken("inline-token-0123456789"))
        assert watched.refresh() is False
        assert watched.current().header_value() == "inline-token-0123456789"

    def test_the_repr_names_the_file_not_the_token(self, token_file: Path) -> None:
        watched = WatchedToken.from_file(token_file)
        assert "old-token" not in repr(watched)
        assert "old-token" not in repr(TokenSource(watched))


class TestTokensFile:
    def write(self, tmp_path: Path, document: object) -> Path:
        (tmp_path / "a").write_text("token-of-a-0123456789")
        (tmp_path / "b").write_text("token-of-b-0123456789")
        path = tmp_path / "tokens.json"
        path.write_bytes(orjson.dumps(document))
        return path

    def test_each_datamart_has_its_token_and_the_rest_the_default(self, tmp_path: Path) -> None:
        path = self.write(tmp_path, {"default": "a", "datamarts": {"1510": "b"}})
        source = load_tokens_file(path, None, None, check_interval_s=1.0, on_new_secret=lambda _: None)
        assert source.for_datamart("1510").header_value() == "token-of-b-0123456789"
        assert source.for_datamart(1509).header_value() == "token-of-a-0123456789"

    def test_refresh_touches_only_the_datamarts_file(self, tmp_path: Path) -> None:
        path = self.write(tmp_path, {"default": "a", "datamarts": {"1510": "b"}})
        source = load_tokens_file(path, None, None, check_interval_s=3600.0, on_new_secret=lambda _: None)
        rewrite(tmp_path / "b", "token-of-b-rotated-0123")
        assert source.refresh("1509") is False
        assert source.refresh("1510") is True
        assert source.for_datamart("1510").header_value() == "token-of-b-rotated-0123"

    def test_the_default_may_come_from_api_token(self, tmp_path: Path) -> None:
        path = self.write(tmp_path, {"datamarts": {"1510": "b"}})
        inline = ApiToken("inline-token-0123456789")
        source = load_tokens_file(path, inline, None, check_interval_s=1.0, on_new_secret=lambda _: None)
        assert source.for_datamart("1509") == inline

    @pytest.mark.parametrize(
        ("document", "error"),
        [
            ({"datamarts": {"1510": "b"}}, "no default"),
            ({"default": "a", "datamarts": {"1510": "missing"}}, "cannot read a valid API token from missing"),
            ({"default": "a", "datamarts": ["b"]}, "must hold"),
            ({"default": "a", "extra": 1}, "must hold"),
            ({"default": 3}, "must name a token file"),
        ],
    )
    def test_bad_files_are_refused_without_showing_a_token(self, tmp_path: Path, document: object, error: str) -> None:
        path = self.write(tmp_path, document)
        with pytest.raises(ValueError, match=error) as caught:
            load_tokens_file(path, None, None, check_interval_s=1.0, on_new_secret=lambda _: None)
        assert "0123456789" not in str(caught.value)

    def test_a_default_in_both_places_is_refused(self, tmp_path: Path) -> None:
        path = self.write(tmp_path, {"default": "a"})
        with pytest.raises(ValueError, match="keep one"):
            load_tokens_file(path, ApiToken("x-0123456789"), None, check_interval_s=1.0, on_new_secret=lambda _: None)
