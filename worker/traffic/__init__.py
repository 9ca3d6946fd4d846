"""Flow control towards the API: adaptive concurrency, shared backoff, circuit breaker, halts, static rate limits.

`control.Traffic` composes the parts; the sender calls `admit` before each request and `record` after it.
"""
