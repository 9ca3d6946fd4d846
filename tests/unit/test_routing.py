"""TopicRouter and plan_message: from raw Kafka bytes to a Job to send or a Rejection to dead-letter."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from worker.config import RouteMode, RouteRule
from worker.mics.selectors import EmailHash, UserAccount, UserAgentId, UserPointId, UserPointUuid
from worker.routing import Job, Rejection, TopicRouter, plan_message
from worker.validation import Validators

UUID = "0f8fad5b-d9cb-469f-a165-70867728950e"
DEFAULT_DATAMART = "1509"
OTHER_DATAMART = "7"
ALLOWED = frozenset({DEFAULT_DATAMART, OTHER_DATAMART})

ACTIVITY: dict[str, Any] = {
    "$type": "SITE_VISIT",
    "$session_status": "NO_SESSION",
    "$user_agent_id": "vec:289388396",
    "$events": [{"$ts": 1700000000000, "$event_name": "$page_view", "$properties": {"url": "https://example.com/"}}],
}
PROFILE: dict[str, Any] = {"$compartment_id": 1, "$user_account_id": "acc-1", "tier": "gold"}
CHOICE: dict[str, Any] = {"$processing_id": "42", "$choice_ts": 1700000000000, "$choice_acceptance_value": True}


def activity_envelope(**fields: object) -> dict[str, Any]:
    return {"type": "activity", "body": ACTIVITY, **fields}


def profile_envelope(**fields: object) -> dict[str, Any]:
    return {
        "type": "profile",
        "user_point": {"user_agent_id": "vec:1"},
        "compartment_id": 1,
        "user_account_id": "acc-1",
        "body": PROFILE,
        **fields,
    }


def choice_envelope(**fields: object) -> dict[str, Any]:
    return {"type": "choice", "user_point": UUID, "processing_id": 42, "body": CHOICE, **fields}


@pytest.fixture(scope="module")
def validators() -> Validators:
    """The real compiled validators over the repository's schemas."""
    return Validators.load()


def plan(
    validators: Validators,
    mode: RouteMode | None,
    message: object,
    *,
    default: str | None = DEFAULT_DATAMART,
    allowed: frozenset[str] = ALLOWED,
    max_bytes: int = 1_000_000,
) -> Job | Rejection:
    """Plan one message; `message` is sent as is when it is bytes or None, else serialised compactly."""
    value = message if message is None or isinstance(message, bytes) else orjson.dumps(message)
    return plan_message(
        mode,
        value,
        validators=validators,
        default_datamart_id=default,
        allowed_datamarts=allowed | ({default} if default else set()),
        max_message_bytes=max_bytes,
    )


def rejection(outcome: Job | Rejection) -> Rejection:
    assert isinstance(outcome, Rejection), outcome
    return outcome


def job(outcome: Job | Rejection) -> Job:
    assert isinstance(outcome, Job), outcome
    return outcome


class TestTopicRouter:
    def test_exact_names_win_over_patterns(self) -> None:
        """A topic named exactly takes its own route even when an earlier pattern also matches it."""
        router = TopicRouter((RouteRule("^ev", "envelope"), RouteRule("events", "activity")))
        assert router.mode_for("events") == "activity"
        assert router.mode_for("events-2") == "envelope"

    def test_patterns_apply_in_configuration_order(self) -> None:
        """When several patterns match, the first configured one wins."""
        router = TopicRouter((RouteRule("^ev", "profile"), RouteRule("^events", "choice")))
        assert router.mode_for("events") == "profile"

    def test_patterns_are_anchored_by_their_caret(self) -> None:
        """A ^pattern matches topics that start with it, not topics that merely contain it."""
        router = TopicRouter((RouteRule("^ev", "activity"),))
        assert router.mode_for("evil") == "activity"
        assert router.mode_for("prev") is None

    def test_unknown_topics_have_no_route(self) -> None:
        """A topic matching no rule gets None."""
        router = TopicRouter((RouteRule("events", "activity"), RouteRule("^profiles-", "profile")))
        assert router.mode_for("other") is None
        assert router.mode_for("event") is None

    def test_answers_are_cached_per_topic(self) -> None:
        """Asking twice for the same topic is answered from the cache."""
        router = TopicRouter((RouteRule("^ev", "activity"),))
        assert router.mode_for("events") == router.mode_for("events") == "activity"
        assert router.mode_for.cache_info().hits == 1


