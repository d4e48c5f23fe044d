"""Use cases of the referrals service, shared by the REST and FHIR routes and the event handlers.

Every function works inside the caller's unit of work and only flushes; the edge (route or dispatcher)
commits, so a referral, its timeline, its events (outbox) and its webhook deliveries commit together.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID

from referrals.domain.intake import ReferralDraft
from referrals.domain.routing import NeedsPlan, Routed, decide_route
from referrals.domain.status import ClosureReason, closure_reason_for, decide_move, decide_reopen, is_open
from referrals.domain.succession import AuthorizationEnd, AuthorizationLink, current_link
from referrals.models import MemberPlan, Referral
from referrals.repository import ReferralsUnitOfWork, StagedTimelineEntry
from shared.auth import Caller
from shared.contracts.referrals import (
    ReferralReceived,
    ReferralRouted,
    ReferralStatus,
    ReferralStatusChanged,
    RoutingBasis,
)
from shared.contracts.values import MemberDemographics, ServiceRequested, Urgency
from shared.db import advisory_xact_lock, new_transient
from shared.envelope import Envelope, caused_by, new_event
from shared.identity import member_id_for
from shared.ids import uuid7
from shared.reference.calendar import PACIFIC
from shared.scheduler import Clock, SystemClock
from shared.webhooks import Audience, WebhookNotice

log = logging.getLogger("calhub.referrals")

SOURCE = "referrals"
STATUS_WEBHOOK = "referral.status_changed"
WEBHOOK_EVENT_TYPES = (STATUS_WEBHOOK,)


class DuplicateReferral(Exception):
    """An open referral for the same member and service exists (its id is not in the message)."""

    def __init__(self, existing: Referral) -> None:
        super().__init__("an open referral exists for this member and service")
        self.existing = existing


class ReferralNotFound(LookupError):
    """No referral with that id is visible to the caller."""


class ReferralClosed(Exception):
    """The referral can no longer move as asked (terminal or declined)."""

    def __init__(self, status: str) -> None:
        super().__init__("the referral cannot move from its status")
        self.status = status


def clock_of(uow: ReferralsUnitOfWork) -> Clock:
    """The clock the composition root handed in (the wall clock when none)."""
    clock = uow.ports.get("clock")
    return clock if clock is not None else SystemClock()


def pacific_date(moment: datetime) -> date:
    """The California calendar date of an instant (RTF dates are Pacific dates)."""
    return as_utc(moment).astimezone(PACIFIC).date()


def as_utc(moment: datetime) -> datetime:
    """An instant read back from SQLite (naive, written as UTC) or PostgreSQL, as aware UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def service_key(service: ServiceRequested) -> str:
    """What makes two referrals "the same service" for duplicate detection.

    ECM and CHW: the program (a member has one ECM provider; POFs are attributes of the same referral).
    Community Supports: each service on its own (housing navigation and meals are different referrals).
    """
    if service.cs_code:
        return f"{service.program.value}:{service.cs_code}"
    return service.program.value


def open_key(member_id: str, service: ServiceRequested) -> str:
    """The value of `referral.open_key` while a referral is open."""
    return f"{member_id}:{service_key(service)}"


def member_of(referral: Referral) -> MemberDemographics:
    """The referral's member demographics as the contract model."""
    return MemberDemographics.model_validate(referral.member)


def service_of(referral: Referral) -> ServiceRequested:
    """The referral's requested service as the contract model."""
    return ServiceRequested.model_validate(referral.service)


def audience_of(referral: Referral) -> Audience:
    """Who hears about the referral: its referrer, its CBO, its MCP (and the hub)."""
    return Audience.of([referral.referring_organization_id, referral.cbo_organization_id], [referral.mcp_code])


def _timeline(uow: ReferralsUnitOfWork, referral: Referral, *, kind: str, at: datetime,
              status: str | None = None, previous: str | None = None, reason: str | None = None,
              detail: dict[str, Any] | None = None, event_id: UUID | None = None) -> None:
    uow.referrals.add_timeline(StagedTimelineEntry(
        id=uuid7(), referral_id=referral.id, occurred_at=at, kind=kind, status=status, previous_status=previous,
        reason=reason, detail=detail or {}, event_id=event_id))


