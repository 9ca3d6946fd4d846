"""`mics-worker check` says why a probe failed: refused, no answer, an unhealthy status with the readiness detail."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from worker.cli import main
from worker.probe import probe


class _Answers(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        status, body = (200, b"ok") if self.path == "/healthz" else (503, b"not ready:\n  consumer not assigned")
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def server() -> Iterator[int]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Answers)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def _closed_port() -> int:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        return int(holder.getsockname()[1])


def test_healthy_is_silent_and_0(server: int, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--url", f"http://127.0.0.1:{server}/healthz"]) == 0
    assert capsys.readouterr().err == ""


def test_unready_names_the_status_and_the_detail(server: int, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{server}/readyz"
    assert main(["check", "--url", url]) == 1
    assert (
        capsys.readouterr().err == f"mics-worker check: unhealthy: {url}: HTTP 503: not ready: consumer not assigned\n"
    )


def test_nothing_listening_says_connection_refused(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{_closed_port()}/healthz"
    assert main(["check", "--url", url]) == 1
    assert capsys.readouterr().err == (
        f"mics-worker check: unhealthy: {url}: connection refused (is the worker running, on this port?)\n"
    )


def test_a_silent_listener_is_a_timeout() -> None:
    """A socket that accepts connections (the kernel's backlog) but never answers: no answer within the timeout."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/healthz"
        result = probe(url, 0.2)
    assert not result.ok
    assert result.reason == f"{url}: no answer within 0.2 s"


def test_the_port_comes_from_the_health_port_variable(
    server: int, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MICS_WORKER_HEALTH_PORT", str(server))
    assert main(["check", "--ready"]) == 1
    assert f"127.0.0.1:{server}/readyz: HTTP 503" in capsys.readouterr().err


def test_a_bad_health_port_variable_is_said(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MICS_WORKER_HEALTH_PORT", "ninety")
    assert main(["check"]) == 2
    assert capsys.readouterr().err == (
        "mics-worker check: MICS_WORKER_HEALTH_PORT='ninety' is not an integer (or pass --url)\n"
    )


def test_not_a_url(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--url", "localhost:9102"]) == 1
    assert capsys.readouterr().err == "mics-worker check: unhealthy: localhost:9102 is not an http(s) URL with a host\n"
