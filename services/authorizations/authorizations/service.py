"""Use cases of the authorizations service, shared by the API, the event handlers and the timers.

Functions change state through the unit of work's repositories and record the events they cause; the edge
(route, dispatcher, scheduler) commits. Times come from the `clock` port, per-MCP terms from the `policy` port.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from authorizations.domain.deadlines import (
    Deadline,
    decision_due,
    escalation_at,
    next_escalation,
    pend_extension,
    service_key,
)
from authorizations.domain.mif import (
    Candidate,
    MifException,
    MifOutcome,
    match_row,
    reporting_month,
    row_service_key,
    set_aside_if_older,
)
from authorizations.domain.periods import PeriodError, PeriodKind, authorized_period, cap_end, expiring_on
from authorizations.domain.policy import AuthorizationPolicy, MifDecision, Terms, service_keys
from authorizations.domain.presumptive import NO_PERIOD_BY_RULE, presumptive_basis, presumptive_period
from authorizations.domain.reauthorization import (
    Eligibility,
    ReauthOutcome,
    TaskReason,
    decide_reauthorization,
)
from authorizations.domain.status import (
    LIVE,
    OPEN,
    AuthorizationStatus,
    DecisionKind,
    TransitionRefused,
    check_decidable,
)
from authorizations.models import Authorization, MifRowOutcome
from authorizations.repository import AuthorizationsUnitOfWork, aware
from shared.contracts.authorizations import (
    AuthorizationApproved,
    AuthorizationCareTaskOpened,
    AuthorizationClosed,
    AuthorizationDecisionOverdue,
    AuthorizationDenied,
    AuthorizationExpired,
    AuthorizationExpiring,
    AuthorizationMifExceptionRecorded,
    AuthorizationOrigin,
    AuthorizationPended,
    AuthorizationReauthRequested,
    AuthorizationRequested,
    AuthorizationResumed,
    AuthorizationSuspended,
)
from shared.contracts.base import EventData
from shared.contracts.gateway import MemberInformationReceived
from shared.contracts.values import MemberDemographics, Program, ServiceRequested, Urgency
from shared.envelope import Envelope, new_event
from shared.identity import member_id_for
from shared.ids import uuid7
from shared.reference.calendar import PACIFIC
from shared.scheduler import Clock, schedule
from shared.scheduler import cancel as cancel_timers

log = logging.getLogger("calhub.authorizations")

SOURCE = "authorizations"
DECISION_DUE = "authorization.decision_due"
EXPIRY_SWEEP = "authorization.expiry_sweep"
REAUTHORIZATION_STEP = "authorization.reauthorization_step"
SWEEP_SUBJECT = "expiry-sweep"
SYSTEM = "system"
_SWEEP_IDS = uuid.UUID("6f1c1f0e-3c55-4e0b-9d1e-5a7f2d0c4b11")  # namespace of the daily sweep timer ids


def new_id(prefix: str) -> str:
    """A time-ordered id with a type prefix (`auth_...`, `task_...`)."""
    return f"{prefix}_{uuid7().hex}"


def pacific_date(moment: datetime) -> date:
    """The Pacific calendar date of an aware instant."""
    return moment.astimezone(PACIFIC).date()


def policy_of(uow: AuthorizationsUnitOfWork) -> AuthorizationPolicy:
    """The per-MCP policy port."""
    policy: AuthorizationPolicy = uow.ports["policy"]
    return policy


def now_of(uow: AuthorizationsUnitOfWork) -> datetime:
    """The current time from the clock port (tests move it)."""
    clock: Clock = uow.ports["clock"]
    return clock.now()


def terms_of(uow: AuthorizationsUnitOfWork, auth: Authorization) -> Terms:
    """The MCP's terms in force when the request was received."""
    return policy_of(uow).terms_for(auth.mcp_code, pacific_date(aware(auth.requested_at) or now_of(uow)))


def _emit(uow: AuthorizationsUnitOfWork, auth_id: str, member_id: str, correlation_id: UUID, data: EventData,
          parent: Envelope[Any] | None, now: datetime) -> None:
    uow.record(new_event(data, subject=auth_id, source=SOURCE, member_id=member_id, correlation_id=correlation_id,
                         causation_id=parent.id if parent is not None else None, time=now))


def emit(uow: AuthorizationsUnitOfWork, auth: Authorization, data: EventData, parent: Envelope[Any] | None,
         now: datetime) -> None:
    """Record an event of an authorization, in its referral's lineage."""
    _emit(uow, auth.id, auth.member_id, auth.correlation_id, data, parent, now)


def history(uow: AuthorizationsUnitOfWork, auth: Authorization, action: str, actor: str, now: datetime,
            **detail: Any) -> None:
    """Append to an authorization's history (ids, codes and dates only)."""
    clean = {k: (v.isoformat() if isinstance(v, date | datetime) else v) for k, v in detail.items() if v is not None}
    uow.authorizations.record(auth.id, at=now, action=action, status=auth.status, actor=actor, detail=clean)


# --------------------------------------------------------------------------------------------- requests

@dataclass(frozen=True)
class NewRequest:
    """What opening an authorization request needs."""

    member: MemberDemographics
    service: ServiceRequested
    urgency: Urgency
    mcp_code: str
    origin: AuthorizationOrigin
    received_at: datetime
    correlation_id: UUID
    referral_id: str | None = None
    cbo_organization_id: str | None = None
    referring_organization_id: str | None = None
    expedited_reason: str | None = None
    previous_authorization_id: str | None = None


def request_row(req: NewRequest, terms: Terms, now: datetime) -> tuple[dict[str, Any], Deadline]:
    """The columns of a new open request and its deadline. Raises ValueError for an unknown CS code."""
    deadline = decision_due(req.received_at, req.urgency, req.service, terms)
    row: dict[str, Any] = {
        "id": new_id("auth"), "referral_id": req.referral_id, "correlation_id": req.correlation_id,
        "member_id": member_id_for(req.member.cin), "member": req.member.model_dump(mode="json"),
        "mcp_code": req.mcp_code, "cbo_organization_id": req.cbo_organization_id,
        "referring_organization_id": req.referring_organization_id, "program": req.service.program.value,
        "service_key": service_key(req.service), "service": req.service.model_dump(mode="json"),
        "urgency": deadline.urgency.value, "requested_urgency": req.urgency.value,
        "expedited_reason": req.expedited_reason, "origin": req.origin.value,
        "previous_authorization_id": req.previous_authorization_id, "status": AuthorizationStatus.REQUESTED.value,
        "requested_at": req.received_at, "decision_due": deadline.due, "original_decision_due": deadline.due,
        "calendar": deadline.calendar, "deadline_basis": deadline.basis.value,
        "expedited_by_rule": deadline.expedited_by_rule, "clock_stopped": False, "decided_at": None,
        "decision": None, "decided_within_deadline": None, "mcp_authorization_number": None, "period_start": None,
        "period_end": None, "presumptive": False, "review_flags": [], "assigned_provider_npi": None,
        "reason": None, "suspended_from": None, "expiring_due_on": None, "expiry_due_on": None,
        "expiring_raised_at": None, "reauthorization": None, "created_at": now, "updated_at": now,
    }
    return row, deadline


