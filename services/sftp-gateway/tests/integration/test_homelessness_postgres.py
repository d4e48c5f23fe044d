"""Homelessness flags kept from MCP files on PostgreSQL: the newest file stands, also when two commit at once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from gateway_testing import Gateway

pytestmark = pytest.mark.integration

AT = datetime(2026, 11, 2, 9, tzinfo=UTC)


@pytest.fixture
def gateway(pg_gateway: Gateway) -> Gateway:
    return pg_gateway


async def _save(gateway: Gateway, flags: dict[str, bool], period: str, at: datetime, *,
                hold: asyncio.Event | None = None) -> None:
    async with gateway.uow() as uow:
        await uow.projections.save_homelessness("healthnet", flags, period=period, file_id=f"file_{period}",
                                                at=at)
        if hold is not None:
            await hold.wait()
        await uow.commit()


async def _kept(gateway: Gateway) -> dict[str, bool]:
    async with gateway.uow() as uow:
        kept: dict[str, bool] = await uow.projections.homelessness("healthnet")
    return kept


async def test_the_newest_file_stands_whatever_order_the_files_come_in(gateway: Gateway) -> None:
    await _save(gateway, {"90000001A": True, "90000002A": True}, "2026-11", AT)
    await _save(gateway, {"90000001A": False}, "2026-10", AT + timedelta(hours=1))  # a late, older file
    await _save(gateway, {"90000002A": False}, "2026-11", AT + timedelta(hours=2))  # a correction of the month
    assert await _kept(gateway) == {"90000001A": True, "90000002A": False}


async def test_two_files_committing_at_once_do_not_collide_and_the_newer_stands(gateway: Gateway) -> None:
    # Both transactions write a member no file mentioned before; the first holds its row until the second wrote.
    release = asyncio.Event()
    older = asyncio.create_task(_save(gateway, {"90000003A": True}, "2026-10", AT, hold=release))
    await asyncio.sleep(0.2)
    newer = asyncio.create_task(_save(gateway, {"90000003A": False}, "2026-11", AT + timedelta(hours=1)))
    await asyncio.sleep(0.2)
    release.set()
    await asyncio.gather(older, newer)
    assert await _kept(gateway) == {"90000003A": False}