def _follow_up(referral: Referral, cause: Envelope[Any] | None, data: Any, at: datetime) -> Envelope[Any]:
    """An event in the referral's lineage: caused by `cause` when an event caused it, else by the referral."""
    if cause is not None:
        return caused_by(cause, data, subject=referral.id, source=SOURCE, member_id=referral.member_id, time=at)
    return new_event(data, subject=referral.id, source=SOURCE, member_id=referral.member_id,
                     correlation_id=referral.correlation_id, time=at)


# ---------------------------------------------------------------------------------------------- intake

async def submit_referral(uow: ReferralsUnitOfWork, draft: ReferralDraft, caller: Caller, *, channel: str,
                          now: datetime) -> Referral:
    """Store a validated referral, emit referral.received, and route it (or mark it needs_plan).

    Raises DuplicateReferral when an open referral for the same member and service exists (also when a
    concurrent request created it a moment ago).
    """
    referral = await new_referral(uow, draft, caller, channel=channel, now=now)
    await store_referral(uow, referral)
    return referral


async def new_referral(uow: ReferralsUnitOfWork, draft: ReferralDraft, caller: Caller, *, channel: str,
                       now: datetime) -> Referral:
    """Decide a validated referral in memory: its row, routing (or needs_plan), events, timeline and webhook
    notices, all staged on the unit; `store_referral` writes them. Reads only the member's known plan, and
    only when the referral names none."""
    member_id = member_id_for(draft.member.cin)
    key = open_key(member_id, draft.service)
    # The plan named on the referral wins (decide_route), so the projection is read only when none is named.
    known = None if draft.mcp_code else await uow.member_plans.get(member_id)
    decision = decide_route(named_mcp=draft.mcp_code, known_plan=known.mcp_code if known else None)

    referral_id = f"ref_{uuid7().hex}"
    received = ReferralReceived(
        referral_id=referral_id, member=draft.member, service=draft.service, urgency=draft.urgency,
        referring_organization_id=caller.organization_id, referring_npi=draft.referring_npi,
        cbo_organization_id=draft.cbo_organization_id, county=draft.county, mcp_code=draft.mcp_code,
        received_at=now, expedited_reason=_expedited_reason(draft), channel=channel)
    received_event = new_event(received, subject=referral_id, source=SOURCE, member_id=member_id, time=now)
    referral = new_transient(
        Referral, id=referral_id, member_id=member_id, member=draft.member.model_dump(mode="json"),
        program=draft.service.program.value, service=draft.service.model_dump(mode="json"),
        urgency=draft.urgency.value, expedited_reason=_expedited_reason(draft), county=draft.county,
        requested_mcp_code=draft.mcp_code, mcp_code=None, routing_basis=None,
        referring_organization_id=caller.organization_id, referring_npi=draft.referring_npi,
        referring={"name": draft.referring_name, "contact": {"name": draft.contact.name,
                                                              "phone": draft.contact.phone,
                                                              "email": draft.contact.email}},
        cbo_organization_id=draft.cbo_organization_id, notes=draft.notes,
        consent={"share_with_mcp": draft.consent.share_with_mcp, "contact_member": draft.consent.contact_member,
                 "obtained_on": draft.consent.obtained_on.isoformat() if draft.consent.obtained_on else None},
        external_identifiers=[dict(i) for i in draft.external_identifiers], channel=channel,
        status=ReferralStatus.RECEIVED.value, status_reason=None, closure_reason_code=None,
        status_changed_at=now, authorization_id=None, open_key=key,
        correlation_id=received_event.correlation_id, created_at=now, updated_at=now)
    # Received and routed are decided in memory and the row is written once, in its routed (or needs_plan)
    # state: one INSERT instead of INSERT + UPDATE. Everything staged here (events, timeline, webhook
    # notices) is written with it or not at all.
    uow.record(received_event)
    _timeline(uow, referral, kind="received", at=now, status=ReferralStatus.RECEIVED.value,
              detail={"channel": channel, "expedited_by_rule": draft.expedited_by_rule},
              event_id=received_event.id)
    await apply_route(uow, referral, decision, at=now, cause=received_event, log_change=False, draft=draft)
    return referral


