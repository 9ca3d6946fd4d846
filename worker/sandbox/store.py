"""The sandbox's memory: what the API accepted, per datamart and user point.

Two views are kept. The *current state* (one profile per profile key, one choice per processing, with the
choice's change log) answers the API's reads. The *write log* (every accepted write, in arrival order, with
the body exactly as received) is what `/_sandbox/documents` shows, so tests can see duplicates and order.
Profiles are replaced on PUT (the real API's replace-or-merge behaviour is unknown).
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from worker.sandbox.paths import UserPointSelector

JsonObject = dict[str, object]


def epoch_ms() -> int:
    """Wall-clock time in epoch milliseconds, the unit of the API's `$…_ts` fields."""
    return time.time_ns() // 1_000_000


@dataclass(slots=True)
class _Choice:
    state: JsonObject
    history: list[JsonObject] = field(default_factory=list)


_ProfileKey = tuple[str, UserPointSelector, str, str]
_ChoiceKey = tuple[str, UserPointSelector, str]


class DocumentStore:
    """In-memory activities, profiles and choices; `count_only` writes keep nothing but a count."""

    def __init__(self, clock: Callable[[], int] = epoch_ms) -> None:
        self._clock = clock
        self._activities: list[JsonObject] = []
        self._profiles: dict[_ProfileKey, JsonObject] = {}
        self._choices: dict[_ChoiceKey, _Choice] = {}
        self._profile_log: list[JsonObject] = []
        self._choice_log: list[JsonObject] = []
        self._count_only_writes: Counter[str] = Counter()

    def add_activity(self, datamart_id: str, body: JsonObject) -> JsonObject:
        """Store one activity; return the stored record: a fresh id and the activity."""
        self._activities.append({"datamart_id": datamart_id, "body": body})
        return {"id": str(uuid.uuid4()), "activity": body}

    def put_profile(
        self,
        datamart_id: str,
        user_point: UserPointSelector,
        compartment_id: str,
        user_account_id: str,
        body: JsonObject,
    ) -> JsonObject:
        """Replace one profile; the system timestamps are the sandbox's, whatever the body says."""
        key = (datamart_id, user_point, compartment_id, user_account_id)
        now = self._clock()
        previous = self._profiles.get(key)
        created = previous["$creation_ts"] if previous is not None else now
        stored = {**body, "$creation_ts": created, "$last_modified_ts": now}
        self._profiles[key] = stored
        self._profile_log.append(
            {
                "datamart_id": datamart_id,
                "user_point": user_point.as_json(),
                "compartment_id": compartment_id,
                "user_account_id": user_account_id,
                "body": body,
            }
        )
        return stored

    def put_choice(
        self, datamart_id: str, user_point: UserPointSelector, processing_id: str, body: JsonObject
    ) -> JsonObject:
        """Create or replace one choice; the state it replaces joins the choice's change log."""
        key = (datamart_id, user_point, processing_id)
        now = self._clock()
        choice = self._choices.get(key)
        if choice is None:
            stored = {**body, "$creation_ts": now}
            self._choices[key] = _Choice(stored)
        else:
            stored = {**body, "$creation_ts": choice.state["$creation_ts"]}
            choice.history.append(choice.state)
            choice.state = stored
        self._choice_log.append(
            {
                "datamart_id": datamart_id,
                "user_point": user_point.as_json(),
                "processing_id": processing_id,
                "body": body,
            }
        )
        return stored

    def get_choice(self, datamart_id: str, user_point: UserPointSelector, processing_id: str) -> JsonObject | None:
        """The current state of one choice, or None when it was never written."""
        choice = self._choices.get((datamart_id, user_point, processing_id))
        return None if choice is None else choice.state

    def choice_change_log(
        self, datamart_id: str, user_point: UserPointSelector, processing_id: str
    ) -> list[JsonObject] | None:
        """The states one choice had before its current one, oldest first; None when it was never written."""
        choice = self._choices.get((datamart_id, user_point, processing_id))
        return None if choice is None else list(choice.history)

    def count_only(self, kind: str) -> None:
        """Count an accepted write of `kind` ("activities", "profiles", "choices") without storing it."""
        self._count_only_writes[kind] += 1

    def counts(self) -> dict[str, int]:
        """Stored documents per kind: activities, distinct profiles, distinct choices (plus count-only writes)."""
        return {
            "activities": len(self._activities) + self._count_only_writes["activities"],
            "profiles": len(self._profiles) + self._count_only_writes["profiles"],
            "choices": len(self._choices) + self._count_only_writes["choices"],
        }

    def documents(self) -> dict[str, list[JsonObject]]:
        """The write log: every accepted write per kind, in arrival order, bodies as received."""
        return {
            "activities": list(self._activities),
            "profiles": list(self._profile_log),
            "choices": list(self._choice_log),
        }

    def clear(self) -> None:
        """Forget everything."""
        self._activities.clear()
        self._profiles.clear()
        self._choices.clear()
        self._profile_log.clear()
        self._choice_log.clear()
        self._count_only_writes.clear()
