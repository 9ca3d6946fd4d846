"""The credentials gate: a 401/403 holds the datamart that answered it, and only that datamart, until a probe of
that same datamart says the token works again.

A held datamart's messages wait at the gate (the wait is not counted against their retry budget); the other
datamarts keep flowing. A message that is refused again right after its datamart's probe succeeded (e.g. the token
may read but not write there) is refused for itself, not for its credentials: after `max_refusals` such refusals it
is dead-lettered with the API's status, so no message can cycle hold → probe → resume without bound.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine

from worker.flow import FlowControl
from worker.mics.client import MicsClient
from worker.mics.errors import ApiResult, OutcomeKind
from worker.waits import first_of

__all__ = ["MAX_REFUSALS", "CredentialsGate", "probe_with_fresh_token"]


MAX_REFUSALS = 3
"""401/403 answers one message may receive (each after its datamart's probe succeeded) before it is dead-lettered."""

Probe = Callable[[str], Awaitable[ApiResult]]
Spawn = Callable[[Coroutine[object, object, None]], None]


class CredentialsGate:
    """Per-datamart holds with one probe task each."""

    __slots__ = ("_flow", "_interval_s", "_open", "_probe", "_spawn")

    def __init__(self, flow: FlowControl, probe: Probe, interval_s: float, spawn: Spawn) -> None:
        self._flow = flow
        self._probe = probe
        self._interval_s = interval_s
        self._spawn = spawn
        self._open: dict[str, asyncio.Event] = {}

    def is_held(self, datamart: str) -> bool:
        event = self._open.get(datamart)
        return event is not None and not event.is_set()

    def hold(self, datamart: str, result: ApiResult) -> None:
        """The API refused the credentials for `datamart`: hold it and start probing it (once)."""
        if self.is_held(datamart):
            return
        event = self._open.setdefault(datamart, asyncio.Event())
        event.clear()
        why = f"HTTP {result.status}; its messages wait, the token is probed every {self._interval_s:g} s"
        self._flow.set_credentials_held(datamart, True, why)
        self._spawn(self._probe_until_accepted(datamart, event))

    async def wait(self, datamart: str, wake: asyncio.Event) -> bool:
        """Wait while `datamart` is held; False when `wake` was set first (the caller gives the message up)."""
        event = self._open.get(datamart)
        while event is not None and not event.is_set():  # a hold may end and start again before this task runs
            if wake.is_set():
                return False
            await first_of(event, wake)
            event = self._open.get(datamart)
        return True

    async def _probe_until_accepted(self, datamart: str, event: asyncio.Event) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            result = await self._probe(datamart)
            if result.kind not in (OutcomeKind.AUTH, OutcomeKind.RETRYABLE):  # let in: the token is not the problem
                self._flow.set_credentials_held(datamart, False)  # the condition's end line says so
                event.set()
                return
            self._flow.conditions.count("credentials_held", datamart, "refused_probes")


async def probe_with_fresh_token(client: MicsClient, datamart: str) -> ApiResult:
    """A probe re-reads the datamart's token file first: a restored or rotated token ends the hold at once."""
    client.tokens.refresh(datamart)
    return await client.probe_credentials(datamart)
