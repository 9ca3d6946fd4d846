"""Writer schemas: cached and bounded, waited for while the registry cannot answer; Avro/Protobuf refused by name."""

from __future__ import annotations

import asyncio

import pytest

from worker.framed_plan import AwaitingSchema, plan_with_writer_schema
from worker.framing import SchemaRef
from worker.registry import RegistryUnavailable, SchemaRegistry, WriterSchema
from worker.routing import Job, Rejection

JSON_SCHEMA = '{"type": "object", "required": ["$type"], "properties": {"$type": {"const": "SITE_VISIT"}}}'


class FlakyRegistry:
    """A fetch that fails `failures` times before it answers; counts its calls."""

    def __init__(self, failures: int = 0, schema_type: str = "JSON", text: str = JSON_SCHEMA) -> None:
        self.failures = failures
        self.calls: list[SchemaRef] = []
        self.answer = (schema_type, text)

    def __call__(self, ref: SchemaRef) -> tuple[str, str]:
        self.calls.append(ref)
        if len(self.calls) <= self.failures:
            raise ConnectionError("registry down")
        return self.answer


class TestSchemaRegistry:
    async def test_a_schema_is_fetched_once_then_served_from_the_cache(self) -> None:
        fetch = FlakyRegistry()
        registry = SchemaRegistry(fetch, cache_size=10)
        first = await registry.resolve(SchemaRef(schema_id=1))
        second = await registry.resolve(SchemaRef(schema_id=1))
        assert first is second
        assert first.is_json
        assert len(fetch.calls) == 1
        registry.close()

    async def test_the_cache_keeps_only_the_most_recent_schemas(self) -> None:
        fetch = FlakyRegistry()
        registry = SchemaRegistry(fetch, cache_size=2)
        for schema_id in (1, 2, 1, 3):  # 2 is the least recently used when 3 arrives
            await registry.resolve(SchemaRef(schema_id=schema_id))
        assert registry.cached(SchemaRef(schema_id=2)) is None
        assert registry.cached(SchemaRef(schema_id=1)) is not None
        assert len(fetch.calls) == 3
        registry.close()

    async def test_concurrent_waiters_for_one_schema_share_one_request(self) -> None:
        fetch = FlakyRegistry()
        registry = SchemaRegistry(fetch, cache_size=10)
        schemas = await asyncio.gather(*(registry.resolve(SchemaRef(schema_id=8)) for _ in range(20)))
        assert len(fetch.calls) == 1
        assert all(schema is schemas[0] for schema in schemas)
        registry.close()

    async def test_a_failure_is_reported_as_unavailable_without_caching_it(self) -> None:
        registry = SchemaRegistry(FlakyRegistry(failures=1), cache_size=10)
        with pytest.raises(RegistryUnavailable, match="schema id 5"):
            await registry.resolve(SchemaRef(schema_id=5))
        assert (await registry.resolve(SchemaRef(schema_id=5))).is_json
        registry.close()

    async def test_wait_for_asks_again_until_the_registry_answers(self) -> None:
        fetch = FlakyRegistry(failures=2)
        registry = SchemaRegistry(fetch, cache_size=10)
        schema = await registry.wait_for(SchemaRef(schema_id=9), asyncio.Event())
        assert schema is not None
        assert len(fetch.calls) == 3
        registry.close()

    async def test_wait_for_ends_when_the_partition_drains(self) -> None:
        registry = SchemaRegistry(FlakyRegistry(failures=10**6), cache_size=10)
        draining = asyncio.Event()
        waiting = asyncio.create_task(registry.wait_for(SchemaRef(schema_id=9), draining))
        await asyncio.sleep(0)
        draining.set()
        assert await asyncio.wait_for(waiting, 30) is None
        registry.close()


def planner(payload: bytes | None) -> Job | Rejection:
    assert payload is not None
    return Job("activity", "1509", payload)


def writer(schema_type: str, text: str = JSON_SCHEMA) -> WriterSchema:
    return asyncio.run(SchemaRegistry(FlakyRegistry(schema_type=schema_type, text=text), 1).resolve(SchemaRef(1)))


class TestPlanWithWriterSchema:
    @pytest.mark.parametrize(("schema_type", "name"), [("AVRO", "Avro"), ("PROTOBUF", "Protobuf")])
    def test_avro_and_protobuf_are_refused_by_name(self, schema_type: str, name: str) -> None:
        waiting = AwaitingSchema(SchemaRef(schema_id=4), b"\x02ab", "activity")
        result = plan_with_writer_schema(waiting, writer(schema_type, "{}"), planner, validate=False, max_bytes=1000)
        assert isinstance(result, Rejection)
        assert result.reason == "unsupported_format"
        assert result.message.startswith(f"{name}-framed value (schema id 4")

    def test_json_is_planned_as_usual(self) -> None:
        waiting = AwaitingSchema(SchemaRef(schema_id=4), b'{"$type":"SITE_VISIT"}', "activity")
        result = plan_with_writer_schema(waiting, writer("JSON"), planner, validate=True, max_bytes=1000)
        assert result == Job("activity", "1509", b'{"$type":"SITE_VISIT"}')

    def test_validation_against_the_writer_schema_refuses_what_fails_it(self) -> None:
        waiting = AwaitingSchema(SchemaRef(schema_id=4), b'{"$type":"OTHER"}', "activity")
        result = plan_with_writer_schema(waiting, writer("JSON"), planner, validate=True, max_bytes=1000)
        assert isinstance(result, Rejection)
        assert result.reason == "writer_schema_invalid"
        assert "schema id 4" in result.message

    def test_without_validation_the_writer_schema_is_not_checked(self) -> None:
        waiting = AwaitingSchema(SchemaRef(schema_id=4), b'{"$type":"OTHER"}', "activity")
        result = plan_with_writer_schema(waiting, writer("JSON"), planner, validate=False, max_bytes=1000)
        assert isinstance(result, Job)

    def test_a_writer_schema_that_does_not_compile_refuses_validation(self) -> None:
        waiting = AwaitingSchema(SchemaRef(schema_id=4), b'{"$type":"SITE_VISIT"}', "activity")
        broken = writer("JSON", '{"type": 12}')
        result = plan_with_writer_schema(waiting, broken, planner, validate=True, max_bytes=1000)
        assert isinstance(result, Rejection)
        assert result.reason == "writer_schema_invalid"
