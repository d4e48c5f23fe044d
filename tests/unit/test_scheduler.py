"""Durable timers on SQLite: due order, replace and cancel, events with the firing, failures, crash safety."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Column, Integer, String, Table, Uuid, func, insert, select
from sqlalchemy.exc import IntegrityError

from shared.bus.message import PermanentError
from shared.contracts.base import EventData, EventTypeRegistry, Topic
from shared.envelope import new_event
from shared.scheduler import (
    HOLD_OVERDUE_LIMIT,
    DueTimer,
    FixedClock,
    Scheduler,
    SystemClock,
    TimerHandlerRegistry,
    cancel,
    hold_pending,
    retry_failed,
    schedule,
)
from shared.testing.database import ServiceDatabase
from shared.uow import UnitOfWork

T0 = datetime(2026, 3, 2, 17, 0, tzinfo=UTC)
DECISION, EXPIRY, RECHECK = "authorization.decision_due", "authorization.expiry", "eligibility.recheck_due"
PROBE_EVENTS = EventTypeRegistry()  # a registry of its own: test contracts stay out of the published ones


@PROBE_EVENTS.register("timerprobe.fired", Topic("schedulertest", "timerprobe"))
class TimerProbeFired(EventData):
    timer_id: UUID
    kind: str


class SimulatedCrash(BaseException):
    """The process dying (or being cancelled) mid-batch: not an Exception, so nothing may catch it."""


Handler = Callable[[DueTimer, UnitOfWork], Awaitable[None]]


def effect_table(db: ServiceDatabase) -> Table:
    """What handlers do, one row per run; no unique key, so a double firing shows as a duplicate row."""
    existing = db.metadata.tables.get(f"{db.schema}.timer_effect")
    if existing is not None:
        return existing
    return Table("timer_effect", db.metadata,
                 Column("seq", Integer, primary_key=True, autoincrement=True),
                 Column("timer_id", Uuid, nullable=False),
                 Column("kind", String(100), nullable=False))


@pytest.fixture
async def db(sqlite_service_db: ServiceDatabase) -> ServiceDatabase:
    table = effect_table(sqlite_service_db)
    async with sqlite_service_db.engine.begin() as conn:
        await conn.run_sync(table.create)
    return sqlite_service_db


async def record_effect(timer: DueTimer, uow: UnitOfWork) -> None:
    """The usual handler: a state change plus an event, both in the scheduler's transaction."""
    table = uow.tables.timer.metadata.tables[f"{uow.tables.timer.schema}.timer_effect"]
    await uow.session.execute(insert(table).values(timer_id=timer.id, kind=timer.kind))
    uow.record(new_event(TimerProbeFired(timer_id=timer.id, kind=timer.kind), subject=timer.subject,
                         source="schedulertest"))


def make_registry(handlers: dict[str, Handler]) -> TimerHandlerRegistry[UnitOfWork]:
    registry: TimerHandlerRegistry[UnitOfWork] = TimerHandlerRegistry()
    for kind, handler in handlers.items():
        registry.handles(kind)(handler)
    return registry


def make_scheduler(db: ServiceDatabase, registry: TimerHandlerRegistry[UnitOfWork], **options: Any,
                   ) -> Scheduler[UnitOfWork]:
    options.setdefault("clock", FixedClock(T0))
    return Scheduler(lambda: UnitOfWork(db.sessions, db.tables), registry, **options)


async def make_timer(db: ServiceDatabase, *, kind: str = DECISION, subject: str = "auth-1",
                     due_at: datetime = T0, payload: dict[str, Any] | None = None,
                     replace: bool = False) -> UUID:
    async with UnitOfWork(db.sessions, db.tables) as uow:
        timer_id = await schedule(uow.session, uow.tables, kind=kind, subject=subject, due_at=due_at,
                                  payload=payload or {}, replace=replace)
        await uow.commit()
    return timer_id