class TestPlanJobs:
    def test_bare_activity_is_forwarded_byte_for_byte(self, validators: Validators) -> None:
        """A bare User Activity on an activity topic becomes a Job carrying the original bytes untouched."""
        raw = json.dumps(ACTIVITY, indent=2).encode()
        outcome = job(plan(validators, "activity", raw))
        assert outcome == Job("activity", DEFAULT_DATAMART, raw)
        assert outcome.body is raw

    @pytest.mark.parametrize("mode", ["activity", "envelope"])
    def test_activity_envelope_sends_its_body_re_encoded(self, validators: Validators, mode: RouteMode) -> None:
        """An activity envelope becomes a Job whose body is the compact body, to the datamart it names."""
        raw = json.dumps(activity_envelope(datamart_id=int(OTHER_DATAMART)), indent=2).encode()
        assert job(plan(validators, mode, raw)) == Job("activity", OTHER_DATAMART, orjson.dumps(ACTIVITY))

    def test_activity_envelope_tolerates_an_unused_user_point(self, validators: Validators) -> None:
        """A user_point on an activity envelope is accepted and ignored."""
        outcome = job(plan(validators, "activity", activity_envelope(user_point=UUID)))
        assert outcome.selector is None
        assert outcome.datamart_id == DEFAULT_DATAMART

    @pytest.mark.parametrize("mode", ["profile", "envelope"])
    def test_profile_envelope(self, validators: Validators, mode: RouteMode) -> None:
        """A profile envelope becomes a profile Job with its selector, string ids and re-encoded body."""
        outcome = job(plan(validators, mode, profile_envelope(datamart_id=OTHER_DATAMART, compartment_id=12)))
        assert outcome == Job(
            "profile",
            OTHER_DATAMART,
            orjson.dumps(PROFILE),
            selector=UserAgentId("vec:1"),
            compartment_id="12",
            user_account_id="acc-1",
        )

    @pytest.mark.parametrize("mode", ["choice", "envelope"])
    def test_choice_envelope(self, validators: Validators, mode: RouteMode) -> None:
        """A choice envelope becomes a choice Job with its selector and processing id, to the default datamart."""
        outcome = job(plan(validators, mode, choice_envelope()))
        assert outcome == Job(
            "choice", DEFAULT_DATAMART, orjson.dumps(CHOICE), selector=UserPointUuid(UUID), processing_id="42"
        )

    @pytest.mark.parametrize(
        ("user_point", "selector"),
        [
            (UUID.upper(), UserPointUuid(UUID)),
            ({"user_point_id": "up-1"}, UserPointId("up-1")),
            ({"user_point_id": 77}, UserPointId(77)),
            ({"user_agent_id": "mob:ios:raw:ABC"}, UserAgentId("mob:ios:raw:ABC")),
            ({"compartment_id": 3, "user_account_id": "acc/1"}, UserAccount(3, "acc/1")),
            ({"email_hash": "5f4dcc3b"}, EmailHash("5f4dcc3b")),
        ],
        ids=["uuid", "user_point_id", "numeric user_point_id", "user_agent_id", "user_account", "email_hash"],
    )
    def test_every_selector_form(self, validators: Validators, user_point: object, selector: object) -> None:
        """Each user_point form becomes the matching selector (a UUID in canonical lower case)."""
        assert job(plan(validators, "profile", profile_envelope(user_point=user_point))).selector == selector
        assert job(plan(validators, "choice", choice_envelope(user_point=user_point))).selector == selector

    @pytest.mark.parametrize(
        ("user_point", "selector"),
        [
            ({"user_point_id": 1e3}, UserPointId(1000)),
            ({"compartment_id": 3.0, "user_account_id": 1.0}, UserAccount(3, 1)),
        ],
        ids=["exponent", "point-zero"],
    )
    def test_integral_float_ids_are_the_integers_they_denote(
        self, validators: Validators, user_point: object, selector: object
    ) -> None:
        """`1e3` and `1.0` are accepted in a selector as they are in datamart_id, and become the same path text."""
        profile = job(plan(validators, "profile", profile_envelope(user_point=user_point, compartment_id=1.0)))
        assert profile.selector == selector
        assert profile.compartment_id == "1"
        choice = job(plan(validators, "choice", choice_envelope(user_point=user_point, processing_id=42.0)))
        assert (choice.selector, choice.processing_id) == (selector, "42")
        activity = job(plan(validators, "envelope", activity_envelope(datamart_id=7.0)))
        assert activity.datamart_id == OTHER_DATAMART

    def test_a_bare_activity_with_custom_type_and_body_fields_is_an_activity(self, validators: Validators) -> None:
        """Its `$` root keys make it an activity: it is forwarded byte for byte, not read as an envelope."""
        value = orjson.dumps({**ACTIVITY, "type": "purchase", "body": {"sku": "A-1"}})
        outcome = job(plan(validators, "activity", value))
        assert (outcome.route, outcome.body) == ("activity", value)

    def test_an_object_with_type_and_body_and_no_dollar_key_is_an_envelope(self, validators: Validators) -> None:
        """Without `$` root keys the same shape is an envelope, validated as one (a bad type is named there)."""
        assert job(plan(validators, "activity", activity_envelope())).body == orjson.dumps(ACTIVITY)
        outcome = rejection(plan(validators, "activity", {"type": "purchase", "body": {}}))
        assert outcome.schema_error is not None
        assert (outcome.schema_error.path, outcome.schema_error.rule) == ("$.type", "enum")

    def test_nulls_are_forwarded_as_sent(self, validators: Validators) -> None:
        """An activity accepted because its nulls count as absent is still forwarded with its nulls."""
        value = orjson.dumps({**ACTIVITY, "$user_account_id": None, "$location": None})
        assert job(plan(validators, "activity", value)).body == value
        envelope = activity_envelope(body={**ACTIVITY, "$email_hash": None}, datamart_id=None)
        outcome = job(plan(validators, "envelope", envelope))
        assert orjson.loads(outcome.body)["$email_hash"] is None
        assert outcome.datamart_id == DEFAULT_DATAMART

    def test_a_datamart_is_required_only_when_there_is_no_default(self, validators: Validators) -> None:
        """Without a default, an envelope naming an allowed datamart still goes through."""
        outcome = job(plan(validators, "profile", profile_envelope(datamart_id=OTHER_DATAMART), default=None))
        assert outcome.datamart_id == OTHER_DATAMART