async def store_referral(uow: ReferralsUnitOfWork, referral: Referral, *, audit: Mapping[str, Any] | None = None,
                         answer: Mapping[str, Any] | None = None) -> None:
    """Write a referral decided by `new_referral` with everything staged for it, and optionally its audit row
    and the stored Idempotency-Key answer (one statement on PostgreSQL, see `create_referral`).

    The `open_key` unique constraint decides duplicates, also between concurrent submissions (the loser's
    INSERT waits for the winner's commit, then writes nothing), so no pre-check query is needed. Raises
    DuplicateReferral when an open referral holds the key; IdempotencyKeyTaken when the answer's key has one.
    """
    assert referral.open_key is not None
    for _ in range(3):
        if await uow.create_referral(referral, audit=audit, answer=answer):
            log.info("referral status changed", extra={"referral_id": referral.id, "status": referral.status,
                                                       "previous_status": ReferralStatus.RECEIVED.value})
            log.info("referral received", extra={"referral_id": referral.id, "status": referral.status,
                                                 "mcp_code": referral.mcp_code, "program": referral.program})
            return
        winner = await uow.referrals.open_with_key(referral.open_key)
        if winner is not None:
            raise DuplicateReferral(winner)
        # The holder left the open states between our INSERT and the read: the slot is free again.
    raise RuntimeError("open_key conflict without an open referral holding it")


def _expedited_reason(draft: ReferralDraft) -> str | None:
    if draft.urgency is not Urgency.EXPEDITED:
        return None
    if draft.expedited_reason:
        return draft.expedited_reason
    return "expedited by rule for this Community Support" if draft.expedited_by_rule else None


async def apply_route(uow: ReferralsUnitOfWork, referral: Referral, decision: Routed | NeedsPlan, *,
                      at: datetime, cause: Envelope[Any] | None, log_change: bool = True,
                      draft: ReferralDraft | None = None) -> None:
    """Record a routing decision: referral.routed and a move to routed, or a move to needs_plan.

    `log_change=False` leaves the status-change log line to the caller (intake logs it once the row is in).
    `draft` (at intake) gives the member and service as already validated, instead of from the row again.
    """
    if isinstance(decision, NeedsPlan):
        await move(uow, referral, ReferralStatus.NEEDS_PLAN, at=at, cause=cause, reason=decision.reason,
                   log_change=log_change)
        return
    referral.mcp_code = decision.mcp_code
    referral.routing_basis = decision.basis.value
    routed = ReferralRouted(
        referral_id=referral.id, member=draft.member if draft else member_of(referral),
        service=draft.service if draft else service_of(referral),
        urgency=Urgency(referral.urgency), expedited_reason=referral.expedited_reason, mcp_code=decision.mcp_code,
        basis=decision.basis, county=referral.county, referring_organization_id=referral.referring_organization_id,
        cbo_organization_id=referral.cbo_organization_id, received_at=as_utc(referral.created_at),
        referring_npi=referral.referring_npi, notes=referral.notes,
        consent_to_share=referral.consent.get("share_with_mcp"))
    event = _follow_up(referral, cause, routed, at)
    uow.record(event)
    _timeline(uow, referral, kind="routed", at=at, detail={"mcp_code": decision.mcp_code,
                                                           "basis": decision.basis.value}, event_id=event.id)
    await move(uow, referral, ReferralStatus.ROUTED, at=at, cause=event, log_change=log_change)


# ---------------------------------------------------------------------------------------------- status

async def move(uow: ReferralsUnitOfWork, referral: Referral, target: ReferralStatus, *, at: datetime,
               cause: Envelope[Any] | None, reason: str | None = None, closure_reason_code: str | None = None,
               detail: dict[str, Any] | None = None, log_change: bool = True, reopening: bool = False) -> bool:
    """Move a referral to `target` if the closed loop allows it: referral.status_changed, a timeline entry and
    a webhook delivery per subscriber. A move the loop refuses is kept on the timeline; returns False.
    `reopening`: the caller established why a closed loop reopens (`reopen_if_continued`)."""
    current = ReferralStatus(referral.status)
    decision = decide_reopen(current, target) if reopening else decide_move(current, target)
    if not decision.changes:
        keep_unchanged(uow, referral, target, because=decision.ignored_because, at=at, cause=cause, detail=detail)
        return False
    default_reason = closure_reason_for(target)
    code = closure_reason_code or (default_reason.value if default_reason is not None else None)
    referral.status = target.value
    referral.status_reason = reason
    referral.closure_reason_code = code
    referral.status_changed_at = at
    referral.updated_at = at
    if not is_open(target):
        referral.open_key = None  # a new referral for the same member and service is welcome again
    elif referral.open_key is None:
        # An overturned denial reopens the loop; if another referral took the slot meanwhile, both stay (the
        # constraint would refuse the reopen), so only claim the key when it is free.
        key = open_key(referral.member_id, service_of(referral))
        if await uow.referrals.open_with_key(key) is None:
            referral.open_key = key
    changed = ReferralStatusChanged(
        referral_id=referral.id, status=target, previous_status=current, changed_at=at, reason=reason,
        mcp_code=referral.mcp_code, cbo_organization_id=referral.cbo_organization_id, status_date=pacific_date(at),
        closure_reason_code=code, referring_organization_id=referral.referring_organization_id,
        authorization_id=referral.authorization_id)
    event = _follow_up(referral, cause, changed, at)
    uow.record(event)
    _timeline(uow, referral, kind="status_changed", at=at, status=target.value, previous=current.value,
              reason=reason, detail={"closure_reason_code": code, **(detail or {})}, event_id=event.id)
    uow.notify(WebhookNotice(event_id=event.id, event_type=STATUS_WEBHOOK, subject=referral.id,
                             data=webhook_data(changed), audience=audience_of(referral), occurred_at=at))
    if log_change:
        log.info("referral status changed", extra={"referral_id": referral.id, "status": target.value,
                                                   "previous_status": current.value})
    return True


