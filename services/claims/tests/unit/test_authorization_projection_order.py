"""The claims handlers keep the same coverage whatever order an authorization's events arrive in (a dead letter
replayed after the events that followed it): a suspension before the approval still refuses its days, and of two
approvals the newest decision's period stands."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from claims import testkit
from claims.bootstrap import definition
from claims.repository import ClaimsUnitOfWork

from shared.contracts.authorizations import (
    AuthorizationApproved,
    AuthorizationClosed,
    AuthorizationResumed,
    AuthorizationSuspended,
)
from shared.envelope import Envelope, new_event
from shared.identity import member_id_for
from shared.scheduler import FixedClock
from shared.testing.app import ServiceHarness, service_harness

NOW = datetime(2025, 6, 20, 17, 0, tzinfo=UTC)


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[ServiceHarness]:
    async with service_harness([definition(clock=FixedClock(NOW), billing=testkit.make_billing())], tmp_path,
                               keys={}) as h:
        yield h


def story(n: int) -> list[Envelope[Any]]:
    """requested → approved → suspended → resumed → closed, for member n."""
    requested, approved = testkit.authorization_events(n, start=date(2025, 1, 1), end=date(2025, 12, 31))
    auth_id = approved.data.authorization_id
    lifecycle = [AuthorizationSuspended(authorization_id=auth_id, mcp_code="healthnet", reason="eligibility lost",
                                        effective=date(2025, 3, 1)),
                 AuthorizationResumed(authorization_id=auth_id, mcp_code="healthnet", effective=date(2025, 3, 20)),
                 AuthorizationClosed(authorization_id=auth_id, mcp_code="healthnet", reason="discontinued_by_mcp",
                                     effective=date(2025, 6, 1))]
    return [requested, approved, *(new_event(d, subject=auth_id, source="authorizations",
                                             member_id=member_id_for(testkit.cin(n))) for d in lifecycle)]


async def coverage_of(h: ServiceHarness, n: int) -> list[Any]:
    async with h.runtimes["claims"].uow() as uow:
        assert isinstance(uow, ClaimsUnitOfWork)
        return [(c.status, c.program, c.period_start, c.period_end, c.ends_before, c.suspensions)
                for c in await uow.coverages.for_member(member_id_for(testkit.cin(n)))]


async def test_an_authorization_told_backwards_is_covered_as_told_forwards(harness: ServiceHarness) -> None:
    runtime = harness.runtimes["claims"]
    await testkit.apply_events(runtime, story(1))
    for event in reversed(story(2)):  # one committed unit of work per event, as the consumer runs them
        await testkit.apply_events(runtime, [event])
    forwards, backwards = await coverage_of(harness, 1), await coverage_of(harness, 2)
    assert forwards == [("closed", "ecm", date(2025, 1, 1), date(2025, 12, 31), date(2025, 6, 1),
                         ((date(2025, 3, 1), date(2025, 3, 19)),))]
    assert backwards == forwards


async def test_a_suspension_before_the_decision_is_kept_until_the_decision_arrives(harness: ServiceHarness) -> None:
    runtime = harness.runtimes["claims"]
    requested, approved, suspended, _, _ = story(3)
    await testkit.apply_events(runtime, [suspended])
    # Kept on a row with no service and no period yet: it covers nothing until the decision arrives.
    assert await coverage_of(harness, 3) == [("requested", "", None, None, None, ((date(2025, 3, 1), None),))]
    await testkit.apply_events(runtime, [approved])
    await testkit.apply_events(runtime, [requested])
    [(status, program, *_, suspensions)] = await coverage_of(harness, 3)
    assert (status, program, suspensions) == ("approved", "ecm", ((date(2025, 3, 1), None),))


def approved_twice(n: int) -> list[Envelope[Any]]:
    """requested → approved (2025) → approved as modified forty days later (period cut to June), for member n."""
    requested, approved = testkit.authorization_events(n, start=date(2025, 1, 1), end=date(2025, 12, 31),
                                                       number="AUTH0001")
    first: AuthorizationApproved = approved.data
    modified = first.model_copy(update={"decided_at": first.decided_at + timedelta(days=40),
                                        "period_end": date(2025, 6, 30), "modified": True})
    return [requested, approved, new_event(modified, subject=first.authorization_id, source="authorizations",
                                           member_id=member_id_for(testkit.cin(n)))]


async def test_two_approvals_swapped_leave_the_newest_period(harness: ServiceHarness) -> None:
    runtime = harness.runtimes["claims"]
    requested, approved, modified = approved_twice(4)
    await testkit.apply_events(runtime, [requested])
    await testkit.apply_events(runtime, [approved])
    await testkit.apply_events(runtime, [modified])
    requested, approved, modified = approved_twice(5)
    await testkit.apply_events(runtime, [modified])
    await testkit.apply_events(runtime, [approved])  # the older decision, replayed late
    await testkit.apply_events(runtime, [requested])
    in_order, swapped = await coverage_of(harness, 4), await coverage_of(harness, 5)
    assert in_order == [("approved", "ecm", date(2025, 1, 1), date(2025, 6, 30), None, ())]
    assert swapped == in_order