def requested_event(row: dict[str, Any], req: NewRequest, deadline: Deadline) -> AuthorizationRequested:
    """The authorization.requested payload of a new request."""
    return AuthorizationRequested(
        authorization_id=row["id"], referral_id=req.referral_id, member=req.member, mcp_code=req.mcp_code,
        cbo_organization_id=req.cbo_organization_id, service=req.service, urgency=deadline.urgency,
        origin=req.origin, previous_authorization_id=req.previous_authorization_id, requested_at=req.received_at,
        decision_due=deadline.due, calendar=deadline.calendar, deadline_basis=deadline.basis.value,
        expedited_by_rule=deadline.expedited_by_rule)


def decision_timer_row(auth_id: str, due_at: datetime, escalation: int, now: datetime) -> dict[str, Any]:
    """A pending decision-deadline timer row (bulk insert in the sweep; same shape as `schedule`)."""
    return {"id": uuid7(), "kind": DECISION_DUE, "subject": auth_id, "due_at": due_at,
            "payload": {"escalation": escalation}, "status": "pending", "attempts": 0, "last_error": None,
            "fired_at": None, "created_at": now}


async def open_request(uow: AuthorizationsUnitOfWork, req: NewRequest, *, actor: str,
                       parent: Envelope[Any] | None) -> Authorization:
    """Open a request with the MCP: deadline by rule and terms, decision timer, presumptive approval where
    required or trusted and a rule gives the service its period. Raises ValueError for an unknown Community
    Support code."""
    now = now_of(uow)
    policy = policy_of(uow)
    terms = policy.terms_for(req.mcp_code, pacific_date(req.received_at))
    row, deadline = request_row(req, terms, now)
    auth = Authorization(**row)
    uow.authorizations.add(auth)
    history(uow, auth, "requested", actor, now, origin=req.origin.value, urgency=deadline.urgency.value,
            decision_due=deadline.due, calendar=deadline.calendar, deadline_basis=deadline.basis.value,
            expedited_by_rule=deadline.expedited_by_rule, previous_authorization_id=req.previous_authorization_id)
    emit(uow, auth, requested_event(row, req, deadline), parent, now)
    await schedule_escalation(uow, auth, 1, terms)
    basis = None
    if req.origin is not AuthorizationOrigin.REAUTHORIZATION:
        basis = presumptive_basis(req.service, req.cbo_organization_id, terms.trusted_providers,
                                  policy.presumptive_pof_codes)
    if basis is not None:
        # The period runs from receipt: the referral does not carry a release date (see decision 0043).
        period = presumptive_period(auth.service_key, pacific_date(req.received_at), terms.duration_caps)
        if period is None:
            # No rule gives the service a period: the request stays open and the MCP decides it with one.
            history(uow, auth, "presumptive_not_applied", actor, now, basis=basis.value, reason=NO_PERIOD_BY_RULE)
        else:
            auth.status, auth.presumptive, auth.decision = AuthorizationStatus.APPROVED.value, True, "presumptive"
            if set_period(auth, period.start, period.end, list(period.flags), terms, now):
                await sweep_now(uow, now)
            history(uow, auth, "approved_presumptively", actor, now, basis=basis.value, period_start=period.start,
                    period_end=period.end)
            emit(uow, auth, approved_event(auth, now, presumptive=True), parent, now)
    await uow.flush()
    return auth


async def schedule_escalation(uow: AuthorizationsUnitOfWork, auth: Authorization, escalation: int,
                              terms: Terms) -> None:
    """Schedule decision_overdue number `escalation` for an open request (nothing past the maximum)."""
    due = aware(auth.decision_due)
    if due is None:
        return
    at = escalation_at(due, escalation, Urgency(auth.urgency), terms)
    if at is not None:
        await schedule(uow.session, uow.tables, kind=DECISION_DUE, subject=auth.id, due_at=at,
                       payload={"escalation": escalation}, replace=escalation == 1)


def set_period(auth: Authorization, start: date, end: date, flags: list[str], terms: Terms, now: datetime) -> bool:
    """Record an authorized period and arm its expiring and expired dates; True when the expiring notice is
    due already (then the caller arms an immediate sweep rather than waiting for the daily one)."""
    auth.period_start, auth.period_end, auth.review_flags = start, end, flags
    auth.expiring_due_on = expiring_on(end, terms.lead_days(auth.service_key), start)
    auth.expiry_due_on = end + timedelta(days=1)
    auth.expiring_raised_at, auth.reauthorization = None, None
    auth.updated_at = now
    return auth.expiring_due_on <= pacific_date(now)


def approved_event(auth: Authorization, now: datetime, *, presumptive: bool = False,
                   modified: bool = False) -> AuthorizationApproved:
    """The authorization.approved payload of an authorization's current period."""
    assert auth.period_start is not None and auth.period_end is not None
    return AuthorizationApproved(
        authorization_id=auth.id, referral_id=auth.referral_id, mcp_code=auth.mcp_code,
        cbo_organization_id=auth.cbo_organization_id, service=ServiceRequested.model_validate(auth.service),
        decided_at=aware(auth.decided_at) or now, mcp_authorization_number=auth.mcp_authorization_number,
        period_start=auth.period_start, period_end=auth.period_end, modified=modified, presumptive=presumptive,
        origin=AuthorizationOrigin(auth.origin), review_flags=tuple(auth.review_flags),
        assigned_provider_npi=auth.assigned_provider_npi, previous_authorization_id=auth.previous_authorization_id,
        # An MCP assignment has no authorization.requested: its approvals carry the member instead, or the
        # gateway could never put the assigned member on the RTF.
        member=MemberDemographics.model_validate(auth.member)
        if auth.origin == AuthorizationOrigin.MCP_ASSIGNMENT.value else None)


