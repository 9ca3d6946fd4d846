"""Planning a Schema Registry framed message: its writer schema first, then the route's usual plan of its payload.

A framed value's plan cannot be made when it is read: its writer schema may not be cached yet, and fetching it must
not block the poll loop. The message is taken with an `AwaitingSchema` plan and keeps its key's lane (so per-key
order holds); its task waits for the schema (`SchemaRegistry.wait_for`) and then plans it. While it waits, its
partition's share of the window fills and the partition pauses, like any slow partition; others keep flowing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from worker import codec
from worker.config import RouteMode
from worker.framing import SchemaRef
from worker.registry import WriterSchema
from worker.routing import Job, Rejection

__all__ = ["AwaitingSchema", "plan_with_writer_schema"]

Planner = Callable[[bytes | None], Job | Rejection]


@dataclass(frozen=True, slots=True)
class AwaitingSchema:
    """A framed message whose plan waits for its writer schema."""

    schema: SchemaRef
    payload: bytes | None
    mode: RouteMode | None  # the topic's route mode


def plan_with_writer_schema(
    waiting: AwaitingSchema, writer: WriterSchema, plan: Planner, *, validate: bool, max_bytes: int
) -> Job | Rejection:
    """Refuse what is not JSON, optionally check the payload against the writer's schema, then plan it as usual."""
    if not writer.is_json:
        kind = {"AVRO": "Avro", "PROTOBUF": "Protobuf"}.get(writer.schema_type, writer.schema_type)
        return Rejection(
            "unsupported_format",
            f"{kind}-framed value ({waiting.schema}, type {writer.schema_type}): only JSON Schema framing is supported",
            "decode",
        )
    result = plan(waiting.payload)
    if not validate or isinstance(result, Rejection):
        return result
    if writer.validator is None:
        return Rejection(
            "writer_schema_invalid",
            f"the writer's {waiting.schema} does not compile: {writer.compile_error}",
            "validate",
        )
    document = codec.decode(waiting.payload, max_bytes)  # cannot fail: `plan` decoded the same bytes
    for error in writer.validator.iter_errors(document):
        return Rejection(
            "writer_schema_invalid",
            f"fails the writer's {waiting.schema}: {str(error.message)[:300]}",
            "validate",
            result.route,
        )
    return result
