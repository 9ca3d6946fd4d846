"""Every documented mediarithmics example is accepted: by the worker's planning and by `mics-worker validate`."""

from __future__ import annotations

import io
import re
from pathlib import Path

import orjson
import pytest

from tests.schemas.documented_examples import DOCUMENTED, DocumentedExample, load_documented
from worker.cli import main
from worker.routing import Job, plan_message
from worker.validate_file import validate_stream
from worker.validation import Validators

EXAMPLES = load_documented()
PLACEHOLDER = re.compile(r"<[A-Za-z_][A-Za-z0-9_-]*>")
SELECTOR_FORMS = {"uuid", "user_point_id", "user_agent_id", "user_account", "email_hash"}


@pytest.fixture(scope="module")
def validators() -> Validators:
    return Validators.load()


def _strings(value: object) -> list[str]:
    if isinstance(value, dict):
        return [text for key, item in value.items() for text in (key, *_strings(item))]
    if isinstance(value, list):
        return [text for item in value for text in _strings(item)]
    return [value] if isinstance(value, str) else []


def _selector_form(example: DocumentedExample) -> str | None:
    point = (example.envelope or {}).get("user_point")
    if isinstance(point, str):
        return "uuid"
    if isinstance(point, dict):
        return "user_account" if "user_account_id" in point else next(iter(point))
    return None


class TestCorpus:
    def test_the_corpus_covers_every_route_and_selector_form(self) -> None:
        """Activities, profiles and choices are all there, and each documented user point selector form."""
        assert {example.route for example in EXAMPLES} == {"activity", "profile", "choice"}
        assert {_selector_form(example) for example in EXAMPLES} >= SELECTOR_FORMS
        assert len(EXAMPLES) >= 20

    @pytest.mark.parametrize("example", EXAMPLES, ids=lambda example: example.name)
    def test_each_file_names_its_page_and_route_and_has_no_placeholder_left(self, example: DocumentedExample) -> None:
        """A developer.mediarithmics.io source, a route matching the file name, no `<PLACEHOLDER>` text."""
        assert example.source.startswith("https://developer.mediarithmics.io/")
        assert example.name.startswith(example.route + "-")
        assert (example.envelope is None) == (example.route == "activity")
        assert not [text for text in _strings(example.example) if PLACEHOLDER.search(text)]

    def test_the_readme_lists_the_pages_the_corpus_cites(self) -> None:
        """Every source URL is among the pages the corpus README says were searched."""
        readme = (DOCUMENTED / "README.md").read_text("utf-8")
        assert {example.source for example in EXAMPLES} <= set(re.findall(r"https://\S+?(?=[)\s`])", readme))


class TestAccepted:
    @pytest.mark.parametrize("example", EXAMPLES, ids=lambda example: example.name)
    def test_the_worker_plans_a_request_with_the_documented_body(
        self, validators: Validators, example: DocumentedExample
    ) -> None:
        """plan_message makes a Job of the example's route whose body is the documented one, nulls included."""
        outcome = plan_message(
            example.route,
            example.message(),
            validators=validators,
            default_datamart_id="1509",
            allowed_datamarts=frozenset({"1509"}),
            max_message_bytes=1_000_000,
        )
        assert isinstance(outcome, Job), outcome
        assert outcome.route == example.route
        assert orjson.loads(outcome.body) == example.body

    def test_validate_accepts_the_whole_corpus_as_one_file(self, validators: Validators) -> None:
        """`mics-worker validate` (auto schema) finds every documented message valid."""
        data = b"".join(example.message() + b"\n" for example in EXAMPLES)
        report = validate_stream(io.BytesIO(data), validators)
        assert (report.total, report.valid, report.failures) == (len(EXAMPLES), len(EXAMPLES), [])

    def test_the_validate_command_exits_zero_on_the_corpus(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """The command line itself, on an NDJSON file of the corpus: exit 0, every message valid."""
        path = tmp_path / "documented.ndjson"
        path.write_bytes(b"".join(example.message() + b"\n" for example in EXAMPLES))
        assert main(["validate", str(path)]) == 0
        assert capsys.readouterr().out.strip() == f"{len(EXAMPLES)} messages: {len(EXAMPLES)} valid, 0 invalid"
