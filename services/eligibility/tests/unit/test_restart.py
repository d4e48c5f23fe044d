"""The monthly schedule is rows in the database: it survives restarts and never sends a batch twice."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from eligibility import models
from eligibility.bootstrap import EligibilityScheduler, definition
from eligibility.repository import EligibilityUnitOfWork
from eligibility.service import MONTHLY_TIMER
from sqlalchemy import select

from shared.bus.message import encode
from shared.scheduler import FixedClock, schedule
from shared.testing.app import service_harness

APRIL_RUN = datetime(2026, 4, 1, 13, 0, tzinfo=UTC)  # 06:00 Pacific


async def _state(runtime: Any) -> tuple[list[Any], list[Any]]:
    uow = runtime.uow()
    assert isinstance(uow, EligibilityUnitOfWork)
    async with uow:
        timers = (await uow.session.execute(select(uow.tables.timer).where(
            uow.tables.timer.c.kind == MONTHLY_TIMER, uow.tables.timer.c.status == "pending"))).all()
        batches = (await uow.session.execute(select(models.eligibility_batch))).all()
    return list(timers), list(batches)


async def test_monthly_schedule_survives_restarts_and_never_double_sends(tmp_path: Path, kit: Any,
                                                                        harness_keys: dict[str, Any]) -> None:
    data_dir = tmp_path / "restart"
    data_dir.mkdir()
    events = kit.authorization()  # synthetic authorization events, built with the kit's helpers
    keys = harness_keys
    async with service_harness([definition()], data_dir, keys=keys) as first:
        runtime = first.runtimes["eligibility"]
        runtime.ports["clock"] = FixedClock(kit.clock.now())
        await first.bus.publish([encode(e) for e in events])
        for _ in range(200):
            timers, _ = await _state(runtime)
            if timers:
                break
            await asyncio.sleep(0.05)
        timers, batches = await _state(runtime)
        assert [t.subject for t in timers] == ["lacare"] and batches == []

    # Restart: the timer is still there, the start-up reconcile adds no second one.
    async with service_harness([definition()], data_dir, keys=keys) as second:
        runtime = second.runtimes["eligibility"]
        runtime.ports["clock"] = FixedClock(APRIL_RUN)
        timers, _ = await _state(runtime)
        assert len(timers) == 1
        part = runtime.background[0]
        assert isinstance(part, EligibilityScheduler)
        # Fire (the service's own timer loop may get there first: either way the April timer fires once).
        await part.scheduler.fire_due(APRIL_RUN)
        assert await part.scheduler.fire_due(APRIL_RUN) == 0  # already fired
        timers, batches = await _state(runtime)
        assert [(b.mcp_code, b.period, b.members) for b in batches] == [("lacare", "2026-04", 1)]
        assert len(timers) == 1  # May's

    # Restart again, then a stray April timer (e.g. restored by hand) fires: still one April batch.
    async with service_harness([definition()], data_dir, keys=keys) as third:
        runtime = third.runtimes["eligibility"]
        runtime.ports["clock"] = FixedClock(APRIL_RUN)
        uow = runtime.uow()
        assert isinstance(uow, EligibilityUnitOfWork)
        async with uow:
            await schedule(uow.session, uow.tables, kind=MONTHLY_TIMER, subject="lacare", due_at=APRIL_RUN,
                           payload={})
            await uow.commit()
        part = runtime.background[0]
        assert isinstance(part, EligibilityScheduler)
        await part.scheduler.fire_due(APRIL_RUN)
        assert await part.scheduler.pending_due(APRIL_RUN) == 0  # the stray timer fired …
        timers, batches = await _state(runtime)
        assert len(batches) == 1  # … and found April's batch already sent
        assert len(timers) == 1 and timers[0].due_at.replace(tzinfo=UTC) > APRIL_RUN
