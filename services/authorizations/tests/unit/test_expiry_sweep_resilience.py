"""The daily expiry sweep keeps going: tomorrow's is armed whatever today's does, and one bad row stays alone."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from authorizations import timers as timers_module
from authorizations.models import Authorization
from authorizations.service import sweep_timer_id
from authorizations.testkit import approved_row, fire_timers, wait_published
from sqlalchemy import insert, select
from sqlalchemy.exc import OperationalError

from shared.scheduler import FixedClock
from shared.testing.app import ServiceHarness

SWEEP_DAY = date(2026, 3, 3)
AT_SWEEP = datetime(2026, 3, 3, 8, 0, 1, tzinfo=UTC)  # 2026-03-03 00:00:01 Pacific


async def _timer_status(h: ServiceHarness, day: date) -> str | None:
    runtime = h.runtimes["authorizations"]
    async with runtime.sessions() as session:
        timer = runtime.uow().tables.timer
        status: str | None = await session.scalar(select(timer.c.status).where(timer.c.id == sweep_timer_id(day)))
        return status


async def _seed(h: ServiceHarness, rows: list[dict[str, Any]]) -> None:
    async with h.runtimes["authorizations"].sessions() as session:
        await session.execute(insert(Authorization), rows)
        await session.commit()


async def test_a_sweep_failing_every_attempt_still_leaves_tomorrows_sweep_armed(
        harness: ServiceHarness, clock: FixedClock, monkeypatch: pytest.MonkeyPatch) -> None:
    await fire_timers(harness)  # today's catch-up sweep, armed at start
    assert await _timer_status(harness, SWEEP_DAY) == "pending"

    async def blip(*args: Any, **kwargs: Any) -> Any:
        raise OperationalError("sweep", {}, ConnectionResetError())

    monkeypatch.setattr(timers_module, "sweep_expiries", blip)
    clock.set(AT_SWEEP)
    for _ in range(20):  # the scheduler gives a failing timer one try per pass, five in all
        await fire_timers(harness)
        if await _timer_status(harness, SWEEP_DAY) == "failed":
            break
    assert await _timer_status(harness, SWEEP_DAY) == "failed"  # left for ops to see
    assert await _timer_status(harness, SWEEP_DAY + timedelta(days=1)) == "pending"


async def test_one_authorization_that_cannot_be_swept_does_not_stop_the_others(
        harness: ServiceHarness, clock: FixedClock) -> None:
    now = clock.now()
    good = [approved_row(n, now=now, period_start=date(2025, 4, 2), period_end=date(2026, 4, 1),
                         expiring_due_on=date(2026, 3, 2)) for n in (1, 2)]
    bad = approved_row(3, now=now, period_start=date(2025, 4, 2), period_end=date(2026, 4, 1),
                       expiring_due_on=date(2026, 3, 2))
    bad.update(period_end=None)  # a row no notice can be built for
    ended = approved_row(4, now=now, period_start=date(2025, 3, 2), period_end=date(2026, 3, 1),
                         expiring_due_on=None)
    broken_end = approved_row(5, now=now, period_start=date(2025, 3, 2), period_end=date(2026, 3, 1),
                              expiring_due_on=None)
    broken_end.update(period_end=None)
    await _seed(harness, [*good, bad, ended, broken_end])
    clock.set(AT_SWEEP)
    for _ in range(3):
        await fire_timers(harness)
    expiring = await wait_published(harness, "authorization.expiring", 2)
    assert {e["data"]["authorization_id"] for e in expiring} == {g["id"] for g in good}
    expired = await wait_published(harness, "authorization.expired")
    assert [e["data"]["authorization_id"] for e in expired] == [ended["id"]]
    runtime = harness.runtimes["authorizations"]
    async with runtime.sessions() as session:
        rows = {r.id: r for r in (await session.execute(select(Authorization))).scalars()}
    assert all(rows[g["id"]].expiring_raised_at is not None for g in good)
    assert rows[ended["id"]].status == "expired"
    assert rows[bad["id"]].expiring_raised_at is None  # not marked as notified
    assert rows[broken_end["id"]].status == "approved"
    assert await _timer_status(harness, SWEEP_DAY) == "fired"
    assert await _timer_status(harness, SWEEP_DAY + timedelta(days=1)) == "pending"