async def timer_rows(db: ServiceDatabase) -> dict[UUID, Any]:
    async with db.sessions() as session:
        return {r.id: r for r in await session.execute(select(db.tables.timer))}


async def effects(db: ServiceDatabase) -> list[UUID]:
    async with db.sessions() as session:
        table = effect_table(db)
        return list(await session.scalars(select(table.c.timer_id).order_by(table.c.seq)))


async def outbox_count(db: ServiceDatabase) -> int:
    async with db.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(db.tables.outbox)) or 0)


async def test_fires_only_due_timers_in_due_order(db: ServiceDatabase) -> None:
    seen: list[DueTimer] = []

    async def remember(timer: DueTimer, uow: UnitOfWork) -> None:
        seen.append(timer)

    later = await make_timer(db, subject="a", due_at=T0 - timedelta(minutes=1))
    earliest = await make_timer(db, subject="b", due_at=T0 - timedelta(hours=2), payload={"lead_days": 30})
    exactly_now = await make_timer(db, subject="c", due_at=T0)
    future = await make_timer(db, subject="d", due_at=T0 + timedelta(seconds=1))
    scheduler = make_scheduler(db, make_registry({DECISION: remember}))

    assert await scheduler.pending_due() == 3
    assert await scheduler.fire_due() == 3

    assert [t.id for t in seen] == [earliest, later, exactly_now]
    assert seen[0].payload == {"lead_days": 30}
    assert seen[0].due_at == T0 - timedelta(hours=2) and seen[0].due_at.tzinfo == UTC
    assert [t.attempt for t in seen] == [1, 1, 1]
    rows = await timer_rows(db)
    assert {i: r.status for i, r in rows.items()} == {earliest: "fired", later: "fired", exactly_now: "fired",
                                                       future: "pending"}
    assert rows[earliest].fired_at is not None and rows[future].fired_at is None
    assert await scheduler.pending_due() == 0
    assert await scheduler.fire_due() == 0


async def test_fixed_clock_decides_what_is_due(db: ServiceDatabase) -> None:
    clock = FixedClock(T0)
    timer_id = await make_timer(db, due_at=T0 + timedelta(days=5))
    scheduler = make_scheduler(db, make_registry({DECISION: record_effect}), clock=clock)

    assert await scheduler.fire_due() == 0
    clock.advance(timedelta(days=5))
    assert await scheduler.fire_due() == 1
    assert await effects(db) == [timer_id]


async def test_small_batches_fire_everything_due_in_one_call(db: ServiceDatabase) -> None:
    ids = [await make_timer(db, subject=f"auth-{i}", due_at=T0 - timedelta(minutes=i)) for i in range(7)]
    scheduler = make_scheduler(db, make_registry({DECISION: record_effect}), batch_size=2)

    assert await scheduler.fire_due() == 7
    assert await effects(db) == list(reversed(ids))


async def test_replace_cancels_the_pending_timer_of_the_same_kind_and_subject(db: ServiceDatabase) -> None:
    old = await make_timer(db, subject="auth-1", due_at=T0 - timedelta(hours=1))
    other_subject = await make_timer(db, subject="auth-2", due_at=T0 - timedelta(hours=1))
    other_kind = await make_timer(db, kind=EXPIRY, subject="auth-1", due_at=T0 - timedelta(hours=1))
    moved = await make_timer(db, subject="auth-1", due_at=T0 + timedelta(days=2), replace=True)

    rows = await timer_rows(db)
    assert {i: r.status for i, r in rows.items()} == {old: "cancelled", other_subject: "pending",
                                                       other_kind: "pending", moved: "pending"}
    scheduler = make_scheduler(db, make_registry({DECISION: record_effect,
                                                 EXPIRY: record_effect}))
    assert await scheduler.fire_due() == 2
    assert sorted(await effects(db)) == sorted([other_subject, other_kind])


