"""Event handlers of the authorizations service and its registry.

Handlers never commit (the dispatcher does) and stay idempotent beyond the inbox: a referral opens one
request per MCP, a MIF row acts once, an eligibility fact older than the one known changes nothing.
"""

from __future__ import annotations

from authorizations.repository import AuthorizationsUnitOfWork
from authorizations.service import (
    NewRequest,
    now_of,
    open_request,
    plan_changed,
    resume_member,
    suspend_member,
)
from authorizations.service import apply_mif_row as apply_row
from shared.bus.message import PermanentError
from shared.bus.registry import HandlerRegistry
from shared.contracts.authorizations import AuthorizationOrigin
from shared.contracts.claims import EncounterRecorded
from shared.contracts.eligibility import (
    EligibilityLost,
    EligibilityPlanChanged,
    EligibilityRegained,
    EligibilityVerified,
)
from shared.contracts.gateway import MemberInformationReceived
from shared.contracts.referrals import ReferralRouted
from shared.envelope import Envelope
from shared.identity import member_id_for

registry: HandlerRegistry[AuthorizationsUnitOfWork] = HandlerRegistry()


@registry.handles(ReferralRouted)
async def open_request_for_referral(event: Envelope[ReferralRouted], uow: AuthorizationsUnitOfWork) -> None:
    """Open an authorization request with the MCP the referral was routed to."""
    data = event.data
    if await uow.authorizations.from_referral(data.referral_id, data.mcp_code) is not None:
        return  # the same referral routed to the same MCP again: one request
    try:
        await open_request(uow, NewRequest(
            member=data.member, service=data.service, urgency=data.urgency, mcp_code=data.mcp_code,
            origin=AuthorizationOrigin.REFERRAL, received_at=event.time, correlation_id=event.correlation_id,
            referral_id=data.referral_id, cbo_organization_id=data.cbo_organization_id,
            referring_organization_id=data.referring_organization_id, expedited_reason=data.expedited_reason),
            actor=f"event:{event.type}", parent=event)
    except ValueError as exc:
        # An unknown Community Support code or a CS request without one: no deadline can be computed.
        raise PermanentError("referral.routed names a service with no authorization rules") from exc


@registry.handles(MemberInformationReceived)
async def apply_mif_row(event: Envelope[MemberInformationReceived], uow: AuthorizationsUnitOfWork) -> None:
    """Match a Member Information File row to the member's requests; keep anything unmatched."""
    await apply_row(uow, event)


@registry.handles(EligibilityVerified)
async def remember_enrollment(event: Envelope[EligibilityVerified], uow: AuthorizationsUnitOfWork) -> None:
    """Keep the member's latest verified enrollment (input to automatic reauthorization)."""
    data = event.data
    await uow.members.set_eligibility(member_id_for(data.cin), eligible=data.mcp_code is not None,
                                      mcp_code=data.mcp_code, as_of=data.as_of, now=now_of(uow))


@registry.handles(EligibilityLost)
async def suspend_on_lost_eligibility(event: Envelope[EligibilityLost], uow: AuthorizationsUnitOfWork) -> None:
    """Suspend the member's live authorizations, keeping the reason."""
    data = event.data
    member_id = member_id_for(data.cin)
    if await uow.members.set_eligibility(member_id, eligible=False, mcp_code=None, as_of=data.effective,
                                         now=now_of(uow)):
        await suspend_member(uow, member_id, reason=data.reason, effective=data.effective,
                             actor=f"event:{event.type}", parent=event)


@registry.handles(EligibilityRegained)
async def resume_on_regained_eligibility(event: Envelope[EligibilityRegained], uow: AuthorizationsUnitOfWork,
                                         ) -> None:
    """Resume suspended authorizations with the regained MCP (another MCP: close and request anew)."""
    data = event.data
    member_id = member_id_for(data.cin)
    if await uow.members.set_eligibility(member_id, eligible=True, mcp_code=data.mcp_code, as_of=data.effective,
                                         now=now_of(uow)):
        await resume_member(uow, member_id, data.mcp_code, effective=data.effective, actor=f"event:{event.type}",
                            parent=event)


@registry.handles(EligibilityPlanChanged)
async def move_to_new_plan(event: Envelope[EligibilityPlanChanged], uow: AuthorizationsUnitOfWork) -> None:
    """Close authorizations with the previous MCP and request the same services from the new one."""
    data = event.data
    member_id = member_id_for(data.cin)
    if data.mcp_code is None:
        raise PermanentError("eligibility.plan_changed without the new plan")
    if await uow.members.set_eligibility(member_id, eligible=True, mcp_code=data.mcp_code, as_of=data.effective,
                                         now=now_of(uow)):
        await plan_changed(uow, member_id, data.previous_mcp_code, data.mcp_code, effective=data.effective,
                           actor=f"event:{event.type}", parent=event)


@registry.handles(EncounterRecorded)
async def note_engagement(event: Envelope[EncounterRecorded], uow: AuthorizationsUnitOfWork) -> None:
    """Keep the member's latest encounter per program; outreach attempts are not engagement."""
    data = event.data
    if data.outreach_attempt:
        return
    member_id = event.member_id
    if member_id is None and data.authorization_id is not None:
        auth = await uow.authorizations.get(data.authorization_id)
        member_id = auth.member_id if auth is not None else None
    if member_id is None:
        raise PermanentError("encounter.recorded names no member (no member_id, unknown authorization)")
    await uow.members.record_encounter(member_id, data.program.value, data.service_date, now_of(uow))
