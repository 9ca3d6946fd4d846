"""Framed values and watched tokens in-process: what the API receives, what waits, and what never holds."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from tests.support.core_harness import NOT_FOUND, OK, CoreHarness, FakeApi, Request, activity
from worker.framing import VALUE_SCHEMA_ID_HEADER, FramingRules, SchemaRef
from worker.input_settings import FramingSettings
from worker.mics.token_source import TokenSource, WatchedToken
from worker.mics.transport import RawResponse
from worker.registry import SchemaRegistry

BARE = "bare-events"
UNAUTHORIZED = RawResponse(401, {}, b'{"status":"error","error":"Unauthorized"}')
JSON_SCHEMA = '{"type": "object"}'
FRAMED = FramingSettings(rules=FramingRules(default="auto"), registry_url="http://registry.invalid")


class Registry:
    """A writer-schema lookup that fails while `down`, and counts its calls."""

    def __init__(self, schema_type: str = "JSON") -> None:
        self.down = False
        self.calls = 0
        self.schema_type = schema_type

    def __call__(self, ref: SchemaRef) -> tuple[str, str]:
        self.calls += 1
        if self.down:
            raise ConnectionError("registry unreachable")
        return self.schema_type, JSON_SCHEMA


class TestFramedValues:
    async def test_framed_json_reaches_the_api_byte_for_byte_like_plain_json(self) -> None:
        """A bare activity sent plain, with the 5-byte prefix and with the schema-id header: the API receives the
        same bytes three times."""
        payload = activity()
        guid = uuid.uuid4()
        registry = SchemaRegistry(Registry(), cache_size=4)
        async with CoreHarness(schema_registry=registry, framing=FRAMED) as core:
            core.assign(0, topic=BARE)
            core.consumer.append(BARE, 0, payload)
            core.consumer.append(BARE, 0, b"\x00\x00\x00\x00\x05" + payload)
            core.consumer.append(BARE, 0, payload, headers=[(VALUE_SCHEMA_ID_HEADER, b"\x01" + guid.bytes)])
            await core.until(lambda: core.stored(0, topic=BARE) == 3, "three deliveries")
        assert [request.body for request in core.api.writes()] == [payload, payload, payload]
        assert core.producer.acked == []

    async def test_a_framed_message_waits_for_the_registry_and_never_dead_letters(self) -> None:
        """While the registry cannot answer, the framed message waits (asked again and again, not dead-lettered);
        when it answers, the message is delivered."""
        lookup = Registry()
        lookup.down = True
        registry = SchemaRegistry(lookup, cache_size=4)
        async with CoreHarness(schema_registry=registry, framing=FRAMED) as core:
            core.assign(0, topic=BARE)
            core.consumer.append(BARE, 0, b"\x00\x00\x00\x00\x09" + activity())
            await core.until(lambda: lookup.calls >= 2, "the registry asked again")
            assert core.api.writes() == []
            assert core.producer.acked == []
            lookup.down = False
            await core.until(lambda: core.stored(0, topic=BARE) == 1, "the delivery", timeout_s=30)
        assert len(core.api.writes()) == 1
        assert core.producer.acked == []

    async def test_an_avro_framed_value_is_dead_lettered_with_its_original_bytes(self) -> None:
        framed = b"\x00\x00\x00\x00\x03" + b"\x06abc"
        registry = SchemaRegistry(Registry(schema_type="AVRO"), cache_size=4)
        async with CoreHarness(schema_registry=registry, framing=FRAMED) as core:
            core.assign(0, topic=BARE)
            core.consumer.append(BARE, 0, framed)
            await core.until(lambda: len(core.producer.acked) == 1, "the dead letter")
        [record] = core.producer.acked
        assert record.header("mics.dlq.reason") == [b"unsupported_format"]
        assert record.value == framed
        assert core.api.writes() == []


class TestWatchedToken:
    async def test_a_401_after_the_file_changed_resends_with_the_new_token_without_holding(
        self, tmp_path: Path
    ) -> None:
        """The token file was rewritten (not yet noticed: the check interval is an hour); the API refuses the old
        token; the worker re-reads the file and sends again at once: delivered, no hold, no probe."""
        path = tmp_path / "token"
        path.write_text("old-token-0123456789")
        tokens = TokenSource(WatchedToken.from_file(path, check_interval_s=3600.0))
        fresh = tmp_path / "token.new"
        fresh.write_text("new-token-0123456789")
        os.replace(fresh, path)

        def answer(request: Request) -> RawResponse:
            if request.token != "new-token-0123456789":
                return UNAUTHORIZED
            return NOT_FOUND if request.is_probe else OK

        api = FakeApi(answer)
        async with CoreHarness(api=api, tokens=tokens) as core:
            core.assign(0, topic=BARE)
            core.consumer.append(BARE, 0, activity())
            await core.until(lambda: core.stored(0, topic=BARE) == 1, "the delivery")
            held = core.sample("mics_worker_credentials_held", {"datamart": "1509"})
        assert [request.token for request in api.requests] == ["old-token-0123456789", "new-token-0123456789"]
        assert held in (None, 0.0)
