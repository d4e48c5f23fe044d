"""Durable timers of the authorizations service: decision deadlines with escalations, the daily expiry sweep,
and the background part that runs the scheduler."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from authorizations.repository import AuthorizationsUnitOfWork
from authorizations.service import (
    DECISION_DUE,
    EXPIRY_SWEEP,
    REAUTHORIZATION_STEP,
    SWEEP_SUBJECT,
    ensure_sweep,
    next_sweep_at,
    now_of,
    pacific_date,
    raise_decision_overdue,
    reauthorize_expiring,
    sweep_expiries,
)
from authorizations.settings import AuthorizationsSettings
from shared.reference.calendar import PACIFIC
from shared.runtime import Background, ServiceRuntime
from shared.scheduler import Clock, DueTimer, Scheduler, TimerHandlerRegistry, schedule

log = logging.getLogger("calhub.authorizations.timers")

timers: TimerHandlerRegistry[AuthorizationsUnitOfWork] = TimerHandlerRegistry()


@timers.handles(DECISION_DUE)
async def fire_decision_due(timer: DueTimer, uow: AuthorizationsUnitOfWork) -> None:
    """Raise decision_overdue (escalation n) if the MCP still has not decided; arm escalation n + 1."""
    await raise_decision_overdue(uow, timer.subject, int(timer.payload.get("escalation", 1)))


@timers.handles(EXPIRY_SWEEP)
async def fire_expiry_sweep(timer: DueTimer, uow: AuthorizationsUnitOfWork) -> None:
    """Raise everything expiring or expired by today; continue at once if a chunk was full; arm tomorrow's."""
    settings: AuthorizationsSettings = uow.ports["settings"]
    report = await sweep_expiries(uow, chunk=settings.sweep_chunk)
    now = now_of(uow)
    if report.more:
        await schedule(uow.session, uow.tables, kind=EXPIRY_SWEEP, subject=SWEEP_SUBJECT, due_at=now,
                       payload={"reason": "continuation"})
    if report.pending_reauthorization:
        await schedule(uow.session, uow.tables, kind=REAUTHORIZATION_STEP, subject=SWEEP_SUBJECT, due_at=now,
                       payload={})
    day, at = next_sweep_at(now, settings.sweep_time)
    await ensure_sweep(uow, day, at)


@timers.handles(REAUTHORIZATION_STEP)
async def fire_reauthorization_step(timer: DueTimer, uow: AuthorizationsUnitOfWork) -> None:
    """Reauthorize (or task the care team about) authorizations whose expiring notice went out."""
    settings: AuthorizationsSettings = uow.ports["settings"]
    report = await reauthorize_expiring(uow, chunk=settings.sweep_chunk)
    if report.more:
        await schedule(uow.session, uow.tables, kind=REAUTHORIZATION_STEP, subject=SWEEP_SUBJECT,
                       due_at=now_of(uow), payload={"reason": "continuation"})


class AuthorizationScheduler(Background):
    """The service's Scheduler as a background part: fires due timers every poll interval."""

    def __init__(self, runtime: ServiceRuntime) -> None:
        settings = runtime.ports["settings"]
        assert isinstance(settings, AuthorizationsSettings)
        self.runtime = runtime
        self.settings = settings
        self.clock: Clock = runtime.ports["clock"]
        self.scheduler: Scheduler[AuthorizationsUnitOfWork] = Scheduler(
            self._uow, timers, batch_size=settings.scheduler_batch_size,
            poll_interval=settings.scheduler_poll_seconds, clock=self.clock)

    def _uow(self) -> AuthorizationsUnitOfWork:
        uow = self.runtime.uow()
        assert isinstance(uow, AuthorizationsUnitOfWork)
        return uow

    async def ensure_daily_sweeps(self) -> None:
        """Make sure today's sweep (a catch-up if its time passed while down) and the next one exist."""
        now = self.clock.now()
        today = pacific_date(now)
        async with self._uow() as uow:
            await ensure_sweep(uow, today, datetime.combine(today, self.settings.sweep_time, tzinfo=PACIFIC))
            day, at = next_sweep_at(now, self.settings.sweep_time)
            await ensure_sweep(uow, day, at)
            await uow.commit()

    async def start(self) -> None:
        """Arm the daily sweeps and start firing (unless the settings turn the scheduler off)."""
        if not self.settings.run_scheduler:
            return
        await self.ensure_daily_sweeps()
        self.scheduler.start()

    async def stop(self) -> None:
        """Stop firing; a batch in flight rolls back and fires later."""
        await self.scheduler.stop()

    async def ready(self) -> dict[str, Any]:
        """The number of due timers not fired yet."""
        return {"timers_due": await self.scheduler.pending_due()}

    def notify(self) -> None:
        """Look for due timers now (after moving a test clock)."""
        self.scheduler.notify()
