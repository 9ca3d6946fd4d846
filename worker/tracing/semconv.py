"""Attribute names from the OpenTelemetry semantic conventions (messaging, Kafka, HTTP client), and the worker's own.

Kept here, not imported from `opentelemetry-semantic-conventions`: the incubating module names move between its
releases, and these strings are the contract a trace backend reads.
"""

from __future__ import annotations

from typing import Final

MESSAGING_SYSTEM: Final = "messaging.system"
MESSAGING_OPERATION_TYPE: Final = "messaging.operation.type"
MESSAGING_OPERATION_NAME: Final = "messaging.operation.name"
MESSAGING_DESTINATION_NAME: Final = "messaging.destination.name"
MESSAGING_DESTINATION_PARTITION_ID: Final = "messaging.destination.partition.id"
MESSAGING_CONSUMER_GROUP_NAME: Final = "messaging.consumer.group.name"
MESSAGING_MESSAGE_BODY_SIZE: Final = "messaging.message.body.size"
MESSAGING_KAFKA_OFFSET: Final = "messaging.kafka.offset"
MESSAGING_KAFKA_MESSAGE_KEY: Final = "messaging.kafka.message.key"
MESSAGING_KAFKA_MESSAGE_TOMBSTONE: Final = "messaging.kafka.message.tombstone"

HTTP_REQUEST_METHOD: Final = "http.request.method"
HTTP_REQUEST_RESEND_COUNT: Final = "http.request.resend_count"
HTTP_RESPONSE_STATUS_CODE: Final = "http.response.status_code"
URL_TEMPLATE: Final = "url.template"
SERVER_ADDRESS: Final = "server.address"
SERVER_PORT: Final = "server.port"
ERROR_TYPE: Final = "error.type"

# The worker's own (no convention names them).
OUTCOME: Final = "mics.outcome"
"""delivered, dead_lettered or abandoned."""
DLQ_REASON: Final = "mics.dlq.reason"
ROUTE: Final = "mics.route"
MESSAGE_AGE_MS: Final = "mics.message.age_ms"
"""How long the record waited in Kafka: from its timestamp to its consumption."""
RETRY_AFTER_S: Final = "mics.http.retry_after_s"
"""The answer's `Retry-After`, in seconds (an HTTP-date is turned into seconds)."""
