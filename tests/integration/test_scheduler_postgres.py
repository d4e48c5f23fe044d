"""Durable timers on PostgreSQL: concurrent instances fire each timer once; crashes lose or double nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Column, Integer, String, Table, Uuid, event, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from shared.contracts.base import EventData, EventTypeRegistry, Topic
from shared.db import create_engine, session_factory
from shared.envelope import new_event
from shared.scheduler import (
    HOLD_OVERDUE_LIMIT,
    DueTimer,
    FixedClock,
    Scheduler,
    TimerHandlerRegistry,
    hold_pending,
    schedule,
)
from shared.testing.database import ServiceDatabase
from shared.uow import UnitOfWork

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 2, 17, 0, tzinfo=UTC)
DECISION = "authorization.decision_due"
PACIFIC = ZoneInfo("America/Los_Angeles")
PROBE_EVENTS = EventTypeRegistry()  # a registry of its own: test contracts stay out of the published ones


@PROBE_EVENTS.register("timerprobe.fired", Topic("schedulertest", "timerprobe"))
class TimerProbeFired(EventData):
    timer_id: UUID


class SimulatedCrash(BaseException):
    """The process dying (or being cancelled) mid-batch: not an Exception, so nothing may catch it."""


Handler = Callable[[DueTimer, UnitOfWork], Awaitable[None]]


@pytest.fixture
async def db(pg_service_db: ServiceDatabase) -> ServiceDatabase:
    # No unique key on purpose: a timer fired twice shows up as two rows.
    effect = Table("timer_effect", pg_service_db.metadata,
                   Column("seq", Integer, primary_key=True, autoincrement=True),
                   Column("timer_id", Uuid, nullable=False),
                   Column("instance", String(20), nullable=False))
    async with pg_service_db.engine.begin() as conn:
        await conn.run_sync(effect.create)
    return pg_service_db


def effect_table(db: ServiceDatabase) -> Table:
    return db.metadata.tables[f"{db.schema}.timer_effect"]


@asynccontextmanager
async def instance_engine(db: ServiceDatabase, **engine_options: Any) -> AsyncIterator[AsyncEngine]:
    """An engine (and connection pool) of its own, as a separate service instance would have."""
    engine = (create_async_engine(db.url, **engine_options) if engine_options
              else create_engine(db.url, schema=db.schema, pool_size=5))
    try:
        yield engine
    finally:
        await engine.dispose()


def effect_recorder(db: ServiceDatabase, instance: str, *, crash_on_run: int | None = None) -> Handler:
    """A handler that writes an effect row and records an event; optionally crashes on its n-th run."""
    runs = 0

    async def record_effect(timer: DueTimer, uow: UnitOfWork) -> None:
        nonlocal runs
        runs += 1
        await uow.session.execute(insert(effect_table(db)).values(timer_id=timer.id, instance=instance))
        uow.record(new_event(TimerProbeFired(timer_id=timer.id), subject=timer.subject,
                             source="schedulertest"))
        if runs == crash_on_run:
            raise SimulatedCrash

    return record_effect


def make_scheduler(db: ServiceDatabase, engine: AsyncEngine, handler: Handler, **options: Any,
                   ) -> Scheduler[UnitOfWork]:
    registry: TimerHandlerRegistry[UnitOfWork] = TimerHandlerRegistry()
    registry.handles(DECISION)(handler)
    options.setdefault("clock", FixedClock(T0))
    sessions = session_factory(engine)
    return Scheduler(lambda: UnitOfWork(sessions, db.tables), registry, **options)


async def make_due_timers(db: ServiceDatabase, count: int) -> list[UUID]:
    async with UnitOfWork(db.sessions, db.tables) as uow:
        ids = [await schedule(uow.session, uow.tables, kind=DECISION, subject=f"auth-{i}",
                              due_at=T0 - timedelta(seconds=count - i), payload={"n": i})
               for i in range(count)]
        await uow.commit()
    return ids


async def effect_counts(db: ServiceDatabase) -> tuple[int, int]:
    """(effect rows, distinct timers among them)."""
    table = effect_table(db)
    async with db.sessions() as session:
        row = (await session.execute(
            select(func.count(), func.count(table.c.timer_id.distinct())).select_from(table))).one()
    return int(row[0]), int(row[1])


async def count_rows(db: ServiceDatabase, table: Table, *where: Any) -> int:
    async with db.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(table).where(*where)) or 0)


async def test_two_instances_fire_each_of_2000_timers_exactly_once(db: ServiceDatabase) -> None:
    await make_due_timers(db, 2000)

    async with instance_engine(db) as engine_a, instance_engine(db) as engine_b:
        a = make_scheduler(db, engine_a, effect_recorder(db, "a"), batch_size=50)
        b = make_scheduler(db, engine_b, effect_recorder(db, "b"), batch_size=50)
        fired_a, fired_b = await asyncio.gather(a.fire_due(), b.fire_due())

    assert fired_a + fired_b == 2000
    assert fired_a > 0 and fired_b > 0
    assert await effect_counts(db) == (2000, 2000)
    effect = effect_table(db)
    assert await count_rows(db, effect, effect.c.instance == "a") == fired_a
    timer = db.tables.timer
    assert await count_rows(db, timer, timer.c.status == "fired", timer.c.attempts == 1) == 2000
    assert await count_rows(db, db.tables.outbox) == 2000


async def test_crash_mid_batch_then_restart_misses_and_doubles_nothing(db: ServiceDatabase) -> None:
    await make_due_timers(db, 300)

    async with instance_engine(db) as engine:
        crashing = make_scheduler(db, engine, effect_recorder(db, "a", crash_on_run=3), batch_size=50)
        with pytest.raises(SimulatedCrash):
            await crashing.fire_due()

    assert await effect_counts(db) == (0, 0)
    assert await count_rows(db, db.tables.outbox) == 0
    timer = db.tables.timer
    assert await count_rows(db, timer, timer.c.status == "pending", timer.c.attempts == 0) == 300

    # The restarted instance and a second one that was running all along share the work.
    async with instance_engine(db) as engine_a, instance_engine(db) as engine_b:
        restarted = make_scheduler(db, engine_a, effect_recorder(db, "a"), batch_size=50)
        other = make_scheduler(db, engine_b, effect_recorder(db, "b"), batch_size=50)
        fired = await asyncio.gather(restarted.fire_due(), other.fire_due())
        assert sum(fired) == 300
        assert await restarted.fire_due() == 0

    assert await effect_counts(db) == (300, 300)
    assert await count_rows(db, db.tables.outbox) == 300
    assert await count_rows(db, timer, timer.c.status == "fired") == 300


async def test_a_held_timer_fires_only_once_its_holder_committed(db: ServiceDatabase) -> None:
    # The holder queues work for the timer's run: a run that started before the commit could not see it.
    [held] = await make_due_timers(db, 1)
    async with instance_engine(db) as engine:
        scheduler = make_scheduler(db, engine, effect_recorder(db, "a"))
        async with UnitOfWork(db.sessions, db.tables) as holder:
            assert await hold_pending(holder.session, holder.tables, DECISION, "auth-0", now=T0) == held
            assert await scheduler.fire_due() == 0
            await holder.commit()
        assert await scheduler.fire_due() == 1
    assert await effect_counts(db) == (1, 1)


async def test_holders_at_the_same_moment_share_one_timer_which_waits_for_both(db: ServiceDatabase) -> None:
    # Two requests queued for the same MCP at once: both count on the one pending timer (no second timer, no
    # second file), and it fires only once neither holds it any more.
    [held] = await make_due_timers(db, 1)
    async with instance_engine(db) as engine:
        scheduler = make_scheduler(db, engine, effect_recorder(db, "a"))
        async with UnitOfWork(db.sessions, db.tables) as first, UnitOfWork(db.sessions, db.tables) as second:
            assert await hold_pending(first.session, first.tables, DECISION, "auth-0", now=T0) == held
            assert await hold_pending(second.session, second.tables, DECISION, "auth-0", now=T0) == held
            await first.commit()
            assert await scheduler.fire_due() == 0  # the second still holds it
            await second.commit()
        assert await scheduler.fire_due() == 1
    assert await effect_counts(db) == (1, 1)


async def test_a_stream_of_holders_cannot_keep_an_overdue_timer_from_firing(db: ServiceDatabase) -> None:
    # Each request holds the timer only for its own short transaction, but under steady load on one MCP they
    # overlap without a gap. Past the limit a newcomer no longer holds it: the last holders commit, it fires.
    [held] = await make_due_timers(db, 1)
    async with instance_engine(db) as engine:
        scheduler = make_scheduler(db, engine, effect_recorder(db, "a"))
        async with UnitOfWork(db.sessions, db.tables) as earlier:
            assert await hold_pending(earlier.session, earlier.tables, DECISION, "auth-0", now=T0) == held
            async with UnitOfWork(db.sessions, db.tables) as later:
                assert await hold_pending(later.session, later.tables, DECISION, "auth-0",
                                          now=T0 + HOLD_OVERDUE_LIMIT) is None  # it schedules its own
                await earlier.commit()
                assert await scheduler.fire_due() == 1  # while the later transaction is still open
                await later.commit()
    assert await effect_counts(db) == (1, 1)


async def test_a_timer_being_fired_is_not_held(db: ServiceDatabase) -> None:
    # It has read what it collects already and reads pending until it commits: the caller needs its own timer.
    await make_due_timers(db, 1)
    started, release = asyncio.Event(), asyncio.Event()

    async def fire_slowly(timer: DueTimer, uow: UnitOfWork) -> None:
        started.set()
        await release.wait()

    async with instance_engine(db) as engine:
        firing = asyncio.create_task(make_scheduler(db, engine, fire_slowly).fire_due())
        await asyncio.wait_for(started.wait(), timeout=30)
        try:
            async with UnitOfWork(db.sessions, db.tables) as uow:
                assert await hold_pending(uow.session, uow.tables, DECISION, "auth-0", now=T0) is None
        finally:
            release.set()  # a failed assertion must not leave the firing transaction (and its locks) open
        assert await firing == 1


async def test_timer_due_in_the_repeated_dst_hour_fires_once_at_its_utc_instant(db: ServiceDatabase) -> None:
    # 2026-11-01 01:30 happens twice in Los Angeles: first in PDT (08:30Z), then in PST (09:30Z).
    first = datetime(2026, 11, 1, 1, 30, tzinfo=PACIFIC)
    second = datetime(2026, 11, 1, 1, 30, fold=1, tzinfo=PACIFIC)
    seen: list[DueTimer] = []

    async def remember(timer: DueTimer, uow: UnitOfWork) -> None:
        seen.append(timer)
        await effect_recorder(db, "a")(timer, uow)

    # A session in Pacific time must not change what is stored or when it fires.
    async with instance_engine(db, connect_args={"server_settings": {"timezone": "America/Los_Angeles"}}
                               ) as engine:
        async with UnitOfWork(session_factory(engine), db.tables) as uow:
            first_id = await schedule(uow.session, uow.tables, kind=DECISION, subject="auth-pdt",
                                      due_at=first, payload={})
            second_id = await schedule(uow.session, uow.tables, kind=DECISION, subject="auth-pst",
                                       due_at=second, payload={})
            await uow.commit()
        clock = FixedClock(datetime(2026, 11, 1, 8, 29, 59, tzinfo=UTC))
        scheduler = make_scheduler(db, engine, remember, clock=clock)

        fired = [await scheduler.fire_due()]
        for step in (timedelta(seconds=1), timedelta(minutes=59, seconds=59), timedelta(seconds=1),
                     timedelta(hours=1), timedelta(days=1)):
            clock.advance(step)
            fired.append(await scheduler.fire_due())

    assert fired == [0, 1, 0, 1, 0, 0]
    assert [(t.id, t.due_at) for t in seen] == [(first_id, datetime(2026, 11, 1, 8, 30, tzinfo=UTC)),
                                                (second_id, datetime(2026, 11, 1, 9, 30, tzinfo=UTC))]
    assert all(t.due_at.utcoffset() == timedelta(0) for t in seen)
    async with db.sessions() as session:
        stored = (await session.scalars(text(
            f"SELECT to_char(due_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI') FROM \"{db.schema}\".timer "
            "ORDER BY due_at"))).all()
    assert stored == ["2026-11-01 08:30", "2026-11-01 09:30"]
    assert await effect_counts(db) == (2, 2)


async def test_finding_due_timers_uses_the_status_due_at_index(db: ServiceDatabase) -> None:
    # 200,000 rows: mostly fired history and future timers, 3,000 due. The claim must be an ordered index
    # scan that stops at the batch size, not a scan of the table.
    async with db.engine.begin() as conn:
        await conn.execute(text(f"""
            INSERT INTO "{db.schema}".timer (id, kind, subject, due_at, payload, status, attempts, created_at)
            SELECT gen_random_uuid(), '{DECISION}', 'auth-' || n,
                   CASE WHEN n <= 3000 THEN t0 - n * interval '1 second'
                        WHEN n % 4 = 0 THEN t0 + n * interval '1 minute'
                        ELSE t0 - n * interval '1 minute' END,
                   '{{}}', CASE WHEN n <= 3000 OR n % 4 = 0 THEN 'pending' ELSE 'fired' END, 0, t0
            FROM generate_series(1, 200000) AS n, (SELECT CAST(:t0 AS timestamptz) AS t0) AS start"""),
                           {"t0": T0})
        await conn.execute(text(f'ANALYZE "{db.schema}".timer'))

    claims: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        if "FOR UPDATE SKIP LOCKED" in statement:
            claims.append((statement, parameters))

    async with instance_engine(db) as engine:
        event.listen(engine.sync_engine, "before_cursor_execute", capture)
        scheduler = make_scheduler(db, engine, effect_recorder(db, "a"))
        started = asyncio.get_running_loop().time()
        assert await scheduler.fire_due() == 3000
        elapsed = asyncio.get_running_loop().time() - started
        async with engine.connect() as conn:
            plan = "\n".join((await conn.exec_driver_sql("EXPLAIN " + claims[0][0], claims[0][1])).scalars())

    assert "ix_timer_status_due_at" in plan, plan
    assert "Seq Scan" not in plan, plan
    assert await effect_counts(db) == (3000, 3000)
    print(f"fired 3,000 due timers among 200,000 rows in {elapsed:.3f}s")  # noqa: T201 - shown with -s
