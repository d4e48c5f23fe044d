"""ISA13 of the 270s: eligibility's half of the 9-digit space (claims keeps 1..499,999,999), per MCP."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from eligibility import models
from eligibility.repository import FIRST_INTERCHANGE_NUMBER, LAST_INTERCHANGE_NUMBER
from eligibility.x12.x270 import parse_270
from sqlalchemy import insert, select


async def _counter_at(kit: Any, partner: str, last_value: int) -> None:
    async with kit.uow() as uow:
        await uow.session.execute(insert(models.control_number).values(partner=partner, last_value=last_value))
        await uow.commit()


async def _next(kit: Any, partner: str) -> int:
    async with kit.uow() as uow:
        value: int = await uow.batches.next_control_number(partner)
        await uow.commit()
    return value


async def test_first_270_of_an_mcp_carries_the_first_isa13_of_eligibilitys_range(kit: Any) -> None:
    await kit.deliver(kit.referral(cin="90000002A", mcp="lacare", referral_id="ref_1"))
    assert await kit.scheduler.scheduler.fire_due(kit.clock.now() + timedelta(minutes=16)) == 1
    (batch,) = await kit.events_of("eligibility_batch.created", "eligibility.eligibility_batch.v1")
    text = kit.files.get(batch.data.file).decode()
    assert parse_270(text)["interchange_control_number"] == batch.data.interchange_control_number == "500000000"
    assert "*500000000*" in text.split("~", 1)[0]  # ISA13
    assert "GS*HS*" in text and "*500000000*X*005010X279A1~" in text  # GS06 follows ISA13, as before


async def test_counter_left_at_41_by_an_older_version_continues_in_the_range(kit: Any) -> None:
    await _counter_at(kit, "lacare", 41)  # 1..41 were sent; none of them may come back
    assert [await _next(kit, "lacare") for _ in range(3)] == [500_000_000, 500_000_001, 500_000_002]
    assert await _next(kit, "healthnet") == FIRST_INTERCHANGE_NUMBER  # one counter per MCP


@pytest.mark.parametrize(("last", "following"), [
    (FIRST_INTERCHANGE_NUMBER, 500_000_001),
    (999_999_998, 999_999_999),
    (LAST_INTERCHANGE_NUMBER, FIRST_INTERCHANGE_NUMBER),  # wraps inside the range, never to claims' 1
])
async def test_counter_wraps_inside_eligibilitys_range(kit: Any, last: int, following: int) -> None:
    await _counter_at(kit, "lacare", last)
    assert await _next(kit, "lacare") == following
    async with kit.uow() as uow:
        stored = (await uow.session.execute(select(models.control_number.c.last_value).where(
            models.control_number.c.partner == "lacare"))).scalar()
    assert stored == following
