"""Out-of-order completion in, committable offsets out: the at-least-once rule in one pure place.

Messages of a partition finish in any order (different keys run in parallel, retries take time). A Kafka commit
means "everything before this offset is done", so per partition only the offset after the highest *contiguous*
completed message may be committed. Nothing here touches Kafka; the pipeline feeds it and stores what it returns.
"""

from __future__ import annotations

from collections import deque

__all__ = ["PartitionOffsets"]


class PartitionOffsets:
    """Tracks the dispatched offsets of one partition and releases the next offset to commit.

    Offsets must be tracked in increasing order (Kafka delivers a partition in order; gaps from compaction or
    transaction markers are fine). Completion may happen in any order.
    """

    __slots__ = ("_committable", "_done", "_order")

    def __init__(self) -> None:
        self._order: deque[int] = deque()  # tracked offsets, oldest first
        self._done: dict[int, bool] = {}  # tracked offset -> completed?
        self._committable: int | None = None

    @property
    def committable(self) -> int | None:
        """The offset to commit (the next one to read), or None while nothing new is contiguous."""
        return self._committable

    @property
    def in_flight(self) -> int:
        """How many tracked messages are not yet released (completed ones behind a gap count too)."""
        return len(self._order)

    def track(self, offset: int) -> None:
        """Record that the message at `offset` was handed out for processing."""
        if self._order and offset <= self._order[-1]:
            raise ValueError(f"offset {offset} tracked after {self._order[-1]}: offsets must increase")
        if self._committable is not None and offset < self._committable:
            raise ValueError(f"offset {offset} is below the committable offset {self._committable}")
        self._order.append(offset)
        self._done[offset] = False

    def complete(self, offset: int) -> int | None:
        """Mark `offset` finished; return the new committable offset if it advanced, else None."""
        if self._done.get(offset) is not False:
            raise ValueError(f"offset {offset} is not in flight")
        self._done[offset] = True
        order, done = self._order, self._done
        if order[0] != offset:
            return None
        while order and done[order[0]]:
            released = order.popleft()
            del done[released]
            self._committable = released + 1
        return self._committable
