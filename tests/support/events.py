"""Realistic sample events for the demo, the integration tests and the benchmark, each carrying a ledger id.

Every generated message has an id that survives to wherever it ends: the activity's `$unique_key`, or an `event_id`
property of a profile or choice body. At the sandbox and in the DLQ the ledger finds each message by that id.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import orjson

__all__ = ["MixSpec", "SampleMessage", "activity", "choice_envelope", "generate", "ledger_id_of", "profile_envelope"]

_EVENT_NAMES = ("$page_view", "$item_view", "$basket_view", "$transaction_confirmed", "$home_view", "search")
_DEMO_TS = 1_764_000_000_000


@dataclass(frozen=True, slots=True)
class SampleMessage:
    """One message to produce: its ledger id, key, value, and the fate the generator intended."""

    ledger_id: str
    key: bytes
    value: bytes
    route: str  # activity, profile, choice
    expected: str  # "delivered" or the dead-letter reason the worker should give


@dataclass(frozen=True, slots=True)
class MixSpec:
    """The share of each kind of message in a generated stream (the rest are activities)."""

    profiles: float = 0.15
    choices: float = 0.15
    invalid: float = 0.02
    users: int = 500


def activity(ledger_id: str, user: int, rng: random.Random, events: int = 3) -> dict[str, object]:
    """A site visit with several events and identifiers, about 600 bytes of JSON."""
    ts = _DEMO_TS + rng.randrange(86_400_000)
    return {
        "$ts": ts,
        "$type": "SITE_VISIT",
        "$session_status": "NO_SESSION",
        "$unique_key": ledger_id,
        "$site_id": "1023",
        "$user_identifiers": [
            {"$type": "USER_AGENT", "$user_agent_id": f"vec:{100000 + user}"},
            {"$type": "USER_ACCOUNT", "$compartment_id": "1", "$user_account_id": f"user-{user}"},
        ],
        "$origin": {"$source": "newsletter", "$channel": "email", "$campaign_id": "77"},
        "$events": [
            {
                "$ts": ts + index * 1000,
                "$event_name": rng.choice(_EVENT_NAMES),
                "$properties": {"$url": f"https://shop.example/p/{rng.randrange(1000)}", "position": index},
            }
            for index in range(events)
        ],
    }


def profile_envelope(ledger_id: str, user: int) -> dict[str, object]:
    """A profile update for a user account, selected by its user agent."""
    return {
        "type": "profile",
        "user_point": {"user_agent_id": f"vec:{100000 + user}"},
        "compartment_id": "1",
        "user_account_id": f"user-{user}",
        "body": {"$compartment_id": 1, "$user_account_id": f"user-{user}", "event_id": ledger_id, "tier": "gold"},
    }


def choice_envelope(ledger_id: str, user: int, accepted: bool) -> dict[str, object]:
    """A consent choice for processing 42, selected by the user account."""
    return {
        "type": "choice",
        "user_point": {"compartment_id": "1", "user_account_id": f"user-{user}"},
        "processing_id": "42",
        "body": {
            "$processing_id": "42",
            "$choice_ts": _DEMO_TS + user,
            "$choice_acceptance_value": accepted,
            "event_id": ledger_id,
        },
    }


def generate(count: int, spec: MixSpec, *, seed: int = 7) -> Iterator[SampleMessage]:
    """`count` messages in a seeded mix; activities go bare, profiles and choices in envelopes."""
    rng = random.Random(seed)
    for _ in range(count):
        ledger_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        user = rng.randrange(spec.users)
        key = f"user-{user}".encode()
        draw = rng.random()
        if draw < spec.invalid:
            yield _invalid(ledger_id, user, key, rng)
        elif draw < spec.invalid + spec.profiles:
            yield SampleMessage(ledger_id, key, orjson.dumps(profile_envelope(ledger_id, user)), "profile", "delivered")
        elif draw < spec.invalid + spec.profiles + spec.choices:
            value = orjson.dumps(choice_envelope(ledger_id, user, rng.random() < 0.7))
            yield SampleMessage(ledger_id, key, value, "choice", "delivered")
        else:
            yield SampleMessage(ledger_id, key, orjson.dumps(activity(ledger_id, user, rng)), "activity", "delivered")


def _invalid(ledger_id: str, user: int, key: bytes, rng: random.Random) -> SampleMessage:
    """A message the worker must dead-letter, with the ledger id still findable in its bytes."""
    kind = rng.randrange(3)
    if kind == 0:  # truncated JSON
        value = orjson.dumps(activity(ledger_id, user, rng))[:-7]
        return SampleMessage(ledger_id, key, value, "activity", "decode_error")
    if kind == 1:  # an activity without its events
        document = activity(ledger_id, user, rng)
        del document["$events"]
        return SampleMessage(ledger_id, key, orjson.dumps(document), "activity", "schema_invalid")
    document = activity(ledger_id, user, rng)  # a datamart the configuration does not allow
    envelope = {"type": "activity", "datamart_id": "666", "body": document}
    return SampleMessage(ledger_id, key, orjson.dumps(envelope), "activity", "forbidden_datamart")


def ledger_id_of(body: object) -> str | None:
    """The ledger id inside a stored activity, profile or choice body."""
    if not isinstance(body, dict):
        return None
    found = body.get("$unique_key", body.get("event_id"))
    return found if isinstance(found, str) else None
