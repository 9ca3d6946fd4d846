"""The core in-process: messages flow to the API, offsets follow outcomes, stop drains and commits."""

from __future__ import annotations

from tests.support.core_harness import TOPIC, CoreHarness, envelope_activity


class TestDelivery:
    async def test_every_message_is_delivered_and_its_offset_committed_at_stop(self) -> None:
        """Ten messages on two partitions reach the API; the stop commits one past the last of each."""
        async with CoreHarness() as core:
            core.assign(0, 1)
            for index in range(10):
                core.consumer.append(TOPIC, index % 2, envelope_activity("1509"), key=str(index).encode())
            await core.until(lambda: len(core.api.writes()) == 10, "ten deliveries")
            summary = await core.stop()
        assert summary.delivered["activity"] == 10
        assert core.committed(0) == 5
        assert core.committed(1) == 5
