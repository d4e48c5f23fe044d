"""The gateway's authorization projection ends the same whatever order an authorization's events arrive in: a
decision before its request is kept (the MCP is never asked again to decide it), a late event never overwrites
a newer status but still fills in the facts it alone carries, and of two approvals the newest decision's period
stands."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from gateway_testing import Gateway, wait_for
from sftp_gateway.domain.projection import authorization_changes

from shared.bus.message import encode
from shared.contracts.authorizations import (
    AuthorizationApproved,
    AuthorizationClosed,
    AuthorizationOrigin,
    AuthorizationRequested,
    AuthorizationSuspended,
)
from shared.contracts.values import Address, MemberDemographics, Program, ServiceRequested, Urgency
from shared.envelope import new_event

T0 = datetime(2026, 9, 28, 17, tzinfo=UTC)
ECM = ServiceRequested(program=Program.ECM, pof_codes=("1a",))


def test_the_newest_event_sets_the_standing_and_an_older_one_only_fills_gaps() -> None:
    stored = {"status": "closed", "updated_at": T0, "period_start": None, "ended_on": date(2026, 10, 25)}
    late = authorization_changes(stored, {"status": "approved", "period_start": date(2026, 10, 1),
                                          "ended_on": date(2027, 1, 1)}, T0 - timedelta(days=1))
    assert late == {"period_start": date(2026, 10, 1)}
    newer = authorization_changes(stored, {"status": "expired"}, T0 + timedelta(days=1))
    assert newer == {"status": "expired", "updated_at": T0 + timedelta(days=1)}
    assert authorization_changes(None, {"status": "approved", "cin": None}, T0) == {"status": "approved",
                                                                                 "updated_at": T0}


def test_of_two_approvals_older_than_the_standing_the_newest_decision_sets_the_period() -> None:
    # approved (T0+2d), approved as modified (T0+10d), suspended (T0+30d): the suspension arrived first.
    stored = {"status": "suspended", "updated_at": T0 + timedelta(days=30), "decided_at": T0 + timedelta(days=2),
              "period_start": date(2026, 10, 1), "period_end": date(2027, 9, 30), "mcp_authorization_number": "A"}
    modified = {"status": "approved", "decided_at": T0 + timedelta(days=10), "period_start": date(2026, 10, 1),
                "period_end": date(2027, 3, 31), "mcp_authorization_number": "A"}
    assert authorization_changes(stored, modified, T0 + timedelta(days=10)) == {
        "decided_at": T0 + timedelta(days=10), "period_start": date(2026, 10, 1), "period_end": date(2027, 3, 31),
        "mcp_authorization_number": "A"}
    newest = {**stored, "decided_at": T0 + timedelta(days=10), "period_end": date(2027, 3, 31)}
    original = {**modified, "decided_at": T0 + timedelta(days=2), "period_end": date(2027, 9, 30)}
    assert authorization_changes(newest, original, T0 + timedelta(days=2)) == {}  # the older approval, late


Told = AuthorizationRequested | AuthorizationApproved | AuthorizationClosed | AuthorizationSuspended


async def publish(gateway: Gateway, *events: tuple[Told, datetime]) -> None:
    await gateway.harness.bus.publish([encode(new_event(d, subject=d.authorization_id, source="authorizations",
                                                        time=at)) for d, at in events])


def requested(n: int) -> AuthorizationRequested:
    member = MemberDemographics(cin=f"{90000000 + n:08d}A", last_name="Testperson", first_name=f"Member{n}",
                                birth_date=date(1980, 1, 15),
                                address=Address(line1="1 Main St", city="Los Angeles", zip="90001"))
    return AuthorizationRequested(
        authorization_id=f"auth_{n}", referral_id=f"ref_{n}", member=member, mcp_code="lacare", service=ECM,
        urgency=Urgency.STANDARD, origin=AuthorizationOrigin.REFERRAL, requested_at=T0,
        decision_due=T0 + timedelta(days=7), calendar="us-ca-state")


def approved(n: int) -> AuthorizationApproved:
    return AuthorizationApproved(authorization_id=f"auth_{n}", referral_id=f"ref_{n}", mcp_code="lacare", service=ECM,
                                 decided_at=T0 + timedelta(days=2), period_start=date(2026, 10, 1),
                                 period_end=date(2027, 9, 30), mcp_authorization_number=f"LAC-{n}")


async def stored(gateway: Gateway, n: int) -> Any:
    async with gateway.runtime.uow() as uow:
        return await uow.projections.authorization(f"auth_{n}")


async def test_a_decision_before_its_request_is_kept_and_never_sent_to_the_mcp_again(gateway: Gateway) -> None:
    await publish(gateway, (approved(1), T0 + timedelta(days=2)), (requested(1), T0))
    await publish(gateway, (requested(2), T0 + timedelta(days=3)))  # an undecided request: it goes in a file

    async def referral_file() -> bool:
        return any("REFERRAL" in n for n in gateway.outbound("lacare"))

    await wait_for(referral_file)
    await wait_for(lambda: _has_member(gateway, 1))
    row = await stored(gateway, 1)
    assert (row.status, row.period_start, row.mcp_authorization_number, row.referral_file_id) == (
        "approved", date(2026, 10, 1), "LAC-1", None)
    sent = b"".join(c for n, c in gateway.outbound("lacare").items() if "REFERRAL" in n)
    assert b"auth_2" in sent and b"auth_1" not in sent


async def _has_member(gateway: Gateway, n: int) -> bool:
    row = await stored(gateway, n)
    return row is not None and row.cin is not None


async def test_a_late_approval_never_reopens_a_closed_authorization_but_gives_its_period(gateway: Gateway) -> None:
    closed = AuthorizationClosed(authorization_id="auth_3", mcp_code="lacare", reason="discontinued_by_mcp",
                                 effective=date(2026, 10, 25))
    await publish(gateway, (requested(3), T0), (closed, T0 + timedelta(days=20)), (approved(3), T0 + timedelta(days=2)))

    async def has_period() -> bool:
        row = await stored(gateway, 3)
        return row is not None and row.period_start is not None

    await wait_for(has_period)
    row = await stored(gateway, 3)
    assert (row.status, row.ended_on, row.period_end) == ("closed", date(2026, 10, 25), date(2027, 9, 30))


async def test_two_approvals_swapped_behind_a_suspension_keep_the_newest_period(gateway: Gateway) -> None:
    first = approved(4)
    modified = first.model_copy(update={"decided_at": T0 + timedelta(days=10), "period_end": date(2027, 3, 31),
                                        "modified": True})
    suspended = AuthorizationSuspended(authorization_id="auth_4", mcp_code="lacare", reason="eligibility lost",
                                       effective=date(2026, 10, 28))
    await publish(gateway, (requested(4), T0), (suspended, T0 + timedelta(days=30)),
                  (first, T0 + timedelta(days=2)), (modified, T0 + timedelta(days=10)))

    async def decided() -> bool:
        row = await stored(gateway, 4)
        return row is not None and row.period_end == date(2027, 3, 31)

    await wait_for(decided)
    row = await stored(gateway, 4)
    assert (row.status, row.period_start, row.period_end) == ("suspended", date(2026, 10, 1), date(2027, 3, 31))
