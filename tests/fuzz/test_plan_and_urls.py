"""Fuzzing decode → validate → route → request building: every input ends in exactly one outcome, on target.

`plan_message` must never raise: any bytes become a `Job` (what to send) or a `Rejection` (why it is
dead-lettered). A Job's URL, built by `ApiPaths` under any configured base, must keep the base's scheme, host,
port and path prefix, carry no query or fragment, have exactly its route's segments, and decode back to exactly
the values the message named. `MicsClient` must then send it (never refuse a planned Job) to that same URL.

Bounded: a fixed number of examples per property, no deadline (the machine is shared).
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from worker.config import RouteMode
from worker.mics.auth import ApiToken
from worker.mics.client import ApiPaths, MicsClient
from worker.mics.errors import OutcomeKind
from worker.mics.selectors import EmailHash, UserAccount, UserAgentId, UserPointId, UserPointSelector, UserPointUuid
from worker.mics.transport import RawResponse
from worker.routing import Job, Rejection, plan_message
from worker.sender import send_job
from worker.validation import Validators

BOUNDED = settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SMALLER = settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CLIENT = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MODES: tuple[RouteMode | None, ...] = ("activity", "profile", "choice", "envelope", None)
BASES = ("https://api.mediarithmics.com", "http://127.0.0.1:8080", "https://gateway.example/mics/v2/")
REASONS = frozenset({"decode_error", "schema_invalid", "unroutable", "forbidden_datamart"})
SEGMENTS = {"activity": 2, "profile": 6, "choice": 5}  # after /v1/datamarts/, the datamart included

VALIDATORS = Validators.load()

# -- strategies ----------------------------------------------------------------------------------------------------

# Text that tries to escape a path segment: separators, encodings, dot-segments, controls, look-alikes.
NASTY_TEXT = st.sampled_from(
    ["..", ".", "../../admin", "a/b", "%2F", "%252F", "?q=1", "#f", "a\r\nb", "\x00", "\u2215", "\uff0f", "\u202e",
     "a,b=c", "user_point_id=1", " ", "", "\u0085", "é", "😀", "1509", "x" * 300]
)  # fmt: skip
TEXT = st.one_of(NASTY_TEXT, st.text(max_size=40))
IDS = st.one_of(
    TEXT,
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.lists(st.integers(), max_size=2),
)
UUIDS = st.one_of(st.uuids().map(str), st.uuids().map(lambda u: str(u).upper()), TEXT)
USER_POINTS = st.one_of(
    UUIDS,
    st.fixed_dictionaries({"user_point_id": IDS}),
    st.fixed_dictionaries({"user_agent_id": IDS}),
    st.fixed_dictionaries({"email_hash": IDS}),
    st.fixed_dictionaries({"compartment_id": IDS, "user_account_id": IDS}),
    st.dictionaries(TEXT, IDS, max_size=3),
    IDS,
)
JSON_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(), TEXT)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(TEXT, children, max_size=4)),
    max_leaves=20,
)

ACTIVITY_BODY: dict[str, Any] = {
    "$ts": 1764000000000,
    "$type": "SITE_VISIT",
    "$session_status": "NO_SESSION",
    "$user_agent_id": "vec:1",
    "$events": [{"$ts": 1764000000000, "$event_name": "$page_view", "$properties": {}}],
}


# Ids the envelope schema accepts: text of 1..256 characters with no C0 control or DEL (separators, encodings,
# dot-segments and look-alikes included), or an integer in [0, 2**63 - 1]. No lone surrogates: JSON text cannot
# carry them as valid UTF-8, so the decoder refuses them before the schema sees them.
CONTROLS = "".join(map(chr, range(0x20))) + "\x7f"
VALID_TEXT_IDS = st.one_of(
    st.sampled_from(["../../admin", "a/b", "%2F", "%252F", "%2e%2e", "?q=1", "#f", "\u2215", "\uff0f", "\u202e",
                     "a,b=c", "user_point_id=1", " ", "\u0085", "é", "😀", "1509", "x" * 256, "..", "."]),
    st.text(st.characters(exclude_categories=["Cs"], exclude_characters=CONTROLS), min_size=1, max_size=40),
)  # fmt: skip
VALID_IDS = st.one_of(VALID_TEXT_IDS, st.integers(min_value=0, max_value=2**63 - 1))
VALID_USER_POINTS = st.one_of(
    st.uuids().map(str),
    st.uuids().map(lambda u: str(u).upper()),
    st.fixed_dictionaries({"user_point_id": VALID_IDS}),
    st.fixed_dictionaries({"user_agent_id": VALID_TEXT_IDS}),
    st.fixed_dictionaries({"email_hash": VALID_TEXT_IDS}),
    st.fixed_dictionaries({"compartment_id": VALID_IDS, "user_account_id": VALID_IDS}),
)
# Custom body fields the decoder takes as they are: no NaN or Infinity, integers within 64 bits.
CUSTOM_VALUES = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**63), 2**63 - 1),
        st.floats(allow_nan=False, allow_infinity=False),
        VALID_TEXT_IDS,
    ),
    lambda children: st.one_of(st.lists(children, max_size=3), st.dictionaries(VALID_TEXT_IDS, children, max_size=3)),
    max_leaves=8,
)
# What a broken field is replaced with: anything, valid or not.
ANY_VALUE = st.one_of(IDS, USER_POINTS, JSON_VALUES)


@dataclass(frozen=True, slots=True)
class Drawn:
    """A fuzzed envelope, and whether every field was drawn valid (then it must plan to a Job)."""

    envelope: dict[str, Any]
    valid: bool


@st.composite
def envelopes(draw: st.DrawFn) -> Drawn:
    """A valid envelope of each type with fuzzed ids and selector; about one in five has a field broken or removed.

    Most draws are valid on purpose: only a Job reaches the URL assertions, and the planner's refusals are fuzzed
    on their own (TestPlanNeverRaises). A broken field keeps the refusal paths in the mix here too.
    """
    kind = draw(st.sampled_from(["activity", "profile", "choice"]))
    envelope: dict[str, Any] = {"type": kind}
    # Hypothesis favours the ends of a range (0 and the top), so a rare branch is a value in the middle.
    if draw(st.integers(0, 3)) != 2:  # otherwise the default datamart
        envelope["datamart_id"] = draw(VALID_IDS)
    if kind != "activity" or draw(st.integers(0, 3)) == 2:  # an activity tolerates an unused user_point
        envelope["user_point"] = draw(VALID_USER_POINTS)
    if kind == "profile":
        envelope["compartment_id"] = draw(VALID_IDS)
        envelope["user_account_id"] = draw(VALID_IDS)
    if kind == "choice":
        envelope["processing_id"] = draw(VALID_IDS)
    body: dict[str, Any] = {
        "activity": dict(ACTIVITY_BODY),
        "profile": {},
        "choice": {"$processing_id": envelope.get("processing_id"), "$choice_ts": 1764000000000},
    }[kind]
    body.update(draw(st.dictionaries(st.sampled_from(["extra", "custom"]), CUSTOM_VALUES, max_size=2)))
    envelope["body"] = body
    if draw(st.integers(0, 4)) != 2:
        return Drawn(envelope, valid=True)
    broken = draw(st.sampled_from(sorted(envelope)))
    if draw(st.booleans()):
        del envelope[broken]
    else:
        envelope[broken] = draw(ANY_VALUE)
    return Drawn(envelope, valid=False)


def dumps(document: object) -> bytes:
    """JSON text as any producer might write it: NaN, Infinity and huge integers included."""
    return json.dumps(document, allow_nan=True).encode()


# -- the properties -----------------------------------------------------------------------------------------------


def plan(mode: RouteMode | None, value: bytes | None, allowed: frozenset[str]) -> Job | Rejection:
    return plan_message(
        mode,
        value,
        validators=VALIDATORS,
        default_datamart_id="1509",
        allowed_datamarts=allowed,
        max_message_bytes=100_000,
    )


def check_outcome(outcome: object) -> None:
    """Exactly one outcome: a Job for a known route, or a Rejection with a known reason."""
    assert isinstance(outcome, Job) != isinstance(outcome, Rejection)
    if isinstance(outcome, Rejection):
        assert outcome.reason in REASONS
        assert outcome.message
    else:
        assert isinstance(outcome, Job)
        assert outcome.route in SEGMENTS


def built_url(paths: ApiPaths, job: Job) -> str:
    if job.route == "activity":
        return paths.activity(job.datamart_id)
    assert job.selector is not None
    if job.route == "profile":
        assert job.compartment_id is not None
        assert job.user_account_id is not None
        return paths.profile(job.datamart_id, job.selector, job.compartment_id, job.user_account_id)
    assert job.processing_id is not None
    return paths.choice(job.datamart_id, job.selector, job.processing_id)


def selector_values(selector: UserPointSelector) -> dict[str, str]:
    if isinstance(selector, UserPointUuid):
        return {"": selector.value}
    if isinstance(selector, UserAccount):
        return {"compartment_id": str(selector.compartment_id), "user_account_id": str(selector.user_account_id)}
    name = {UserPointId: "user_point_id", UserAgentId: "user_agent_id", EmailHash: "email_hash"}[type(selector)]
    return {name: str(selector.value)}


def decode_selector(segment: str) -> dict[str, str]:
    """Split a selector segment on its literal `,` and `=` (values have theirs encoded), then decode each value."""
    if "=" not in segment:
        return {"": unquote(segment)}
    pairs = [part.split("=") for part in segment.split(",")]
    assert all(len(pair) == 2 for pair in pairs), segment
    return {name: unquote(value) for name, value in pairs}


def is_dot_segment(segment: str) -> bool:
    """`.` or `..`, literally or percent-encoded: the WHATWG URL standard (browsers, Node, many proxies) resolves
    `%2e%2e` like `..`, so an encoded dot-segment still climbs out of its place."""
    return segment.lower().replace("%2e", ".") in (".", "..")


def check_url_on_target(base: str, url: str, job: Job) -> None:
    """The URL keeps the base's origin and prefix, has no query, and decodes back to exactly the job's values.

    The prefix is spelled here from the configured base, not read back from ApiPaths: a builder that lost the
    base's port or path prefix would otherwise agree with itself.
    """
    prefix = base.rstrip("/") + "/v1/datamarts/"
    assert url.startswith(prefix), (url, base)
    assert "?" not in url
    assert "#" not in url
    segments = url[len(prefix) :].split("/")
    assert len(segments) == SEGMENTS[job.route]
    for segment in segments:
        assert segment
        assert not is_dot_segment(segment), segment
        assert all(ord(char) < 128 and not char.isspace() for char in segment)
    assert unquote(segments[0]) == job.datamart_id
    if job.route == "activity":
        assert segments[1] == "user_activities"
        return
    assert job.selector is not None
    assert segments[1] == "user_points"
    assert decode_selector(segments[2]) == selector_values(job.selector)
    if job.route == "profile":
        assert segments[3] == "user_profiles"
        assert [unquote(s.partition("=")[2]) for s in segments[4:6]] == [job.compartment_id, job.user_account_id]
        assert [s.partition("=")[0] for s in segments[4:6]] == ["compartment_id", "user_account_id"]
    else:
        assert segments[3] == "user_choices"
        assert segments[4].partition("=")[0] == "processing_id"
        assert unquote(segments[4].partition("=")[2]) == job.processing_id


class TestPlanNeverRaises:
    @BOUNDED
    @given(mode=st.sampled_from(MODES), value=st.one_of(st.none(), st.binary(max_size=2000)))
    def test_arbitrary_bytes_end_as_exactly_one_outcome(self, mode: RouteMode | None, value: bytes | None) -> None:
        """Any bytes on any topic become a Job or a Rejection with a known reason; nothing is raised."""
        check_outcome(plan(mode, value, frozenset({"1509"})))

    @SMALLER
    @given(mode=st.sampled_from(MODES), document=JSON_VALUES)
    def test_arbitrary_json_ends_as_exactly_one_outcome(self, mode: RouteMode | None, document: object) -> None:
        """Any JSON value (NaN, Infinity and huge integers included) becomes a Job or a Rejection."""
        check_outcome(plan(mode, dumps(document), frozenset({"1509"})))


def expects_a_job(drawn: Drawn, allowed: frozenset[str]) -> bool:
    """A valid envelope on an allowed datamart (or none: the default) must plan to a Job."""
    named = drawn.envelope.get("datamart_id")
    return drawn.valid and (named is None or str(named) in allowed)


def allowed_for(drawn: Drawn, allow_named: bool) -> frozenset[str]:
    """The default datamart, and the named one when allowed: a configuration may allow odd ids (not . or ..,
    which no URL can carry as a segment)."""
    named = drawn.envelope.get("datamart_id")
    if allow_named and isinstance(named, str | int) and not isinstance(named, bool) and not is_dot_segment(str(named)):
        return frozenset({"1509", str(named)})
    return frozenset({"1509"})


def check_mostly_jobs(tally: Counter[str], examples: int) -> None:
    """Most fuzzed envelopes reached the URL assertions: a strategy that drifted to rejections fails here."""
    assert tally["job"] + tally["rejection"] >= examples, tally
    assert tally["job"] >= 0.6 * (tally["job"] + tally["rejection"]), tally


class TestUrlsStayOnTarget:
    def test_every_planned_job_builds_a_url_under_the_configured_prefix(self) -> None:
        """A Job from a fuzzed envelope builds a URL on the base's origin and prefix that decodes to its values;
        every valid envelope on an allowed datamart is a Job, and most draws get that far."""
        tally: Counter[str] = Counter()

        @BOUNDED
        @given(drawn=envelopes(), base=st.sampled_from(BASES), allow_named=st.integers(0, 9).map(lambda n: n != 4))
        def planned(drawn: Drawn, base: str, allow_named: bool) -> None:
            allowed = allowed_for(drawn, allow_named)
            outcome = plan("envelope", dumps(drawn.envelope), allowed)
            check_outcome(outcome)
            if expects_a_job(drawn, allowed):
                assert isinstance(outcome, Job), outcome
            if isinstance(outcome, Job):
                tally["job"] += 1
                check_url_on_target(base, built_url(ApiPaths(base), outcome), outcome)
            else:
                tally["rejection"] += 1

        planned()
        check_mostly_jobs(tally, BOUNDED.max_examples)

    def test_the_client_sends_every_planned_job_to_its_built_url(self) -> None:
        """MicsClient never refuses a planned Job and sends it exactly where ApiPaths says, with the body as is."""
        tally: Counter[str] = Counter()

        @CLIENT
        @given(drawn=envelopes(), base=st.sampled_from(BASES))
        def sent(drawn: Drawn, base: str) -> None:
            outcome = plan("envelope", dumps(drawn.envelope), allowed_for(drawn, allow_named=True))
            if not isinstance(outcome, Job):
                tally["rejection"] += 1
                return
            tally["job"] += 1
            transport = RecordingTransport()
            client = MicsClient(transport, base, ApiToken("fuzz-token"))
            result = asyncio.run(send_job(client, outcome))
            assert result.kind is OutcomeKind.SUCCESS
            assert len(transport.sent) == 1
            method, url, body = transport.sent[0]
            assert url == built_url(ApiPaths(base), outcome)
            assert method == ("POST" if outcome.route == "activity" else "PUT")
            assert body == outcome.body
            check_url_on_target(base, url, outcome)

        sent()
        check_mostly_jobs(tally, CLIENT.max_examples)


class TestDotSegments:
    @pytest.mark.parametrize("datamart", [".", ".."])
    def test_a_dot_datamart_never_becomes_a_whole_path_segment(self, datamart: str) -> None:
        """A datamart id that is a dot-segment is refused when building its URL."""
        paths = ApiPaths("https://api.mediarithmics.com")
        try:
            url = paths.activity(datamart)
        except ValueError:
            return
        assert not is_dot_segment(url[len(paths.prefix) :].split("/")[0])


class TestNumbersInIds:
    @pytest.mark.parametrize("value", [1.0, 1509.0, 1e3])
    def test_an_integral_float_id_is_refused_or_sent_as_the_integer(self, value: float) -> None:
        """An id written as an integral float is refused as schema_invalid or sent as the integer, never as "1.0"."""
        envelope = {
            "type": "profile",
            "user_point": {"user_agent_id": "vec:1"},
            "compartment_id": value,
            "user_account_id": "u",
            "body": {},
        }
        outcome = plan("envelope", orjson.dumps(envelope), frozenset({"1509"}))
        refused = isinstance(outcome, Rejection) and outcome.reason == "schema_invalid"
        sent_as_integer = isinstance(outcome, Job) and outcome.compartment_id == str(int(value))
        assert refused or sent_as_integer


class RecordingTransport:
    """A transport that answers 200 to everything and remembers what it was asked to send."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, bytes | None]] = []

    async def request(self, method: str, url: str, headers: Mapping[str, str], body: bytes | None) -> RawResponse:
        self.sent.append((method, url, body))
        return RawResponse(200, {}, b'{"status":"ok","data":{}}')

    async def aclose(self) -> None:
        return None