def keep_unchanged(uow: ReferralsUnitOfWork, referral: Referral, target: ReferralStatus, *, because: str | None,
                   at: datetime, cause: Envelope[Any] | None, detail: dict[str, Any] | None = None) -> None:
    """Keep on the timeline an event that asked the referral to move to `target` and did not move it."""
    status = ReferralStatus(referral.status).value
    _timeline(uow, referral, kind="status_unchanged", at=at, status=status, reason=None,
              detail={"requested_status": target.value, "ignored_because": because, **(detail or {})},
              event_id=cause.id if cause else None)
    log.info("referral status move ignored", extra={"referral_id": referral.id, "status": status,
                                                    "requested_status": target.value, "reason_code": because})


def webhook_data(changed: ReferralStatusChanged) -> dict[str, Any]:
    """The webhook body's data: ids, codes, dates and the closure reason; never member demographics."""
    return changed.model_dump(mode="json")


async def withdraw(uow: ReferralsUnitOfWork, referral_id: str, caller: Caller, *, reason: str,
                   now: datetime) -> Referral:
    """Withdraw a referral on behalf of its referrer (or the hub).

    Raises ReferralNotFound (not visible or not the caller's to withdraw: existence is not revealed to
    others), ReferralClosed when it is already closed, withdrawn or declined.
    """
    referral = await uow.referrals.get(referral_id, for_update=True)
    if referral is None or not (caller.is_hub or referral.referring_organization_id == caller.organization_id):
        raise ReferralNotFound(referral_id)
    moved = await move(uow, referral, ReferralStatus.WITHDRAWN, at=now, cause=None, reason=reason,
                       detail={"organization_id": caller.organization_id})
    if not moved:
        raise ReferralClosed(referral.status)
    return referral


# ------------------------------------------------------------------------------------------ eligibility

async def learn_plan(uow: ReferralsUnitOfWork, event: Envelope[Any], *, cin: str, mcp_code: str | None,
                     as_of: date, verified_at: datetime) -> int:
    """Update the member-plan projection from an eligibility event and route the member's referrals that
    wait for a plan; returns how many were routed. News is ordered by when it was known (`as_of`, then
    `verified_at`; an event's `effective` date is not a knowledge date): older news never overwrites newer."""
    member_id = member_id_for(cin)
    known = await uow.member_plans.get(member_id)
    at = as_utc(event.time)
    if known is None:
        uow.member_plans.add(MemberPlan(member_id=member_id, mcp_code=mcp_code, as_of=as_of,
                                        verified_at=verified_at, source_event_type=event.type, updated_at=at))
    elif (as_of, as_utc(verified_at)) >= (known.as_of, as_utc(known.verified_at)):
        known.mcp_code = mcp_code
        known.as_of = as_of
        known.verified_at = verified_at
        known.source_event_type = event.type
        known.updated_at = at
    else:
        log.info("older eligibility news ignored", extra={"event_type": event.type})
        return 0
    if mcp_code is None:
        return 0
    routed = 0
    for referral in await uow.referrals.waiting_for_plan(member_id):
        await apply_route(uow, referral, Routed(mcp_code, RoutingBasis.ELIGIBILITY), at=at, cause=event)
        routed += 1
    return routed


