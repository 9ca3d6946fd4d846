"""The per-line formats of document import executions: one planned `Job` becomes one NDJSON line.

Sources of every field (developer.mediarithmics.io, read 2026-11; see docs/backfill.md):

- `USER_ACTIVITY` [DOC /data-ingestion/bulk-processing/imports/offline-activities]: a line *is* a user activity
  object, the same object as the real-time `POST user_activities` body ("Bulk import user activities"; the example's
  line has `$user_agent_id`, `$type`, `$session_status`, `$ts`, `$events`). The planned body is sent unchanged
  (re-encoded only when it spans several lines).
- `USER_PROFILE` [DOC /data-ingestion/bulk-processing/imports/profiles]: `operation` (`UPSERT`|`DELETE`);
  `compartment_id` + `user_account_id` ("acting as a user identifier"; strings), or `email_hash`, or `user_agent_id`
  — one identifier per line; `force_replace` (boolean, mandatory for UPSERT: true replaces the whole profile) and
  `merge_objects` (only when not force_replace) in one copy of the page, `update_strategy` (`PARTIAL_UPDATE`,
  `PARTIAL_DELETE`, `FORCE_REPLACE`) in a newer one; `user_profile` (the profile object, mandatory for UPSERT).
  The worker's profile envelope names its profile by `compartment_id` + `user_account_id`, so those two are the
  line's identifier; the profile body keeps its own `$compartment_id` / `$user_account_id` ("not inherited").
  Replace, not merge: the real-time PUT replaces the document it addresses, so a backfill writes the same state;
  `MICS_WORKER_BACKFILL_PROFILE_FORMAT` picks `force_replace` (default) or `update_strategy`.
- `USER_CHOICE` [DOC /data-ingestion/bulk-processing/imports/user_choices]: `operation`, one identifier
  (`compartment_id` + `user_account_id`, `email_hash` or `user_agent_id`), `force_replace` (mandatory for UPSERT),
  `user_choice` (its `$processing_id` always mandatory, `$choice_ts` for UPSERT — the choice schema requires both).
  A choice addressed by a user point id or UUID has no documented bulk identifier: it is dead-lettered
  (`bulk_unsupported`), never guessed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from worker import codec
from worker.mics.selectors import EmailHash, UserAccount, UserAgentId, id_text
from worker.routing import Job

__all__ = ["DOCUMENT_TYPE_OF_ROUTE", "DocumentType", "Line", "NotImportable", "ProfileFormat", "line_for"]

DocumentType = Literal["USER_ACTIVITY", "USER_PROFILE", "USER_CHOICE"]
ProfileFormat = Literal["force_replace", "update_strategy"]
DOCUMENT_TYPE_OF_ROUTE: dict[str, DocumentType] = {
    "activity": "USER_ACTIVITY",
    "profile": "USER_PROFILE",
    "choice": "USER_CHOICE",
}
_UPSERT = b'{"operation":"UPSERT",'


class NotImportable(ValueError):
    """A planned job the bulk path cannot express (dead-lettered `bulk_unsupported`)."""


@dataclass(frozen=True, slots=True)
class Line:
    """One NDJSON line (without its newline) and where it goes."""

    datamart_id: str
    document_type: DocumentType
    data: bytes


def line_for(job: Job, profile_format: ProfileFormat = "force_replace") -> Line:
    """The execution line for one planned job; raises NotImportable when the bulk format has no place for it."""
    document_type = DOCUMENT_TYPE_OF_ROUTE[job.route]
    if job.route == "activity":
        body = job.body
        if b"\n" in body or b"\r" in body:  # a bare activity is forwarded byte for byte: it may span lines
            body = codec.encode(codec.decode(body, len(body)))
        return Line(job.datamart_id, document_type, body)
    if job.route == "profile":
        assert job.compartment_id is not None
        assert job.user_account_id is not None
        identifier = _pair(job.compartment_id, job.user_account_id)
        replace = (
            b'"force_replace":true,' if profile_format == "force_replace" else b'"update_strategy":"FORCE_REPLACE",'
        )
        return Line(
            job.datamart_id, document_type, _UPSERT + identifier + replace + b'"user_profile":' + job.body + b"}"
        )
    selector = job.selector
    if isinstance(selector, UserAccount):
        identifier = _pair(id_text(selector.compartment_id), id_text(selector.user_account_id))
    elif isinstance(selector, UserAgentId):
        identifier = b'"user_agent_id":' + codec.encode(id_text(selector.value)) + b","
    elif isinstance(selector, EmailHash):
        identifier = b'"email_hash":' + codec.encode(id_text(selector.value)) + b","
    else:
        raise NotImportable("a user choice addressed by user point id has no documented bulk identifier")
    return Line(
        job.datamart_id, document_type, _UPSERT + identifier + b'"force_replace":true,"user_choice":' + job.body + b"}"
    )


def _pair(compartment_id: str, user_account_id: str) -> bytes:
    return (
        b'"compartment_id":'
        + codec.encode(compartment_id)
        + b',"user_account_id":'
        + codec.encode(user_account_id)
        + b","
    )
