"""A stand-in API that measures end-to-end latency: `python -m bench.latency_sink [--port 0]`.

Why not the sandbox: in `--minimal` mode it only counts, and the full mode keeps no arrival times. The benchmark's
latency messages carry `"bench_sent_ns": <time.time_ns() just before produce()>`; this server notes, for every
request, the time from that stamp to the request's arrival (same machine, same clock), answers 200 like the
API, and hands the samples out at `GET /_sink/latencies` (microseconds, arrival order). Nothing else is checked:
the sink is for latency only; the throughput runs use the sandbox.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import signal
import time

import orjson
import uvloop
from aiohttp import web

_STAMP = re.compile(rb'"bench_sent_ns":(\d+)')
_OK = b'{"status":"ok","data":{}}'


class LatencySink:
    """Answers every API request with 200 and keeps the stamped requests' latencies."""

    def __init__(self) -> None:
        self.latencies_us: list[float] = []
        self.requests = 0

    async def handle(self, request: web.BaseRequest) -> web.Response:
        if request.path.startswith("/_sink/"):
            return self._admin(request)
        body = await request.read()
        arrived_ns = time.time_ns()
        self.requests += 1
        stamp = _STAMP.search(body)
        if stamp is not None:
            self.latencies_us.append((arrived_ns - int(stamp.group(1))) / 1000)
        return web.Response(body=_OK, content_type="application/json")

    def _admin(self, request: web.BaseRequest) -> web.Response:
        if request.path == "/_sink/latencies":
            return web.Response(body=orjson.dumps(self.latencies_us), content_type="application/json")
        if request.path == "/_sink/count":
            return web.Response(body=orjson.dumps({"requests": self.requests, "stamped": len(self.latencies_us)}))
        if request.path == "/_sink/reset" and request.method == "POST":
            self.latencies_us.clear()
            self.requests = 0
            return web.Response(body=b"{}")
        return web.Response(status=404)


async def serve(host: str, port: int) -> None:
    """Serve until SIGTERM/SIGINT; announce the address on stdout once listening."""
    sink = LatencySink()
    runner = web.ServerRunner(web.Server(sink.handle, access_log=None))
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    bound = runner.addresses[0][1]
    print(f"latency sink listening on http://{host}:{bound}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    uvloop.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
