"""Raw path parsing: which resource a raw (still percent-encoded) path names."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.sandbox.paths import (
    ActivityTarget,
    ChoiceTarget,
    MalformedPath,
    ProfileTarget,
    Route,
    UnknownPath,
    UserPointSelector,
    allowed_methods,
    decode_segment,
    parse_selector,
    parse_target,
)

UUID = "0b6ee2ee-1f2e-4c39-9f6e-7c2c1d2e3f40"
NASTY = "a/b=c,d?e#f%g h+i"


def enc(value: str) -> str:
    """Percent-encode a value as one path segment, the way a correct client does."""
    return quote(value, safe="")


class TestTargets:
    def test_activity_path_names_the_datamart(self) -> None:
        """The activities path yields its decoded datamart id."""
        assert parse_target("/v1/datamarts/1509/user_activities") == ActivityTarget("1509")

    def test_profile_path_names_user_point_compartment_and_account(self) -> None:
        """A profile path yields the selector and the decoded profile keys."""
        target = parse_target(f"/v1/datamarts/1/user_points/{UUID}/user_profiles/compartment_id=7/user_account_id=u-1")
        assert target == ProfileTarget("1", UserPointSelector("uuid", (("user_point_id", UUID),)), "7", "u-1")

    def test_choice_and_change_log_paths(self) -> None:
        """A choice path and its change_log child name the same choice, told apart by `change_log`."""
        base = "/v1/datamarts/1/user_points/user_agent_id=vec%3A9/user_choices/processing_id=42"
        selector = UserPointSelector("user_agent_id", (("user_agent_id", "vec:9"),))
        assert parse_target(base) == ChoiceTarget("1", selector, "42", change_log=False)
        assert parse_target(base + "/change_log") == ChoiceTarget("1", selector, "42", change_log=True)

    @pytest.mark.parametrize(
        "path",
        [
            "/v2/datamarts/1/user_activities",
            "/v1/datamarts/1/user_activities/",
            "/v1/datamarts//user_activities",
            "/v1/datamarts/1/user_points/user_agent_id=x/user_profiles/compartment_id=1",
            "/v1/datamarts/1/user_points/user_agent_id=x/user_choices/processing_id=1/history",
            "/v1/datamarts/1/user_points/user_agent_id=x/user_choices/processing_id=",
            "/v1/datamarts/1/user_points/user_agent_id=x/user_profiles/user_account_id=1/compartment_id=2",
            "/v1/datamarts/1/../1/user_activities",
            "/",
        ],
    )
    def test_paths_naming_no_resource_are_unknown(self, path: str) -> None:
        """Wrong prefixes, trailing slashes, empty ids, missing or extra segments and dot segments are unknown."""
        with pytest.raises(UnknownPath):
            parse_target(path)

    def test_unencoded_equals_sign_in_a_document_key_is_unknown(self) -> None:
        """`processing_id=a=b` is not the processing `a=b`: the client had to encode the value's `=`."""
        with pytest.raises(UnknownPath):
            parse_target("/v1/datamarts/1/user_points/user_agent_id=x/user_choices/processing_id=a=b")

    def test_encoded_separators_stay_inside_values(self) -> None:
        """Encoded `/ = , ? # %` in every value decode into the value, not into path structure."""
        target = parse_target(
            f"/v1/datamarts/{enc(NASTY)}/user_points/user_agent_id={enc(NASTY)}"
            f"/user_profiles/compartment_id={enc(NASTY)}/user_account_id={enc(NASTY)}"
        )
        assert target == ProfileTarget(
            NASTY, UserPointSelector("user_agent_id", (("user_agent_id", NASTY),)), NASTY, NASTY
        )

    def test_routes_depend_on_the_method(self) -> None:
        """Each resource answers its own methods only; the others map to no route."""
        choice = parse_target("/v1/datamarts/1/user_points/email_hash=h/user_choices/processing_id=1")
        assert choice.route("PUT") is Route.CHOICE_PUT
        assert choice.route("GET") is Route.CHOICE_GET
        assert choice.route("POST") is None
        assert allowed_methods(choice) == ("GET", "PUT")
        assert allowed_methods(ActivityTarget("1")) == ("POST",)


class TestSelectors:
    @pytest.mark.parametrize(
        ("raw", "form", "json"),
        [
            (UUID, "uuid", UUID),
            (f"user_point_id={UUID}", "user_point_id", {"user_point_id": UUID}),
            ("user_agent_id=vec%3A289388396", "user_agent_id", {"user_agent_id": "vec:289388396"}),
            ("email_hash=abc123", "email_hash", {"email_hash": "abc123"}),
            (
                "compartment_id=1,user_account_id=a%2Cb",
                "user_account",
                {"compartment_id": "1", "user_account_id": "a,b"},
            ),
        ],
    )
    def test_documented_forms(self, raw: str, form: str, json: object) -> None:
        """Every documented selector form parses, and renders in the envelope's `user_point` shape."""
        selector = parse_selector(raw)
        assert selector.form == form
        assert selector.as_json() == json

    @pytest.mark.parametrize(
        "raw",
        [
            "not-a-uuid",
            UUID.replace("-", ""),
            "{" + UUID + "}",
            "user_id=1",
            "user_account_id=1,compartment_id=2",
            "compartment_id=1",
            "user_agent_id=a=b",
            "user_agent_id=",
            "compartment_id=1,user_account_id=2,email_hash=3",
        ],
    )
    def test_other_forms_are_unknown(self, raw: str) -> None:
        """Non-UUID bare selectors, unknown keys, wrong key order, unencoded `=` and empty values are refused."""
        with pytest.raises(UnknownPath):
            parse_selector(raw)

    def test_distinct_selectors_are_distinct_user_points(self) -> None:
        """A bare UUID and `user_point_id=` with the same UUID are different keys (the documented simplification)."""
        assert parse_selector(UUID) != parse_selector(f"user_point_id={UUID}")

    @given(st.text(min_size=1, max_size=40))
    def test_any_encoded_value_round_trips(self, value: str) -> None:
        """Whatever the text, encoding it as one segment and parsing the selector gives it back unchanged."""
        assert parse_selector(f"user_agent_id={enc(value)}").as_json() == {"user_agent_id": value}


class TestDecoding:
    @pytest.mark.parametrize("raw", ["100%", "%zz", "%4", "a%2"])
    def test_malformed_escapes_are_rejected(self, raw: str) -> None:
        """A "%" not followed by two hex digits is malformed, not silently kept."""
        with pytest.raises(MalformedPath):
            decode_segment(raw)

    def test_escapes_that_are_not_utf8_are_rejected(self) -> None:
        """Percent-escapes must spell UTF-8."""
        with pytest.raises(MalformedPath):
            decode_segment("%FF%FE")

    def test_plus_is_a_plus(self) -> None:
        """In a path, "+" is a literal plus, not a space."""
        assert decode_segment("a+b%20c") == "a+b c"
