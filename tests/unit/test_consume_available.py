"""`consume_available`: wait for one message only, then take what is already fetched (low latency, full batches)."""

from __future__ import annotations

from typing import Any, cast

from worker.kafka import Consumer, consume_available


class ScriptedConsumer:
    """Answers `consume(n, timeout)` calls from a script of batches, and records every call."""

    def __init__(self, *batches: list[str]) -> None:
        self.batches = list(batches)
        self.calls: list[tuple[int, float]] = []

    def consume(self, num_messages: int, timeout: float) -> list[str]:
        self.calls.append((num_messages, timeout))
        batch = self.batches.pop(0) if self.batches else []
        assert len(batch) <= num_messages
        return batch


def take(consumer: ScriptedConsumer, batch_size: int = 500, timeout_s: float = 0.1) -> list[Any]:
    return consume_available(cast(Consumer, consumer), batch_size, timeout_s)


class TestConsumeAvailable:
    def test_waits_for_one_message_then_takes_the_rest_without_waiting(self) -> None:
        """Only the first call may block (for one message); the second asks for the rest of the batch with no wait."""
        consumer = ScriptedConsumer(["m0"], ["m1", "m2"])
        assert take(consumer) == ["m0", "m1", "m2"]
        assert consumer.calls == [(1, 0.1), (499, 0)]

    def test_returns_empty_after_the_timeout_without_a_second_call(self) -> None:
        """Nothing within the timeout: an empty batch, and no second call."""
        consumer = ScriptedConsumer([])
        assert take(consumer) == []
        assert consumer.calls == [(1, 0.1)]

    def test_a_batch_size_of_one_makes_one_call(self) -> None:
        """With a batch size of 1 the first message is the whole batch."""
        consumer = ScriptedConsumer(["m0"], ["never"])
        assert take(consumer, batch_size=1) == ["m0"]
        assert consumer.calls == [(1, 0.1)]

    def test_a_full_queue_fills_the_whole_batch(self) -> None:
        """Under load the batch is as large as configured: one plus batch_size - 1."""
        consumer = ScriptedConsumer(["m0"], [f"m{n}" for n in range(1, 500)])
        assert len(take(consumer)) == 500