class TestPlanRejections:
    def test_a_topic_without_route_is_unroutable(self, validators: Validators) -> None:
        """With no route for the topic the message is unroutable, whatever it holds."""
        assert rejection(plan(validators, None, ACTIVITY)) == Rejection(
            "unroutable", "no route is configured for this topic", "route"
        )

    @pytest.mark.parametrize(
        ("value", "detail"),
        [
            (None, "empty value"),
            (b"", "empty value"),
            (b'{"$type":', "invalid JSON"),
            (b'{"$type":"SITE_VISIT","$type":"EMAIL"}', "repeats a key"),
            (b"\xef\xbb\xbf{}", "invalid JSON"),
        ],
        ids=["tombstone", "empty", "truncated", "duplicate key", "bom"],
    )
    def test_undecodable_values_are_decode_errors(
        self, validators: Validators, value: bytes | None, detail: str
    ) -> None:
        """Empty, malformed or ambiguous bytes are rejected at the decode stage with the reason."""
        outcome = rejection(plan(validators, "activity", value))
        assert (outcome.reason, outcome.stage, outcome.route) == ("decode_error", "decode", None)
        assert detail in outcome.message

    def test_an_oversized_value_is_a_decode_error(self, validators: Validators) -> None:
        """A value over max_message_bytes is rejected before it is parsed."""
        outcome = rejection(plan(validators, "activity", ACTIVITY, max_bytes=50))
        assert (outcome.reason, outcome.stage) == ("decode_error", "decode")
        assert "50-byte limit" in outcome.message

    def test_an_invalid_bare_activity_names_the_offending_path(self, validators: Validators) -> None:
        """A bare activity failing its schema is schema_invalid with the path inside the activity."""
        bad = {**ACTIVITY, "$events": [{"$ts": "yesterday", "$event_name": "x", "$properties": {}}]}
        outcome = rejection(plan(validators, "activity", bad))
        assert (outcome.reason, outcome.stage, outcome.route) == ("schema_invalid", "validate", "activity")
        assert outcome.schema_error is not None
        assert (outcome.schema_error.path, outcome.schema_error.rule) == ("$.$events[0].$ts", "type")
        assert outcome.message == outcome.schema_error.message

    def test_a_rejection_carries_every_schema_error(self, validators: Validators) -> None:
        """All defects of a body are on the rejection, under `$.body`, the first being `schema_error`."""
        body = {**CHOICE, "$choice_ts": -1, "$choice_acceptance_value": "yes"}
        outcome = rejection(plan(validators, "choice", choice_envelope(body=body)))
        assert outcome.schema_errors is not None
        assert outcome.schema_errors.total == 2
        assert {(e.path, e.rule) for e in outcome.schema_errors.errors} == {
            ("$.body.$choice_ts", "minimum"),
            ("$.body.$choice_acceptance_value", "type"),
        }
        assert outcome.schema_error == outcome.schema_errors.first
        assert outcome.schema_errors.summary().startswith("2 errors: $.body.")

    def test_a_non_object_on_an_activity_topic_is_schema_invalid(self, validators: Validators) -> None:
        """JSON that is not an object is not an activity: the error is at the root."""
        outcome = rejection(plan(validators, "activity", [ACTIVITY]))
        assert outcome.reason == "schema_invalid"
        assert outcome.schema_error is not None
        assert (outcome.schema_error.path, outcome.schema_error.rule) == ("$", "type")

    def test_a_bare_activity_on_an_envelope_topic_is_schema_invalid(self, validators: Validators) -> None:
        """An envelope topic accepts envelopes only: a bare activity lacks the envelope's fields."""
        outcome = rejection(plan(validators, "envelope", ACTIVITY))
        assert (outcome.reason, outcome.route) == ("schema_invalid", None)
        assert outcome.schema_error is not None
        assert outcome.schema_error.rule in {"required", "additionalProperties"}

    @pytest.mark.parametrize(
        ("envelope", "path", "rule"),
        [
            ({k: v for k, v in profile_envelope().items() if k != "user_account_id"}, "$.user_account_id", "required"),
            ({k: v for k, v in choice_envelope().items() if k != "processing_id"}, "$.processing_id", "required"),
            (profile_envelope(type="profiles"), "$.type", "enum"),
            (profile_envelope(source="crm"), "$.source", "additionalProperties"),
            (choice_envelope(compartment_id=3), "$.compartment_id", "properties"),
            (profile_envelope(user_point="not-a-uuid"), "$.user_point", "pattern"),
            (profile_envelope(user_point={"user_agent_id": "a", "email_hash": "b"}), "$.user_point", "oneOf"),
            (profile_envelope(datamart_id=""), "$.datamart_id", "minLength"),
            (profile_envelope(compartment_id=-1), "$.compartment_id", "minimum"),
            (activity_envelope(body=[ACTIVITY]), "$.body", "type"),
        ],
        ids=[
            "profile lacks user_account_id",
            "choice lacks processing_id",
            "unknown type",
            "unknown field",
            "field of another type",
            "bad uuid",
            "two selector forms",
            "empty datamart",
            "negative id",
            "body not an object",
        ],
    )
    def test_an_invalid_envelope_names_the_envelope_path(
        self, validators: Validators, envelope: dict[str, Any], path: str, rule: str
    ) -> None:
        """An envelope failing the envelope schema is schema_invalid with the path and rule in the envelope."""
        outcome = rejection(plan(validators, "envelope", envelope))
        assert (outcome.reason, outcome.stage) == ("schema_invalid", "validate")
        assert outcome.schema_error is not None
        assert (outcome.schema_error.path, outcome.schema_error.rule) == (path, rule)

    @pytest.mark.parametrize(
        ("envelope", "route", "path", "rule"),
        [
            (
                activity_envelope(body={**ACTIVITY, "$events": [{"$ts": "x", "$event_name": "a", "$properties": {}}]}),
                "activity",
                "$.body.$events[0].$ts",
                "type",
            ),
            (
                activity_envelope(body={k: v for k, v in ACTIVITY.items() if k != "$user_agent_id"}),
                "activity",
                "$.body",
                "anyOf",
            ),
            (activity_envelope(body={**ACTIVITY, "$topics": {"a b": 1}}), "activity", '$.body.$topics["a b"]', "type"),
            (profile_envelope(body={"$creation_ts": "today"}), "profile", "$.body.$creation_ts", "type"),
            (choice_envelope(body={"$choice_ts": 1}), "choice", "$.body.$processing_id", "required"),
        ],
        ids=["nested activity field", "activity root", "bracketed key", "profile field", "choice required"],
    )
    def test_an_invalid_body_names_the_path_under_body(
        self, validators: Validators, envelope: dict[str, Any], route: str, path: str, rule: str
    ) -> None:
        """A body failing its type's schema is schema_invalid with the body's error path prefixed by $.body."""
        outcome = rejection(plan(validators, "envelope", envelope))
        assert (outcome.reason, outcome.stage, outcome.route) == ("schema_invalid", "validate", route)
        assert outcome.schema_error is not None
        assert (outcome.schema_error.path, outcome.schema_error.rule) == (path, rule)

    @pytest.mark.parametrize(
        ("mode", "envelope"),
        [
            ("choice", profile_envelope()),
            ("activity", profile_envelope()),
            ("profile", activity_envelope()),
            ("profile", choice_envelope()),
        ],
        ids=["profile on choice topic", "profile on activity topic", "activity on profile topic", "choice on profile"],
    )
    def test_an_envelope_of_another_type_is_unroutable(
        self, validators: Validators, mode: RouteMode, envelope: dict[str, Any]
    ) -> None:
        """On a typed topic, an envelope of another type is unroutable, naming the envelope's type."""
        outcome = rejection(plan(validators, mode, envelope))
        assert (outcome.reason, outcome.stage, outcome.route) == ("unroutable", "route", envelope["type"])
        assert repr(mode) in outcome.message

    @pytest.mark.parametrize(
        "envelope",
        [
            activity_envelope(datamart_id="999"),
            profile_envelope(datamart_id=999),
            choice_envelope(datamart_id="1509/../999"),
        ],
        ids=["activity", "profile", "choice path trick"],
    )
    def test_a_datamart_outside_the_allowed_list_is_forbidden(
        self, validators: Validators, envelope: dict[str, Any]
    ) -> None:
        """An envelope naming a datamart the configuration does not allow is forbidden_datamart."""
        outcome = rejection(plan(validators, "envelope", envelope))
        assert (outcome.reason, outcome.stage, outcome.route) == ("forbidden_datamart", "route", envelope["type"])

    @pytest.mark.parametrize(
        ("mode", "message"),
        [("activity", ACTIVITY), ("envelope", activity_envelope()), ("profile", profile_envelope())],
        ids=["bare activity", "activity envelope", "profile envelope"],
    )
    def test_no_datamart_and_no_default_is_forbidden(
        self, validators: Validators, mode: RouteMode, message: dict[str, Any]
    ) -> None:
        """A message that names no datamart, when there is no default, is forbidden_datamart."""
        outcome = rejection(plan(validators, mode, message, default=None))
        assert (outcome.reason, outcome.stage) == ("forbidden_datamart", "route")
        assert "no default" in outcome.message


