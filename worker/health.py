"""Liveness and readiness of the worker, and the small HTTP server that reports them with the metrics.

Liveness answers "is the poll loop still turning?": the loop calls ``Health.heartbeat()`` on every turn, and
the worker is alive while the last beat is younger than a TTL. Readiness answers "should this worker be
taking traffic?": joined to its consumer group, alive, and not stopped on purpose (credentials rejected, DLQ
unwritable, dead-letter rate spiking, a route halted because the API says its configuration is wrong). A pause
for backpressure is normal flow control and keeps it ready, and so is a route's open circuit or shared backoff: the
API's trouble, not the worker's (`mics_worker_route_held` shows them).

The abnormal states of `conditions` are readiness details (`conditions`: each condition's subjects). Of them only
`broker_unreachable` adds a reason of its own (a worker that reaches no broker is doing nothing); the others either
have theirs already (`group_join_waiting` is `not_joined`, `dlq_unwritable` `paused_dlq_unavailable`,
`credentials_held` `paused_credentials`, `route_halted` `paused_misconfigured`) or keep the worker ready
(`api_failing`, `api_throttled`: the API's trouble).

The server runs on stdlib threads, not on the asyncio loop, so probes and scrapes are answered even while
the loop is busy - which is exactly when they matter. The other side, the exec probe `mics-worker check`, is
`worker.probe`.
"""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Final, Self, cast
from urllib.parse import urlsplit

import orjson
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder, gzip_accepted

from worker.metrics import PAUSE_REASONS

UNREADY_PAUSE_REASONS: Final = frozenset({"credentials", "dlq_unavailable", "dlq_rate", "misconfigured"})
"""Pauses that mean "stopped on purpose, needs attention": they make the worker not ready."""

UNREADY_CONDITIONS: Final = frozenset({"broker_unreachable"})
"""Conditions that make the worker not ready by themselves (the others are covered by a pause or by `joined`)."""

DEFAULT_LIVENESS_TTL_S: Final = 30.0
DEFAULT_HOST: Final = "0.0.0.0"  # noqa: S104 - kubelet probes and Prometheus reach the pod IP, not loopback
_HTTP_OK: Final = 200