async def test_cancel_touches_only_pending_timers(db: ServiceDatabase) -> None:
    fired = await make_timer(db, due_at=T0 - timedelta(days=1))
    scheduler = make_scheduler(db, make_registry({DECISION: record_effect}))
    await scheduler.fire_due()
    pending = await make_timer(db, due_at=T0 + timedelta(days=1))

    async with UnitOfWork(db.sessions, db.tables) as uow:
        assert await cancel(uow.session, uow.tables, DECISION, "auth-1") == 1
        await uow.commit()

    rows = await timer_rows(db)
    assert (rows[fired].status, rows[pending].status) == ("fired", "cancelled")
    scheduler.clock = FixedClock(T0 + timedelta(days=2))
    assert await scheduler.fire_due() == 0


async def test_hold_pending_finds_only_a_pending_timer_of_the_kind_and_subject(db: ServiceDatabase) -> None:
    fired = await make_timer(db, due_at=T0 - timedelta(days=1))
    await make_scheduler(db, make_registry({DECISION: record_effect})).fire_due()
    await make_timer(db, kind=EXPIRY, due_at=T0 + timedelta(days=1))
    await make_timer(db, subject="auth-2", due_at=T0 + timedelta(days=1))

    async with UnitOfWork(db.sessions, db.tables) as uow:
        # The fired timer is not pending.
        assert await hold_pending(uow.session, uow.tables, DECISION, "auth-1", now=T0) is None
    pending = await make_timer(db, due_at=T0 + timedelta(days=1))
    async with UnitOfWork(db.sessions, db.tables) as uow:
        assert await hold_pending(uow.session, uow.tables, DECISION, "auth-1", now=T0) == pending != fired
    async with UnitOfWork(db.sessions, db.tables) as uow:
        # Overdue by more than the limit: left to the scheduler, the caller schedules its own.
        late = T0 + timedelta(days=1) + HOLD_OVERDUE_LIMIT
        assert await hold_pending(uow.session, uow.tables, DECISION, "auth-1", now=late - timedelta(seconds=1)) \
            == pending
        assert await hold_pending(uow.session, uow.tables, DECISION, "auth-1", now=late) is None


async def test_scheduled_timer_rolls_back_with_the_callers_transaction(db: ServiceDatabase) -> None:
    async with UnitOfWork(db.sessions, db.tables) as uow:
        await schedule(uow.session, uow.tables, kind=DECISION, subject="auth-1", due_at=T0,
                       payload={})
        await uow.rollback()
    assert await timer_rows(db) == {}


async def test_naive_due_time_is_refused(db: ServiceDatabase) -> None:
    async with UnitOfWork(db.sessions, db.tables) as uow:
        with pytest.raises(ValueError, match="timezone-aware"):
            await schedule(uow.session, uow.tables, kind=DECISION, subject="auth-1",
                           due_at=datetime(2026, 3, 2, 9, 0), payload={})
    with pytest.raises(ValueError):
        FixedClock(datetime(2026, 3, 2, 9, 0))


async def test_due_time_in_pacific_time_is_stored_and_handed_over_as_utc(db: ServiceDatabase) -> None:
    seen: list[DueTimer] = []

    async def remember(timer: DueTimer, uow: UnitOfWork) -> None:
        seen.append(timer)

    pacific = datetime(2026, 3, 2, 9, 0, tzinfo=ZoneInfo("America/Los_Angeles"))  # PST, UTC-8
    await make_timer(db, due_at=pacific)
    scheduler = make_scheduler(db, make_registry({DECISION: remember}))

    assert await scheduler.fire_due(datetime(2026, 3, 2, 16, 59, 59, tzinfo=UTC)) == 0
    assert await scheduler.fire_due(datetime(2026, 3, 2, 17, 0, tzinfo=UTC)) == 1
    assert seen[0].due_at == datetime(2026, 3, 2, 17, 0, tzinfo=UTC)
    assert seen[0].due_at.utcoffset() == timedelta(0)


