"""Property tests: no value can leave its path segment or change the target of a built URL."""

from urllib.parse import unquote, urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from worker.mics.client import ApiPaths, UnsafeUrlError
from worker.mics.selectors import (
    EmailHash,
    UserAccount,
    UserAgentId,
    UserPointId,
    UserPointSelector,
    UserPointUuid,
)

BASES = ["https://api.example.test", "http://127.0.0.1:8080/base/path/"]
NASTY = st.sampled_from(["/", "=", ",", "?", "#", "%", "%2F", ".", "..", "../..", "\r\n", "a b", "é", "\x00", ";"])
ids = st.one_of(
    st.text(min_size=1),
    st.lists(NASTY, min_size=1, max_size=4).map("".join),
    st.integers(min_value=0),
)
# A datamart id is a whole path segment: "." and ".." are refused there (TestDotSegments in tests/fuzz).
datamart_ids = ids.filter(lambda value: value not in (".", ".."))
selectors: st.SearchStrategy[UserPointSelector] = st.one_of(
    st.uuids().map(lambda u: UserPointUuid(str(u))),
    ids.map(UserPointId),
    ids.map(UserAgentId),
    st.builds(UserAccount, ids, ids),
    ids.map(EmailHash),
)


def base_segments(base: str) -> list[str]:
    return [*urlsplit(base).path.rstrip("/").split("/"), "v1", "datamarts"]


def value_of(segment: str, key: str) -> str:
    """The decoded value of a ``key=<encoded>`` segment."""
    name, _, encoded = segment.partition("=")
    assert name == key
    return unquote(encoded, errors="strict")


def decoded_selector(segment: str) -> tuple[str, ...]:
    """The decoded value(s) a selector segment carries."""
    if "=" not in segment:
        return (segment,)
    if segment.startswith("compartment_id="):
        compartment, account = segment.split(",")
        return (value_of(compartment, "compartment_id"), value_of(account, "user_account_id"))
    key = segment.partition("=")[0]
    return (value_of(segment, key),)


def expected_selector(selector: UserPointSelector) -> tuple[str, ...]:
    if isinstance(selector, UserAccount):
        return (str(selector.compartment_id), str(selector.user_account_id))
    return (str(selector.value),)


def split_checked(base: str, url: str, extra_segments: int) -> list[str]:
    """Assert the URL kept scheme, host, port and prefix; return the segments after ``/v1/datamarts``."""
    target, built = urlsplit(base), urlsplit(url)
    assert (built.scheme, built.netloc, built.query, built.fragment) == (target.scheme, target.netloc, "", "")
    segments = built.path.split("/")
    prefix = base_segments(base)
    assert segments[: len(prefix)] == prefix
    assert len(segments) == len(prefix) + extra_segments
    assert not {".", ".."} & set(segments)
    return segments[len(prefix) :]


@pytest.mark.parametrize("base", BASES)
class TestPathProperties:
    @given(datamart_id=datamart_ids)
    def test_activity_url(self, base: str, datamart_id: str | int) -> None:
        """Any datamart id is one segment of the activity URL and decodes back to itself."""
        url = ApiPaths(base).activity(datamart_id)
        dm, literal = split_checked(base, url, 2)
        assert (unquote(dm, errors="strict"), literal) == (str(datamart_id), "user_activities")

    @given(datamart_id=datamart_ids, selector=selectors, compartment_id=ids, user_account_id=ids)
    def test_profile_url(
        self,
        base: str,
        datamart_id: str | int,
        selector: UserPointSelector,
        compartment_id: str | int,
        user_account_id: str | int,
    ) -> None:
        """Every value of a profile URL stays in its segment and round-trips."""
        url = ApiPaths(base).profile(datamart_id, selector, compartment_id, user_account_id)
        dm, points, sel, profiles, compartment, account = split_checked(base, url, 6)
        assert unquote(dm, errors="strict") == str(datamart_id)
        assert (points, profiles) == ("user_points", "user_profiles")
        assert decoded_selector(sel) == expected_selector(selector)
        assert value_of(compartment, "compartment_id") == str(compartment_id)
        assert value_of(account, "user_account_id") == str(user_account_id)

    @given(datamart_id=datamart_ids, selector=selectors, processing_id=ids)
    def test_choice_urls(
        self, base: str, datamart_id: str | int, selector: UserPointSelector, processing_id: str | int
    ) -> None:
        """Every value of the choice and change-log URLs stays in its segment and round-trips."""
        paths = ApiPaths(base)
        dm, points, sel, choices, processing = split_checked(
            base, paths.choice(datamart_id, selector, processing_id), 5
        )
        assert unquote(dm, errors="strict") == str(datamart_id)
        assert (points, choices) == ("user_points", "user_choices")
        assert decoded_selector(sel) == expected_selector(selector)
        assert value_of(processing, "processing_id") == str(processing_id)
        change_log = split_checked(base, paths.choice_change_log(datamart_id, selector, processing_id), 6)
        assert change_log == [dm, points, sel, choices, processing, "change_log"]


class TestFinalCheck:
    @settings(max_examples=20)
    @given(datamart_id=datamart_ids)
    def test_a_selector_that_misbehaves_is_caught(self, datamart_id: str | int) -> None:
        """Even a selector whose segment breaks out is stopped by the final URL check."""

        class EscapingSelector:
            def path_segment(self) -> str:
                return "x/../../../other?q=1"

        with pytest.raises(UnsafeUrlError):
            ApiPaths(BASES[0]).choice(datamart_id, EscapingSelector(), 1)  # type: ignore[arg-type]
