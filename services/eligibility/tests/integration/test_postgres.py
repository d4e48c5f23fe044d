"""The eligibility service on real PostgreSQL: change detection, whole-file refusal, concurrent schedulers."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from eligibility import models
from eligibility.handlers import answer_which_plan, timers
from eligibility.service import MONTHLY_TIMER
from eligibility.x12.x270 import validate_270
from sqlalchemy import select

from shared.scheduler import FixedClock, Scheduler, schedule

pytestmark = pytest.mark.integration
APRIL_RUN = datetime(2026, 4, 1, 13, 0, tzinfo=UTC)


async def test_lost_yesterday_is_announced_exactly_once_on_postgres(pg_kit: Any) -> None:
    kit = pg_kit
    await kit.deliver(kit.mif(period="2026-02"))
    await kit.deliver(kit.file_received(kit.fixture("271_inactive.x12")))
    await kit.deliver(kit.file_received(kit.fixture("271_inactive.x12")))  # same bytes, another file id
    await kit.deliver(kit.mif(period="2026-02"))
    lost = await kit.events_of("eligibility.lost")
    assert [(e.data.mcp_code, e.data.effective) for e in lost] == [("lacare", date(2026, 3, 1))]


async def test_malformed_271_applies_nothing_on_postgres(pg_kit: Any) -> None:
    kit = pg_kit
    await kit.add_check("chk_fixture_ok")
    await kit.deliver(kit.file_received(kit.fixture("271_malformed.x12")))
    assert await kit.events("eligibility.eligibility.v1") == []
    async with kit.uow() as uow:
        check = (await uow.checks.get_many(["chk_fixture_ok"]))["chk_fixture_ok"]
        spans = (await uow.session.execute(select(models.enrollment_span))).all()
    assert check.status == "sent" and spans == []


async def test_two_schedulers_firing_at_once_send_one_batch(pg_kit: Any) -> None:
    kit = pg_kit
    for event in kit.authorization():
        await kit.deliver(event)
    async with kit.uow() as uow:
        # A duplicate April timer, as a second instance restoring the schedule at the same moment might add.
        await schedule(uow.session, uow.tables, kind=MONTHLY_TIMER, subject="lacare", due_at=APRIL_RUN, payload={})
        await uow.commit()
    runtime = kit.runtime
    schedulers = [Scheduler(runtime.uow, timers, clock=FixedClock(APRIL_RUN)) for _ in range(2)]
    await asyncio.gather(*(s.fire_due(APRIL_RUN) for s in schedulers))
    for s in schedulers:  # a timer that lost the race on the batch key is retried and finds the batch
        await s.fire_due(APRIL_RUN)
    batches = await kit.events_of("eligibility_batch.created", "eligibility.eligibility_batch.v1")
    assert [(b.data.period, b.data.members) for b in batches] == [("2026-04", 1)]
    assert validate_270(kit.files.get(batches[0].data.file).decode()) == []
    async with kit.uow() as uow:
        pending = (await uow.session.execute(select(uow.tables.timer).where(
            uow.tables.timer.c.kind == MONTHLY_TIMER, uow.tables.timer.c.status == "pending"))).all()
        failed = (await uow.session.execute(select(uow.tables.timer).where(
            uow.tables.timer.c.status == "failed"))).all()
    assert len(pending) == 1 and failed == []


async def test_a_check_queued_while_the_flush_fires_goes_out_with_the_next_270(pg_kit: Any) -> None:
    kit = pg_kit
    await kit.deliver(kit.referral(cin="90000005A", mcp="lacare", referral_id="ref_a"))  # queued, flush pending
    scheduler = Scheduler(kit.runtime.uow, timers, clock=FixedClock(kit.clock.now() + timedelta(hours=1)))
    async with kit.uow() as uow:
        await answer_which_plan(kit.referral(cin="90000006A", mcp="lacare", referral_id="ref_b"), uow)
        # The flush due now runs before this check commits: it cannot see it.
        await scheduler.fire_due()
        await uow.commit()

    await scheduler.fire_due()
    async with kit.uow() as uow:
        assert await uow.checks.queued("lacare") == []
    batches = await kit.events_of("eligibility_batch.created", "eligibility.eligibility_batch.v1")
    assert sum(b.data.members for b in batches) == 2


async def test_api_on_postgres(pg_kit: Any) -> None:
    kit = pg_kit
    await kit.deliver(kit.mif(period="2026-02"))
    response = await kit.harness.client.get("/v1/members/90000001A/eligibility", params={"date": "2026-03-02"},
                                            headers=kit.harness.headers("hub-token"))
    assert response.status_code == 200 and response.json()["mcp_code"] == "lacare"
    job = await kit.harness.client.post("/v1/eligibility/checks", json={"members": [{"cin": "90000001A"}]},
                                        headers=kit.harness.headers("hub-token", **{"Idempotency-Key": "j1"}))
    assert job.status_code == 202 and job.json()["pending"] == 1
