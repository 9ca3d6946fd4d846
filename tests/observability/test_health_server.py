"""HealthServer over real loopback HTTP, and `mics-worker check`'s probe (`worker.probe`) against it."""

from __future__ import annotations

import gzip
import http.client
import json
import socket
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry

from worker.health import Health, HealthServer
from worker.metrics import WorkerMetrics
from worker.probe import probe


class Response:
    """What a test needs from one HTTP exchange."""

    def __init__(self, status: int, headers: http.client.HTTPMessage, body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> dict[str, object]:
        document: dict[str, object] = json.loads(self.body)
        return document


def get(port: int, path: str, headers: dict[str, str] | None = None) -> Response:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        return Response(response.status, response.headers, response.read())
    finally:
        connection.close()


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def health() -> Health:
    return Health(liveness_ttl_s=30.0)


@pytest.fixture
def metrics(registry: CollectorRegistry) -> WorkerMetrics:
    return WorkerMetrics(registry, librdkafka_version="2.16.0")


@pytest.fixture
def server(health: Health, registry: CollectorRegistry, metrics: WorkerMetrics) -> Iterator[HealthServer]:
    with HealthServer(health, registry, host="127.0.0.1", port=0) as running:
        yield running


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


class TestMetricsEndpoint:
    def test_serves_prometheus_text(self, server: HealthServer) -> None:
        """GET /metrics answers the registry in the Prometheus text format."""
        response = get(server.port, "/metrics")
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        assert b"mics_worker_build_info{" in response.body
        assert b"# TYPE mics_worker_messages_outcome_total counter" in response.body

    def test_honours_openmetrics_accept_header(self, server: HealthServer) -> None:
        """A scraper asking for OpenMetrics gets OpenMetrics, terminated by # EOF."""
        response = get(server.port, "/metrics", {"Accept": "application/openmetrics-text; version=1.0.0"})
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("application/openmetrics-text")
        assert response.body.endswith(b"# EOF\n")

    def test_gzips_when_asked(self, server: HealthServer) -> None:
        """With Accept-Encoding: gzip the exposition comes compressed."""
        response = get(server.port, "/metrics", {"Accept-Encoding": "gzip"})
        assert response.headers["Content-Encoding"] == "gzip"
        assert b"mics_worker_build_info" in gzip.decompress(response.body)

    def test_reflects_updates(self, server: HealthServer, metrics: WorkerMetrics) -> None:
        """A value recorded after start shows in the next scrape."""
        metrics.delivered("activity")
        response = get(server.port, "/metrics")
        sample = b'mics_worker_messages_outcome_total{outcome="delivered",reason="none",route="activity"} 1.0'
        assert sample in response.body


class TestProbes:
    def test_healthz_is_200_while_alive(self, server: HealthServer) -> None:
        """/healthz answers 200 with a JSON explanation while the poll loop beats."""
        response = get(server.port, "/healthz")
        assert response.status == 200
        assert response.headers["Content-Type"] == "application/json"
        assert response.json()["status"] == "alive"

    def test_readyz_flips_with_joining_and_credentials_pause(self, server: HealthServer, health: Health) -> None:
        """/readyz is 503 until joined, 503 while paused for credentials, and 200 again once resumed."""
        not_joined = get(server.port, "/readyz")
        assert not_joined.status == 503
        assert not_joined.json()["reasons"] == ["not_joined"]

        health.set_joined(True)
        assert get(server.port, "/readyz").status == 200

        health.set_paused("credentials", True)
        paused = get(server.port, "/readyz")
        assert paused.status == 503
        assert paused.json()["reasons"] == ["paused_credentials"]

        health.set_paused("credentials", False)
        assert get(server.port, "/readyz").status == 200

    def test_query_string_is_ignored(self, server: HealthServer) -> None:
        """A probe URL with a query string reaches the same endpoint."""
        assert get(server.port, "/healthz?verbose=1").status == 200

    def test_unknown_path_is_404(self, server: HealthServer) -> None:
        """Anything but the three endpoints is 404."""
        assert get(server.port, "/admin").status == 404


class TestLifecycle:
    def test_port_zero_picks_a_free_port(self, server: HealthServer) -> None:
        """Port 0 binds a real port, exposed as .port."""
        assert server.port > 0

    def test_stop_releases_the_port(self, health: Health, registry: CollectorRegistry) -> None:
        """After stop() the port refuses connections, and stop() again is harmless."""
        running = HealthServer(health, registry, host="127.0.0.1", port=0)
        running.start()
        port = running.port
        running.stop()
        running.stop()
        with pytest.raises(ConnectionRefusedError):
            get(port, "/healthz")


class TestProbe:
    def test_zero_when_healthy(self, server: HealthServer) -> None:
        """The probe exits 0 when the worker's /healthz answers 200."""
        assert probe(f"http://127.0.0.1:{server.port}/healthz", timeout_s=5).exit_status == 0

    def test_one_when_not_ready(self, server: HealthServer) -> None:
        """The probe exits 1 when the worker's /readyz answers 503, and says so."""
        url = f"http://127.0.0.1:{server.port}/readyz"
        result = probe(url, timeout_s=5)
        assert result.exit_status == 1
        assert result.reason.startswith(f"{url}: HTTP 503")

    def test_one_when_nothing_listens(self) -> None:
        """The probe exits 1, without raising, when the connection is refused."""
        assert probe(f"http://127.0.0.1:{free_port()}/healthz", timeout_s=5).exit_status == 1

    @pytest.mark.parametrize("url", ["", "ftp://127.0.0.1/healthz", "http:///healthz", "not a url"])
    def test_one_for_unusable_urls(self, url: str) -> None:
        """The probe exits 1, without raising or connecting, for a URL it cannot probe."""
        result = probe(url, timeout_s=1)
        assert result.exit_status == 1
        assert result.reason == f"{url} is not an http(s) URL with a host"
