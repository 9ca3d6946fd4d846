"""The sandbox's HTTP server: aiohttp's low-level server, one handler, no router and no access log.

A router would match on decoded paths and cost time per request; the sandbox parses raw paths itself, so
one handler sends `/_sandbox/…` to the admin API, `/schemas/…` to the Schema Registry subset, and everything else
to the Tracking API.
"""

from __future__ import annotations

from aiohttp import web

from worker.sandbox.admin import PREFIX, AdminApi
from worker.sandbox.api import DocumentChecker, TrackingApi
from worker.sandbox.registry import PREFIX as REGISTRY_PREFIX
from worker.sandbox.state import SandboxSettings, SandboxState

#: How long a graceful stop waits for requests in flight (a hang fault is cut short).
SHUTDOWN_GRACE_S = 1.0


class SandboxServer:
    """One sandbox listening on one TCP address."""

    def __init__(self, settings: SandboxSettings, checker: DocumentChecker | None) -> None:
        self.state = SandboxState(settings)
        self._api = TrackingApi(self.state, checker)
        self._admin = AdminApi(self.state)
        self._runner: web.ServerRunner | None = None

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        """Route one request to the admin API or the Tracking API."""
        raw_path = request.raw_path
        if raw_path.startswith(PREFIX) and raw_path[len(PREFIX) : len(PREFIX) + 1] in {"", "/", "?"}:
            return await self._admin.handle(request)
        if raw_path.startswith(REGISTRY_PREFIX):
            return self.state.registry.handle(request)
        return await self._api.handle(request)

    async def start(self, host: str, port: int) -> int:
        """Listen on `host`:`port` (0 picks a free port); return the port bound."""
        server = web.Server(self.handle, access_log=None)
        self._runner = web.ServerRunner(server, shutdown_timeout=SHUTDOWN_GRACE_S)
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port).start()
        address = self._runner.addresses[0]
        return int(address[1])

    async def stop(self) -> None:
        """Stop listening, let requests in flight finish (up to the grace period), close every connection."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
