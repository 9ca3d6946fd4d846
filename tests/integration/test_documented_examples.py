"""Every documented mediarithmics example, sent through a real worker and a real broker, reaches the sandbox API.

Bare activities go to the activity-routed topic, profile and choice envelopes to the envelope-routed one (the
integration suite's `Stream`); the sandbox validates each body with the worker's own rules, so a body it refused
would come back as an `http_400` dead letter.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import httpx
import orjson
import pytest

from tests.integration.conftest import Stream, wait_for_outcomes
from tests.schemas.documented_examples import load_documented
from tests.support.events import SampleMessage
from tests.support.ledger import produce_all, read_dead_letters
from tests.support.sandbox_process import SandboxProcess
from tests.support.worker_process import WorkerProcess

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

KINDS = {"activity": "activities", "profile": "profiles", "choice": "choices"}


def _canonical(body: object) -> bytes:
    return orjson.dumps(body, option=orjson.OPT_SORT_KEYS)


def test_every_documented_example_reaches_the_sandbox(
    stream: Stream, running: Callable[[WorkerProcess], WorkerProcess]
) -> None:
    """Each example is delivered once, body as documented (nulls included), and nothing is dead-lettered."""
    examples = load_documented()
    for index, example in enumerate(examples):
        topic = stream.activities if example.route == "activity" else stream.mixed
        message = SampleMessage(example.name, str(index).encode(), example.message(), example.route, "delivered")
        produce_all(stream.bootstrap_servers, topic, [message])
    worker = running(stream.worker())
    wait_for_outcomes(worker, len(examples))
    assert worker.stop() == 0

    assert read_dead_letters(stream.bootstrap_servers, stream.dlq) == []
    documents = stream.sandbox.documents()
    for route, kind in KINDS.items():
        expected = Counter(_canonical(e.body) for e in examples if e.route == route)
        delivered = Counter(_canonical(stored["body"]) for stored in documents.get(kind, []))
        assert delivered == expected, route


class TestSandboxBodyIds:
    """The sandbox reads body ids as the validators do: a null id is absent, `1.0` is `1`."""

    PATH = "/v1/datamarts/1/user_points/user_agent_id=vec%3A1/user_profiles/compartment_id=7/user_account_id=u-1"

    @pytest.mark.parametrize(
        "body",
        [
            {"$compartment_id": None, "$user_account_id": None, "tier": "gold"},
            {"$compartment_id": 7.0, "$user_account_id": "u-1"},
            {"$compartment_id": "7", "$user_account_id": "u-1", "$creation_ts": None},
        ],
        ids=["null-ids", "integral-float", "null-timestamp"],
    )
    def test_a_profile_with_null_or_integral_float_ids_is_stored(self, sandbox: SandboxProcess, body: object) -> None:
        """Each body names the path's profile (or no profile at all) and is accepted."""
        with httpx.Client(base_url=sandbox.base_url, headers={"Authorization": sandbox.token}) as api:
            response = api.put(self.PATH, content=orjson.dumps(body), headers={"Content-Type": "application/json"})
        assert response.status_code == 200, response.text
        assert sandbox.documents()["profiles"][-1]["body"] == body

    def test_a_body_id_naming_another_profile_is_still_refused(self, sandbox: SandboxProcess) -> None:
        """`8.0` is not the path's compartment 7: 400 naming the field."""
        with httpx.Client(base_url=sandbox.base_url, headers={"Authorization": sandbox.token}) as api:
            response = api.put(
                self.PATH, content=b'{"$compartment_id": 8.0}', headers={"Content-Type": "application/json"}
            )
        assert response.status_code == 400
        assert "$.$compartment_id" in response.json()["error"]
