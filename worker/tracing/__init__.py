"""OpenTelemetry tracing: one trace per message, from the producer's record to the API call or the dead letter.

Off by default (`MICS_WORKER_TRACING=on` turns it on); the rest is configured the standard way (`OTEL_*`). When off,
the pipeline holds `NO_TRACING` and every message the shared `NO_TRACE`: no SDK import, no span object and no
attribute dict per message. The spans follow the messaging and HTTP semantic conventions (`semconv`).
"""

from __future__ import annotations

from worker.tracing.noop import NO_ATTEMPT, NO_TRACE, NO_TRACING, AttemptTrace, MessageTrace, Tracing
from worker.tracing.propagation import TRACE_HEADERS, trace_id_of
from worker.tracing.settings import TracingSettings

__all__ = [
    "NO_ATTEMPT",
    "NO_TRACE",
    "NO_TRACING",
    "TRACE_HEADERS",
    "AttemptTrace",
    "MessageTrace",
    "Tracing",
    "TracingSettings",
    "trace_id_of",
]
