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
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

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


@st.composite
def envelopes(draw: st.DrawFn) -> dict[str, Any]:
    """An envelope near the valid ones: a real type and body, with fuzzed ids and selector (sometimes omitted)."""
    kind = draw(st.sampled_from(["activity", "profile", "choice"]))
    envelope: dict[str, Any] = {"type": draw(st.one_of(st.just(kind), TEXT))}
    optional = {
        "datamart_id": IDS,
        "user_point": USER_POINTS,
        "compartment_id": IDS,
        "user_account_id": IDS,
        "processing_id": IDS,
    }
    wanted = {"activity": {"datamart_id"}, "profile": set(optional) - {"processing_id"}}.get(
        kind, {"datamart_id", "user_point", "processing_id"}
    )
    for name, strategy in optional.items():
        if name in wanted and draw(st.integers(0, 9)) > 0:
            envelope[name] = draw(strategy)
    body: dict[str, Any] = {
        "activity": dict(ACTIVITY_BODY),
        "profile": {},
        "choice": {"$processing_id": envelope.get("processing_id", "1"), "$choice_ts": 1764000000000},
    }[kind]
    body.update(draw(st.dictionaries(st.sampled_from(["extra", "$ts", "$type"]), JSON_SCALARS, max_size=2)))
    envelope["body"] = body
    return envelope


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
    """The URL keeps the base's origin and prefix, has no query, and decodes back to exactly the job's values."""
    prefix = ApiPaths(base).prefix
    assert url.startswith(prefix)
    parts, base_parts = urlsplit(url), urlsplit(prefix)
    assert (parts.scheme, parts.netloc) == (base_parts.scheme, base_parts.netloc)
    assert parts.query == ""
    assert parts.fragment == ""
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


class TestUrlsStayOnTarget:
    @BOUNDED
    @given(envelope=envelopes(), base=st.sampled_from(BASES), allow_named=st.booleans())
    def test_every_planned_job_builds_a_url_under_the_configured_prefix(
        self, envelope: dict[str, Any], base: str, allow_named: bool
    ) -> None:
        """A Job from a fuzzed envelope builds a URL on the base's origin and prefix that decodes to its values."""
        allowed = {"1509"}
        named = envelope.get("datamart_id")
        if (
            allow_named
            and isinstance(named, str | int)
            and not isinstance(named, bool)
            and not is_dot_segment(str(named))
        ):
            allowed.add(str(named))  # a configuration may allow odd datamart ids: the URL must still hold
        outcome = plan("envelope", dumps(envelope), frozenset(allowed))
        check_outcome(outcome)
        if isinstance(outcome, Job):
            check_url_on_target(base, built_url(ApiPaths(base), outcome), outcome)

    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(envelope=envelopes(), base=st.sampled_from(BASES))
    def test_the_client_sends_every_planned_job_to_its_built_url(self, envelope: dict[str, Any], base: str) -> None:
        """MicsClient never refuses a planned Job and sends it exactly where ApiPaths says, with the body as is."""
        named = envelope.get("datamart_id")
        allowed = {"1509"} | ({named} if isinstance(named, str) and not is_dot_segment(named) else set())
        outcome = plan("envelope", dumps(envelope), frozenset(allowed))
        if not isinstance(outcome, Job):
            return
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
