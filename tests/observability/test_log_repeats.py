"""RepeatFilter: a line repeated dozens of times a second (a dead broker's reconnects) is logged once per interval."""

from __future__ import annotations

import logging
import socket
import threading

import pytest

from tests.support.clock import FakeClock
from tests.support.worker_process import WorkerProcess, worker_env
from worker.logs import RepeatFilter

RECONNECTS = 12  # the failed reconnects watched: more than the lines the filter lets through


def record(message: str, *args: object, level: int = logging.WARNING) -> logging.LogRecord:
    return logging.LogRecord("worker.kafka", level, __file__, 1, message, args or None, None)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def repeats(clock: FakeClock) -> RepeatFilter:
    return RepeatFilter(interval_s=30.0, clock=clock)


class TestRepeatFilter:
    def test_a_repeated_line_passes_once_per_interval(self, repeats: RepeatFilter, clock: FakeClock) -> None:
        """Within the interval only the first line passes; the next one after it passes again."""
        passed = [repeats.filter(record("broker down")) for _ in range(50)]
        assert passed == [True] + [False] * 49
        clock.now += 29.9
        assert not repeats.filter(record("broker down"))
        clock.now += 0.2
        assert repeats.filter(record("broker down"))

    def test_the_line_after_the_interval_says_how_many_were_left_out(
        self, repeats: RepeatFilter, clock: FakeClock
    ) -> None:
        """The suppressed count travels in the next line that passes, so the rate is still visible."""
        for _ in range(41):
            repeats.filter(record("Connect to %s failed", "127.0.0.1:9092"))
        clock.now += 31
        later = record("Connect to %s failed", "127.0.0.1:9092")
        assert repeats.filter(later)
        assert later.getMessage() == (
            "Connect to 127.0.0.1:9092 failed (40 more like this in the last 30 s were not logged)"
        )

    def test_a_line_with_nothing_left_out_is_unchanged(self, repeats: RepeatFilter, clock: FakeClock) -> None:
        repeats.filter(record("rebalance"))
        clock.now += 60
        again = record("rebalance")
        assert repeats.filter(again)
        assert again.getMessage() == "rebalance"

    def test_lines_differing_only_in_elapsed_milliseconds_are_alike(self, repeats: RepeatFilter) -> None:
        """librdkafka writes the time a connect took ("after 0ms", "after 1ms"): that does not make a new line."""
        assert repeats.filter(record("refused (after 0ms in state CONNECT)"))
        assert not repeats.filter(record("refused (after 1ms in state CONNECT)"))
        assert not repeats.filter(record("refused (after 12 ms in state CONNECT)"))

    def test_lines_differing_only_in_librdkafkas_suppressed_count_are_alike(self, repeats: RepeatFilter) -> None:
        assert repeats.filter(record("refused (after 0ms in state CONNECT, 3 identical error(s) suppressed)"))
        assert not repeats.filter(record("refused (after 2ms in state CONNECT, 41 identical error(s) suppressed)"))

    @pytest.mark.parametrize(
        "other",
        [
            record("Connect to 10.0.0.2:9092 failed"),
            record("Connect to 10.0.0.1:9093 failed"),
            record("Connect to 10.0.0.1:9092 failed", level=logging.ERROR),
        ],
        ids=["another host", "another port", "another level"],
    )
    def test_a_different_line_is_not_held_back(self, repeats: RepeatFilter, other: logging.LogRecord) -> None:
        """Only the same line at the same level is limited: another broker or a worse level is news."""
        assert repeats.filter(record("Connect to 10.0.0.1:9092 failed"))
        assert repeats.filter(other)

    def test_a_flood_of_distinct_lines_does_not_grow_memory_without_bound(self, repeats: RepeatFilter) -> None:
        """Past 1,000 kinds the filter forgets the old ones (they may then pass once more) instead of growing."""
        for index in range(5000):
            assert repeats.filter(record(f"distinct line {index}"))
        assert len(repeats._last) <= 1001


class DeadBroker:
    """A port that takes each connection and closes it at once, counting them: a broker that is gone, whose
    reconnect attempts the test can count (a closed port refuses them where nothing can see)."""

    def __init__(self) -> None:
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._server.getsockname()[1]
        self.connections = 0
        self._thread = threading.Thread(target=self._serve, name="dead-broker", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self._server.accept()
            except OSError:  # closed
                return
            self.connections += 1
            connection.close()

    def close(self) -> None:
        self._server.close()
        self._thread.join(5)


class TestWorkerFacingADeadBroker:
    @pytest.mark.timeout(90)
    def test_reconnect_failures_are_logged_a_few_times_not_dozens_a_second(self) -> None:
        """Unfiltered, a worker facing a dead broker logged a line or more for every failed reconnect (from both
        clients, by the error callback and librdkafka's log). Now each kind of line appears once per 30 s, however
        many reconnects the broker saw."""
        broker = DeadBroker()
        env = worker_env(
            bootstrap_servers=f"127.0.0.1:{broker.port}",
            api_base_url="http://127.0.0.1:9",
            api_token="test-token-0123456789",
            topics="events",
            routes="events=activity",
            dlq_topic="events-dlq",
            group_id="g-dead-broker",
        )
        worker = WorkerProcess(env).start()
        try:
            worker.wait_until(lambda: broker.connections >= RECONNECTS, 60, f"{RECONNECTS} reconnect attempts")
            assert worker.is_running(), worker.stderr()
            worker.stop(timeout_s=30)
            seen = broker.connections
            about_the_broker = [
                line
                for line in worker.stderr().splitlines()
                if '"logger":"worker.kafka"' in line and f":{broker.port}" in line
            ]
        finally:
            worker.close()
            broker.close()
        assert 1 <= len(about_the_broker) <= 8 < seen, (seen, "\n".join(about_the_broker))