async def sweep_now(uow: AuthorizationsUnitOfWork, now: datetime) -> None:
    """Schedule an immediate expiry sweep (a notice is already due)."""
    await schedule(uow.session, uow.tables, kind=EXPIRY_SWEEP, subject=SWEEP_SUBJECT, due_at=now,
                   payload={"reason": "notice_already_due"})


# -------------------------------------------------------------------------------------------- decisions

@dataclass(frozen=True)
class DecisionInput:
    """An MCP decision, from the API or a MIF row."""

    kind: DecisionKind
    mcp_authorization_number: str | None = None
    period_start: date | None = None
    period_end: date | None = None
    reason: str | None = None
    assigned_provider_npi: str | None = None


async def record_decision(uow: AuthorizationsUnitOfWork, auth: Authorization, decision: DecisionInput, *,
                          actor: str, parent: Envelope[Any] | None) -> None:
    """Apply an MCP decision to an open request (or confirm / deny a presumptive approval).

    Raises TransitionRefused when the status takes no decision, PeriodError for an unusable period.
    """
    now = now_of(uow)
    status = AuthorizationStatus(auth.status)
    check_decidable(status, auth.decision == "presumptive", decision.kind)
    terms = terms_of(uow, auth)
    if decision.kind is DecisionKind.PENDED:
        await _pend(uow, auth, decision, terms, actor, parent, now)
        return
    if decision.kind is DecisionKind.DENIED:
        auth.status, auth.decision, auth.reason = AuthorizationStatus.DENIED.value, decision.kind.value, decision.reason
        auth.expiring_due_on = auth.expiry_due_on = None
    else:
        kind: PeriodKind = "reauthorization" if auth.origin == AuthorizationOrigin.REAUTHORIZATION.value else "initial"
        default_start = await _default_start(uow, auth, now)
        start = decision.period_start or (auth.period_start if auth.decision == "presumptive" else None)
        period = authorized_period(auth.service_key, kind, start, decision.period_end,
                                   default_start=default_start, caps=terms.duration_caps)
        auth.status, auth.decision = AuthorizationStatus.APPROVED.value, decision.kind.value
        auth.mcp_authorization_number = decision.mcp_authorization_number or auth.mcp_authorization_number
        auth.assigned_provider_npi = decision.assigned_provider_npi or auth.assigned_provider_npi
        if set_period(auth, period.start, period.end, list(period.flags), terms, now):
            await sweep_now(uow, now)
    due = aware(auth.decision_due)
    auth.decided_at, auth.clock_stopped, auth.updated_at = now, False, now
    auth.decided_within_deadline = due is None or now <= due
    await cancel_timers(uow.session, uow.tables, DECISION_DUE, auth.id)
    history(uow, auth, decision.kind.value, actor, now, mcp_authorization_number=auth.mcp_authorization_number,
            period_start=auth.period_start if auth.status == "approved" else None,
            period_end=auth.period_end if auth.status == "approved" else None,
            review_flags=",".join(auth.review_flags) or None, within_deadline=auth.decided_within_deadline)
    if decision.kind is DecisionKind.DENIED:
        emit(uow, auth, AuthorizationDenied(
            authorization_id=auth.id, referral_id=auth.referral_id, mcp_code=auth.mcp_code,
            cbo_organization_id=auth.cbo_organization_id, service=ServiceRequested.model_validate(auth.service),
            decided_at=now, reason=decision.reason or "denied"), parent, now)
    else:
        modified = decision.kind is DecisionKind.APPROVED_AS_MODIFIED
        emit(uow, auth, approved_event(auth, now, modified=modified), parent, now)


async def _default_start(uow: AuthorizationsUnitOfWork, auth: Authorization, now: datetime) -> date:
    # A reauthorization continues the previous period without a gap; anything else starts on the decision.
    if auth.previous_authorization_id and auth.origin == AuthorizationOrigin.REAUTHORIZATION.value:
        previous = await uow.authorizations.get(auth.previous_authorization_id)
        if previous is not None and previous.period_end is not None:
            return max(previous.period_end + timedelta(days=1), pacific_date(aware(auth.requested_at) or now))
    return pacific_date(now)


async def _pend(uow: AuthorizationsUnitOfWork, auth: Authorization, decision: DecisionInput, terms: Terms,
                actor: str, parent: Envelope[Any] | None, now: datetime) -> None:
    extended = None
    if not auth.clock_stopped and auth.original_decision_due is not None:
        # The extension is granted once, counted from the original deadline, and only before it has passed
        # (after it, the clock keeps running: the request stays overdue and its escalations go on).
        extended = pend_extension(aware(auth.original_decision_due) or now, Urgency(auth.urgency), terms,
                                  pended_at=now)
    auth.status, auth.reason, auth.updated_at = AuthorizationStatus.PENDED.value, decision.reason, now
    if extended is not None:
        auth.decision_due, auth.clock_stopped = extended, True
        await schedule_escalation(uow, auth, 1, terms)
    history(uow, auth, "pended", actor, now, clock_stopped=auth.clock_stopped, decision_due=aware(auth.decision_due))
    emit(uow, auth, AuthorizationPended(
        authorization_id=auth.id, referral_id=auth.referral_id, mcp_code=auth.mcp_code,
        cbo_organization_id=auth.cbo_organization_id, service=ServiceRequested.model_validate(auth.service),
        decided_at=now, reason=decision.reason or "information requested", clock_stopped=auth.clock_stopped),
        parent, now)


# ------------------------------------------------------------------------------------------ MIF rows

_MIF_KINDS = {MifDecision.APPROVED: DecisionKind.APPROVED, MifDecision.DENIED: DecisionKind.DENIED,
              MifDecision.PENDED: DecisionKind.PENDED}


