"""Test kit of the authorizations service (used by its tests and the benchmark): synthetic events, the
harness, waiting helpers. Synthetic data only: CINs 9000000nA, surnames Testperson.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

from authorizations.bootstrap import definition
from authorizations.domain.policy import AuthorizationPolicy
from shared.bus.base import Bus
from shared.bus.message import encode
from shared.contracts.base import EventData
from shared.contracts.gateway import MemberInformationReceived
from shared.contracts.referrals import ReferralRouted, RoutingBasis
from shared.contracts.values import MemberDemographics, Program, ServiceRequested, Urgency
from shared.envelope import Envelope, new_event
from shared.scheduler import FixedClock
from shared.testing.app import ServiceHarness, make_caller, service_harness
from shared.testing.polling import eventually

HUB = "hub-token"
MCP_LACARE = "lacare-token"
MCP_HEALTHNET = "healthnet-token"
CBO_HARBOR = "harbor-token"
CBO_VALLEY = "valley-token"
KEYS = {
    HUB: make_caller("hub", "org_hub", scopes=("authorizations:write", "ops", "admin")),
    MCP_LACARE: make_caller("mcp", "org_lacare", code="lacare", scopes=("authorizations:write",)),
    MCP_HEALTHNET: make_caller("mcp", "org_healthnet", code="healthnet", scopes=("authorizations:write",)),
    CBO_HARBOR: make_caller("cbo", "org_cbo_harbor", scopes=("authorizations:write",)),
    CBO_VALLEY: make_caller("cbo", "org_cbo_valley", scopes=("authorizations:read",)),
}


def member(n: int = 1) -> MemberDemographics:
    """A synthetic member (CIN 9000000nA)."""
    return MemberDemographics(cin=f"9{n:07d}A", last_name="Testperson", first_name=f"Alex{n}",
                              birth_date=date(1980, 1, 1))


def routed(n: int = 1, *, mcp: str = "lacare", program: Program = Program.ECM, cs_code: str | None = None,
           pof: tuple[str, ...] = ("1a",), urgency: Urgency = Urgency.STANDARD, cbo: str | None = "org_cbo_harbor",
           referral_id: str | None = None, after_acute_care: bool = False) -> ReferralRouted:
    """A referral.routed payload for member n."""
    return ReferralRouted(
        referral_id=referral_id or f"ref_{n:04d}", member=member(n),
        service=ServiceRequested(program=program, pof_codes=pof if program is Program.ECM else (), cs_code=cs_code,
                                 after_acute_care=after_acute_care),
        urgency=urgency, mcp_code=mcp, basis=RoutingBasis.REFERRAL, county="Los Angeles",
        referring_organization_id="org_referrer", cbo_organization_id=cbo,
        received_at=datetime(2026, 3, 2, 17, 0, tzinfo=UTC))


def mif_row(n: int = 1, *, row: int = 1, file_id: str = "file_0001", mcp: str = "lacare",
            status: str | None = "authorized", number: str | None = "LAC-0001", start: date | None = None,
            end: date | None = None, npi: str | None = None, extra: dict[str, str] | None = None,
            ) -> MemberInformationReceived:
    """A MIF row for member n."""
    return MemberInformationReceived(
        file_id=file_id, row_number=row, mcp_code=mcp, member=member(n), pof_codes=("1a",), ecm_status=status,
        mcp_authorization_id=number, authorization_start=start, authorization_end=end, assigned_provider_npi=npi,
        extra=extra or {})


def envelope(data: EventData, *, at: datetime, source: str = "referrals", subject: str = "subject-1",
             correlation_id: UUID | None = None) -> Envelope[Any]:
    """An upstream event as its producer would publish it."""
    return new_event(data, subject=subject, source=source, time=at, correlation_id=correlation_id)


async def publish(bus: Bus, *events: Envelope[Any]) -> None:
    """Publish upstream events on the bus, as their owners' relays would."""
    await bus.publish([encode(e) for e in events])


def published(harness: ServiceHarness, event_type: str) -> list[dict[str, Any]]:
    """Envelopes (as JSON) of one of our event types that reached the in-process bus."""
    return [json.loads(m.value) for m in harness.bus.read("authorizations.authorization.v1")  # type: ignore[attr-defined]
            if m.header("calhub-event-type") == event_type]


@asynccontextmanager
async def running(tmp_path: Path, clock: FixedClock, policy: AuthorizationPolicy | None = None,
                  **options: Any) -> AsyncIterator[ServiceHarness]:
    """The authorizations service alone, SQLite and the in-process bus unless options say otherwise."""
    async with service_harness([definition(clock=clock, policy=policy)], tmp_path, keys=KEYS, **options) as h:
        yield h


async def wait_published(harness: ServiceHarness, event_type: str, count: int = 1) -> list[dict[str, Any]]:
    """Wait until at least `count` events of a type were relayed to the in-process bus; returns them all."""

    async def probe() -> list[dict[str, Any]]:
        found = published(harness, event_type)
        return found if len(found) >= count else []

    return await eventually(probe, within=15.0)


async def fire_timers(harness: ServiceHarness) -> int:
    """Fire every timer due at the harness clock now (instead of waiting for the poll)."""
    from authorizations.timers import AuthorizationScheduler

    part = next(p for p in harness.runtimes["authorizations"].background if isinstance(p, AuthorizationScheduler))
    return await part.scheduler.fire_due()


def approved_row(n: int, *, now: datetime, period_start: date, period_end: date, expiring_due_on: date | None,
                 mcp: str = "lacare", cbo: str | None = "org_cbo_harbor") -> dict[str, Any]:
    """Columns of an approved ECM authorization for member n, for seeding tables directly."""
    from authorizations.domain.policy import AuthorizationPolicy
    from authorizations.service import NewRequest, request_row
    from shared.contracts.authorizations import AuthorizationOrigin

    req = NewRequest(member=member(n), service=ServiceRequested(program=Program.ECM, pof_codes=("1a",)),
                     urgency=Urgency.STANDARD, mcp_code=mcp, origin=AuthorizationOrigin.REFERRAL,
                     received_at=now, correlation_id=new_event_id(), referral_id=f"ref_{n:07d}",
                     cbo_organization_id=cbo)
    row, _ = request_row(req, AuthorizationPolicy().terms_for(mcp, now.date()), now)
    row.update(status="approved", decision="approved", decided_at=now, period_start=period_start,
               period_end=period_end, expiring_due_on=expiring_due_on, expiry_due_on=period_end + timedelta(days=1),
               mcp_authorization_number=f"LAC-{n}")
    return row


def new_event_id() -> UUID:
    """A fresh time-ordered id."""
    from shared.ids import uuid7

    return uuid7()
