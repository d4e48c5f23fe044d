"""Scheduled claim batches: one durable timer per MCP with a schedule, re-armed every time it fires."""

from __future__ import annotations

import logging
from datetime import datetime, time, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from claims import service
from claims.domain.configuration import BatchSchedule, BillingConfiguration
from claims.repository import ClaimsUnitOfWork
from shared.reference.calendar import PACIFIC
from shared.runtime import Background, ServiceRuntime
from shared.scheduler import DueTimer, Scheduler, TimerHandlerRegistry, TimerStatus, as_utc, schedule

log = logging.getLogger("calhub.claims.scheduling")

BATCH_TIMER = "claims.batch"
timers: TimerHandlerRegistry[ClaimsUnitOfWork] = TimerHandlerRegistry()


def next_run(plan: BatchSchedule, after: datetime) -> datetime:
    """The first scheduled moment strictly after `after` (Pacific wall time, any DST)."""
    local = after.astimezone(PACIFIC)
    for offset in range(0, 8):
        day = local.date() + timedelta(days=offset)
        if day.weekday() not in plan.weekdays:
            continue
        moment = datetime.combine(day, plan.at, tzinfo=PACIFIC)
        if moment > local:
            return as_utc(moment)
    raise ValueError("a batch schedule needs at least one weekday")


@timers.handles(BATCH_TIMER)
async def run_scheduled_batch(timer: DueTimer, uow: ClaimsUnitOfWork) -> None:
    """Batch the MCP's drafts (if any) and arm the next run, whatever the batch did: a failed run keeps the drafts.

    Raises only database and file store errors (the scheduler retries this run): any other failure ending the
    handler would, after the scheduler's last attempt, leave the timer failed with no next run, and the MCP's
    billing would stop until someone re-armed it.
    """
    config: BillingConfiguration = uow.ports["billing"]
    billing = config.mcp(timer.subject)
    if billing is None or billing.profile.schedule is None:
        return  # the MCP left the configuration or lost its schedule: the chain ends here
    settings = uow.ports.get("settings")
    validate = bool(getattr(settings, "validate_batches", True))
    max_claims = int(getattr(settings, "max_claims_per_batch", 50_000))
    try:
        async with uow.session.begin_nested():
            await service.create_batch(uow, timer.subject, actor=service.Actor(system="schedule"), trigger="schedule",
                                       validate=validate, max_claims=max_claims)
    except (SQLAlchemyError, OSError):
        raise
    except service.BatchFailedValidation as failed:
        # The drafts stay draft (savepoint rolled back); ops sees this log line and the next run retries.
        log.error("scheduled batch failed validation", extra={"mcp_code": timer.subject, "count": len(failed.issues)})
    except Exception as error:
        # Control numbers exhausted, a configuration the 837P cannot carry, a bug: the savepoint rolled back, the
        # drafts stay draft, and the chain goes on (a claim the 837P cannot carry is rejected by create_batch alone).
        log.error("scheduled batch failed", extra={"mcp_code": timer.subject, "error_type": type(error).__name__})
    now = service.clock(uow).now()
    await schedule(uow.session, uow.tables, kind=BATCH_TIMER, subject=timer.subject,
                   due_at=next_run(billing.profile.schedule, max(now, timer.due_at)), payload={})


async def arm_schedules(uow: ClaimsUnitOfWork, config: BillingConfiguration, now: datetime) -> int:
    """Make sure each MCP with a schedule has one pending batch timer; returns how many were added."""
    table = uow.tables.timer
    added = 0
    for code, billing in sorted(config.mcps.items()):
        if billing.profile.schedule is None:
            continue
        pending = await uow.session.scalar(select(table.c.id).where(
            table.c.kind == BATCH_TIMER, table.c.subject == code, table.c.status == TimerStatus.PENDING.value))
        if pending is None:
            await schedule(uow.session, uow.tables, kind=BATCH_TIMER, subject=code,
                           due_at=next_run(billing.profile.schedule, now), payload={})
            added += 1
    return added


class BatchScheduling(Background):
    """Arms the per-MCP batch timers at start and fires them with the durable scheduler."""

    def __init__(self, runtime: ServiceRuntime) -> None:
        self.runtime = runtime
        poll = float(getattr(runtime.settings, "schedule_poll_seconds", 30.0))
        self.scheduler: Scheduler[Any] = Scheduler(runtime.uow, timers, poll_interval=poll,
                                                   clock=runtime.ports["clock"])

    async def start(self) -> None:
        """Arm missing timers (one transaction), then run the scheduler loop."""
        async with self.runtime.uow() as uow:
            assert isinstance(uow, ClaimsUnitOfWork)
            await arm_schedules(uow, self.runtime.ports["billing"], self.runtime.ports["clock"].now())
            await uow.commit()
        self.scheduler.start()

    async def stop(self) -> None:
        """Stop firing; a batch in flight rolls back and runs on the next start."""
        await self.scheduler.stop()

    async def ready(self) -> dict[str, Any]:
        """Due batch timers not yet fired."""
        return {"batch_timers_due": await self.scheduler.pending_due()}


__all__ = ["BATCH_TIMER", "BatchScheduling", "arm_schedules", "next_run", "time", "timers"]
