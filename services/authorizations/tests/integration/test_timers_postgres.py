"""The service's own timers on PostgreSQL: each expiry and each overdue deadline fires once across two
service instances, and a process killed mid-batch misses and doubles nothing after restart."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from authorizations.bootstrap import definition
from authorizations.models import Authorization, AuthorizationHistory, CareTeamTask
from authorizations.repository import AuthorizationsUnitOfWork
from authorizations.service import DECISION_DUE, EXPIRY_SWEEP, SWEEP_SUBJECT, decision_timer_row
from authorizations.settings import AuthorizationsSettings
from authorizations.testkit import approved_row
from authorizations.timers import AuthorizationScheduler, timers
from sqlalchemy import func, insert, select, text

from shared.bus.inprocess import InProcessBus
from shared.runtime import ServiceRuntime
from shared.scheduler import DueTimer, FixedClock, Scheduler, TimerHandlerRegistry, schedule
from shared.settings import PlatformSettings

pytestmark = pytest.mark.integration

NOW = datetime(2027, 2, 2, 8, 0, 1, tzinfo=UTC)  # 2027-02-02 00:00:01 Pacific
TODAY = date(2027, 2, 2)


class SimulatedCrash(BaseException):
    """The process dying mid-batch: not an Exception, so nothing catches it."""


@asynccontextmanager
async def instances(postgres_url: str, tmp_path: Path, count: int, **settings: Any,
                    ) -> AsyncIterator[list[ServiceRuntime]]:
    """`count` runtimes of the service on ONE PostgreSQL schema, each with its own engine (own pool), bus
    and clock, as separate processes would be. Consumers and relays stay off: only timers matter here."""
    suffix = f"_i{__import__('uuid').uuid4().hex[:8]}"
    platform = PlatformSettings(mode="distributed", data_dir=tmp_path, database_url=postgres_url,
                                schema_suffix=suffix)
    runtimes = []
    for _ in range(count):
        config = AuthorizationsSettings(run_consumers=False, run_relay=False, run_scheduler=False,
                                        **settings)
        runtimes.append(ServiceRuntime(definition=definition(clock=FixedClock(NOW)), platform=platform,
                                       settings=config, bus=InProcessBus()))
    await runtimes[0].migrate()
    try:
        yield runtimes
    finally:
        async with runtimes[0].engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA IF EXISTS "{runtimes[0].physical_schema}" CASCADE'))
        for runtime in runtimes:
            await runtime.engine.dispose()


def uow_of(runtime: ServiceRuntime) -> AuthorizationsUnitOfWork:
    uow = runtime.uow()
    assert isinstance(uow, AuthorizationsUnitOfWork)
    return uow


async def seed(runtime: ServiceRuntime, *, expiring: int, overdue: int) -> None:
    """`expiring` approvals whose notice is due today (half engaged), `overdue` requests past their deadline."""
    created = NOW - timedelta(days=400)
    rows = [approved_row(i, now=created, period_start=date(2026, 3, 5), period_end=date(2027, 3, 4),
                         expiring_due_on=TODAY - timedelta(days=i % 3)) for i in range(expiring)]
    waiting = []
    for i in range(overdue):
        row = approved_row(100_000 + i, now=NOW - timedelta(days=10), period_start=TODAY, period_end=TODAY,
                           expiring_due_on=None)
        row.update(status="requested", decision=None, period_start=None, period_end=None, expiry_due_on=None,
                   decision_due=NOW - timedelta(hours=1), mcp_authorization_number=None)
        waiting.append(row)
    async with uow_of(runtime) as uow:
        await uow.authorizations.add_many(rows + waiting)
        await uow.session.execute(insert(uow.tables.timer), [
            decision_timer_row(r["id"], NOW - timedelta(hours=1), 1, created) for r in waiting])
        from authorizations.models import MemberEngagement

        await uow.session.execute(insert(MemberEngagement), [
            {"member_id": r["member_id"], "program": "ecm", "last_encounter_on": TODAY - timedelta(days=10),
             "updated_at": created} for r in rows[::2]])
        await uow.commit()


async def count(runtime: ServiceRuntime, statement: Any) -> int:
    async with runtime.sessions() as session:
        return int(await session.scalar(statement) or 0)


async def outbox_types(runtime: ServiceRuntime) -> Counter[str]:
    async with runtime.sessions() as session:
        rows = (await session.execute(select(runtime.definition.tables.outbox.c.headers))).all()
    return Counter(next(v for k, v in r[0] if k == "calhub-event-type") for r in rows)


async def test_two_instances_raise_each_expiry_and_each_overdue_exactly_once(postgres_url: str,
                                                                             tmp_path: Path) -> None:
    async with instances(postgres_url, tmp_path, 2, sweep_chunk=40, scheduler_batch_size=25) as (a, b):
        await seed(a, expiring=400, overdue=150)
        part_a, part_b = AuthorizationScheduler(a), AuthorizationScheduler(b)
        # Both start at once and race to create the day's sweep; approvals also armed extra immediate
        # sweeps, so both instances sweep at the same time and must split the rows, not double them.
        await asyncio.gather(part_a.ensure_daily_sweeps(), part_b.ensure_daily_sweeps())
        async with uow_of(a) as uow:
            for _ in range(6):
                await schedule(uow.session, uow.tables, kind=EXPIRY_SWEEP, subject=SWEEP_SUBJECT, due_at=NOW,
                               payload={"reason": "notice_already_due"})
            await uow.commit()
        fired = await asyncio.gather(*(p.scheduler.fire_due() for p in (part_a, part_b, part_a, part_b)))
        assert sum(fired) > 0 and fired[0] > 0 and fired[1] > 0
        # Continuations scheduled "now" by full chunks fire on the next pass.
        while sum(await asyncio.gather(part_a.scheduler.fire_due(), part_b.scheduler.fire_due())):
            pass

        types = await outbox_types(a)
        assert types["authorization.expiring"] == 400
        assert types["authorization.reauth_requested"] == 200
        assert types["authorization.care_task_opened"] == 200
        assert types["authorization.decision_overdue"] == 150
        # ...and per authorization, not just in total.
        async with a.sessions() as session:
            per_auth = (await session.execute(
                select(AuthorizationHistory.authorization_id, func.count())
                .where(AuthorizationHistory.action == "expiring")
                .group_by(AuthorizationHistory.authorization_id))).all()
        assert len(per_auth) == 400 and {n for _, n in per_auth} == {1}
        assert await count(a, select(func.count()).select_from(CareTeamTask)) == 200
        assert await count(a, select(func.count()).where(Authorization.origin == "reauthorization")) == 200
        timer = a.definition.tables.timer
        sweeps = await count(a, select(func.count()).select_from(timer)
                             .where(timer.c.kind == EXPIRY_SWEEP, timer.c.payload["day"].as_string() == "2027-02-02"))
        assert sweeps == 1  # the day's sweep exists once although both instances armed it
        # Escalation 2 is armed once per request, at the end of the next business day.
        assert await count(a, select(func.count()).select_from(timer).where(
            timer.c.kind == DECISION_DUE, timer.c.status == "pending",
            timer.c.payload["escalation"].as_integer() == 2)) == 150


async def test_killed_mid_batch_then_restarted_nothing_missed_nothing_twice(postgres_url: str,
                                                                           tmp_path: Path) -> None:
    async with instances(postgres_url, tmp_path, 2, sweep_chunk=1000, scheduler_batch_size=40) as (a, b):
        await seed(a, expiring=120, overdue=100)
        async with uow_of(a) as uow:
            await schedule(uow.session, uow.tables, kind=EXPIRY_SWEEP, subject=SWEEP_SUBJECT, due_at=NOW,
                           payload={"day": TODAY.isoformat()})
            await uow.commit()
        runs = 0

        # The same handlers, but the process dies in the 7th one (mid-batch, after six did their work).
        dying: TimerHandlerRegistry[AuthorizationsUnitOfWork] = TimerHandlerRegistry()

        async def crash_on_seventh(timer: DueTimer, uow: AuthorizationsUnitOfWork) -> None:
            nonlocal runs
            runs += 1
            handler = timers.handler_for(timer.kind)
            assert handler is not None
            await handler(timer, uow)
            if runs == 7:
                raise SimulatedCrash

        dying.handles(DECISION_DUE, EXPIRY_SWEEP)(crash_on_seventh)
        crashing = Scheduler(lambda: uow_of(a), dying, batch_size=40, clock=FixedClock(NOW))
        with pytest.raises(SimulatedCrash):
            await crashing.fire_due()
        assert sum((await outbox_types(a)).values()) == 0  # the dying batch left nothing behind
        # A second kind of death: cancelled (SIGTERM) while a sweep is half done.
        started = asyncio.Event()

        async def slow_sweep(timer: DueTimer, uow: AuthorizationsUnitOfWork) -> None:
            handler = timers.handler_for(timer.kind)
            assert handler is not None
            await handler(timer, uow)
            started.set()
            await asyncio.sleep(30)

        stalling: TimerHandlerRegistry[AuthorizationsUnitOfWork] = TimerHandlerRegistry()
        stalling.handles(DECISION_DUE, EXPIRY_SWEEP)(slow_sweep)
        victim = asyncio.create_task(Scheduler(lambda: uow_of(b), stalling, batch_size=40,
                                               clock=FixedClock(NOW)).fire_due())
        await started.wait()
        victim.cancel()
        with pytest.raises(asyncio.CancelledError):
            await victim
        assert sum((await outbox_types(a)).values()) == 0

        # Restart: both instances with the real handlers.
        restarted = [AuthorizationScheduler(r) for r in (a, b)]
        while sum(await asyncio.gather(*(p.scheduler.fire_due() for p in restarted))):
            pass
        types = await outbox_types(a)
        assert types["authorization.expiring"] == 120
        assert types["authorization.decision_overdue"] == 100
        assert types["authorization.reauth_requested"] + types["authorization.care_task_opened"] == 120
        assert await count(a, select(func.count()).select_from(AuthorizationHistory)
                           .where(AuthorizationHistory.action == "decision_overdue")) == 100
