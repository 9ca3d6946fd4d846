"""The tracing interface the pipeline calls, as no-ops: what runs, at no cost, when tracing is off.

The active implementation (`worker.tracing.spans`) subclasses these. Every method here returns at once and builds
nothing, so the hot path calls them unconditionally; `recording` guards the few calls whose arguments cost something.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the configuration imports this package: no runtime import of the worker's modules here
    from worker.kafka import Message
    from worker.mics.errors import ApiResult

__all__ = ["NO_ATTEMPT", "NO_TRACE", "NO_TRACING", "AttemptTrace", "MessageTrace", "TraceHeaders", "Tracing"]

TraceHeaders = list[tuple[str, bytes | None]]


class AttemptTrace:
    """One HTTP attempt."""

    __slots__ = ()

    @property
    def request_headers(self) -> Mapping[str, str] | None:
        """Headers to add to the request (`traceparent`, when propagation to the API is on)."""
        return None

    def end(self, result: ApiResult) -> None:
        """The attempt's answer (or the failure that stood for one)."""


class MessageTrace:
    """One message, from its consumption to its final outcome."""

    __slots__ = ()
    recording = False

    def activate(self) -> object:
        """Make the message's span current (log lines then carry its ids); returns what `deactivate` takes."""
        return None

    def deactivate(self, token: object) -> None:
        """Undo `activate`."""

    def attempt(self, route: str, resend_count: int) -> AttemptTrace:
        """Start an HTTP attempt (`resend_count`: the requests sent for this message before it)."""
        return NO_ATTEMPT

    def waited(self, reason: str, started: float) -> None:
        """A pause that did not count against the message (a hold, flow control) ended; `started`: monotonic s."""

    def retry_scheduled(self, attempts: int, delay_s: float, reason: str) -> None:
        """A failed attempt will be retried after `delay_s`."""

    def dead_letter_started(self, dlq_topic: str, reason: str) -> TraceHeaders:
        """The dead-letter write begins; returns the trace headers the DLQ record carries (none when off)."""
        return []

    def dead_letter_event(self, name: str, detail: str) -> None:
        """Something happened to the dead-letter write (reduced, failed and kept for a retry)."""

    def finish(self, outcome: str, reason: str | None = None) -> None:
        """The message's final outcome: `delivered`, `dead_lettered` (with its reason) or `abandoned`."""


class Tracing:
    """Starts message traces; this base starts none."""

    __slots__ = ()
    enabled = False

    def begin(self, message: Message, topic: str, partition: int, offset: int) -> MessageTrace:
        """The trace of one message just taken from Kafka."""
        return NO_TRACE

    def shutdown(self) -> None:
        """Export what is buffered and stop (bounded by the exporter's own timeout)."""


NO_ATTEMPT = AttemptTrace()
NO_TRACE = MessageTrace()
NO_TRACING = Tracing()
