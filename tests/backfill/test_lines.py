"""The per-line formats: each planned job becomes the documented NDJSON command of its document type."""

from __future__ import annotations

import orjson
import pytest

from worker.backfill.lines import NotImportable, line_for
from worker.mics.selectors import EmailHash, UserAccount, UserAgentId, UserPointId
from worker.routing import Job

PROFILE_BODY = b'{"$compartment_id":1,"$user_account_id":"u-1","tier":"gold"}'
CHOICE_BODY = b'{"$processing_id":"42","$choice_ts":5,"$choice_acceptance_value":true}'


class TestActivityLines:
    def test_an_activity_line_is_the_activity_itself(self) -> None:
        """USER_ACTIVITY lines are user activity objects, byte for byte when they fit on one line."""
        body = b'{"$type":"SITE_VISIT","$ts":1}'
        line = line_for(Job("activity", "1509", body))
        assert (line.datamart_id, line.document_type, line.data) == ("1509", "USER_ACTIVITY", body)

    def test_an_activity_spanning_lines_is_re_encoded_on_one(self) -> None:
        """A bare activity is forwarded as produced; NDJSON needs it on one line, with the same content."""
        body = b'{\n  "$type": "SITE_VISIT",\r\n  "$ts": 1\n}'
        line = line_for(Job("activity", "1509", body))
        assert b"\n" not in line.data
        assert b"\r" not in line.data
        assert orjson.loads(line.data) == orjson.loads(body)


class TestProfileLines:
    def test_a_profile_is_an_upsert_identified_by_its_compartment_and_account(self) -> None:
        """operation, compartment_id + user_account_id (strings), force_replace true, user_profile."""
        job = Job("profile", "1509", PROFILE_BODY, UserAgentId("vec:1"), compartment_id="1", user_account_id="u-1")
        line = line_for(job)
        assert line.document_type == "USER_PROFILE"
        assert orjson.loads(line.data) == {
            "operation": "UPSERT",
            "compartment_id": "1",
            "user_account_id": "u-1",
            "force_replace": True,
            "user_profile": orjson.loads(PROFILE_BODY),
        }

    def test_the_update_strategy_format_replaces_force_replace(self) -> None:
        """The newer page's `update_strategy: FORCE_REPLACE` instead of the boolean, when configured."""
        job = Job("profile", "1509", PROFILE_BODY, UserAgentId("vec:1"), compartment_id="1", user_account_id="u-1")
        document = orjson.loads(line_for(job, "update_strategy").data)
        assert document["update_strategy"] == "FORCE_REPLACE"
        assert "force_replace" not in document


class TestChoiceLines:
    @pytest.mark.parametrize(
        ("selector", "identifier"),
        [
            (UserAccount("7", "u-1"), {"compartment_id": "7", "user_account_id": "u-1"}),
            (UserAgentId("vec:1"), {"user_agent_id": "vec:1"}),
            (EmailHash("h1"), {"email_hash": "h1"}),
        ],
    )
    def test_a_choice_carries_exactly_one_documented_identifier(self, selector: object, identifier: object) -> None:
        """Each documented selector form maps to the bulk identifier of the same name, and only that one."""
        line = line_for(Job("choice", "2607", CHOICE_BODY, selector, processing_id="42"))  # type: ignore[arg-type]
        assert orjson.loads(line.data) == {
            "operation": "UPSERT",
            **identifier,  # type: ignore[dict-item]
            "force_replace": True,
            "user_choice": orjson.loads(CHOICE_BODY),
        }

    def test_a_choice_addressed_by_user_point_id_is_not_importable(self) -> None:
        """The bulk pages document no user point id identifier: refused, never guessed."""
        with pytest.raises(NotImportable):
            line_for(Job("choice", "2607", CHOICE_BODY, UserPointId("abc"), processing_id="42"))
