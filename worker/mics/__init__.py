"""The mediarithmics Tracking API: typed client, selectors, outcome classification, HTTP backends."""

from worker.mics.auth import ApiToken
from worker.mics.client import ApiPaths, MicsClient
from worker.mics.errors import ApiResult, classify, parse_retry_after
from worker.mics.selectors import (
    EmailHash,
    UserAccount,
    UserAgentId,
    UserPointId,
    UserPointSelector,
    UserPointUuid,
    encode_segment,
    selector_from_envelope,
)
from worker.mics.statuses import OutcomeKind, StatusTable, parse_status_classes
from worker.mics.transport import (
    BACKENDS,
    DEFAULT_BACKEND,
    RawResponse,
    Timeouts,
    Transport,
    TransportConnectError,
    TransportConnectionReset,
    TransportError,
    TransportProtocolError,
    TransportTimeout,
    make_transport,
)

__all__ = [
    "BACKENDS",
    "DEFAULT_BACKEND",
    "ApiPaths",
    "ApiResult",
    "ApiToken",
    "EmailHash",
    "MicsClient",
    "OutcomeKind",
    "RawResponse",
    "StatusTable",
    "Timeouts",
    "Transport",
    "TransportConnectError",
    "TransportConnectionReset",
    "TransportError",
    "TransportProtocolError",
    "TransportTimeout",
    "UserAccount",
    "UserAgentId",
    "UserPointId",
    "UserPointSelector",
    "UserPointUuid",
    "classify",
    "encode_segment",
    "make_transport",
    "parse_retry_after",
    "parse_status_classes",
    "selector_from_envelope",
]