# --------------------------------------------------------------------------------------- authorizations

async def link_authorization(uow: ReferralsUnitOfWork, referral: Referral, authorization_id: str, *,
                             at: datetime, cause: Envelope[Any], previous_authorization_id: str | None = None
                             ) -> None:
    """Tie an authorization (or its reauthorization) to the referral. The referral's current authorization is the
    newest of the chain its links form (referrals.domain.succession), whatever order they arrive in."""
    if await uow.referrals.link_authorization(authorization_id, referral.id, at, previous_authorization_id):
        _timeline(uow, referral, kind="authorization_linked", at=at,
                  detail={"authorization_id": authorization_id,
                          "previous_authorization_id": previous_authorization_id}, event_id=cause.id)
    elif previous_authorization_id is None and referral.authorization_id is not None:
        return  # linked already, and nothing new about the chain
    await follow_chain(uow, referral, at=at)


async def follow_chain(uow: ReferralsUnitOfWork, referral: Referral, *, at: datetime) -> AuthorizationLink | None:
    """Make the newest authorization of the referral's chain its current one (referrals.domain.succession);
    returns its link (None without links)."""
    current = current_link(await uow.referrals.authorization_links(referral.id))
    current_id = current.authorization_id if current is not None else None
    if current_id != referral.authorization_id:
        referral.authorization_id = current_id
        referral.updated_at = at
    return current


async def record_decision(uow: ReferralsUnitOfWork, referral: Referral, authorization_id: str, *, approved: bool,
                          decided_at: datetime) -> AuthorizationLink | None:
    """Keep the MCP's decision on a linked authorization (the later-made one wins: an overturned denial) and,
    if it was denied or is no longer, follow the chain, where a denied reauthorization is not current; returns
    the current link then (None: the current authorization is as it was, nothing was read)."""
    if not await uow.referrals.record_decision(authorization_id, "approved" if approved else "denied", decided_at):
        return None
    return await follow_chain(uow, referral, at=decided_at)


async def reopen_if_continued(uow: ReferralsUnitOfWork, referral: Referral, *, at: datetime,
                              cause: Envelope[Any]) -> bool:
    """Reopen a loop the expiry of an authorization closed once a reauthorization continuing it is the referral's
    current authorization, approved (the MCP's latest decision on it, by `decided_at`) and not ended: an appeal
    that overturned its denial, decided after that period ended. A function of the state, not of which event
    arrived last (decision 0125): every authorization handler calls it after handling its event, so the loop
    ends alike whatever order the link, the denial, the expiry and the approval arrive in. The loop reopens
    `accepted`, or `in_service` once an encounter under the referral was consumed (before the closure, or refused
    while closed), dated by the approval (no earlier than the closure). False, changing nothing, for a loop not
    closed, or closed otherwise: withdrawn or declined, by a closure (plan change, disenrollment: its own reason,
    not a period a reauthorization extends), or by the reauthorization's own end."""
    expiry = ClosureReason.AUTHORIZATION_EXPIRED.value
    if referral.status != ReferralStatus.CLOSED.value or referral.closure_reason_code != expiry:
        return False
    links = await uow.referrals.authorization_links(referral.id)
    current = current_link(links)
    if current is None or not current.approved or current.end is not None:
        return False
    continued = next((link for link in links if link.authorization_id == current.previous_authorization_id), None)
    if continued is None or continued.end is None or continued.end.code != expiry:
        return False  # not a successor of the authorization whose expiry closed the loop
    if referral.authorization_id != current.authorization_id:
        referral.authorization_id = current.authorization_id
    target = ReferralStatus.IN_SERVICE if await uow.referrals.encounter_told(referral.id) else ReferralStatus.ACCEPTED
    at = max(current.decided_at or at, as_utc(referral.status_changed_at))  # the timeline reads closed, reopened
    _timeline(uow, referral, kind="reopened", at=at, status=target.value, previous=referral.status,
              reason="reauthorization_approved", detail={"authorization_id": current.authorization_id,
                                                  "closed_on_authorization_id": continued.authorization_id},
              event_id=cause.id)
    return await move(uow, referral, target, at=at, cause=cause, reopening=True,
                      detail={"authorization_id": current.authorization_id, "reopened": "reauthorization_approved"})