async def apply_mif_row(uow: AuthorizationsUnitOfWork, event: Envelope[MemberInformationReceived]) -> MifRowOutcome:
    """Match a MIF row to the member's requests and apply it; every row gets a durable outcome."""
    row = event.data
    existing = await uow.mif.outcome_of(row.file_id, row.row_number)
    if existing is not None:
        return existing  # the gateway republished the file: the row already did its work
    now = now_of(uow)
    policy = policy_of(uow)
    member_id = member_id_for(row.member.cin)
    actor = f"mif:{row.file_id}:{row.row_number}"
    decision = policy.mif_decision(row.ecm_status)
    key = row_service_key(row.extra, service_keys())
    auths = await uow.authorizations.for_member(member_id, mcp_code=row.mcp_code, for_update=True)
    if key is None:
        return await _mif_outcome(uow, event, member_id, MifOutcome.EXCEPTION, MifException.UNKNOWN_SERVICE, None)
    candidates = [Candidate(authorization_id=a.id, status=AuthorizationStatus(a.status), service_key=a.service_key,
                            requested_at=aware(a.requested_at) or now, presumptive=a.decision == "presumptive",
                            mcp_authorization_number=a.mcp_authorization_number, period_start=a.period_start,
                            period_end=a.period_end) for a in auths]
    match = match_row(decision, key, row.mcp_authorization_id, row.authorization_start, row.authorization_end,
                      candidates)
    period = reporting_month(row.reporting_period)
    if period is not None:  # a late file of an older reporting period never undoes what a newer one decided
        match = set_aside_if_older(match, period, await uow.mif.newest_period(member_id, row.mcp_code))
    by_id = {a.id: a for a in auths}
    target = by_id.get(match.authorization_id or "")
    try:
        if match.outcome is MifOutcome.DECISION_APPLIED and target is not None and decision is not None:
            kind = _MIF_KINDS[decision]
            await record_decision(uow, target, DecisionInput(
                kind=kind, mcp_authorization_number=row.mcp_authorization_id, period_start=row.authorization_start,
                period_end=row.authorization_end, assigned_provider_npi=row.assigned_provider_npi,
                reason=f"mif status {row.ecm_status}" if kind is not DecisionKind.APPROVED else None),
                actor=actor, parent=event)
        elif match.outcome is MifOutcome.CONFIRMED and target is not None:
            history(uow, target, "mif_confirmed", actor, now, file_id=row.file_id)
        elif match.outcome is MifOutcome.NUMBER_RECORDED and target is not None:
            await _record_number(uow, target, row, actor, event, now)
        elif match.outcome is MifOutcome.PERIOD_CHANGED and target is not None:
            await _change_period(uow, target, row, actor, event, now)
        elif match.outcome is MifOutcome.DISCONTINUED and target is not None:
            await close(uow, target, reason="discontinued_by_mcp", effective=pacific_date(now), actor=actor,
                        parent=event)
        elif match.outcome is MifOutcome.ASSIGNMENT_CREATED:
            auth = await _assignment(uow, event, key, member_id, actor, now)
            if auth.cbo_organization_id is None:
                return await _mif_outcome(uow, event, member_id, MifOutcome.EXCEPTION,
                                          MifException.UNKNOWN_PROVIDER, auth.id)
            return await _mif_outcome(uow, event, member_id, match.outcome, None, auth.id)
    except PeriodError:
        return await _mif_outcome(uow, event, member_id, MifOutcome.EXCEPTION, MifException.INVALID_PERIOD,
                                  match.authorization_id)
    return await _mif_outcome(uow, event, member_id, match.outcome, match.reason, match.authorization_id)


async def _mif_outcome(uow: AuthorizationsUnitOfWork, event: Envelope[MemberInformationReceived], member_id: str,
                       outcome: MifOutcome, reason: MifException | None, auth_id: str | None) -> MifRowOutcome:
    row = event.data
    now = now_of(uow)
    record = MifRowOutcome(id=new_id("mifrow"), file_id=row.file_id, row_number=row.row_number,
                           mcp_code=row.mcp_code, member_id=member_id, outcome=outcome.value,
                           reason=reason.value if reason else None, authorization_id=auth_id,
                           ecm_status=(row.ecm_status or "")[:50] or None,
                           mcp_authorization_id=row.mcp_authorization_id, resolved_at=None, resolved_by=None,
                           resolution=None, created_at=now, reporting_period=reporting_month(row.reporting_period))
    uow.mif.add(record)
    if outcome is MifOutcome.EXCEPTION:
        log.info("mif row kept as exception", extra={"file_id": row.file_id, "row_number": row.row_number,
                                                      "reason": reason.value if reason else None})
        _emit(uow, record.id, member_id, event.correlation_id, AuthorizationMifExceptionRecorded(
            exception_id=record.id, file_id=row.file_id, row_number=row.row_number, mcp_code=row.mcp_code,
            reason=reason.value if reason else "unknown", authorization_id=auth_id), event, now)
    return record


async def _change_period(uow: AuthorizationsUnitOfWork, auth: Authorization, row: MemberInformationReceived,
                         actor: str, event: Envelope[Any], now: datetime) -> None:
    terms = terms_of(uow, auth)
    kind: PeriodKind = "reauthorization" if auth.origin == AuthorizationOrigin.REAUTHORIZATION.value else "initial"
    period = authorized_period(auth.service_key, kind, row.authorization_start or auth.period_start,
                               row.authorization_end or auth.period_end, default_start=pacific_date(now),
                               caps=terms.duration_caps)
    auth.decision, auth.decided_at = DecisionKind.APPROVED_AS_MODIFIED.value, now
    if auth.status == AuthorizationStatus.SUSPENDED.value:
        auth.period_start, auth.period_end, auth.review_flags = period.start, period.end, list(period.flags)
    elif set_period(auth, period.start, period.end, list(period.flags), terms, now):
        await sweep_now(uow, now)
    history(uow, auth, "period_changed", actor, now, period_start=period.start, period_end=period.end)
    emit(uow, auth, approved_event(auth, now, modified=True), event, now)
    if auth.status == AuthorizationStatus.SUSPENDED.value:
        await _restate_suspension(uow, auth, event, now)


async def _record_number(uow: AuthorizationsUnitOfWork, auth: Authorization, row: MemberInformationReceived,
                         actor: str, event: Envelope[Any], now: datetime) -> None:
    auth.mcp_authorization_number, auth.updated_at = row.mcp_authorization_id, now
    history(uow, auth, "mcp_number_recorded", actor, now, mcp_authorization_number=row.mcp_authorization_id,
            file_id=row.file_id)
    # The same decision and period, restated with the number: claims put it on the 837P as the prior
    # authorization, and the gateway on the RTF.
    emit(uow, auth, approved_event(auth, now, modified=auth.decision == DecisionKind.APPROVED_AS_MODIFIED.value),
         event, now)
    if auth.status == AuthorizationStatus.SUSPENDED.value:
        await _restate_suspension(uow, auth, event, now)


