"""Homelessness flags kept from MCP files on PostgreSQL: the newest file stands, also when two commit at once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from gateway_testing import Gateway, running_gateway
from sftp_gateway.repository import SftpGatewayUnitOfWork

pytestmark = pytest.mark.integration

AT = datetime(2026, 11, 2, 9, tzinfo=UTC)


@pytest.fixture
async def gateway(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, postgres_url: str) -> AsyncIterator[Gateway]:
    async with running_gateway(tmp_path, monkeypatch, database_url=postgres_url,
                               env={"SFTP_GATEWAY_SCHEDULER_POLL_SECONDS": "3600"}) as running:
        yield running


def _uow(gateway: Gateway) -> SftpGatewayUnitOfWork:
    uow = gateway.runtime.uow()
    assert isinstance(uow, SftpGatewayUnitOfWork)
    return uow


async def _save(gateway: Gateway, flags: dict[str, bool], period: str, at: datetime, *,
                hold: asyncio.Event | None = None) -> None:
    async with _uow(gateway) as uow:
        await uow.projections.save_homelessness("healthnet", flags, period=period, file_id=f"file_{period}",
                                                at=at)
        if hold is not None:
            await hold.wait()
        await uow.commit()


async def _kept(gateway: Gateway) -> dict[str, bool]:
    async with _uow(gateway) as uow:
        return await uow.projections.homelessness("healthnet")


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