async def test_handler_events_reach_the_outbox_with_the_firing(db: ServiceDatabase) -> None:
    timer_id = await make_timer(db)
    scheduler = make_scheduler(db, make_registry({DECISION: record_effect}))

    assert await scheduler.fire_due() == 1

    async with db.sessions() as session:
        rows = (await session.execute(select(db.tables.outbox))).all()
    assert [(r.topic, r.key) for r in rows] == [("schedulertest.timerprobe.v1", b"auth-1")]
    assert str(timer_id).encode() in rows[0].value
    assert (await timer_rows(db))[timer_id].status == "fired"


async def test_handler_may_schedule_the_next_timer_of_its_own_kind(db: ServiceDatabase) -> None:
    # A monthly eligibility re-check schedules the next month's with replace=True; the one firing stays fired.
    async def recheck_and_schedule_next(timer: DueTimer, uow: UnitOfWork) -> None:
        await record_effect(timer, uow)
        await schedule(uow.session, uow.tables, kind=timer.kind, subject=timer.subject,
                       due_at=timer.due_at + timedelta(days=30), payload=timer.payload, replace=True)

    first = await make_timer(db, kind=RECHECK, subject="member-1")
    scheduler = make_scheduler(db, make_registry({RECHECK: recheck_and_schedule_next}))

    assert await scheduler.fire_due() == 1
    rows = await timer_rows(db)
    assert rows.pop(first).status == "fired"
    [(_, following)] = rows.items()
    assert following.status == "pending"
    assert following.due_at.replace(tzinfo=UTC) == T0 + timedelta(days=30)


async def test_failing_handler_does_not_block_others_and_ends_failed(db: ServiceDatabase) -> None:
    async def crash_on_bad_data(timer: DueTimer, uow: UnitOfWork) -> None:
        uow.record(new_event(TimerProbeFired(timer_id=timer.id, kind=timer.kind), subject=timer.subject,
                             source="schedulertest"))
        raise KeyError("member 91234567A")  # the message may quote PHI; only the type may be kept

    minutes = timedelta(minutes=1)
    good = [await make_timer(db, subject=f"auth-{i}", due_at=T0 - (10 - i) * minutes) for i in range(2)]
    bad = await make_timer(db, kind=EXPIRY, subject="auth-x", due_at=T0 - 5 * minutes)
    good += [await make_timer(db, subject=f"auth-{i}", due_at=T0 - (4 - i) * minutes) for i in range(2, 4)]
    scheduler = make_scheduler(db, make_registry({DECISION: record_effect,
                                                 EXPIRY: crash_on_bad_data}), max_attempts=3)

    assert await scheduler.fire_due() == 4
    assert await effects(db) == good
    row = (await timer_rows(db))[bad]
    assert (row.status, row.attempts, row.last_error) == ("pending", 1, "KeyError")
    assert await outbox_count(db) == 4  # the failed handler's event never reached the outbox

    assert await scheduler.fire_due() == 0
    assert (await timer_rows(db))[bad].attempts == 2
    assert await scheduler.fire_due() == 0
    row = (await timer_rows(db))[bad]
    assert (row.status, row.attempts, row.last_error, row.fired_at) == ("failed", 3, "KeyError", None)
    assert "91234567A" not in str(row.last_error)

    assert await scheduler.fire_due() == 0
    assert await effects(db) == good
    assert await outbox_count(db) == 4


async def test_each_failing_timer_gets_one_try_per_call(db: ServiceDatabase) -> None:
    async def always_fails(timer: DueTimer, uow: UnitOfWork) -> None:
        raise RuntimeError

    due = [T0 - timedelta(minutes=10 - i) for i in range(8)]
    bad = [await make_timer(db, kind=EXPIRY, subject=f"b{i}", due_at=due[i]) for i in (0, 3, 4)]
    good = [await make_timer(db, subject=f"g{i}", due_at=due[i]) for i in (1, 2, 5, 6, 7)]
    registry = make_registry({DECISION: record_effect, EXPIRY: always_fails})
    scheduler = make_scheduler(db, registry, batch_size=4)

    assert await scheduler.fire_due() == 5
    rows = await timer_rows(db)
    assert [rows[i].attempts for i in bad] == [1, 1, 1]
    assert await effects(db) == good


