"""The worker's own tracing settings; the exporter, endpoint, sampler and resource come from `OTEL_*` variables."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["TracingSettings"]


@dataclass(frozen=True, slots=True)
class TracingSettings:
    """`enabled`: `MICS_WORKER_TRACING=on`; `propagate_to_api`: send `traceparent` on each API request."""

    enabled: bool = False
    propagate_to_api: bool = False
