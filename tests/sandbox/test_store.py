"""The in-memory document store: current state, change logs and the write log."""

from __future__ import annotations

from worker.sandbox.paths import UserPointSelector
from worker.sandbox.store import DocumentStore

AGENT = UserPointSelector("user_agent_id", (("user_agent_id", "vec:1"),))
EMAIL = UserPointSelector("email_hash", (("email_hash", "h"),))


class TickingClock:
    """Epoch milliseconds that advance by one second on every reading."""

    def __init__(self) -> None:
        self.now = 1_700_000_000_000

    def __call__(self) -> int:
        self.now += 1000
        return self.now


class TestProfiles:
    def test_put_replaces_the_profile_and_keeps_its_creation_time(self) -> None:
        """A second PUT replaces the body; `$creation_ts` stays, `$last_modified_ts` moves."""
        store = DocumentStore(clock=TickingClock())
        first = store.put_profile("1", AGENT, "7", "u", {"a": 1})
        second = store.put_profile("1", AGENT, "7", "u", {"b": 2})
        assert "a" not in second
        assert second["b"] == 2
        assert second["$creation_ts"] == first["$creation_ts"]
        assert (first["$last_modified_ts"], second["$last_modified_ts"]) == (1_700_000_001_000, 1_700_000_002_000)

    def test_counts_are_distinct_profiles_while_documents_list_every_write(self) -> None:
        """Two writes to one profile count as one stored profile and appear twice in the write log."""
        store = DocumentStore()
        store.put_profile("1", AGENT, "7", "u", {"a": 1})
        store.put_profile("1", AGENT, "7", "u", {"a": 2})
        store.put_profile("1", EMAIL, "7", "u", {"a": 3})
        assert store.counts()["profiles"] == 2
        assert [entry["body"] for entry in store.documents()["profiles"]] == [{"a": 1}, {"a": 2}, {"a": 3}]
        assert store.documents()["profiles"][0]["user_point"] == {"user_agent_id": "vec:1"}


class TestChoices:
    def test_change_log_holds_the_prior_states_oldest_first(self) -> None:
        """Each PUT after the first appends the state it replaces to the change log."""
        store = DocumentStore()
        store.put_choice("1", EMAIL, "p", {"$choice_ts": 1})
        assert store.choice_change_log("1", EMAIL, "p") == []
        store.put_choice("1", EMAIL, "p", {"$choice_ts": 2})
        store.put_choice("1", EMAIL, "p", {"$choice_ts": 3})
        log = store.choice_change_log("1", EMAIL, "p")
        assert log is not None
        assert [state["$choice_ts"] for state in log] == [1, 2]
        current = store.get_choice("1", EMAIL, "p")
        assert current is not None
        assert current["$choice_ts"] == 3

    def test_unknown_choice_has_neither_state_nor_log(self) -> None:
        """A choice never written reads as None, in another datamart or user point as well."""
        store = DocumentStore()
        store.put_choice("1", EMAIL, "p", {"$choice_ts": 1})
        assert store.get_choice("2", EMAIL, "p") is None
        assert store.get_choice("1", AGENT, "p") is None
        assert store.choice_change_log("1", EMAIL, "q") is None


class TestCounts:
    def test_count_only_writes_are_counted_not_kept(self) -> None:
        """count_only() raises the stored count and leaves the write log empty."""
        store = DocumentStore()
        store.count_only("activities")
        store.count_only("activities")
        assert store.counts() == {"activities": 2, "profiles": 0, "choices": 0}
        assert store.documents()["activities"] == []

    def test_clear_forgets_everything(self) -> None:
        """After clear() nothing is stored or counted."""
        store = DocumentStore()
        store.add_activity("1", {"$type": "TOUCH"})
        store.put_choice("1", EMAIL, "p", {"$choice_ts": 1})
        store.count_only("profiles")
        store.clear()
        assert store.counts() == {"activities": 0, "profiles": 0, "choices": 0}
        assert store.documents() == {"activities": [], "profiles": [], "choices": []}
        assert store.get_choice("1", EMAIL, "p") is None