async def test_a_call_stops_after_a_batch_worth_of_failures(db: ServiceDatabase) -> None:
    async def always_fails(timer: DueTimer, uow: UnitOfWork) -> None:
        raise RuntimeError

    bad = [await make_timer(db, kind=EXPIRY, subject=f"b{i}", due_at=T0 - timedelta(minutes=9 - i))
           for i in range(3)]
    scheduler = make_scheduler(db, make_registry({EXPIRY: always_fails}), batch_size=2)

    assert await scheduler.fire_due() == 0
    rows = await timer_rows(db)
    assert [rows[i].attempts for i in bad] == [1, 1, 0]


async def test_two_instances_on_sqlite_fire_each_timer_once(db: ServiceDatabase) -> None:
    ids = [await make_timer(db, subject=f"auth-{i}", due_at=T0 - timedelta(seconds=i)) for i in range(120)]
    a = make_scheduler(db, make_registry({DECISION: record_effect}), batch_size=10)
    b = make_scheduler(db, make_registry({DECISION: record_effect}), batch_size=10)

    fired = await asyncio.gather(a.fire_due(), b.fire_due())

    assert sum(fired) == 120
    assert sorted(await effects(db)) == sorted(ids)
    assert await outbox_count(db) == 120


async def test_failed_timer_can_be_put_back_by_ops(db: ServiceDatabase) -> None:
    fail = True

    async def flaky(timer: DueTimer, uow: UnitOfWork) -> None:
        if fail:
            raise ConnectionError
        await record_effect(timer, uow)

    timer_id = await make_timer(db)
    scheduler = make_scheduler(db, make_registry({DECISION: flaky}), max_attempts=1)
    await scheduler.fire_due()
    assert (await timer_rows(db))[timer_id].status == "failed"

    fail = False
    async with UnitOfWork(db.sessions, db.tables) as uow:
        assert await retry_failed(uow.session, uow.tables, timer_id)
        await uow.commit()
    assert await scheduler.fire_due() == 1
    assert await effects(db) == [timer_id]


async def test_permanent_error_fails_the_timer_at_once(db: ServiceDatabase) -> None:
    async def broken_invariant(timer: DueTimer, uow: UnitOfWork) -> None:
        raise PermanentError("authorization already closed")

    timer_id = await make_timer(db)
    scheduler = make_scheduler(db, make_registry({DECISION: broken_invariant}))

    assert await scheduler.fire_due() == 0
    row = (await timer_rows(db))[timer_id]
    assert (row.status, row.attempts, row.last_error) == ("failed", 1, "shared.bus.message.PermanentError")


async def test_unknown_kind_stays_pending_for_a_build_that_knows_it(db: ServiceDatabase) -> None:
    orphan = await make_timer(db, kind="authorization.new_kind", due_at=T0 - timedelta(hours=1))
    known = await make_timer(db, due_at=T0)
    old_build = make_scheduler(db, make_registry({DECISION: record_effect}))

    assert await old_build.fire_due() == 1
    rows = await timer_rows(db)
    assert (rows[orphan].status, rows[orphan].attempts) == ("pending", 0)
    assert rows[known].status == "fired"
    assert await effects(db) == [known]

    new_build = make_scheduler(db, make_registry({DECISION: record_effect, "authorization.new_kind": record_effect}))
    assert await new_build.fire_due() == 1
    assert (await timer_rows(db))[orphan].status == "fired"


