"""Per-key lanes and task supervision.

Messages with the same key in the same partition form a lane: they run one at a time, in offset order, so the API
sees a key's events in order. Different keys (and keyless messages) run concurrently. When a lane's message is
given up (its partition is draining), the rest of that lane is given up too: sending them would overtake it.

Every task is supervised: one that dies of a bug would leave its message in flight for ever (its partition never
committed past it), so the first crash is reported (`on_crash`) and the worker stops and exits non-zero.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine

from worker.assignment import Pending

__all__ = ["Lanes"]

LaneKey = tuple[str, int, bytes]


class Lanes:
    """Runs `run(pending)` per message; `run` returns False when it gave the message up."""

    def __init__(
        self,
        run: Callable[[Pending], Awaitable[bool]],
        give_up: Callable[[Pending], None],
        on_crash: Callable[[BaseException], None],
    ) -> None:
        self._run = run
        self._give_up = give_up
        self._on_crash = on_crash
        self._lanes: dict[LaneKey, deque[Pending]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        """Running tasks."""
        return len(self._tasks)

    def submit(self, pending: Pending, key: bytes | None) -> None:
        """Start the message now, or queue it behind its key's running lane."""
        if key is None:
            self.spawn(self._run_one(pending))
            return
        topic, partition = pending.partition.key
        lane_key = (topic, partition, key)
        lane = self._lanes.get(lane_key)
        if lane is None:
            self._lanes[lane_key] = deque()
            self.spawn(self._run_lane(lane_key, pending))
        else:
            lane.append(pending)

    async def _run_one(self, pending: Pending) -> None:
        await self._run(pending)

    async def _run_lane(self, lane_key: LaneKey, pending: Pending) -> None:
        lane = self._lanes[lane_key]
        try:
            while True:
                if not await self._run(pending):
                    while lane:
                        self._give_up(lane.popleft())
                    return
                if not lane:
                    return
                pending = lane.popleft()
        finally:
            del self._lanes[lane_key]

    def spawn(self, coroutine: Coroutine[object, object, None]) -> None:
        """Run a supervised task."""
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        error = None if task.cancelled() else task.exception()
        if error is not None:
            self._on_crash(error)

    async def cancel_all(self) -> None:
        """Cancel every task (after a drain timed out) and wait until they are gone."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
