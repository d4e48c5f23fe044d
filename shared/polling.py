"""The loop under every background worker that polls the database: the outbox relay, the timer scheduler, the
webhook deliverer. One pass after another; at once again when a pass reports more work, after the interval
otherwise (or sooner when notified); exponential backoff while passes fail (the database or broker is down)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger("calhub.polling")


class PollingLoop:
    """Runs `one_pass` in a background task until stopped. `one_pass` returns True when more work is waiting."""

    def __init__(self, one_pass: Callable[[], Awaitable[bool]], *, name: str, interval: float,
                 backoff_base: float, max_backoff: float) -> None:
        self.one_pass = one_pass
        self.name = name
        self.interval = interval
        self.backoff_base = backoff_base
        self.max_backoff = max_backoff
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def notify(self) -> None:
        """Run the next pass now rather than at the end of the interval."""
        self._wake.set()

    async def run(self) -> None:
        """Pass after pass until cancelled; a failing pass is logged (type only) and retried with backoff."""
        failures = 0
        while True:
            try:
                more = await self.one_pass()
                failures = 0
                delay = 0.0 if more else self.interval
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - infrastructure down: the rows stay, the next pass retries
                failures += 1
                delay = min(self.max_backoff, self.backoff_base * 2 ** min(failures, 10))
                log.warning("background pass failed; retrying",
                            extra={"loop": self.name, "error_type": type(exc).__name__, "retry_in_s": delay})
                # Not wakeable: during an outage every commit notifies, which must not defeat the backoff.
                await asyncio.sleep(delay)
                continue
            if delay:
                self._wake.clear()
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel that lands with notify(),
                # and stop() then waits forever.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._wake.wait()

    def start(self) -> None:
        """Start the background task (once)."""
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name=self.name)

    async def stop(self) -> None:
        """Cancel the task and wait for it; work in flight rolls back and is redone by the next run."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
