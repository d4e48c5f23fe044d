"""Event handlers of the referrals service: routing from eligibility, the closed loop from authorizations and
claims. Each handler is idempotent on the business fact, on top of the dispatcher's inbox."""

from __future__ import annotations

import logging
from typing import Any

from referrals import service
from referrals.domain.status import ClosureReason
from referrals.domain.succession import AuthorizationEnd
from referrals.repository import ReferralsUnitOfWork
from shared.bus.registry import HandlerRegistry
from shared.contracts.authorizations import (
    AuthorizationApproved,
    AuthorizationClosed,
    AuthorizationDenied,
    AuthorizationExpired,
    AuthorizationReauthRequested,
    AuthorizationRequested,
)
from shared.contracts.claims import EncounterRecorded
from shared.contracts.eligibility import (
    EligibilityLost,
    EligibilityPlanChanged,
    EligibilityRegained,
    EligibilityVerified,
)
from shared.contracts.referrals import ReferralStatus
from shared.envelope import Envelope

log = logging.getLogger("calhub.referrals.handlers")

registry: HandlerRegistry[ReferralsUnitOfWork] = HandlerRegistry()


def _not_ours(event: Envelope[Any]) -> None:
    # Not an error: authorizations also carries MCP assignments and reauthorizations of members referred
    # before CalHub, and claims carries encounters of authorizations without a referral.
    log.info("event concerns no referral of this service", extra={"event_type": event.type,
                                                                   "event_id": str(event.id)})


@registry.handles(EligibilityVerified, EligibilityRegained, EligibilityPlanChanged)
async def learn_member_plan(event: Envelope[Any], uow: ReferralsUnitOfWork) -> None:
    """Keep the member's latest plan and route referrals that wait for one."""
    data = event.data
    await service.learn_plan(uow, event, cin=data.cin, mcp_code=data.mcp_code, as_of=data.as_of,
                             verified_at=data.verified_at)


@registry.handles(EligibilityLost)
async def forget_member_plan(event: Envelope[EligibilityLost], uow: ReferralsUnitOfWork) -> None:
    """A member without a plan: new referrals for them wait (needs_plan) instead of going to the old plan.

    Ordered like all eligibility news by when it was known (`as_of`), not by when the loss took effect: a loss
    learnt today with an earlier `effective` date (retroactive) is still newer than yesterday's verification."""
    data = event.data
    await service.learn_plan(uow, event, cin=data.cin, mcp_code=None, as_of=data.as_of,
                             verified_at=data.verified_at)


@registry.handles(AuthorizationRequested)
async def mark_requested(event: Envelope[AuthorizationRequested], uow: ReferralsUnitOfWork) -> None:
    """The authorization request is open with the MCP: the referral is `requested`."""
    data = event.data
    if data.referral_id is None:
        return _not_ours(event)
    referral = await service.locate(uow, referral_id=data.referral_id, authorization_id=None)
    if referral is None:
        return _not_ours(event)
    await service.link_authorization(uow, referral, data.authorization_id, at=data.requested_at, cause=event,
                                     previous_authorization_id=data.previous_authorization_id)
    await service.move(uow, referral, ReferralStatus.REQUESTED, at=data.requested_at, cause=event,
                       detail={"authorization_id": data.authorization_id})
    await service.apply_early_encounter(uow, referral, data.authorization_id, cause=event)
    await service.reopen_if_continued(uow, referral, at=data.requested_at, cause=event)


@registry.handles(AuthorizationReauthRequested)
async def follow_reauthorization(event: Envelope[AuthorizationReauthRequested], uow: ReferralsUnitOfWork) -> None:
    """A reauthorization continues the same referral: link it, so its decision and expiry reach the loop."""
    data = event.data
    referral = await service.locate(uow, referral_id=None, authorization_id=data.authorization_id)
    if referral is None:
        return _not_ours(event)
    await service.link_authorization(uow, referral, data.new_authorization_id, at=service.as_utc(event.time),
                                     cause=event, previous_authorization_id=data.authorization_id)
    await service.apply_early_encounter(uow, referral, data.new_authorization_id, cause=event)
    await service.reopen_if_continued(uow, referral, at=service.as_utc(event.time), cause=event)


@registry.handles(AuthorizationApproved)
async def mark_accepted(event: Envelope[AuthorizationApproved], uow: ReferralsUnitOfWork) -> None:
    """The MCP approved: the referral is `accepted`."""
    data = event.data
    referral = await service.locate(uow, referral_id=data.referral_id, authorization_id=data.authorization_id)
    if referral is None:
        return _not_ours(event)
    await service.link_authorization(uow, referral, data.authorization_id, at=data.decided_at, cause=event,
                                     previous_authorization_id=data.previous_authorization_id)
    # An approval made after a denial overturns it: a reauthorization denied, then approved, is current again,
    # and a loop the expiry of the authorization it continues had closed reopens (an appeal), whichever of the
    # denial, the expiry and the approval arrived first.
    await service.record_decision(uow, referral, data.authorization_id, approved=True, decided_at=data.decided_at)
    if not await service.reopen_if_continued(uow, referral, at=data.decided_at, cause=event):
        await service.move(uow, referral, ReferralStatus.ACCEPTED, at=data.decided_at, cause=event,
                           detail={"authorization_id": data.authorization_id, "modified": data.modified,
                                   "presumptive": data.presumptive})
    await service.apply_early_encounter(uow, referral, data.authorization_id, cause=event)


