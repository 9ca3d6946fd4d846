"""The flow-control settings towards the API (README: "Flow control"), validated where `WorkerConfig` reads them."""

from __future__ import annotations

from dataclasses import dataclass, field

from worker.traffic.ratelimit import RateLimits

__all__ = ["TrafficSettings"]


@dataclass(frozen=True, slots=True)
class TrafficSettings:
    """Adaptive concurrency, shared backoff, circuit breaker, halt probes and static rate limits.

    `initial_concurrency` is where each route's adaptive limit starts: low, so a fleet starting together does not
    hit a limited API with its whole `MAX_CONCURRENCY` at once; a healthy API lets it grow within a second or two.
    """

    initial_concurrency: int = 20
    adaptive: bool = True
    latency_tolerance: float = 2.0
    backoff_spread_s: float = 1.0
    circuit_failures: int = 10
    probe_interval_s: float = 1.0
    probe_max_interval_s: float = 60.0
    rate_limits: RateLimits = field(default_factory=RateLimits)

    def __post_init__(self) -> None:
        if self.initial_concurrency < 1 or self.latency_tolerance <= 1.0 or self.backoff_spread_s < 0:
            raise ValueError("initial concurrency >= 1, latency tolerance > 1 and backoff spread >= 0 are required")
        if self.circuit_failures < 0 or not 0 < self.probe_interval_s <= self.probe_max_interval_s:
            raise ValueError("circuit failures >= 0 and 0 < probe interval <= probe max interval are required")
