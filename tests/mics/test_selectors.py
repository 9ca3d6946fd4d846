"""User point selectors, envelope parsing and path-segment encoding."""

import json
from urllib.parse import unquote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.mics.selectors import (
    EmailHash,
    UserAccount,
    UserAgentId,
    UserPointId,
    UserPointUuid,
    check_id,
    encode_segment,
    id_text,
    selector_from_envelope,
)

UUID = "0f8fad5b-d9cb-469f-a165-70867728950e"


class TestEncodeSegment:
    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            ("plain-id_1~", "plain-id_1~"),
            ("a/b", "a%2Fb"),
            ("a=b,c", "a%3Db%2Cc"),
            ("?#", "%3F%23"),
            ("100%", "100%25"),
            ("..", "%2E%2E"),
            (".", "%2E"),
            ("\r\n", "%0D%0A"),
            ("é", "%C3%A9"),
            (" ", "%20"),
            (42, "42"),
            (0, "0"),
        ],
    )
    def test_encodes_every_reserved_character(self, value: str | int, expected: str) -> None:
        """Reserved characters, dots, controls and unicode are percent-encoded; unreserved ones stay."""
        assert encode_segment(value) == expected

    @given(st.text(min_size=1))
    def test_round_trips_and_stays_one_segment(self, value: str) -> None:
        """Any non-empty string decodes back to itself and its encoding holds no separator or dot."""
        encoded = encode_segment(value)
        assert unquote(encoded, errors="strict") == value
        assert not set(encoded) & set("/?#.=,;:@ \r\n")

    @pytest.mark.parametrize("text", ["1e3", "1000.0", "1.0e+3"])
    def test_an_integral_float_is_the_integer_it_denotes(self, text: str) -> None:
        """JSON `1e3` or `1000.0` (a float once decoded) encodes as `1000`, as the integer would."""
        value = json.loads(text)
        assert isinstance(value, float)
        assert encode_segment(value) == "1000"  # type: ignore[arg-type]
        assert id_text(value) == "1000"
        assert check_id(value, "x") == 1000

    @pytest.mark.parametrize("value", ["", -1, -1.0, True, 1.5, float("nan"), float("inf"), None, b"x"])
    def test_rejects_values_that_are_not_ids(self, value: object) -> None:
        """Empty strings, negative or fractional numbers, booleans and non-id types are refused."""
        with pytest.raises(ValueError, match="non-empty string or a non-negative integer"):
            encode_segment(value)  # type: ignore[arg-type]


class TestSelectors:
    def test_integral_floats_are_stored_as_integers_in_every_form(self) -> None:
        """Every numeric selector field treats `1.0` as `1`: equal selectors, equal path segments."""
        assert UserPointId(77.0) == UserPointId(77)
        assert UserAccount(3.0, 1e2) == UserAccount(3, 100)
        assert UserAccount(3.0, 1e2).path_segment() == "compartment_id=3,user_account_id=100"

    def test_uuid_is_canonicalised(self) -> None:
        """A bare UUID selector is sent in lower case."""
        assert UserPointUuid(UUID.upper()).path_segment() == UUID

    @pytest.mark.parametrize(
        "value", ["not-a-uuid", UUID.replace("-", ""), "{" + UUID + "}", "urn:uuid:" + UUID, UUID + "/.."]
    )
    def test_uuid_rejects_other_forms(self, value: str) -> None:
        """Only the hyphenated 8-4-4-4-12 form is a bare selector."""
        with pytest.raises(ValueError, match="UUID"):
            UserPointUuid(value)

    @pytest.mark.parametrize(
        ("selector", "segment"),
        [
            (UserPointId(UUID), f"user_point_id={UUID}"),
            (UserAgentId("vec:289388396"), "user_agent_id=vec%3A289388396"),
            (UserAgentId("mob:ios:raw:AB-12"), "user_agent_id=mob%3Aios%3Araw%3AAB-12"),
            (UserAccount(1234, "acc/1"), "compartment_id=1234,user_account_id=acc%2F1"),
            (EmailHash("a1b2"), "email_hash=a1b2"),
        ],
    )
    def test_path_segment_forms(self, selector: object, segment: str) -> None:
        """Each selector renders the documented ``key=value`` form with its values encoded."""
        assert selector.path_segment() == segment  # type: ignore[attr-defined]

    @pytest.mark.parametrize(
        "build",
        [
            lambda: UserPointId(""),
            lambda: UserAgentId(-3),
            lambda: UserAccount("", "u"),
            lambda: UserAccount("c", None),  # type: ignore[arg-type]
            lambda: EmailHash(False),
        ],
    )
    def test_invalid_values_are_refused_at_construction(self, build: object) -> None:
        """A selector cannot be built from an empty, negative, boolean or missing value."""
        with pytest.raises(ValueError, match="must be a non-empty string"):
            build()  # type: ignore[operator]


class TestSelectorFromEnvelope:
    @pytest.mark.parametrize(
        ("user_point", "expected"),
        [
            (UUID, UserPointUuid(UUID)),
            ({"user_point_id": UUID}, UserPointId(UUID)),
            ({"user_agent_id": "vec:1"}, UserAgentId("vec:1")),
            ({"compartment_id": 7, "user_account_id": "u"}, UserAccount(7, "u")),
            ({"email_hash": "h"}, EmailHash("h")),
        ],
    )
    def test_each_form(self, user_point: object, expected: object) -> None:
        """Every envelope form maps onto its selector."""
        assert selector_from_envelope(user_point) == expected

    @pytest.mark.parametrize(
        "user_point",
        [
            {},
            {"user_point_id": UUID, "email_hash": "h"},
            {"compartment_id": 7},
            {"user_account_id": "u", "compartment_id": 7, "extra": 1},
            {"unknown": "x"},
            ["user_point_id", UUID],
            42,
            None,
        ],
    )
    def test_bad_shapes_are_value_errors(self, user_point: object) -> None:
        """Anything but a UUID string or an object with exactly one form is a ValueError."""
        with pytest.raises(ValueError, match="user_point"):
            selector_from_envelope(user_point)

    def test_bad_uuid_string_is_a_value_error(self) -> None:
        """A string that is not a UUID is refused."""
        with pytest.raises(ValueError, match="UUID"):
            selector_from_envelope("user_point_id=x")