async def _restate_suspension(uow: AuthorizationsUnitOfWork, auth: Authorization, parent: Envelope[Any],
                              now: datetime) -> None:
    # `authorization.approved` carries the new period, and consumers that keep a status take the newest event's
    # (decision 0125): the gateway's RTF would report a suspended member as enrolled. The suspension is said
    # again, a microsecond later, with its own reason and date (consumers that keep suspension intervals, like
    # claims, see the same one again and change nothing).
    suspensions = [h for h in await uow.authorizations.history(auth.id) if h.action == "suspended"]
    effective = suspensions[-1].detail.get("effective") if suspensions else None
    emit(uow, auth, AuthorizationSuspended(
        authorization_id=auth.id, mcp_code=auth.mcp_code, cbo_organization_id=auth.cbo_organization_id,
        reason=auth.reason or "suspended",
        effective=date.fromisoformat(effective) if effective else pacific_date(now)),
         parent, now + timedelta(microseconds=1))


async def _assignment(uow: AuthorizationsUnitOfWork, event: Envelope[MemberInformationReceived], key: str,
                      member_id: str, actor: str, now: datetime) -> Authorization:
    row = event.data
    policy = policy_of(uow)
    terms = policy.terms_for(row.mcp_code, pacific_date(now))
    program = Program.ECM if key == "ecm" else Program.CHW if key == "chw" else Program.CS
    service = ServiceRequested(program=program, pof_codes=row.pof_codes if program is Program.ECM else (),
                               cs_code=key if program is Program.CS else None)
    cbo = policy.providers.get(row.assigned_provider_npi or "")
    period = authorized_period(key, "initial", row.authorization_start, row.authorization_end,
                               default_start=pacific_date(now), caps=terms.duration_caps)
    auth = Authorization(
        id=new_id("auth"), referral_id=None, correlation_id=event.correlation_id, member_id=member_id,
        member=row.member.model_dump(mode="json"), mcp_code=row.mcp_code, cbo_organization_id=cbo,
        referring_organization_id=None, program=program.value, service_key=key,
        service=service.model_dump(mode="json"), urgency=Urgency.STANDARD.value,
        requested_urgency=Urgency.STANDARD.value, expedited_reason=None,
        origin=AuthorizationOrigin.MCP_ASSIGNMENT.value, previous_authorization_id=None,
        status=AuthorizationStatus.APPROVED.value, requested_at=now, decision_due=None, original_decision_due=None,
        calendar=terms.calendar.calendar_name, deadline_basis="not_applicable", expedited_by_rule=False,
        clock_stopped=False, decided_at=now, decision=DecisionKind.APPROVED.value, decided_within_deadline=None,
        mcp_authorization_number=row.mcp_authorization_id, presumptive=False, review_flags=[],
        assigned_provider_npi=row.assigned_provider_npi, reason=None, suspended_from=None,
        expiring_raised_at=None, reauthorization=None, created_at=now, updated_at=now)
    uow.authorizations.add(auth)
    if set_period(auth, period.start, period.end, list(period.flags), terms, now):
        await sweep_now(uow, now)
    history(uow, auth, "assigned_by_mcp", actor, now, mcp_authorization_number=row.mcp_authorization_id,
            period_start=period.start, period_end=period.end, cbo_organization_id=cbo)
    emit(uow, auth, approved_event(auth, now), event, now)
    await uow.flush()
    return auth


# ---------------------------------------------------------------------------------------- eligibility

async def suspend_member(uow: AuthorizationsUnitOfWork, member_id: str, *, reason: str, effective: date,
                         actor: str, parent: Envelope[Any]) -> int:
    """Suspend the member's live authorizations (eligibility lost); returns how many."""
    now = now_of(uow)
    auths = await uow.authorizations.for_member(member_id, statuses=[s.value for s in LIVE], for_update=True)
    for auth in auths:
        auth.suspended_from, auth.status, auth.reason = auth.status, AuthorizationStatus.SUSPENDED.value, reason
        auth.updated_at = now
        # A non-member's request cannot be decided: the deadline clock stops with the suspension.
        await cancel_timers(uow.session, uow.tables, DECISION_DUE, auth.id)
        history(uow, auth, "suspended", actor, now, effective=effective, suspended_from=auth.suspended_from)
        emit(uow, auth, AuthorizationSuspended(authorization_id=auth.id, mcp_code=auth.mcp_code,
                                               cbo_organization_id=auth.cbo_organization_id, reason=reason,
                                               effective=effective), parent, now)
    return len(auths)


async def resume_member(uow: AuthorizationsUnitOfWork, member_id: str, mcp_code: str | None, *, effective: date,
                        actor: str, parent: Envelope[Any]) -> int:
    """Resume the member's suspended authorizations with the regained MCP; those with another MCP are closed
    and requested anew from the member's MCP. Returns how many were resumed."""
    now = now_of(uow)
    auths = await uow.authorizations.for_member(member_id, statuses=[AuthorizationStatus.SUSPENDED.value],
                                                for_update=True)
    resumed = 0
    for auth in auths:
        if mcp_code is not None and auth.mcp_code != mcp_code:
            await change_plan(uow, auth, mcp_code, effective=effective, actor=actor, parent=parent)
            continue
        auth.status, auth.suspended_from, auth.updated_at = auth.suspended_from or "approved", None, now
        history(uow, auth, "resumed", actor, now, effective=effective)
        emit(uow, auth, AuthorizationResumed(authorization_id=auth.id, mcp_code=auth.mcp_code,
                                             cbo_organization_id=auth.cbo_organization_id, effective=effective),
             parent, now)
        if auth.status in {s.value for s in OPEN} or auth.decision == "presumptive":
            # Overdue already? The next escalation fires at once, numbered on from the last one raised.
            await schedule_escalation(uow, auth, await _next_escalation(uow, auth), terms_of(uow, auth))
        resumed += 1
    return resumed


async def _next_escalation(uow: AuthorizationsUnitOfWork, auth: Authorization) -> int:
    due = aware(auth.decision_due)
    if due is None:
        return 1
    raised = [(datetime.fromisoformat(h.detail["decision_due"]), int(h.detail["escalation"]))
              for h in await uow.authorizations.history(auth.id)
              if h.action == "decision_overdue" and "decision_due" in h.detail and "escalation" in h.detail]
    return next_escalation(raised, due)


