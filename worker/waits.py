"""Waits that end early when the worker gives a message up (revoke, loss, shutdown): no sleep outlives a drain."""

from __future__ import annotations

import asyncio

__all__ = ["changed_or", "first_of", "sleep_unless"]


async def sleep_unless(wake: asyncio.Event, delay_s: float) -> bool:
    """Sleep `delay_s` seconds; False at once if `wake` is (or becomes) set first."""
    if wake.is_set():
        return False
    try:
        await asyncio.wait_for(wake.wait(), delay_s)
    except TimeoutError:
        return True
    return False


async def first_of(event: asyncio.Event, wake: asyncio.Event) -> bool:
    """Wait for `event` or `wake`, whichever is set first; True when it was `event`."""
    if event.is_set():
        return True
    if wake.is_set():
        return False
    waiters = {asyncio.ensure_future(event.wait()), asyncio.ensure_future(wake.wait())}
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
    return event.is_set()


async def changed_or(event: asyncio.Event, wake: asyncio.Event, timeout_s: float | None) -> None:
    """Wait until `event` or `wake` is set, or `timeout_s` passes (None: no timeout; `wake` still ends it)."""
    if event.is_set() or wake.is_set():
        return
    waiters = {asyncio.ensure_future(event.wait()), asyncio.ensure_future(wake.wait())}
    try:
        await asyncio.wait(waiters, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