async def record_end(uow: ReferralsUnitOfWork, authorization_id: str, end: AuthorizationEnd) -> None:
    """Keep how a linked authorization ended: if a later denial makes it current again, its end closes the loop."""
    await uow.referrals.record_end(authorization_id, end)


async def close_loop(uow: ReferralsUnitOfWork, referral: Referral, authorization_id: str, end: AuthorizationEnd, *,
                     cause: Envelope[Any], at: datetime | None = None) -> None:
    """The referral's current authorization ended: the loop is `closed` with the end's code and reason (an
    encounter kept for the authorization is applied first, so the timeline reads in service, then closed)."""
    await apply_early_encounter(uow, referral, authorization_id, cause=cause)
    await move(uow, referral, ReferralStatus.CLOSED, at=at or end.at, cause=cause, reason=end.reason,
               closure_reason_code=end.code, detail={"authorization_id": authorization_id})


async def start_service(uow: ReferralsUnitOfWork, referral: Referral, *, authorization_id: str, encounter_id: str,
                        at: datetime, cause: Envelope[Any], recorded_earlier: bool = False) -> None:
    """An encounter under the referral's authorization: the member is `in_service` (once; later ones change
    nothing and leave no timeline row)."""
    if referral.status == ReferralStatus.IN_SERVICE.value:
        return
    detail: dict[str, Any] = {"encounter_id": encounter_id, "authorization_id": authorization_id}
    if recorded_earlier:
        detail["encounter_recorded_before_link"] = True
    await move(uow, referral, ReferralStatus.IN_SERVICE, at=at, cause=cause, detail=detail)


async def hold_authorization(uow: ReferralsUnitOfWork, authorization_id: str) -> None:
    """Serialize, until commit, the transactions that link an authorization or keep an encounter of it."""
    await advisory_xact_lock(uow.session, f"referrals:authorization:{authorization_id}")


# An encounter is recorded while its authorization runs, and no authorization runs longer than 12 months (ECM's
# initial period; a reauthorization is a new authorization): past this, a kept encounter's authorization is over.
EARLY_ENCOUNTER_KEPT_FOR = timedelta(days=400)


async def remember_encounter(uow: ReferralsUnitOfWork, *, authorization_id: str, encounter_id: str,
                             at: datetime, event_id: UUID) -> None:
    """Keep an encounter whose authorization no referral is linked to yet (see `apply_early_encounter`); the
    caller holds the authorization (`hold_authorization`) since before it looked for the link.

    Kept encounters of authorizations that ended unlinked are dropped when the end arrives; one that arrived
    after its authorization's end stays until it is older than `EARLY_ENCOUNTER_KEPT_FOR`, when the next kept
    encounter drops it (so the table stays bounded without a purge job)."""
    await uow.referrals.remember_encounter(authorization_id, encounter_id, at, event_id)
    dropped = await uow.referrals.forget_encounters_recorded_before(clock_of(uow).now() - EARLY_ENCOUNTER_KEPT_FOR)
    if dropped:
        log.info("kept encounters past their authorizations dropped", extra={"count": dropped})


async def forget_early_encounter(uow: ReferralsUnitOfWork, authorization_id: str) -> None:
    """Drop an encounter kept for an authorization that ended without it being applied."""
    await uow.referrals.take_early_encounter(authorization_id)


async def apply_early_encounter(uow: ReferralsUnitOfWork, referral: Referral, authorization_id: str, *,
                                cause: Envelope[Any]) -> None:
    """Once an authorization is linked: an encounter recorded under it before the link puts the member
    `in_service` now (no earlier than the referral's last status change, so the timeline stays in order)."""
    await hold_authorization(uow, authorization_id)  # an encounter being kept right now commits first
    early = await uow.referrals.take_early_encounter(authorization_id)
    if early is None:
        return
    at = max(as_utc(early.recorded_at), as_utc(referral.status_changed_at))
    await start_service(uow, referral, authorization_id=authorization_id, encounter_id=early.encounter_id, at=at,
                        cause=cause, recorded_earlier=True)


async def locate(uow: ReferralsUnitOfWork, *, referral_id: str | None,
                 authorization_id: str | None) -> Referral | None:
    """The referral an event is about (locked): by referral id, else through the authorization link."""
    if referral_id:
        return await uow.referrals.get(referral_id, for_update=True)
    if authorization_id:
        return await uow.referrals.for_authorization(authorization_id, for_update=True)
    return None