async def close(uow: AuthorizationsUnitOfWork, auth: Authorization, *, reason: str, effective: date, actor: str,
                parent: Envelope[Any] | None) -> None:
    """End an authorization before its period end (plan changed, discontinued by the MCP)."""
    now = now_of(uow)
    auth.status, auth.reason, auth.suspended_from = AuthorizationStatus.CLOSED.value, reason, None
    auth.expiring_due_on = auth.expiry_due_on = None
    auth.updated_at = now
    await cancel_timers(uow.session, uow.tables, DECISION_DUE, auth.id)
    history(uow, auth, "closed", actor, now, reason=reason, effective=effective)
    emit(uow, auth, AuthorizationClosed(authorization_id=auth.id, referral_id=auth.referral_id,
                                        mcp_code=auth.mcp_code, cbo_organization_id=auth.cbo_organization_id,
                                        reason=reason, effective=effective), parent, now)


async def change_plan(uow: AuthorizationsUnitOfWork, auth: Authorization, new_mcp: str, *, effective: date,
                      actor: str, parent: Envelope[Any]) -> Authorization:
    """Close an authorization with the old MCP and request the same service from the new one."""
    await close(uow, auth, reason="plan_changed", effective=effective, actor=actor, parent=parent)
    return await open_request(uow, NewRequest(
        member=MemberDemographics.model_validate(auth.member), service=ServiceRequested.model_validate(auth.service),
        urgency=Urgency(auth.requested_urgency), mcp_code=new_mcp, origin=AuthorizationOrigin.PLAN_CHANGE,
        received_at=now_of(uow), correlation_id=auth.correlation_id, referral_id=auth.referral_id,
        cbo_organization_id=auth.cbo_organization_id, referring_organization_id=auth.referring_organization_id,
        expedited_reason=auth.expedited_reason, previous_authorization_id=auth.id), actor=actor, parent=parent)


async def plan_changed(uow: AuthorizationsUnitOfWork, member_id: str, previous_mcp: str, new_mcp: str, *,
                       effective: date, actor: str, parent: Envelope[Any]) -> int:
    """Move the member's live or suspended authorizations with the previous MCP to the new one."""
    statuses = [s.value for s in LIVE] + [AuthorizationStatus.SUSPENDED.value]
    auths = await uow.authorizations.for_member(member_id, mcp_code=previous_mcp, statuses=statuses,
                                                for_update=True)
    for auth in auths:
        await change_plan(uow, auth, new_mcp, effective=effective, actor=actor, parent=parent)
    return len(auths)


# ------------------------------------------------------------------------------------ decision timers

async def raise_decision_overdue(uow: AuthorizationsUnitOfWork, auth_id: str, escalation: int) -> bool:
    """Raise decision_overdue for a request still awaiting its MCP and arm the next escalation; False if
    the request was decided, suspended or closed meanwhile."""
    auth = await uow.authorizations.get(auth_id, for_update=True)
    if auth is None or not (auth.status in {s.value for s in OPEN} or auth.decision == "presumptive"):
        return False
    now = now_of(uow)
    due = aware(auth.decision_due)
    assert due is not None
    history(uow, auth, "decision_overdue", SYSTEM, now, escalation=escalation, decision_due=due)
    emit(uow, auth, AuthorizationDecisionOverdue(authorization_id=auth.id, mcp_code=auth.mcp_code,
                                                 decision_due=due, escalation=escalation), None, now)
    await schedule_escalation(uow, auth, escalation + 1, terms_of(uow, auth))
    return True


# --------------------------------------------------------------------------------------- expiry sweep

@dataclass(frozen=True)
class SweepReport:
    """What one expiry sweep did; `more` when a chunk was full and a follow-up sweep is needed."""

    expiring: int
    expired: int
    pending_reauthorization: int
    more: bool
    failed: int = 0  # authorizations no notice could be built for: logged, parked until tomorrow's sweep


@dataclass(frozen=True)
class ReauthReport:
    """What one reauthorization pass did; `more` when its chunk was full."""

    reauthorized: int
    tasks: int
    skipped: int
    more: bool


PENDING = "pending"  # `authorization.reauthorization` of an expiring notice whose reauthorization rule has not run


def sweep_timer_id(day: date) -> UUID:
    """The id of a day's sweep timer: the same in every instance, so the day's sweep exists once."""
    return uuid.uuid5(_SWEEP_IDS, f"expiry-sweep:{day.isoformat()}")


def next_sweep_at(now: datetime, at: time) -> tuple[date, datetime]:
    """The next daily sweep after `now`: its Pacific date and instant (local wall time, DST-aware)."""
    day = pacific_date(now)
    moment = datetime.combine(day, at, tzinfo=PACIFIC)
    if moment <= now:
        day += timedelta(days=1)
        moment = datetime.combine(day, at, tzinfo=PACIFIC)
    return day, moment


async def ensure_sweep(uow: AuthorizationsUnitOfWork, day: date, due_at: datetime) -> bool:
    """Schedule the sweep of a day unless it exists (in any status); True if this call created it."""
    timer_id = sweep_timer_id(day)
    timer = uow.tables.timer
    if await uow.session.scalar(select(timer.c.id).where(timer.c.id == timer_id)) is not None:
        return False
    try:
        async with uow.session.begin_nested():  # another instance may insert the same id first
            await schedule(uow.session, uow.tables, kind=EXPIRY_SWEEP, subject=SWEEP_SUBJECT, due_at=due_at,
                           payload={"day": day.isoformat()}, timer_id=timer_id)
    except IntegrityError:
        return False
    return True


