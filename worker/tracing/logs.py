"""Log lines carry the current span's `trace_id` and `span_id` (hex, as trace backends show them)."""

from __future__ import annotations

import logging

from opentelemetry import trace

__all__ = ["TraceIdFilter"]


class TraceIdFilter(logging.Filter):
    """Adds `trace_id` / `span_id` to a record logged while a message's span is current (installed only when on)."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            record.trace_id = format(context.trace_id, "032x")
            record.span_id = format(context.span_id, "016x")
        return True
