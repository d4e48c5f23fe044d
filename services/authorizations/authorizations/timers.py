"""Durable timers of the authorizations service: decision deadlines with escalations, the daily expiry sweep,
and the background part that runs the scheduler."""

from __future__ import annotations

import logging
from datetime import date, datetime, time
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
    """Raise everything expiring or expired by today; continue at once if a chunk was full; arm tomorrow's.

    Raises what the sweep raises (the scheduler retries, then leaves the timer failed for ops); tomorrow's sweep
    does not depend on it: the scheduler part arms it before firing anything (SweepArmingScheduler).
    """
    settings: AuthorizationsSettings = uow.ports["settings"]
    try:
        report = await sweep_expiries(uow, chunk=settings.sweep_chunk)
    except Exception as error:
        log.error("expiry sweep failed", extra={"timer_id": str(timer.id), "attempt": timer.attempt,
                                                "error_type": type(error).__name__})
        raise
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


class SweepArmingScheduler(Scheduler[AuthorizationsUnitOfWork]):
    """The Scheduler, arming the next daily sweep in its own committed transaction before each firing pass.

    A sweep that arms its successor only when it succeeds ends the chain when it fails its last attempt (a bad
    row, a database blip at each retry): no expiring or expired notice until a restart. Armed here, before the
    sweep's work, the next day's sweep exists whatever today's does; its id is the day's, so instances racing
    to arm it create it once (`ensure_sweep`).
    """

    def __init__(self, *args: Any, sweep_time: time, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sweep_time = sweep_time
        self._armed_day: date | None = None  # timers are never deleted: once armed, a day needs no more reads

    async def fire_due(self, now: datetime | None = None) -> int:
        """Arm the next daily sweep, then fire every timer due at `now`; database errors propagate."""
        await self.arm_next_sweep(now or self.clock.now())
        return await super().fire_due(now)

    async def arm_next_sweep(self, now: datetime) -> None:
        """Make sure the first daily sweep after `now` exists (committed at once)."""
        day, at = next_sweep_at(now, self.sweep_time)
        if day == self._armed_day:
            return
        async with self.uow_factory() as uow:
            await ensure_sweep(uow, day, at)
            await uow.commit()
        self._armed_day = day


class AuthorizationScheduler(Background):
    """The service's Scheduler as a background part: fires due timers every poll interval."""

    def __init__(self, runtime: ServiceRuntime) -> None:
        settings = runtime.ports["settings"]
        assert isinstance(settings, AuthorizationsSettings)
        self.runtime = runtime
        self.settings = settings
        self.clock: Clock = runtime.ports["clock"]
        self.scheduler = SweepArmingScheduler(
            self._uow, timers, batch_size=settings.scheduler_batch_size,
            poll_interval=settings.scheduler_poll_seconds, clock=self.clock, sweep_time=settings.sweep_time)

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