@registry.handles(AuthorizationDenied)
async def mark_declined(event: Envelope[AuthorizationDenied], uow: ReferralsUnitOfWork) -> None:
    """The MCP denied: the referral is `declined`, its loop closed with the denial reason.

    A denied reauthorization declines nothing: the member is still served under the authorization it would have
    continued, which stays (or becomes again) the current one; if that one has already ended, the loop closes
    now with its end's reason, as it would have had the denial arrived first."""
    data = event.data
    referral = await service.locate(uow, referral_id=data.referral_id, authorization_id=data.authorization_id)
    if referral is None:
        return _not_ours(event)
    await service.link_authorization(uow, referral, data.authorization_id, at=data.decided_at, cause=event)
    current = await service.record_decision(uow, referral, data.authorization_id, approved=False,
                                            decided_at=data.decided_at)
    if referral.authorization_id != data.authorization_id:
        service.keep_unchanged(uow, referral, ReferralStatus.DECLINED, because="reauthorization_denied",
                               at=data.decided_at, cause=event,
                               detail={"authorization_id": data.authorization_id,
                                       "current_authorization_id": referral.authorization_id})
        if current is not None and current.end is not None:
            await service.close_loop(uow, referral, current.authorization_id, current.end, cause=event,
                                     at=max(current.end.at, service.as_utc(referral.status_changed_at)))
        # An approval decided after this denial may already be known: the loop stays (or is again) open.
        await service.reopen_if_continued(uow, referral, at=data.decided_at, cause=event)
        return
    await service.move(uow, referral, ReferralStatus.DECLINED, at=data.decided_at, cause=event, reason=data.reason,
                       closure_reason_code=ClosureReason.AUTHORIZATION_DENIED.value,
                       detail={"authorization_id": data.authorization_id})


@registry.handles(EncounterRecorded)
async def mark_in_service(event: Envelope[EncounterRecorded], uow: ReferralsUnitOfWork) -> None:
    """The first encounter under the referral's authorization: the member is `in_service`.

    An encounter of an authorization no referral is linked to yet is kept: the request or approval that links
    it may come later (another topic, or a dead letter replayed), and applies it then."""
    data = event.data
    if data.authorization_id is None:
        return _not_ours(event)
    at = service.as_utc(event.time)
    # Serialized with the link that would apply it: else both could miss the other's uncommitted row.
    await service.hold_authorization(uow, data.authorization_id)
    referral = await service.locate(uow, referral_id=None, authorization_id=data.authorization_id)
    if referral is None:
        await service.remember_encounter(uow, authorization_id=data.authorization_id,
                                         encounter_id=data.encounter_id, at=at, event_id=event.id)
        return _not_ours(event)
    await service.start_service(uow, referral, authorization_id=data.authorization_id,
                                encounter_id=data.encounter_id, at=at, cause=event)


@registry.handles(AuthorizationExpired, AuthorizationClosed)
async def mark_closed(event: Envelope[Any], uow: ReferralsUnitOfWork) -> None:
    """The referral's current authorization ended: the loop is `closed` with the reason.

    An authorization a reauthorization has replaced ends without closing anything (a denied reauthorization
    replaces nothing; a denial told later closes the loop with this end, see `mark_declined`). The end names
    its referral (decision 0127), so it closes the loop even when it arrives before the request that links the
    two (a dead letter replayed later): the authorization is linked here. An end written before it named the
    referral is found through the link only.
    """
    data = event.data
    referral = await service.locate(uow, referral_id=data.referral_id, authorization_id=data.authorization_id)
    if referral is None:
        await service.forget_early_encounter(uow, data.authorization_id)  # its authorization is over
        return _not_ours(event)
    at = service.as_utc(event.time)
    await service.link_authorization(uow, referral, data.authorization_id, at=at, cause=event)
    if isinstance(data, AuthorizationExpired):
        end = AuthorizationEnd(ClosureReason.AUTHORIZATION_EXPIRED.value, "authorization period ended", at)
    else:
        end = AuthorizationEnd(ClosureReason.AUTHORIZATION_CLOSED.value, data.reason, at)
    # Kept: a denial of the reauthorization that replaced it, told later, makes it current again.
    await service.record_end(uow, data.authorization_id, end)
    if referral.authorization_id != data.authorization_id:
        await service.forget_early_encounter(uow, data.authorization_id)
        await service.move(uow, referral, ReferralStatus(referral.status), at=at, cause=event,
                           detail={"authorization_id": data.authorization_id, "superseded": True})
        await service.reopen_if_continued(uow, referral, at=at, cause=event)
        return
    # Served before it ended: the timeline says so before it says closed (close_loop applies it first).
    await service.close_loop(uow, referral, data.authorization_id, end, cause=event)
