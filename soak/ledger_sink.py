"""The soak's API stand-in: the sandbox in minimal mode (same routes, token check, fault injection), plus a ledger.

Why not the sandbox's own document store: at soak volume (hundreds of thousands of writes in 15 minutes) it would
hold gigabytes of parsed bodies, and the soak only needs to know which ledger ids were accepted and how often.
So every 2xx write is looked up for its ledger id (`$unique_key` of an activity, `event_id` of a profile or choice
body, as `tests/support/events.py` writes them) and counted; the body itself is dropped.

    MICS_SANDBOX_TOKEN=... python -m soak.ledger_sink --port 0 [--seed 1]
    soak sink listening on http://127.0.0.1:41234        # the only line on stdout; SIGTERM stops it

Besides the sandbox's admin API (`/_sandbox/faults`, `/_sandbox/stats`, ...): `GET /_soak/count` →
`{"accepted": n, "distinct": n, "unidentified": n}`, `GET /_soak/ledger` → `{"accepted": {id: times}, ...}`,
`POST /_soak/reset` forgets the ledger.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import sys
from collections import Counter
from collections.abc import Sequence

import orjson
from aiohttp import web

from worker.sandbox.faults import FaultSettings
from worker.sandbox.server import SandboxServer
from worker.sandbox.state import SandboxSettings

TOKEN_ENV = "MICS_SANDBOX_TOKEN"  # noqa: S105 - the name of an environment variable, not a secret
ANNOUNCEMENT = "soak sink listening on"
_LEDGER_ID = re.compile(rb'"(?:\$unique_key|event_id)":"([0-9a-f-]{36})"')
_WRITES = frozenset({"POST", "PUT"})


class LedgerSink(SandboxServer):
    """A minimal-mode sandbox that also counts, per ledger id, the writes it accepted."""

    def __init__(self, settings: SandboxSettings) -> None:
        super().__init__(settings, checker=None)
        self.accepted: Counter[bytes] = Counter()
        self.unidentified = 0

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        path = request.raw_path
        if path.startswith("/_soak/"):
            return self._soak_admin(request.method, path)
        if path.startswith("/_sandbox"):  # the sandbox's own admin API reads its body itself
            return await super().handle(request)
        body = await request.read() if request.method in _WRITES else b""
        response = await super().handle(request)
        if body and 200 <= response.status < 300:
            found = _LEDGER_ID.search(body)
            if found is None:
                self.unidentified += 1
            else:
                self.accepted[found.group(1)] += 1
        return response

    def _soak_admin(self, method: str, path: str) -> web.Response:
        if method == "GET" and path == "/_soak/count":
            document: dict[str, object] = {
                "accepted": sum(self.accepted.values()),
                "distinct": len(self.accepted),
                "unidentified": self.unidentified,
            }
        elif method == "GET" and path == "/_soak/ledger":
            document = {
                "accepted": {key.decode(): count for key, count in self.accepted.items()},
                "unidentified": self.unidentified,
            }
        elif method == "POST" and path == "/_soak/reset":
            self.accepted.clear()
            self.unidentified = 0
            document = {"status": "ok"}
        else:
            return web.Response(status=404)
        return web.Response(body=orjson.dumps(document), content_type="application/json")


async def _serve(sink: LedgerSink, host: str, port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    bound = await sink.start(host, port)
    print(f"{ANNOUNCEMENT} http://{host}:{bound}", flush=True)
    try:
        await stop.wait()
    finally:
        await sink.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m soak.ledger_sink", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--seed", type=int, default=None, help="seed of the fault RNG")
    args = parser.parse_args(argv)
    token = os.environ.get(TOKEN_ENV, "")
    if not token:
        parser.error(f"set {TOKEN_ENV}")
    settings = SandboxSettings(token=token, minimal=True, seed=args.seed, faults=FaultSettings())
    asyncio.run(_serve(LedgerSink(settings), args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
