"""Measurements on the sandbox's arrival buckets (`SandboxProcess.arrivals()`), for the flow-control scenarios.

The delivered rate at steady state, the share of 429 answers, and how arrivals after a 429 are spread over
time: retries that obey `Retry-After` to the letter come back in one bucket (a wave, a high peak-to-mean);
jittered retries spread over many (a peak-to-mean near 1).

    series = ArrivalSeries.from_document(sandbox.arrivals(window_s=20, bucket_s=0.1))
    assert series.complete
    steady = series.skip(5)                      # past the warm-up
    steady.admitted_rate(), steady.throttled_share()
    after = series.after(series.first_throttled_s())
    after.spread().peak_to_mean
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["ArrivalSeries", "Spread"]

_EPSILON = 1e-9


@dataclass(frozen=True, slots=True)
class Spread:
    """How a run of arrivals is distributed over its buckets (all zero when nothing arrived)."""

    total: int
    peak: int  # the most arrivals in one bucket
    mean: float  # arrivals per bucket
    peak_to_mean: float  # 1.0 is perfectly even; a wave is about the number of buckets
    cv: float  # standard deviation / mean of the per-bucket counts
    busiest_share: float  # the busiest bucket's share of all arrivals


@dataclass(frozen=True, slots=True)
class ArrivalSeries:
    """Admitted and throttled arrivals per bucket, oldest first, on the sandbox's clock."""

    start_s: float
    bucket_s: float
    admitted: tuple[int, ...]
    throttled: tuple[int, ...]
    complete: bool = True

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> ArrivalSeries:
        """From a `GET /_sandbox/arrivals` answer."""
        return cls(
            start_s=float(document["start_s"]),
            bucket_s=float(document["bucket_s"]),
            admitted=tuple(document["admitted"]),
            throttled=tuple(document["throttled"]),
            complete=bool(document["complete"]),
        )

    @property
    def duration_s(self) -> float:
        return len(self.admitted) * self.bucket_s

    def arrivals(self) -> tuple[int, ...]:
        """Every arrival per bucket, admitted or throttled."""
        return tuple(a + t for a, t in zip(self.admitted, self.throttled, strict=True))

    def _from_index(self, index: int) -> ArrivalSeries:
        index = max(0, min(index, len(self.admitted)))
        return ArrivalSeries(
            self.start_s + index * self.bucket_s,
            self.bucket_s,
            self.admitted[index:],
            self.throttled[index:],
            self.complete,
        )

    def skip(self, seconds: float) -> ArrivalSeries:
        """The series without its first `seconds` (a warm-up), in whole buckets."""
        return self._from_index(math.ceil(seconds / self.bucket_s - _EPSILON))

    def after(self, at_s: float) -> ArrivalSeries:
        """The buckets after the one holding `at_s` (a time on the sandbox's clock)."""
        return self._from_index(math.floor((at_s - self.start_s) / self.bucket_s + _EPSILON) + 1)

    def between(self, from_s: float, to_s: float) -> ArrivalSeries:
        """The whole buckets lying within [from_s, to_s] (times on the sandbox's clock)."""
        first = max(0, math.ceil((from_s - self.start_s) / self.bucket_s - _EPSILON))
        last = max(first, math.floor((to_s - self.start_s) / self.bucket_s + _EPSILON))
        inner = self._from_index(first)
        count = min(last - first, len(inner.admitted))
        return ArrivalSeries(
            inner.start_s, self.bucket_s, inner.admitted[:count], inner.throttled[:count], self.complete
        )

    def first_arrival_s(self) -> float:
        """The start of the first bucket with any arrival; ValueError when there is none."""
        for index, count in enumerate(self.arrivals()):
            if count:
                return self.start_s + index * self.bucket_s
        raise ValueError("nothing arrived in this series")

    def first_throttled_s(self) -> float:
        """The start of the first bucket with a 429; ValueError when there is none."""
        for index, count in enumerate(self.throttled):
            if count:
                return self.start_s + index * self.bucket_s
        raise ValueError("no request was throttled in this series")

    def admitted_rate(self) -> float:
        """Admitted requests per second over the series."""
        return sum(self.admitted) / self.duration_s if self.admitted else 0.0

    def throttled_share(self) -> float:
        """The share of arrivals answered 429 (0.0 when nothing arrived)."""
        total = sum(self.admitted) + sum(self.throttled)
        return sum(self.throttled) / total if total else 0.0

    def spread(self, counts: Sequence[int] | None = None) -> Spread:
        """The spread of `counts` (default: every arrival per bucket of this series)."""
        values = list(self.arrivals() if counts is None else counts)
        total = sum(values)
        if not values or not total:
            return Spread(total=0, peak=0, mean=0.0, peak_to_mean=0.0, cv=0.0, busiest_share=0.0)
        mean = total / len(values)
        peak = max(values)
        return Spread(
            total=total,
            peak=peak,
            mean=mean,
            peak_to_mean=peak / mean,
            cv=statistics.pstdev(values) / mean,
            busiest_share=peak / total,
        )
