"""`scripts/bench --large N` (bench/large.py): the messages it sends, the section it writes, and one small real run.

The real run checks the harness, not a speed: with a small byte window and a slow API, the worker's window fills
(the measurement measures what it claims) and stays within its byte bound, and the figures come back whole.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bench import report
from bench.datasets import PARTITIONS
from bench.large import MESSAGE_BYTES, check_plannable, ensure_large_topic, large_activity, measure_large
from tests.fixtures.kafka import KafkaService
from tests.support.sandbox_process import SandboxProcess
from worker.config import WorkerConfig

SMALL_WINDOW = 4 * 1024 * 1024
SMALL_COUNT = 80  # ~20 MB: five times the small window


class TestLargeActivity:
    def test_is_exactly_the_asked_size(self) -> None:
        """Each message's value is MESSAGE_BYTES long, whatever its number."""
        assert {len(large_activity(n)) for n in (0, 7, 1999, 123_456)} == {MESSAGE_BYTES}

    def test_is_sent_not_dead_lettered(self) -> None:
        """The worker plans it as a Job on an activity route (a rejection would measure the DLQ path instead)."""
        check_plannable(large_activity(3))

    def test_a_rejected_message_is_refused_before_producing(self) -> None:
        """check_plannable raises on a message the worker would dead-letter."""
        with pytest.raises(RuntimeError, match="dead-lettered"):
            check_plannable(b'{"$ts": "not a number"}')

    def test_too_small_a_size_is_refused(self) -> None:
        with pytest.raises(ValueError, match="cannot be smaller"):
            large_activity(0, size=10)


def _run(window_mib: float, peak: float) -> dict[str, object]:
    return {
        "max_in_flight_bytes": int(window_mib * 2**20),
        "window_mib": window_mib,
        "messages": 2000,
        "message_bytes": MESSAGE_BYTES,
        "latency_ms": 1000.0,
        "time_limit_s": 90.0,
        "seconds": 30.2,
        "ended_by": "consumed all",
        "rss_at_first_consume_mib": 70.0,
        "peak_rss_mib": peak,
        "max_in_flight_bytes_seen": 60e6,
        "max_in_flight_mib_seen": 60e6 / 2**20,
        "max_in_flight_messages_seen": 250,
        "max_partitions_paused_seen": 6,
        "consumed": 2000,
        "processed": 1750,
        "delivered": 1750,
        "stop_seconds": 2.1,
        "exit_code": 0,
    }


RESULTS = {
    "meta": {"date": "today", "default_backend": "aiohttp", "loadavg_start": 1.0, "loadavg_end": 2.0},
    "large": [_run(64, 155.0), _run(256, 600.0)],
}


class TestLargeSection:
    def test_the_chart_limit_it_compares_with_is_the_charts(self) -> None:
        """report.CHART_MEMORY_LIMIT_MIB is helm/mics-worker/values.yaml's resources.limits.memory."""
        values = (Path(__file__).resolve().parents[2] / "helm" / "mics-worker" / "values.yaml").read_text()
        found = re.search(r"^resources:\n(?:  .*\n)*?  limits:\n    memory: (\d+)Mi$", values, re.MULTILINE)
        assert found is not None, "resources.limits.memory not found in Mi in values.yaml"
        assert int(found.group(1)) == report.CHART_MEMORY_LIMIT_MIB

    def test_one_row_per_window_with_the_verdict_against_the_chart_limit(self) -> None:
        """Each window gets its row; a peak over the chart's memory limit is flagged."""
        section = report.large_section(RESULTS)
        rows = [line for line in section.splitlines() if line.startswith("| 64 ") or line.startswith("| 256 ")]
        assert len(rows) == 2
        assert "| 155 | yes |" in rows[0]
        assert "| 600 | **no** |" in rows[1]
        assert f"{report.CHART_MEMORY_LIMIT_MIB} MiB" in section

    def test_replaces_only_its_own_section(self) -> None:
        """The large section goes between its markers; the other generated sections and the text stay."""
        document = "# R\n<!-- bench:main -->\nmain\n<!-- /bench:main -->\nlog\n"
        document += "<!-- bench:large -->\nold\n<!-- /bench:large -->\n"
        updated = report.replace_section(document, "large", report.large_section(RESULTS))
        assert "old" not in updated
        assert "<!-- bench:main -->\nmain\n<!-- /bench:main -->\nlog\n" in updated
        assert updated.count("<!-- bench:large -->") == 1


@pytest.mark.integration
@pytest.mark.timeout(300)
def test_a_small_run_fills_the_byte_window_and_stays_within_it(
    kafka_broker: KafkaService, sandbox: SandboxProcess
) -> None:
    """80 messages of 250 kB, a 4 MiB window, 500 ms per request: the window is what holds the worker back."""
    kafka_broker.ensure_running()
    topic = ensure_large_topic(kafka_broker.bootstrap_servers, SMALL_COUNT, say=lambda _: None)
    run = measure_large(
        kafka_broker.bootstrap_servers,
        sandbox,
        topic,
        SMALL_COUNT,
        backend="aiohttp",
        max_in_flight_bytes=SMALL_WINDOW,
        latency_ms=500.0,
        seconds=60.0,
    )
    assert run.exit_code == 0
    assert run.ended_by == "consumed all"
    assert run.consumed == SMALL_COUNT
    assert run.processed == run.delivered  # nothing dead-lettered: every message was sent
    assert run.max_in_flight_bytes_seen >= SMALL_WINDOW / 2  # the window filled
    # Each partition stops at its share plus at most one record of up to MAX_MESSAGE_BYTES (bench/README.md).
    assert run.max_in_flight_bytes_seen <= SMALL_WINDOW + PARTITIONS * WorkerConfig.max_message_bytes
    assert run.max_partitions_paused_seen >= 1
    assert run.peak_rss_mib >= run.rss_at_first_consume_mib > 0
    assert sandbox.faults()["latency_ms"] == 0  # the latency was taken off again
