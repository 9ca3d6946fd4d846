"""The Confluent-compatible Schema Registry subset the worker reads: `GET /schemas/ids/{id}`, `/schemas/guids/{guid}`.

Why in the sandbox: no Schema Registry can be run on the project's machines (Apicurio Registry's runnable
distribution is not on Maven Central, and its application jar's dependencies are not all served there; Confluent's
is not on Maven Central at all), so the sandbox serves the two reads that confluent-kafka's `SchemaRegistryClient`
makes for a deserializer, with the registry's own answers: `{"schema": …, "schemaType": …, "id": …, "guid": …}`
(`schemaType` left out for AVRO, as the registry does), and 404 with error code 40403 for an unknown schema.

Tests register schemas with the admin API (`PUT /_sandbox/schemas`, `{"id": 7, "schema": "<text>", "schemaType":
"JSON", "guid": "<uuid>"}`, guid optional) and can make the registry unavailable (`PUT /_sandbox/registry`,
`{"available": false}`: every read answers 503) to test that the worker waits instead of dead-lettering.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from aiohttp import web

from worker.sandbox import replies

__all__ = ["PREFIX", "RegistrySettingsError", "SchemaRegistryStub"]

PREFIX = "/schemas/"
_TYPES = ("AVRO", "JSON", "PROTOBUF")
_MAX_SCHEMAS = 10_000


class RegistrySettingsError(ValueError):
    """A schema registration the stub cannot accept."""


@dataclass
class SchemaRegistryStub:
    """Registered schemas by id and by GUID, and whether the registry answers at all."""

    available: bool = True
    by_id: dict[int, dict[str, object]] = field(default_factory=dict)
    by_guid: dict[str, dict[str, object]] = field(default_factory=dict)
    reads: int = 0

    def register(self, document: dict[str, object]) -> dict[str, object]:
        """Add one schema (`id`, `schema`, optional `schemaType` and `guid`); the registered record."""
        schema_id, text = document.get("id"), document.get("schema")
        schema_type = document.get("schemaType", "AVRO")
        guid = document.get("guid") or str(uuid.uuid4())
        if not isinstance(schema_id, int) or isinstance(schema_id, bool) or not 0 <= schema_id < 2**31:
            raise RegistrySettingsError("id must be an integer in [0, 2^31)")
        if not isinstance(text, str) or not text:
            raise RegistrySettingsError("schema must be a non-empty string")
        if schema_type not in _TYPES:
            raise RegistrySettingsError(f"schemaType must be one of {', '.join(_TYPES)}")
        try:
            guid = str(uuid.UUID(str(guid)))
        except ValueError:
            raise RegistrySettingsError("guid must be a UUID") from None
        if len(self.by_id) >= _MAX_SCHEMAS and schema_id not in self.by_id:
            raise RegistrySettingsError(f"at most {_MAX_SCHEMAS} schemas")
        record: dict[str, object] = {"id": schema_id, "guid": guid, "schema": text}
        if schema_type != "AVRO":
            record["schemaType"] = schema_type
        self.by_id[schema_id] = self.by_guid[guid] = record
        return record

    def clear(self) -> None:
        self.available = True
        self.by_id.clear()
        self.by_guid.clear()
        self.reads = 0

    def handle(self, request: web.BaseRequest) -> web.Response:
        """Answer `GET /schemas/ids/{id}` or `GET /schemas/guids/{guid}` (query parameters ignored)."""
        self.reads += 1
        if not self.available:
            return _error(503, 50003, "Schema Registry unavailable (sandbox)")
        if request.method != "GET":
            return _error(405, 405, f"Method {request.method} not allowed here")
        kind, _, key = request.raw_path.partition("?")[0].removeprefix(PREFIX).partition("/")
        record: dict[str, object] | None = None
        if kind == "ids" and key.isdigit() and len(key) <= 10:
            record = self.by_id.get(int(key))
        elif kind == "guids":
            record = self.by_guid.get(key)
        else:
            return _error(404, 404, "Not found")
        if record is None:
            return _error(404, 40403, "Schema not found")
        return replies.json_response(record)


def _error(status: int, code: int, message: str) -> web.Response:
    return replies.json_response({"error_code": code, "message": message}, status)