async def sweep_expiries(uow: AuthorizationsUnitOfWork, *, chunk: int) -> SweepReport:
    """Raise authorization.expiring and authorization.expired for everything due by today (Pacific).

    Set-based and lean: one locked read per kind, one bulk insert of history, one update per kind, so the
    thousands due on a busy day cost a handful of statements. The reauthorization rule runs afterwards, in
    its own pass (`reauthorize_expiring`), on the rows this marks `pending`. An authorization no notice can be
    built for is logged with its id, noted in its history and parked until tomorrow; the others go on.
    """
    now = now_of(uow)
    today = pacific_date(now)
    await uow.authorizations.clear_stale_sweep_marks(today)
    rows = await uow.authorizations.claim_expiring(today, chunk)
    followed: set[str] = set()
    if rows:
        followed = await uow.authorizations.followed_by_reauthorization([r.id for r in rows])
    history_rows: list[dict[str, Any]] = []
    failed: list[str] = []
    notified: list[Any] = []
    for row in rows:
        try:
            days_left = (row.period_end - today).days
            data: EventData = AuthorizationExpiring(
                authorization_id=row.id, mcp_code=row.mcp_code, cbo_organization_id=row.cbo_organization_id,
                period_end=row.period_end, days_left=days_left)
        except Exception as error:
            _sweep_row_failed(row, "expiring", error, now, failed, history_rows)
            continue
        _emit(uow, row.id, row.member_id, row.correlation_id, data, None, now)
        history_rows.append(_history_row(row.id, now, "expiring", row.status,
                                         {"days_left": days_left, "period_end": row.period_end}))
        notified.append(row)
    # Parked until tomorrow's sweep (retried, logged again): out of today's range, so no continuation re-reads it.
    await uow.authorizations.set_many(failed, expiring_due_on=today + timedelta(days=1), updated_at=now)
    claimed_expiring, rows = len(rows), notified
    pending = [r.id for r in rows if r.id not in followed]
    # A reauthorization the care team already asked for is not asked for again.
    await uow.authorizations.set_many([r.id for r in rows if r.id in followed], expiring_due_on=None,
                                      expiring_raised_at=now, reauthorization="requested", updated_at=now)
    await uow.authorizations.set_many(pending, expiring_due_on=None, expiring_raised_at=now,
                                      reauthorization=PENDING, updated_at=now)

    expired = await uow.authorizations.claim_expired(today, chunk)
    claimed_expired = len(expired)
    ended: list[Any] = []
    unended: list[str] = []
    for row in expired:
        try:
            data = AuthorizationExpired(
                authorization_id=row.id, referral_id=row.referral_id, mcp_code=row.mcp_code,
                cbo_organization_id=row.cbo_organization_id, period_end=row.period_end)
        except Exception as error:
            _sweep_row_failed(row, "expired", error, now, unended, history_rows)
            continue
        _emit(uow, row.id, row.member_id, row.correlation_id, data, None, now)
        history_rows.append(_history_row(row.id, now, "expired", AuthorizationStatus.EXPIRED.value,
                                         {"period_end": row.period_end}))
        ended.append(row)
    await uow.authorizations.set_many(unended, expiry_due_on=today + timedelta(days=1), updated_at=now)
    failed += unended
    expired = ended
    await uow.authorizations.set_many([r.id for r in expired], status=AuthorizationStatus.EXPIRED.value,
                                      expiry_due_on=None, expiring_due_on=None, suspended_from=None, updated_at=now)
    await uow.authorizations.add_history_rows(history_rows)
    if rows or expired:
        log.info("expiry sweep", extra={"expiring": len(rows), "expired": len(expired),
                                        "pending_reauthorization": len(pending)})
    if failed:
        log.error("expiry sweep left authorizations it could not notify until tomorrow",
                  extra={"failed": len(failed)})
    return SweepReport(expiring=len(rows), expired=len(expired), pending_reauthorization=len(pending),
                       more=claimed_expiring >= chunk or claimed_expired >= chunk, failed=len(failed))


def _sweep_row_failed(row: Any, notice: str, error: Exception, now: datetime, failed: list[str],
                      history_rows: list[dict[str, Any]]) -> None:
    """One authorization the sweep cannot notify: logged (id and error type only: messages may quote PHI), kept
    in its history, counted; the sweep goes on with the others."""
    log.error("expiry sweep could not notify an authorization", extra={
        "authorization_id": row.id, "notice": notice, "error_type": type(error).__name__})
    failed.append(row.id)
    history_rows.append(_history_row(row.id, now, f"{notice}_notice_failed", row.status,
                                     {"error_type": type(error).__name__}))


# A reauthorization may be requested for these, by the automatic pass or by hand: an authorization that expired
# before anyone asked (a care-team task done after the period end) is reauthorized like one about to.
REQUESTABLE_STATUSES = frozenset({AuthorizationStatus.APPROVED.value, AuthorizationStatus.EXPIRED.value})
# The automatic pass weighs these; a suspended one (eligibility lost) always becomes a care-team task.
REAUTHORIZABLE_STATUSES = REQUESTABLE_STATUSES | {AuthorizationStatus.SUSPENDED.value}


async def reauthorize_expiring(uow: AuthorizationsUnitOfWork, *, chunk: int) -> ReauthReport:
    """Run the reauthorization rule on authorizations whose expiring notice went out: a request to the MCP
    when the member is eligible and engaged, otherwise a care-team task. Bulk, like the sweep."""
    now = now_of(uow)
    today = pacific_date(now)
    policy = policy_of(uow)
    rows = await uow.authorizations.claim_pending_reauthorization(PENDING, chunk)
    new_rows: list[dict[str, Any]] = []
    timer_rows: list[dict[str, Any]] = []
    task_rows: list[dict[str, Any]] = []
    history_rows: list[dict[str, Any]] = []
    marks: dict[str, list[str]] = defaultdict(list)
    reauthorized = tasks = 0
    for row in rows:
        if row.status not in REAUTHORIZABLE_STATUSES:
            marks[f"skipped:{row.status}"].append(row.id)  # closed or denied since the notice
            continue
        eligibility = None if row.eligible is None else Eligibility(row.eligible, row.eligible_mcp_code)
        if row.status == AuthorizationStatus.SUSPENDED.value:
            eligibility = Eligibility(False, None)
        decision = decide_reauthorization(
            mcp_code=row.mcp_code, eligibility=eligibility, last_encounter=row.last_encounter_on, today=today,
            engagement_window_days=policy.engagement_window_days,
            unknown_is_eligible=policy.eligibility_unknown_is_eligible,
            reauthorizable=cap_end(row.service_key, row.period_start) is None)
        if decision.outcome is ReauthOutcome.REQUESTED:
            new_auth_id = _reauthorize_row(uow, row, policy, now, new_rows, timer_rows, history_rows,
                                           automatic=True)
            marks["requested"].append(row.id)
            history_rows.append(_history_row(row.id, now, "reauthorization_requested", row.status,
                                             {"new_authorization_id": new_auth_id, "automatic": True}))
            reauthorized += 1
            continue
        reason = decision.reason or TaskReason.NOT_ENGAGED
        task_id = new_id("task")
        task_rows.append({"id": task_id, "authorization_id": row.id, "member_id": row.member_id,
                          "mcp_code": row.mcp_code, "cbo_organization_id": row.cbo_organization_id,
                          "kind": "reauthorization_review", "reason": reason.value, "status": "open",
                          "due_on": row.period_end, "created_at": now, "completed_at": None,
                          "completed_by": None, "outcome": None})
        _emit(uow, row.id, row.member_id, row.correlation_id, AuthorizationCareTaskOpened(
            authorization_id=row.id, task_id=task_id, mcp_code=row.mcp_code,
            cbo_organization_id=row.cbo_organization_id, reason=reason.value, due_on=row.period_end), None, now)
        history_rows.append(_history_row(row.id, now, "care_task_opened", row.status,
                                         {"task_id": task_id, "reason": reason.value}))
        marks[f"task:{reason.value}"].append(row.id)
        tasks += 1
    for value, marked in marks.items():
        await uow.authorizations.set_many(marked, reauthorization=value, updated_at=now)
    await uow.authorizations.add_many(new_rows)
    if timer_rows:
        await uow.session.execute(insert(uow.tables.timer), timer_rows)
    await uow.tasks.add_many(task_rows)
    await uow.authorizations.add_history_rows(history_rows)
    skipped = len(rows) - reauthorized - tasks
    if rows:
        log.info("reauthorization pass", extra={"reauthorized": reauthorized, "tasks": tasks, "skipped": skipped})
    return ReauthReport(reauthorized=reauthorized, tasks=tasks, skipped=skipped, more=len(rows) >= chunk)


