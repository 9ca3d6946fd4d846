"""Start-up failures outside the configuration are one line, not a traceback: a taken health port, refused Kafka
settings (with any secret value masked, since librdkafka may quote what it refuses)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from dataclasses import replace

import pytest
from prometheus_client import CollectorRegistry

from worker.app import StartupError, _kafka_clients, _KafkaCallbacks, _without_secrets
from worker.config import WorkerConfig
from worker.metrics import WorkerMetrics

MINIMAL = {
    "MICS_WORKER_BOOTSTRAP_SERVERS": "127.0.0.1:1",
    "MICS_WORKER_TOPICS": "events",
    "MICS_WORKER_ROUTES": "events=activity",
    "MICS_WORKER_DEFAULT_DATAMART_ID": "1509",
    "MICS_WORKER_API_TOKEN": "tok-Sup3rSecret",
}


def test_a_health_port_in_use_is_one_line_and_exit_2() -> None:
    """`run` on a port another process holds stops before any Kafka client, saying which port and what to set."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        environ = {
            **{k: v for k, v in os.environ.items() if not k.startswith("MICS_WORKER_")},
            **MINIMAL,
            "MICS_WORKER_HEALTH_HOST": "127.0.0.1",
            "MICS_WORKER_HEALTH_PORT": str(port),
            "MICS_WORKER_LOG_FORMAT": "text",
        }
        done = subprocess.run(
            [sys.executable, "-m", "worker", "run"],
            env=environ,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert done.returncode == 2
    assert done.stderr.splitlines()[-1] == (
        f"mics-worker: cannot start: cannot serve metrics and health on 127.0.0.1:{port}: Address already in use "
        "(another process holds the port? set MICS_WORKER_HEALTH_PORT)"
    )
    assert "Traceback" not in done.stderr


def test_kafka_settings_librdkafka_refuses_at_client_creation_are_a_startup_error() -> None:
    """sasl.mechanism is checked by librdkafka only when a client is created: one line naming the setting."""
    config = WorkerConfig.from_env(
        {**MINIMAL, "MICS_WORKER_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "MICS_WORKER_KAFKA_SASL_MECHANISM": "NOPE"}
    )
    metrics = WorkerMetrics(CollectorRegistry(), process_metrics=False)
    with pytest.raises(StartupError) as refused:
        _kafka_clients(config, metrics, _KafkaCallbacks())
    assert str(refused.value) == (
        "librdkafka refuses the Kafka settings (MICS_WORKER_KAFKA_*): "
        "Failed to create consumer: Unsupported SASL mechanism: NOPE"
    )


def test_a_secret_value_quoted_by_librdkafka_is_masked() -> None:
    config = replace(
        WorkerConfig.from_env(MINIMAL), kafka_properties={"sasl.password": "Hunter2", "sasl.mechanism": "PLAIN"}
    )
    text = _without_secrets("bad value Hunter2 for sasl.password with PLAIN", config)
    assert text == "bad value *** for sasl.password with PLAIN"
