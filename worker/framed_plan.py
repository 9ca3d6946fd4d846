"""Planning a Schema Registry framed message: its writer schema first, then the route's usual plan of its payload.

A framed value's plan cannot be made when it is read: its writer schema may not be cached yet, and fetching it must
not block the poll loop. The message is taken with an `AwaitingSchema` plan and keeps its key's lane (so per-key
order holds); its task waits for the schema (`SchemaRegistry.wait_for`) and then plans it. While it waits, its
partition's share of the window fills and the partition pauses, like any slow partition; others keep flowing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from worker import codec
from worker.config import RouteMode
from worker.framing import BadFrame, SchemaRef, unframe
from worker.input_settings import FramingSettings
from worker.kafka import Message
from worker.registry import SchemaRegistry, WriterSchema
from worker.routing import Job, Rejection

__all__ = ["AwaitingSchema", "MessagePlanner", "plan_with_writer_schema"]

Planner = Callable[[bytes | None], Job | Rejection]
RoutePlanner = Callable[[RouteMode | None, bytes | None], Job | Rejection]


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


class MessagePlanner:
    """Plans each message when it is read, or, for a framed value, once its writer schema is known (in its task)."""

    def __init__(
        self, plan: RoutePlanner, framing: FramingSettings, registry: SchemaRegistry | None, *, max_message_bytes: int
    ) -> None:
        self._plan = plan
        self._framing = framing
        self._registry = registry
        self._max_bytes = max_message_bytes

    def plan(self, mode: RouteMode | None, topic: str, message: Message) -> Job | Rejection | AwaitingSchema:
        framing = self._framing.rules.mode_for(topic) if self._registry is not None else "plain"
        if framing == "plain":
            return self._plan(mode, message.value())
        framed = unframe(framing, message.value(), message.headers())
        if isinstance(framed, BadFrame):
            return Rejection("decode_error", framed.message, "decode")
        if framed.schema is None:
            return self._plan(mode, framed.payload)
        return AwaitingSchema(framed.schema, framed.payload, mode)

    async def plan_framed(self, waiting: AwaitingSchema, draining: asyncio.Event) -> Job | Rejection | None:
        """The plan once the writer schema is known; None when the partition drained first."""
        assert self._registry is not None
        writer = await self._registry.wait_for(waiting.schema, draining)
        if writer is None:
            return None
        return plan_with_writer_schema(
            waiting,
            writer,
            lambda payload: self._plan(waiting.mode, payload),
            validate=self._framing.validate,
            max_bytes=self._max_bytes,
        )

    def close(self) -> None:
        if self._registry is not None:
            self._registry.close()
