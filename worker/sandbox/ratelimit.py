"""The sandbox as a rate-limited API: token buckets in front of the Tracking API, and arrival records.

A bucket holds up to `burst` tokens and gains `rate` tokens per second; each admitted request takes one.
There is one global bucket and, separately, one bucket per datamart (the `:datamartId` path segment), each
with the per-datamart rate. A request is admitted only when every bucket that applies has a token; then it
takes one from each, so a refused request costs no bucket anything. A refused request is answered 429 with
`Retry-After`: the seconds until the refusing buckets have a token, rounded up to a whole number, at least 1
(HTTP's delta-seconds are whole; 0 would invite an immediate retry).

Arrival times (admitted and throttled apart) go to two bounded rings, so a test can read the delivered rate
and how retries spread after a 429. Nothing is counted or recorded while the limiter is inactive (no limit
set and recording not asked for): the API then pays one attribute check per request.
"""

from __future__ import annotations

import math
import re
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace

#: Tolerance of the token arithmetic: 0.1 s x 10/s must make a whole token despite binary floats.
_EPSILON = 1e-9
DEFAULT_ARRIVALS_KEPT = 100_000
MAX_ARRIVALS_KEPT = 10_000_000
MAX_BUCKETS = 100_000
_RATE = re.compile(r"\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*(?:/\s*(s|sec|second|m|min|minute))?\s*", re.IGNORECASE)
_PER_MINUTE = {"m", "min", "minute"}


class RateLimitSettingsError(ValueError):
    """A rate limit setting is unknown, of the wrong type or out of range."""


def parse_rate(value: object) -> float:
    """A rate in requests per second from a number or text such as `500/s`, `500` or `30000/min`."""
    if isinstance(value, bool):
        raise RateLimitSettingsError("a rate must be a number or text such as 500/s")
    if isinstance(value, int | float):
        try:
            rate = float(value)
        except OverflowError:
            raise RateLimitSettingsError("the rate is out of range") from None
    elif isinstance(value, str) and (found := _RATE.fullmatch(value)):
        rate = float(found.group(1))
        if (found.group(2) or "s").lower() in _PER_MINUTE:
            rate /= 60
    else:
        raise RateLimitSettingsError(f"{value!r} is not a rate such as 500/s or 30000/min")
    if not math.isfinite(rate) or rate <= 0:
        raise RateLimitSettingsError("a rate must be a finite number of requests per second > 0")
    return rate


