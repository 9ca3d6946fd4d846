"""Writer schemas from a Confluent-compatible Schema Registry, fetched with confluent-kafka's `SchemaRegistryClient`.

The client is blocking (HTTP under a lock), so lookups run on a thread of their own and never on the event loop;
messages waiting for the same schema share one lookup.
Resolved schemas are kept in a bounded LRU cache (`SCHEMA_REGISTRY_CACHE_SIZE` entries, each a compiled validator),
so a steady stream costs one lookup per schema. An unknown id and an unreachable registry look the same from here
and are both transient: a producer may have registered the schema on a registry replica that has not caught up,
and a registry outage must hold the stream, never spill it into the DLQ. `wait_for` therefore retries with a
doubling backoff (its waits are not a message's retry budget) until the schema comes or the partition drains.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any

import jsonschema_rs

from worker import codec
from worker.framing import SchemaRef
from worker.logs import RepeatFilter
from worker.waits import sleep_unless

__all__ = ["RegistryUnavailable", "SchemaRegistry", "WriterSchema", "make_registry"]

log = logging.getLogger(__name__)
log.addFilter(RepeatFilter(interval_s=30.0))

_FIRST_RETRY_S = 0.5
_MAX_RETRY_S = 30.0
_MAX_SCHEMA_BYTES = 1_000_000


class RegistryUnavailable(Exception):
    """The registry did not give the schema (unknown id, refused, unreachable): transient by design."""


@dataclass(frozen=True, slots=True)
class WriterSchema:
    """What the registry says about a writer schema: its type, and for JSON a compiled validator (or why not)."""

    schema_type: str  # JSON, AVRO or PROTOBUF (the registry's default is AVRO)
    validator: Any = None  # a jsonschema_rs validator, for JSON schemas that compile
    compile_error: str | None = None

    @property
    def is_json(self) -> bool:
        return self.schema_type == "JSON"


Fetch = Callable[[SchemaRef], tuple[str, str]]
"""Blocking lookup: a schema reference → (schema type, schema text); raises on any failure."""


class SchemaRegistry:
    """Resolves writer schemas (cached, bounded), off the event loop, retrying while the registry cannot answer."""

    def __init__(self, fetch: Fetch, cache_size: int, on_close: Callable[[], None] = lambda: None) -> None:
        self._fetch = fetch
        self._on_close = on_close
        self._cache: OrderedDict[SchemaRef, WriterSchema] = OrderedDict()
        self._cache_size = cache_size
        self._lookups: dict[SchemaRef, asyncio.Future[tuple[str, str]]] = {}
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="schema-registry")

    def cached(self, ref: SchemaRef) -> WriterSchema | None:
        schema = self._cache.get(ref)
        if schema is not None:
            self._cache.move_to_end(ref)
        return schema

    async def resolve(self, ref: SchemaRef) -> WriterSchema:
        """One lookup (cache first); RegistryUnavailable when the registry does not give it."""
        schema = self.cached(ref)
        if schema is not None:
            return schema
        lookup = self._lookups.get(ref)
        if lookup is None:  # messages waiting for the same schema share one request
            lookup = asyncio.get_running_loop().run_in_executor(self._thread, self._fetch, ref)
            self._lookups[ref] = lookup
            lookup.add_done_callback(partial(self._lookup_done, ref))
        try:
            schema_type, text = await asyncio.shield(lookup)
        except Exception as exc:  # any failure of the registry or the path to it: transient
            raise RegistryUnavailable(f"the schema registry did not give {ref}: {type(exc).__name__}") from None
        schema = self._cache.get(ref) or _writer_schema(schema_type, text)
        self._cache[ref] = schema
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return schema

    def _lookup_done(self, ref: SchemaRef, lookup: asyncio.Future[tuple[str, str]]) -> None:
        self._lookups.pop(ref, None)
        if not lookup.cancelled():
            lookup.exception()  # retrieved here too: every waiter may have gone (a drain) before it failed

    async def wait_for(self, ref: SchemaRef, draining: asyncio.Event) -> WriterSchema | None:
        """Resolve `ref`, retrying with a doubling backoff (0.5 s to 30 s); None when `draining` is set first."""
        delay = _FIRST_RETRY_S
        while True:
            try:
                return await self.resolve(ref)
            except RegistryUnavailable as exc:
                log.warning("%s; holding the message and asking again in %.1f s", exc, delay)
            if not await sleep_unless(draining, delay):
                return None
            delay = min(delay * 2, _MAX_RETRY_S)

    def close(self) -> None:
        self._thread.shutdown(wait=False, cancel_futures=True)
        self._on_close()


def _writer_schema(schema_type: str, text: str) -> WriterSchema:
    if schema_type != "JSON":
        return WriterSchema(schema_type)
    try:
        document = codec.decode(text.encode("utf-8"), _MAX_SCHEMA_BYTES)
        return WriterSchema(schema_type, validator=jsonschema_rs.validator_for(document))
    except (codec.DecodeError, ValueError, jsonschema_rs.ValidationError) as exc:
        return WriterSchema(schema_type, compile_error=f"{type(exc).__name__}: {str(exc)[:200]}")


def make_registry(url: str, *, cache_size: int, timeout_s: float) -> SchemaRegistry:
    """A registry backed by confluent-kafka's SchemaRegistryClient (its own retries off: `wait_for` retries)."""
    from confluent_kafka.schema_registry import SchemaRegistryClient  # noqa: PLC0415 - only when framing is on

    client = SchemaRegistryClient(
        {"url": url, "timeout": timeout_s, "max.retries": 0, "cache.capacity": max(cache_size, 1)}
    )

    def fetch(ref: SchemaRef) -> tuple[str, str]:
        if ref.guid is not None:
            schema = client.get_schema_by_guid(ref.guid)
        else:
            assert ref.schema_id is not None
            schema = client.get_schema(ref.schema_id)
        return (schema.schema_type or "AVRO"), (schema.schema_str or "")

    return SchemaRegistry(fetch, cache_size, on_close=client.close)
