"""Eligibility keeps the same served authorizations whatever order authorization.* events arrive in: a late
`requested` (a dead letter replayed after the approval) never takes an approved member out of the monthly re-check
or the ECM/CHW same-period rule, and of two approvals the newest decision's period is the one kept."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from eligibility.domain.served import period_supersedes, tracked_status

from shared.contracts.authorizations import AuthorizationClosed
from shared.envelope import new_event
from shared.identity import member_id_for


async def delivered_in_order(kit: Any, *events: Any) -> tuple[Any, list[Any]]:
    """Deliver `events` one after the other; auth_1's tracked row and the member's served authorizations then."""
    for event in events:
        await kit.deliver(event)
    async with kit.uow() as uow:
        row = await uow.authorizations.get("auth_1")
        served = list(await uow.authorizations.services_for(member_id_for("90000001A")))
    return row, served


@pytest.mark.parametrize(("current", "incoming", "kept"), [
    (None, "requested", "requested"),
    ("requested", "active", "active"),
    ("active", "requested", "active"),  # the approval arrived first
    ("denied", "active", "active"),  # an overturned denial
    ("active", "denied", "active"),  # a replayed denial older than the approval
    ("closed", "active", "closed"),
    ("expired", "requested", "expired"),
])
def test_the_tracked_status_never_moves_backwards(current: str | None, incoming: str, kept: str) -> None:
    assert tracked_status(current, incoming) == kept


def test_the_newest_decision_sets_the_period() -> None:
    decided = datetime(2026, 1, 2, 17, 0, tzinfo=UTC)
    assert period_supersedes(decided, None)  # nothing kept yet, or kept before decision times were
    assert period_supersedes(decided + timedelta(days=1), decided)
    assert not period_supersedes(decided, decided + timedelta(days=1))  # an older approval arriving late


async def test_approval_before_request_keeps_the_member_served(kit: Any) -> None:
    requested, approved = kit.authorization()
    row, served = await delivered_in_order(kit, approved, requested)
    assert row.status == "active" and (row.period_start, row.period_end) == (date(2026, 1, 1), date(2026, 12, 31))
    assert [s.program for s in served] == ["ecm"]


async def test_a_closure_before_the_approval_is_never_undone(kit: Any) -> None:
    requested, approved = kit.authorization()
    closed = new_event(AuthorizationClosed(authorization_id="auth_1", mcp_code="lacare", reason="plan_changed",
                                           effective=date(2026, 3, 1)),
                       subject="auth_1", source="authorizations", member_id=member_id_for("90000001A"))
    row, served = await delivered_in_order(kit, closed, approved, requested)
    assert row.status == "closed" and served == []


async def test_two_approvals_swapped_keep_the_newest_period(kit: Any) -> None:
    """Approved for 2026, then approved as modified (cut to June): the modified one first, the older one replayed
    after it. The re-check and the ECM/CHW rule use June's end, as when they arrive in order."""
    requested, approved = kit.authorization()
    first = approved.data
    modified = new_event(first.model_copy(update={"decided_at": first.decided_at + timedelta(days=40),
                                                  "period_end": date(2026, 6, 30), "modified": True}),
                         subject="auth_1", source="authorizations", member_id=member_id_for("90000001A"))
    row, served = await delivered_in_order(kit, requested, modified, approved)
    assert row.status == "active" and (row.period_start, row.period_end) == (date(2026, 1, 1), date(2026, 6, 30))
    assert [(s.start, s.end) for s in served] == [(date(2026, 1, 1), date(2026, 6, 30))]
