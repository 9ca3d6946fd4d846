"""What the API was asked and what it answered: counters and a bounded ring of recent requests.

The admin API reads it; it never holds a header value, so the token cannot leak through it.
"""

from __future__ import annotations

from collections import Counter, deque

DEFAULT_CAPACITY = 10_000


class Journal:
    """Request counters by method and route, response counters by status, and the last `capacity` requests.

    A request the sandbox dropped on purpose (connection reset, hang) has no status: it is counted under
    `dropped` by kind and kept in the ring with `"status": null`.
    """

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self._requests: Counter[str] = Counter()
        self._responses: Counter[str] = Counter()
        self._dropped: Counter[str] = Counter()
        self._recent: deque[dict[str, object]] = deque(maxlen=capacity)

    def record(
        self,
        method: str,
        route: str,
        *,
        raw_path: str,
        query: str,
        host: str | None,
        status: int | None,
        dropped: str | None = None,
    ) -> None:
        """Count one API request and remember it."""
        self._requests[f"{method} {route}"] += 1
        if status is not None:
            self._responses[str(status)] += 1
        if dropped is not None:
            self._dropped[dropped] += 1
        self._recent.append({"method": method, "raw_path": raw_path, "query": query, "host": host, "status": status})

    def stats(self, stored: dict[str, int]) -> dict[str, dict[str, int]]:
        """The `/_sandbox/stats` document, given the store's counts."""
        return {
            "requests": dict(self._requests),
            "responses": dict(self._responses),
            "dropped": dict(self._dropped),
            "stored": stored,
        }

    def recent(self) -> list[dict[str, object]]:
        """The remembered requests, oldest first."""
        return list(self._recent)

    def clear(self) -> None:
        """Forget every count and request."""
        self._requests.clear()
        self._responses.clear()
        self._dropped.clear()
        self._recent.clear()
