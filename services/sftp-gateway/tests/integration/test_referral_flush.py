"""Referral-file flushes on real PostgreSQL: a request recorded while the MCP's flush timer is being fired still
reaches a referral file (the flush cannot see rows that commit after it read the queue)."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime
from typing import Any

import pytest
from gateway_testing import Gateway
from sftp_gateway.handlers import REFERRAL_FLUSH, record_authorization_request
from sftp_gateway.repository import SftpGatewayUnitOfWork
from sftp_gateway.timers import flush_referrals, timers

from shared.contracts.authorizations import AuthorizationOrigin, AuthorizationRequested
from shared.contracts.values import Address, MemberDemographics, Program, ServiceRequested, Urgency
from shared.envelope import new_event
from shared.scheduler import DueTimer, Scheduler, TimerHandlerRegistry

pytestmark = pytest.mark.integration


@pytest.fixture
def gateway(pg_gateway: Gateway) -> Gateway:
    return pg_gateway


def _requested(n: int) -> AuthorizationRequested:
    member = MemberDemographics(cin=f"{91000000 + n:08d}A", last_name="Testperson", first_name=f"Member{n}",
                                birth_date=date(1980, 1, 15), phone="5555550101",
                                address=Address(line1="1 Main St", city="Los Angeles", zip="90001"))
    return AuthorizationRequested(
        authorization_id=f"auth_flush_{n}", referral_id=f"ref_flush_{n}", member=member, mcp_code="lacare",
        service=ServiceRequested(program=Program.ECM, pof_codes=("1a",)), urgency=Urgency.STANDARD,
        origin=AuthorizationOrigin.REFERRAL, requested_at=datetime(2026, 9, 28, 17, tzinfo=UTC),
        decision_due=datetime(2026, 10, 5, 23, tzinfo=UTC), calendar="us-ca-state")


async def _record(gateway: Gateway, n: int) -> None:
    """The consumer's transaction for one authorization.requested, committed."""
    async with gateway.uow() as uow:
        await record_authorization_request(new_event(_requested(n), subject=f"auth_flush_{n}", source="test"), uow)
        await uow.commit()


async def _unsent(gateway: Gateway) -> list[str]:
    async with gateway.uow() as uow:
        return sorted(r.authorization_id for r in await uow.projections.unsent_requests("lacare"))


def _referral_rows(gateway: Gateway) -> list[str]:
    """REFERRAL_ID of every row of every referral file in L.A. Care's outbound folder."""
    rows: list[str] = []
    for name, content in gateway.outbound("lacare").items():
        if "REFERRAL" in name:
            rows += [line.split("|")[0] for line in content.decode().splitlines()[1:] if line]
    return sorted(rows)


async def test_a_request_recorded_while_the_flush_runs_gets_a_flush_of_its_own(gateway: Gateway) -> None:
    await _record(gateway, 1)
    # The flush of request 1 has read the queue and written its file but not committed yet.
    flushed, release = asyncio.Event(), asyncio.Event()
    held: TimerHandlerRegistry[Any] = TimerHandlerRegistry()

    @held.handles(REFERRAL_FLUSH)
    async def flush_and_hold(due: DueTimer, uow: SftpGatewayUnitOfWork) -> None:
        await flush_referrals(due, uow)
        flushed.set()
        await release.wait()

    firing = asyncio.create_task(Scheduler(gateway.runtime.uow, held).fire_due())
    try:
        await asyncio.wait_for(flushed.wait(), timeout=30)
        await _record(gateway, 2)  # its timer check must not count on the flush in flight
    finally:
        release.set()  # never leave the flush's transaction (and its locks) open
    assert await firing == 1

    await Scheduler(gateway.runtime.uow, held).fire_due()
    assert await _unsent(gateway) == []
    assert _referral_rows(gateway) == ["auth_flush_1", "auth_flush_2"]


async def test_a_flush_due_while_a_request_is_being_recorded_waits_for_it(gateway: Gateway) -> None:
    await _record(gateway, 1)
    scheduler = Scheduler(gateway.runtime.uow, timers)
    async with gateway.uow() as uow:
        await record_authorization_request(new_event(_requested(2), subject="auth_flush_2", source="test"), uow)
        # Request 1's timer fires now, before request 2 commits: a flush at this point could not see it.
        await scheduler.fire_due()
        await uow.commit()

    await scheduler.fire_due()
    assert await _unsent(gateway) == []
    assert _referral_rows(gateway) == ["auth_flush_1", "auth_flush_2"]

