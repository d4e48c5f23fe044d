"""Builders for the ops service's tests and benchmark: synthetic events, a consumer that fails on demand, callers.

Synthetic data only (CINs like 90000001A, surnames like Testperson).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID

from shared.auth import Caller
from shared.bus.message import IncomingMessage, OutgoingMessage, PermanentError, encode
from shared.contracts.authorizations import AuthorizationApproved, AuthorizationRequested
from shared.contracts.base import EventData
from shared.contracts.claims import ClaimPaid, ClaimSubmitted
from shared.contracts.gateway import FileKind, FileLate, FileQuarantined, FileReceived
from shared.contracts.referrals import ReferralReceived
from shared.contracts.values import FileReference, MemberDemographics, Program, ServiceRequested, Urgency
from shared.envelope import Envelope, caused_by, new_event
from shared.identity import member_id_for
from shared.testing.app import make_caller

HUB_KEY = "ops-hub-key"
NO_OPS_KEY = "hub-without-ops"
CBO_OPS_KEY = "cbo-with-ops"
T0 = datetime(2026, 3, 2, 17, 0, tzinfo=UTC)


def callers() -> dict[str, Caller]:
    """Bearer tokens of the tests: the hub's ops key, a hub key without ops, a CBO key that claims ops."""
    return {
        HUB_KEY: make_caller("hub", "org_hub", scopes=("ops",)),
        NO_OPS_KEY: make_caller("hub", "org_hub2", scopes=("referrals:read",)),
        CBO_OPS_KEY: make_caller("cbo", "org_cbo", scopes=("ops",)),
    }


def member(cin: str = "90000001A") -> MemberDemographics:
    """A synthetic member."""
    return MemberDemographics(cin=cin, last_name="Testperson", first_name="Alex", birth_date=date(1980, 1, 2))


def referral_received(referral_id: str = "ref_0001", *, cin: str = "90000001A", mcp_code: str = "healthnet",
                      at: datetime = T0) -> Envelope[ReferralReceived]:
    """A referral.received event starting a lineage."""
    data = ReferralReceived(referral_id=referral_id, member=member(cin), service=ServiceRequested(program=Program.ECM,
                            pof_codes=("1a",)), urgency=Urgency.STANDARD, referring_organization_id="org_cbo",
                            county="Los Angeles", mcp_code=mcp_code, received_at=at)
    return new_event(data, subject=referral_id, source="referrals", member_id=member_id_for(cin), time=at)


def authorization_requested(parent: Envelope[Any] | None = None, authorization_id: str = "auth_0001", *,
                            referral_id: str | None = "ref_0001", mcp_code: str = "healthnet", at: datetime = T0,
                            decision_due: datetime | None = None, cin: str = "90000001A",
                            ) -> Envelope[AuthorizationRequested]:
    """An authorization.requested event, caused by `parent` when given."""
    data = AuthorizationRequested(authorization_id=authorization_id, referral_id=referral_id, member=member(cin),
                                  mcp_code=mcp_code, service=ServiceRequested(program=Program.ECM),
                                  urgency=Urgency.STANDARD, origin="referral", requested_at=at,
                                  decision_due=decision_due or at + timedelta(days=5), calendar="us-ca-state")
    if parent is not None:
        return caused_by(parent, data, subject=authorization_id, source="authorizations", time=at)
    return new_event(data, subject=authorization_id, source="authorizations", member_id=member_id_for(cin), time=at)


def authorization_approved(parent: Envelope[Any], authorization_id: str = "auth_0001", *,
                           mcp_code: str = "healthnet", at: datetime = T0, period_end: date | None = None,
                           ) -> Envelope[AuthorizationApproved]:
    """An authorization.approved event."""
    data = AuthorizationApproved(authorization_id=authorization_id, referral_id="ref_0001", mcp_code=mcp_code,
                                 service=ServiceRequested(program=Program.ECM), decided_at=at,
                                 period_start=at.date(), period_end=period_end or at.date() + timedelta(days=365))
    return caused_by(parent, data, subject=authorization_id, source="authorizations", time=at)


def claim_submitted(claim_id: str = "clm_0001", *, mcp_code: str = "healthnet", at: datetime = T0,
                    ) -> Envelope[ClaimSubmitted]:
    """A claim.submitted event."""
    data = ClaimSubmitted(claim_id=claim_id, mcp_code=mcp_code, cbo_organization_id="org_cbo", batch_id="bat_1",
                          submitted_at=at)
    return new_event(data, subject=claim_id, source="claims", time=at)


def claim_paid(parent: Envelope[Any], claim_id: str = "clm_0001", *, mcp_code: str = "healthnet",
               paid_on: date, at: datetime = T0) -> Envelope[ClaimPaid]:
    """A claim.paid event."""
    from decimal import Decimal

    data = ClaimPaid(claim_id=claim_id, mcp_code=mcp_code, cbo_organization_id="org_cbo", remittance_id="rem_1",
                     paid_amount=Decimal("350.00"), adjustment_amount=Decimal("0"), paid_on=paid_on)
    return caused_by(parent, data, subject=claim_id, source="claims", time=at)


def file_event(kind: str, *, mcp_code: str = "healthnet", file_id: str = "fil_0001", at: datetime = T0,
               ) -> Envelope[EventData]:
    """file.received, file.quarantined or file.late for an MCP's Member Information File."""
    data: EventData
    reference = FileReference(uri="store://sha256/" + "0" * 64, sha256="0" * 64, size=10)
    if kind == "received":
        data = FileReceived(file_id=file_id, mcp_code=mcp_code, kind=FileKind.MIF, file=reference, received_at=at)
    elif kind == "quarantined":
        data = FileQuarantined(file_id=file_id, mcp_code=mcp_code, kind=FileKind.MIF, reason="bad header",
                               quarantined_at=at)
    else:
        data = FileLate(mcp_code=mcp_code, kind=FileKind.MIF, expected_by=at - timedelta(hours=1))
    return new_event(data, subject=file_id if kind != "late" else f"{mcp_code}-mif", source="sftp-gateway", time=at)


def messages(*events: Envelope[Any]) -> list[OutgoingMessage]:
    """Events encoded for the bus."""
    return [encode(e) for e in events]


def poison(topic: str = "referrals.referral.v1", key: bytes = b"ref_poison") -> OutgoingMessage:
    """A message that is not an event at all."""
    return OutgoingMessage(topic=topic, key=key, value=b"this is not json {", headers=())


class FlakyConsumer:
    """A stand-in for another service's consumer: fails (permanently) on the event ids it is told to, until
    `heal()`; records what it handled. Non-JSON messages always fail."""

    def __init__(self, fail_event_ids: Sequence[UUID] = ()) -> None:
        self.failing = {str(i) for i in fail_event_ids}
        self.handled: list[str] = []

    def heal(self) -> None:
        """Stop failing."""
        self.failing.clear()

    async def handle(self, message: IncomingMessage) -> None:
        """Fail or record the message."""
        event_id = message.header("calhub-event-id")
        if event_id is None:
            raise PermanentError("value is not JSON")
        if event_id in self.failing:
            raise PermanentError("synthetic handler failure for the test")
        self.handled.append(event_id)

    async def handle_batch(self, batch: Sequence[IncomingMessage]) -> None:
        """One by one."""
        for message in batch:
            await self.handle(message)

