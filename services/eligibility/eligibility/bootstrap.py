"""Composition root of the eligibility service: what the runtime needs to run it."""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from typing import Any

from eligibility import service
from eligibility.api import router
from eligibility.handlers import registry, timers
from eligibility.models import Base, platform
from eligibility.repository import EligibilityUnitOfWork, pending_timer
from eligibility.settings import EligibilitySettings
from shared.filestore import FileStore
from shared.runtime import Background, ServiceDefinition, ServiceRuntime
from shared.scheduler import Clock, Scheduler, SystemClock, schedule

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
log = logging.getLogger("calhub.eligibility")


class PortClock:
    """The clock the `clock` port holds now (tests swap the port for a FixedClock)."""

    def __init__(self, runtime: ServiceRuntime) -> None:
        self.runtime = runtime

    def now(self) -> datetime:
        """The current time of the port's clock."""
        clock: Clock = self.runtime.ports.get("clock") or SystemClock()
        return clock.now()


class EligibilityScheduler(Background):
    """Fires the monthly 270 and real-time flush timers; at start, makes sure every served MCP has its monthly
    timer and every queued check a flush timer (a lost timer row is recreated, never duplicated)."""

    def __init__(self, runtime: ServiceRuntime) -> None:
        self.runtime = runtime
        settings = runtime.settings
        poll = settings.scheduler_poll_seconds if isinstance(settings, EligibilitySettings) else 5.0
        self.scheduler: Scheduler[Any] = Scheduler(runtime.uow, timers, clock=PortClock(runtime),
                                                   poll_interval=poll)

    async def reconcile(self) -> int:
        """Schedule missing timers; returns how many were added."""
        added = 0
        uow = self.runtime.uow()
        assert isinstance(uow, EligibilityUnitOfWork)
        async with uow:
            for mcp_code in await uow.authorizations.mcps_with_active():
                added += await service.ensure_monthly_timer(uow, mcp_code)
            for mcp_code in await uow.checks.mcps_with_queued():
                if await pending_timer(uow.session, uow, service.FLUSH_TIMER, mcp_code) is None:
                    await schedule(uow.session, uow.tables, kind=service.FLUSH_TIMER, subject=mcp_code,
                                           due_at=uow.now(), payload={})
                    added += 1
            await uow.commit()
        return added

    async def start(self) -> None:
        """Reconcile the schedule, then run the timer loop."""
        added = await self.reconcile()
        if added:
            log.info("eligibility timers restored", extra={"count": added})
        self.scheduler.start()

    async def stop(self) -> None:
        """Stop the timer loop (a batch in flight rolls back and fires again later)."""
        await self.scheduler.stop()

    async def ready(self) -> dict[str, Any]:
        """Readiness: the loop runs; how many timers are due now."""
        return {"eligibility_timers_due": await self.scheduler.pending_due()}


def ports(runtime: ServiceRuntime) -> dict[str, Any]:
    """Adapters every unit of work gets: the file store, the clock, the settings."""
    return {"files": FileStore(runtime.platform.file_store_path()), "clock": SystemClock(),
            "settings": runtime.settings}


def definition() -> ServiceDefinition:
    """The eligibility service as the runtime sees it."""
    return ServiceDefinition(
        name="eligibility",
        metadata=Base.metadata,
        tables=platform,
        handlers=registry,
        unit_of_work=EligibilityUnitOfWork,
        migrations=MIGRATIONS,
        routers=[router],
        settings=EligibilitySettings,
        background=[EligibilityScheduler],
        ports=ports,
    )