def _history_row(auth_id: str, now: datetime, action: str, status: str, detail: dict[str, Any]) -> dict[str, Any]:
    clean = {k: (v.isoformat() if isinstance(v, date) else v) for k, v in detail.items()}
    return {"authorization_id": auth_id, "occurred_at": now, "action": action, "status": status,
            "actor": SYSTEM, "detail": clean}


def _reauthorize_row(uow: AuthorizationsUnitOfWork, row: Any, policy: AuthorizationPolicy, now: datetime,
                     new_rows: list[dict[str, Any]], timer_rows: list[dict[str, Any]],
                     history_rows: list[dict[str, Any]], *, automatic: bool) -> str:
    """Stage a reauthorization request for an expiring authorization (bulk: rows appended to the lists)."""
    req = NewRequest(member=MemberDemographics.model_validate(row.member),
                     service=ServiceRequested.model_validate(row.service), urgency=Urgency.STANDARD,
                     mcp_code=row.mcp_code, origin=AuthorizationOrigin.REAUTHORIZATION, received_at=now,
                     correlation_id=row.correlation_id, referral_id=row.referral_id,
                     cbo_organization_id=row.cbo_organization_id,
                     referring_organization_id=row.referring_organization_id, previous_authorization_id=row.id)
    terms = policy.terms_for(row.mcp_code, pacific_date(now))
    new_row, deadline = request_row(req, terms, now)
    new_rows.append(new_row)
    first = escalation_at(deadline.due, 1, deadline.urgency, terms)
    if first is not None:
        timer_rows.append(decision_timer_row(new_row["id"], first, 1, now))
    history_rows.append(_history_row(new_row["id"], now, "requested", new_row["status"], {
        "origin": req.origin.value, "decision_due": deadline.due.isoformat(), "calendar": deadline.calendar,
        "deadline_basis": deadline.basis.value, "previous_authorization_id": row.id}))
    _emit(uow, new_row["id"], row.member_id, row.correlation_id, requested_event(new_row, req, deadline), None, now)
    _emit(uow, row.id, row.member_id, row.correlation_id, AuthorizationReauthRequested(
        authorization_id=row.id, new_authorization_id=new_row["id"], mcp_code=row.mcp_code,
        cbo_organization_id=row.cbo_organization_id, automatic=automatic), None, now)
    return str(new_row["id"])


async def request_reauthorization(uow: AuthorizationsUnitOfWork, auth: Authorization, *, actor: str) -> str:
    """The care team asks for a reauthorization by hand; returns the new request's id.

    Raises TransitionRefused unless the authorization is approved or expired and not already followed by a
    request.
    """
    if auth.status not in REQUESTABLE_STATUSES or auth.period_end is None:
        raise TransitionRefused("not_approved", "only an approved or expired authorization can be reauthorized")
    if await uow.authorizations.successor(auth.id) is not None:
        raise TransitionRefused("already_requested", "a reauthorization was already requested")
    now = now_of(uow)
    new_rows: list[dict[str, Any]] = []
    timer_rows: list[dict[str, Any]] = []
    history_rows: list[dict[str, Any]] = []
    row = _AuthRow(auth)
    new_auth_id = _reauthorize_row(uow, row, policy_of(uow), now, new_rows, timer_rows, history_rows,
                                   automatic=False)
    for history_row in history_rows:
        history_row["actor"] = actor
    await uow.authorizations.add_many(new_rows)
    if timer_rows:
        await uow.session.execute(insert(uow.tables.timer), timer_rows)
    await uow.authorizations.add_history_rows(history_rows)
    auth.reauthorization, auth.updated_at = "requested", now
    history(uow, auth, "reauthorization_requested", actor, now, new_authorization_id=new_auth_id, automatic=False)
    return new_auth_id


class _AuthRow:
    """An ORM authorization seen through the attribute names of a sweep row."""

    def __init__(self, auth: Authorization) -> None:
        self.__dict__.update({c: getattr(auth, c) for c in (
            "id", "member_id", "member", "mcp_code", "cbo_organization_id", "referring_organization_id",
            "referral_id", "correlation_id", "service")})


async def complete_task(uow: AuthorizationsUnitOfWork, task_id: str, *, outcome: str, actor: str) -> str | None:
    """Close a care-team task; `reauthorization_requested` also opens the request. Returns its id, if any.

    Raises LookupError for an unknown task, TransitionRefused for a closed one or a refused reauthorization.
    """
    task = await uow.tasks.get(task_id, for_update=True)
    if task is None:
        raise LookupError(task_id)
    if task.status != "open":
        raise TransitionRefused("task_closed", "the task is already done")
    new_auth_id = None
    if outcome == "reauthorization_requested":
        auth = await uow.authorizations.get(task.authorization_id, for_update=True)
        if auth is None:
            raise LookupError(task.authorization_id)
        new_auth_id = await request_reauthorization(uow, auth, actor=actor)
    task.status, task.outcome, task.completed_at, task.completed_by = "done", outcome, now_of(uow), actor
    return new_auth_id