def _whole(name: str, value: object, minimum: int, maximum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RateLimitSettingsError(f"{name} must be a whole number")
    if isinstance(value, float) and not value.is_integer():
        raise RateLimitSettingsError(f"{name} must be a whole number")
    number = int(value)
    if not minimum <= number <= maximum:
        raise RateLimitSettingsError(f"{name} must be between {minimum} and {maximum}")
    return number


def retry_after_s(wait_s: float) -> int:
    """The `Retry-After` value for a wait: whole seconds rounded up, at least 1."""
    return max(1, math.ceil(wait_s - _EPSILON))


@dataclass(frozen=True, slots=True)
class RateLimitSettings:
    """The limits (None: no limit) and what is recorded.

    A burst of None means one second's worth of its rate, so it follows the rate when the rate changes.
    `record` records arrivals even when no limit is set; `arrivals_kept` bounds each arrival ring.
    """

    rate: float | None = None
    burst: int | None = None
    per_datamart_rate: float | None = None
    per_datamart_burst: int | None = None
    record: bool = False
    arrivals_kept: int = DEFAULT_ARRIVALS_KEPT

    def __post_init__(self) -> None:
        for name in ("rate", "per_datamart_rate"):
            value = getattr(self, name)
            if value is not None and parse_rate(value) != value:  # a number, not text
                raise RateLimitSettingsError(f"{name} must be a number of requests per second")
        for name in ("burst", "per_datamart_burst"):
            value = getattr(self, name)
            if value is not None:
                _whole(name, value, 1, 10**9)
        _whole("arrivals_kept", self.arrivals_kept, 1, MAX_ARRIVALS_KEPT)

    @property
    def active(self) -> bool:
        """Whether requests go through the limiter at all."""
        return self.record or self.rate is not None or self.per_datamart_rate is not None

    @property
    def effective_burst(self) -> int | None:
        """The global bucket's size, None without a global rate."""
        return _burst(self.rate, self.burst)

    @property
    def effective_per_datamart_burst(self) -> int | None:
        """Each datamart bucket's size, None without a per-datamart rate."""
        return _burst(self.per_datamart_rate, self.per_datamart_burst)

    def with_changes(self, changes: Mapping[str, object]) -> RateLimitSettings:
        """A copy with `changes` applied (null removes a limit or returns a burst to its default)."""
        typed: dict[str, object] = {}
        for name, value in changes.items():
            if name not in _SETTING_NAMES:
                raise RateLimitSettingsError(f"unknown rate limit setting {name!r}")
            if name == "record":
                if not isinstance(value, bool):
                    raise RateLimitSettingsError("record must be true or false")
                typed[name] = value
            elif name == "arrivals_kept":
                typed[name] = _whole(name, value, 1, MAX_ARRIVALS_KEPT)
            elif value is None:
                typed[name] = None
            elif name.endswith("rate"):
                typed[name] = parse_rate(value)
            else:
                typed[name] = _whole(name, value, 1, 10**9)
        return replace(self, **typed)  # type: ignore[arg-type]  # names and types were checked above


_SETTING_NAMES = frozenset(f.name for f in fields(RateLimitSettings))


def _burst(rate: float | None, burst: int | None) -> int | None:
    if rate is None:
        return None
    return burst if burst is not None else max(1, math.ceil(rate))


class TokenBucket:
    """`burst` tokens at most, `rate` more per second; starts full."""

    __slots__ = ("_stamp", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._stamp = now

    def wait_s(self, now: float) -> float:
        """Seconds until a token is available (0.0: one is available now); takes nothing."""
        if now > self._stamp:
            self._tokens = min(float(self.burst), self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
        missing = 1.0 - self._tokens
        return 0.0 if missing <= _EPSILON else missing / self.rate

    def take(self) -> None:
        """Use one token (after `wait_s` said one is there)."""
        self._tokens -= 1.0

    def reconfigure(self, rate: float, burst: int, now: float) -> None:
        """New rate and size from `now` on: what accrued so far accrued at the old rate."""
        self.wait_s(now)
        self.rate = rate
        self.burst = burst
        self._tokens = min(self._tokens, float(burst))


class RateLimiter:
    """The global and per-datamart buckets, their counters and the arrival rings of one sandbox."""

    def __init__(self, settings: RateLimitSettings, clock: Callable[[], float] = time.monotonic) -> None:
        self._initial = settings
        self._clock = clock
        self._global: TokenBucket | None = None
        self._datamart_buckets: dict[str, TokenBucket] = {}
        self._admitted_at: deque[float] = deque(maxlen=settings.arrivals_kept)
        self._throttled_at: deque[float] = deque(maxlen=settings.arrivals_kept)
        self._clear_counts()
        self._settings = RateLimitSettings()
        self.active = False
        self.settings = settings

    def _clear_counts(self) -> None:
        self.admitted = 0
        self.throttled = 0
        self._throttled_by: Counter[str] = Counter()
        self._admitted_of: Counter[str] = Counter()
        self._throttled_of: Counter[str] = Counter()
        self._admitted_at.clear()
        self._throttled_at.clear()
        self._recording_since: float | None = None

    @property
    def settings(self) -> RateLimitSettings:
        """The limits in force."""
        return self._settings

    @settings.setter
    def settings(self, settings: RateLimitSettings) -> None:
        """Apply new limits at once; buckets keep the tokens they hold (up to their new size)."""
        now = self._clock()
        rate, burst = settings.rate, settings.effective_burst
        if rate is None or burst is None:
            self._global = None
        elif self._global is None:
            self._global = TokenBucket(rate, burst, now)
        else:
            self._global.reconfigure(rate, burst, now)
        dm_rate, dm_burst = settings.per_datamart_rate, settings.effective_per_datamart_burst
        if dm_rate is None or dm_burst is None:
            self._datamart_buckets.clear()
        else:
            for bucket in self._datamart_buckets.values():
                bucket.reconfigure(dm_rate, dm_burst, now)
        if settings.arrivals_kept != self._settings.arrivals_kept:
            self._admitted_at = deque(self._admitted_at, maxlen=settings.arrivals_kept)
            self._throttled_at = deque(self._throttled_at, maxlen=settings.arrivals_kept)
        self._settings = settings
        self.active = settings.active
        if not self.active:
            self._recording_since = None
        elif self._recording_since is None:
            self._recording_since = now

    def update(self, changes: Mapping[str, object]) -> None:
        """Apply a partial update of the settings."""
        self.settings = self.settings.with_changes(changes)

    def reset(self) -> None:
        """Back to the startup settings, with full buckets and nothing counted or recorded."""
        self._global = None
        self._datamart_buckets.clear()
        self._clear_counts()
        self._settings = RateLimitSettings()
        self.active = False
        self.settings = self._initial

    def admit(self, datamart: str | None) -> tuple[float, str] | None:
        """Count one API request: None when admitted, else (seconds to wait, the refusing scope).

        `datamart` is None when the path names no datamart resource: only the global limit applies.
        """
        now = self._clock()
        wait = 0.0
        scope = ""
        bucket = self._global
        if bucket is not None and (global_wait := bucket.wait_s(now)):
            wait, scope = global_wait, "global"
            self._throttled_by["global"] += 1
        dm_bucket = self._datamart_bucket(datamart, now) if datamart is not None else None
        if dm_bucket is not None and (dm_wait := dm_bucket.wait_s(now)):
            wait = max(wait, dm_wait)
            scope = "global and datamart" if scope else f"datamart {datamart}"
            self._throttled_by["datamart"] += 1
        if scope:
            self.throttled += 1
            if datamart is not None:
                self._throttled_of[datamart] += 1
            self._throttled_at.append(now)
            return wait, scope
        if bucket is not None:
            bucket.take()
        if dm_bucket is not None:
            dm_bucket.take()
        self.admitted += 1
        if datamart is not None:
            self._admitted_of[datamart] += 1
        self._admitted_at.append(now)
        return None

    def _datamart_bucket(self, datamart: str, now: float) -> TokenBucket | None:
        bucket = self._datamart_buckets.get(datamart)
        if bucket is None:
            rate, burst = self._settings.per_datamart_rate, self._settings.effective_per_datamart_burst
            if rate is None or burst is None or len(self._datamart_buckets) >= MAX_BUCKETS:
                return None
            bucket = self._datamart_buckets[datamart] = TokenBucket(rate, burst, now)
        return bucket

    def describe(self) -> dict[str, object]:
        """The `/_sandbox/rate_limit` document: settings in force and counters."""
        settings = self._settings
        datamarts = sorted(self._admitted_of.keys() | self._throttled_of.keys())
        return {
            "rate": settings.rate,
            "burst": settings.effective_burst,
            "per_datamart_rate": settings.per_datamart_rate,
            "per_datamart_burst": settings.effective_per_datamart_burst,
            "record": settings.record,
            "arrivals_kept": settings.arrivals_kept,
            "active": self.active,
            "admitted": self.admitted,
            "throttled": self.throttled,
            "throttled_by": {"global": self._throttled_by["global"], "datamart": self._throttled_by["datamart"]},
            "datamarts": {
                dm: {"admitted": self._admitted_of[dm], "throttled": self._throttled_of[dm]} for dm in datamarts
            },
        }

    def arrivals(self, window_s: float, bucket_s: float) -> dict[str, object]:
        """Arrivals per `bucket_s` over the last `window_s` seconds, oldest bucket first.

        `complete` is false when some arrival of the window may be missing: recording started inside the
        window, or a ring dropped arrivals that were still inside it.
        """
        now = self._clock()
        count = max(1, math.ceil(window_s / bucket_s - _EPSILON))
        start = now - count * bucket_s
        admitted, admitted_whole = _histogram(self._admitted_at, start, bucket_s, count)
        throttled, throttled_whole = _histogram(self._throttled_at, start, bucket_s, count)
        since = self._recording_since
        return {
            "now_s": now,
            "start_s": start,
            "bucket_s": bucket_s,
            "complete": since is not None and since <= start and admitted_whole and throttled_whole,
            "admitted": admitted,
            "throttled": throttled,
        }


def _histogram(ring: deque[float], start: float, bucket_s: float, count: int) -> tuple[list[int], bool]:
    """Counts of the ring's times in `count` buckets from `start`; and whether the ring reaches back to `start`."""
    counts = [0] * count
    reached = False
    for stamp in reversed(ring):
        if stamp < start:
            reached = True
            break
        counts[min(count - 1, int((stamp - start) / bucket_s))] += 1
    whole = reached or ring.maxlen is None or len(ring) < ring.maxlen
    return counts, whole