class Health:
    """Thread-safe health state, written by the pipeline and read by the HTTP server's threads.

    The clock is injectable (monotonic seconds) so tests can move time by hand. Creation counts as the first
    heartbeat: a worker is alive for one TTL while it starts up.
    """

    def __init__(
        self,
        *,
        liveness_ttl_s: float = DEFAULT_LIVENESS_TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if liveness_ttl_s <= 0:
            raise ValueError("liveness_ttl_s must be positive")
        self._ttl = liveness_ttl_s
        self._clock = clock
        self._lock = threading.Lock()
        self._last_beat = clock()
        self._joined = False
        self._paused: set[str] = set()
        self._held_datamarts: list[str] = []
        self._halted_routes: list[str] = []
        self._conditions: dict[str, list[str]] = {}

    def heartbeat(self) -> None:
        """Record that the poll loop made progress; called on every poll."""
        self._last_beat = self._clock()  # one float store: atomic under the GIL, no lock on the hot path

    def set_joined(self, joined: bool) -> None:
        """Record whether the consumer is a member of its group (has had an assignment callback)."""
        with self._lock:
            self._joined = joined

    def set_paused(self, reason: str, paused: bool) -> None:
        """Record that consumption is (or no longer is) paused for ``reason`` (one of ``PAUSE_REASONS``)."""
        if reason not in PAUSE_REASONS:
            raise ValueError(f"unknown pause reason {reason!r}")
        with self._lock:
            if paused:
                self._paused.add(reason)
            else:
                self._paused.discard(reason)

    def set_held_datamarts(self, datamarts: list[str]) -> None:
        """Record the datamarts whose credentials the API rejects (named in the readiness details)."""
        with self._lock:
            self._held_datamarts = list(datamarts)

    def set_halted_routes(self, routes: list[str]) -> None:
        """Record the `route/datamart` pairs halted because the API says the configuration is wrong."""
        with self._lock:
            self._halted_routes = list(routes)

    def set_conditions(self, active: dict[str, list[str]]) -> None:
        """Record the abnormal states in force, each with its subjects (`conditions.Conditions` calls this)."""
        with self._lock:
            self._conditions = {name: list(subjects) for name, subjects in active.items()}

    def liveness(self) -> tuple[bool, dict[str, object]]:
        """Whether the poll loop beat within the TTL, and a small explanation."""
        age = self._clock() - self._last_beat
        alive = age < self._ttl
        return alive, {
            "status": "alive" if alive else "stalled",
            "last_heartbeat_age_s": round(age, 3),
            "ttl_s": self._ttl,
        }

    def readiness(self) -> tuple[bool, dict[str, object]]:
        """Whether the worker should count as serving, and the reasons when it should not."""
        alive, _ = self.liveness()
        with self._lock:
            joined = self._joined
            paused = sorted(self._paused)
            held_datamarts = list(self._held_datamarts)
            halted_routes = list(self._halted_routes)
            conditions = {name: list(subjects) for name, subjects in self._conditions.items()}
        reasons: list[str] = []
        if not joined:
            reasons.append("not_joined")
        if not alive:
            reasons.append("stalled")
        reasons.extend(f"paused_{reason}" for reason in paused if reason in UNREADY_PAUSE_REASONS)
        reasons.extend(name for name in sorted(conditions) if name in UNREADY_CONDITIONS)
        ready = not reasons
        return ready, {
            "status": "ready" if ready else "not_ready",
            "reasons": reasons,
            "joined": joined,
            "paused": paused,
            "held_datamarts": held_datamarts,
            "halted_routes": halted_routes,
            "conditions": conditions,
        }


class _Server(ThreadingHTTPServer):
    """The stdlib server, carrying what the handler reads."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], health: Health, registry: CollectorRegistry) -> None:
        self.health = health
        self.registry = registry
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    """GET /metrics, /healthz, /readyz; everything else is 404."""

    server_version = "mics-worker"
    sys_version = ""
    timeout = 10  # a stuck client must not hold a thread for ever

    def do_GET(self) -> None:
        server = cast(_Server, self.server)
        path = urlsplit(self.path).path
        if path == "/metrics":
            self._metrics(server.registry)
        elif path == "/healthz":
            self._probe(*server.health.liveness())
        elif path == "/readyz":
            self._probe(*server.health.readiness())
        else:
            self._send(404, "application/json", b'{"status":"not_found"}')

    def _metrics(self, registry: CollectorRegistry) -> None:
        encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
        body = encoder(registry)
        extra: dict[str, str] = {}
        if gzip_accepted(self.headers.get("Accept-Encoding", "")):
            body = gzip.compress(body)
            extra["Content-Encoding"] = "gzip"
        self._send(_HTTP_OK, content_type, body, extra)

    def _probe(self, ok: bool, details: dict[str, object]) -> None:
        self._send(_HTTP_OK if ok else 503, "application/json", orjson.dumps(details))

    def _send(self, status: int, content_type: str, body: bytes, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Stay quiet: probes and scrapes every few seconds would drown the worker's own logs."""


class HealthServer:
    """Serves ``/metrics``, ``/healthz`` and ``/readyz`` from a daemon thread.

    ``port=0`` picks a free port; ``.port`` tells which once started. Usable as a context manager.
    """

    def __init__(
        self,
        health: Health,
        registry: CollectorRegistry,
        *,
        host: str = DEFAULT_HOST,
        port: int = 9102,
    ) -> None:
        self._health = health
        self._registry = registry
        self._address = (host, port)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port (the configured one until ``start()`` resolves port 0)."""
        if self._server is None:
            return self._address[1]
        return int(self._server.server_address[1])

    def start(self) -> None:
        """Bind and start answering; raises ``OSError`` when the port is taken."""
        if self._server is not None:
            return
        self._server = _Server(self._address, self._health, self._registry)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, name="health-http", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop answering and release the port; idempotent."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