class TestPlanNeverRaises:
    @settings(max_examples=100, deadline=None)
    @given(
        mode=st.sampled_from([None, "activity", "profile", "choice", "envelope"]),
        value=st.one_of(
            st.none(),
            st.binary(max_size=64),
            st.recursive(
                st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**63) | st.text(max_size=8),
                lambda children: (
                    st.lists(children, max_size=3)
                    | st.dictionaries(
                        st.sampled_from(["type", "body", "datamart_id", "user_point", "processing_id", "$type", "x"]),
                        children,
                        max_size=4,
                    )
                ),
                max_leaves=12,
            ).map(orjson.dumps),
        ),
    )
    def test_every_input_becomes_a_job_or_a_rejection(
        self, validators: Validators, mode: RouteMode | None, value: bytes | None
    ) -> None:
        """Arbitrary bytes and JSON documents, on any route mode, end as a Job or a Rejection, never an exception."""
        assert isinstance(plan(validators, mode, value), Job | Rejection)

    @pytest.mark.parametrize("make_envelope", [profile_envelope, activity_envelope], ids=["profile", "activity"])
    def test_a_deeply_nested_custom_value_does_not_escape_as_an_exception(
        self, validators: Validators, make_envelope: Any
    ) -> None:
        """An envelope body with a custom value nested 300 deep ends as a Job or a Rejection."""
        depth = 300
        deep = b'{"a":' * depth + b"1" + b"}" * depth
        body = {**(PROFILE if make_envelope is profile_envelope else ACTIVITY), "custom": "PLACEHOLDER"}
        raw = orjson.dumps(make_envelope(body=body)).replace(b'"PLACEHOLDER"', deep)
        assert isinstance(plan(validators, "envelope", raw, max_bytes=10_000_000), Job | Rejection)