async def test_failure_at_commit_is_isolated_to_its_timer(db: ServiceDatabase) -> None:
    # Two timers whose handlers record the very same event: the batch fails on the outbox's unique event id
    # at commit, where no handler can be blamed; each timer then runs alone and only the second one fails.
    shared_event = new_event(TimerProbeFired(timer_id=UUID(int=0), kind="x"), subject="s",
                             source="schedulertest")

    async def record_shared_event(timer: DueTimer, uow: UnitOfWork) -> None:
        await record_effect(timer, uow)
        uow.record(shared_event)

    ids = [await make_timer(db, subject=f"a{i}", due_at=T0 - timedelta(minutes=9 - i)) for i in range(2)]
    dup1 = await make_timer(db, kind=EXPIRY, subject="d1", due_at=T0 - timedelta(minutes=5))
    dup2 = await make_timer(db, kind=EXPIRY, subject="d2", due_at=T0 - timedelta(minutes=4))
    last = await make_timer(db, subject="z", due_at=T0)
    scheduler = make_scheduler(db, make_registry({DECISION: record_effect,
                                                 EXPIRY: record_shared_event}))

    assert await scheduler.fire_due() == 4
    rows = await timer_rows(db)
    statuses = [rows[i].status for i in [*ids, dup1, dup2, last]]
    assert statuses == ["fired", "fired", "fired", "pending", "fired"]
    assert rows[dup2].last_error == "sqlalchemy.exc.IntegrityError"
    assert await effects(db) == [*ids, dup1, last]


async def test_crash_mid_batch_commits_nothing_and_a_restart_fires_each_once(db: ServiceDatabase) -> None:
    runs = 0

    async def crash_on_third(timer: DueTimer, uow: UnitOfWork) -> None:
        nonlocal runs
        runs += 1
        await record_effect(timer, uow)
        if runs == 3:
            raise SimulatedCrash

    ids = [await make_timer(db, subject=f"auth-{i}", due_at=T0 - timedelta(minutes=10 - i)) for i in range(6)]
    crashing = make_scheduler(db, make_registry({DECISION: crash_on_third}))

    with pytest.raises(SimulatedCrash):
        await crashing.fire_due()

    assert runs == 3
    assert await effects(db) == []
    assert await outbox_count(db) == 0
    assert {r.status for r in (await timer_rows(db)).values()} == {"pending"}
    assert {r.attempts for r in (await timer_rows(db)).values()} == {0}

    restarted = make_scheduler(db, make_registry({DECISION: record_effect}))
    assert await restarted.fire_due() == 6
    assert await restarted.fire_due() == 0
    assert await effects(db) == ids
    assert await outbox_count(db) == 6


async def test_duplicate_timer_id_is_refused(db: ServiceDatabase) -> None:
    timer_id = await make_timer(db)
    async with UnitOfWork(db.sessions, db.tables) as uow:
        with pytest.raises(IntegrityError):
            await schedule(uow.session, uow.tables, kind=DECISION, subject="auth-1",
                           due_at=T0, payload={}, timer_id=timer_id)


def test_registry_refuses_a_second_handler_for_a_kind() -> None:
    registry: TimerHandlerRegistry[UnitOfWork] = TimerHandlerRegistry()

    @registry.handles(DECISION, EXPIRY)
    async def first(timer: DueTimer, uow: UnitOfWork) -> None: ...

    with pytest.raises(ValueError, match="already has a handler"):
        registry.handles(EXPIRY)(first)
    assert registry.kinds() == [DECISION, EXPIRY]
    assert registry.handler_for(RECHECK) is None


async def test_running_scheduler_fires_timers_until_stopped(db: ServiceDatabase) -> None:
    scheduler = make_scheduler(db, make_registry({DECISION: record_effect}), clock=SystemClock(),
                               poll_interval=0.02)
    scheduler.start()
    try:
        timer_id = await make_timer(db, due_at=datetime.now(UTC))
        scheduler.notify()
        for _ in range(200):
            if await effects(db):
                break
            await asyncio.sleep(0.01)
    finally:
        await scheduler.stop()
    assert await effects(db) == [timer_id]
