"""Polling for tests: retry a check until it holds or time runs out (events and relays flow asynchronously)."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import TypeVar, overload

T = TypeVar("T")

# Enough of the last value to diagnose a timeout without flooding the report.
_LAST_CHARS = 500


@overload
async def eventually(probe: Callable[[], Awaitable[T | None]], *, within: float, interval: float = 0.05,
                     what: str = "", retry_on: tuple[type[BaseException], ...] = ()) -> T: ...


@overload
async def eventually(probe: Callable[[], T | None], *, within: float, interval: float = 0.05,
                     what: str = "", retry_on: tuple[type[BaseException], ...] = ()) -> T: ...


async def eventually(probe: Callable[[], object], *, within: float, interval: float = 0.05,
                     what: str = "", retry_on: tuple[type[BaseException], ...] = ()) -> object:
    """Call `probe` (sync or async) every `interval` seconds until it returns something truthy, and return that.

    Exceptions of the `retry_on` types count as "not yet" (a service restarting refuses connections); any other
    exception propagates. After `within` seconds raises AssertionError naming `what` (or the probe) and the last
    value or exception seen.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    last: object = None
    while True:
        try:
            value = probe()
            if inspect.isawaitable(value):
                value = await value
        except retry_on as exc:
            last = exc
        else:
            if value:
                return value
            last = value
        if loop.time() >= deadline:
            label = what or getattr(probe, "__qualname__", None) or repr(probe)
            seen = repr(last)
            if len(seen) > _LAST_CHARS:
                seen = seen[:_LAST_CHARS] + "..."
            # Chained so the last exception's own traceback shows where the probe was still failing.
            cause = last if isinstance(last, BaseException) else None
            raise AssertionError(f"{label} not reached within {within:g}s; last: {seen}") from cause
        await asyncio.sleep(interval)
