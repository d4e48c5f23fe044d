"""Use cases of the eligibility service, shared by the API, the event handlers and the timers.

Each function works inside the caller's unit of work: it changes rows and records events, the edge commits.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from eligibility.domain.enrollment import (
    Change,
    ChangeKind,
    MemberState,
    Observation,
    ProgramFlag,
    Source,
    Status,
    apply,
)
from eligibility.domain.responses import Answer, interpret, rejected
from eligibility.domain.rules import Program, evaluate, with_recheck_interval
from eligibility.domain.schedule import (
    PACIFIC,
    MonthlySchedule,
    batch_key,
    members_to_recheck,
    parse_period,
    period_of,
    realtime_batch_key,
)
from eligibility.domain.served import period_supersedes, tracked_status
from eligibility.repository import EligibilityUnitOfWork, aware, pending_timer
from eligibility.x12 import codes
from eligibility.x12.loops import X279Invalid
from eligibility.x12.x270 import Entity, InquiryBatch, SubscriberInquiry, build_270, transaction_sets
from eligibility.x12.x271 import Rejection, Response271, SubscriberAnswer, read_271
from shared.bus.message import PermanentError, RetryableError
from shared.contracts.eligibility import (
    EligibilityBatchCreated,
    EligibilityCheckRejected,
    EligibilityExcluded,
    EligibilityLost,
    EligibilityPlanChanged,
    EligibilityRegained,
    EligibilityResponseProcessed,
    EligibilityResponseRefused,
    EligibilitySource,
    EligibilityVerified,
)
from shared.contracts.values import FileReference, MemberDemographics
from shared.envelope import Envelope, caused_by, new_event
from shared.filestore import FileCorrupted, FileNotStored
from shared.identity import member_id_for
from shared.ids import uuid7
from shared.reference.identifiers import bic_problem, cin_from_bic, cin_problem
from shared.reference.plans import plan_by_code, plan_named, plans_in_county
from shared.scheduler import hold_pending, schedule
from shared.x12.envelope import EnvelopeSpec, Party

log = logging.getLogger("calhub.eligibility")

SOURCE = "eligibility"
MONTHLY_TIMER = "eligibility.monthly_batch"
FLUSH_TIMER = "eligibility.flush_checks"


class MemberNotFound(LookupError):
    """No member with that CIN is known."""


class JobNotFound(LookupError):
    """No check job with that id is visible to the caller."""


def new_id(prefix: str) -> str:
    """A time-ordered id with a type prefix (`chk_…`, `eb_…`, `job_…`); ≤ 36 characters, safe for TRN02."""
    return f"{prefix}_{uuid7().hex}"


def known_plan(code: str | None) -> str | None:
    """The code if it names a plan CalHub knows, else None."""
    if not code:
        return None
    try:
        return plan_by_code(code).code
    except ValueError:
        return None


def plan_for(text: str) -> str | None:
    """The MCP code a payer name, id or code refers to, or None."""
    plan = known_plan(text) or (p.code if (p := plan_named(text)) is not None else None)
    return plan


def _gender(sex: str | None) -> str | None:
    return sex if sex in codes.GENDER_CODES else None


# ----------------------------------------------------------------------------------------- the registry


async def register_member(uow: EligibilityUnitOfWork, member: MemberDemographics) -> str:
    """Create or complete a member from demographics on an event; returns the internal member id."""
    member_id = member_id_for(member.cin)
    await uow.members.ensure(member_id, member.cin, uow.now(), last_name=member.last_name,
                             first_name=member.first_name, middle_name=member.middle_name,
                             birth_date=member.birth_date, gender=_gender(member.sex),
                             mcp_member_id=member.mcp_member_id)
    return member_id


def _event(data: Any, *, member_id: str, subject: str, parent: Envelope[Any] | None, at: datetime,
           ) -> Envelope[Any]:
    if parent is not None:
        return caused_by(parent, data, subject=subject, source=SOURCE, member_id=member_id, time=at)
    return new_event(data, subject=subject, source=SOURCE, member_id=member_id, time=at)


def change_events(changes: Sequence[Change], *, cin: str, member_id: str, state: MemberState,
                  source: Source, as_of: date, at: datetime, parent: Envelope[Any] | None,
                  referral_id: str | None = None) -> list[Envelope[Any]]:
    """The published events for a member's changes (subject and key: the member id, never the CIN)."""
    common: dict[str, Any] = {"cin": cin, "source": EligibilitySource(source.value), "as_of": as_of,
                              "verified_at": state.verified_at or at}
    events: list[Envelope[Any]] = []
    for change in changes:
        data: Any
        if change.kind is ChangeKind.VERIFIED:
            data = EligibilityVerified(**common, mcp_code=change.mcp_code,
                                       span_start=change.span.start if change.span else None,
                                       span_end=change.span.end if change.span else None,
                                       referral_id=referral_id, first_seen=change.first_seen)
        elif change.kind is ChangeKind.LOST:
            data = EligibilityLost(**common, mcp_code=change.mcp_code, effective=change.effective,
                                   reason=change.reason or "coverage inactive")
        elif change.kind is ChangeKind.REGAINED:
            data = EligibilityRegained(**common, mcp_code=change.mcp_code, effective=change.effective)
        elif change.kind is ChangeKind.PLAN_CHANGED:
            data = EligibilityPlanChanged(**common, mcp_code=change.mcp_code,
                                          previous_mcp_code=change.previous_mcp_code or "",
                                          effective=change.effective)
        else:
            data = EligibilityExcluded(**common, mcp_code=state.mcp_code, program=change.program or "ecm",
                                       exclusion=change.exclusion or "", effective=change.effective,
                                       effective_to=change.effective_to, reason=change.reason or "excluded program")
        events.append(_event(data, member_id=member_id, subject=member_id, parent=parent, at=at))
    return events


@dataclass
class Applied:
    """What applying facts to one member did."""

    member_id: str
    before: MemberState
    after: MemberState
    changes: list[Change] = field(default_factory=list)


def fold(state: MemberState, observations: Sequence[Observation]) -> tuple[MemberState, list[Change]]:
    """Apply observations in order; returns the final state and every change."""
    changes: list[Change] = []
    for observation in observations:
        outcome = apply(state, observation)
        state = outcome.state
        changes.extend(outcome.changes)
    return state, changes


async def record_facts(uow: EligibilityUnitOfWork, *, member_id: str, cin: str,
                       observations: Sequence[Observation], parent: Envelope[Any] | None,
                       referral_id: str | None = None) -> Applied:
    """Apply facts to a member, save the new state and record one event per real change."""
    before = (await uow.members.load_states([member_id]))[member_id]
    after, changes = fold(before, observations)
    await uow.members.save_state(member_id, before, after, uow.now())
    if observations:
        last = observations[-1]
        uow.record(*change_events(changes, cin=cin, member_id=member_id, state=after, source=last.source,
                                  as_of=last.as_of, at=uow.now(), parent=parent, referral_id=referral_id))
    return Applied(member_id, before, after, changes)


def _reporting_date(reporting_period: str | None, fallback: date) -> date:
    """The first day of a MIF reporting period given as YYYY-MM or YYYYMM; the fallback otherwise."""
    if reporting_period:
        text = reporting_period.strip()
        for candidate in (text, f"{text[:4]}-{text[4:6]}" if len(text) == 6 and text.isdigit() else ""):
            try:
                return parse_period(candidate)
            except ValueError:
                continue
    return fallback


async def apply_mif_row(uow: EligibilityUnitOfWork, event: Envelope[Any]) -> None:
    """A MIF row says the MCP counts the member as its own for the reporting period."""
    row = event.data
    member_id = await register_member(uow, row.member)
    as_of = _reporting_date(row.reporting_period, event.time.astimezone(PACIFIC).date())
    observation = Observation(True, row.mcp_code, as_of, Source.MIF, uow.now())
    await record_facts(uow, member_id=member_id, cin=row.member.cin, observations=[observation], parent=event)


# ------------------------------------------------------------------------------------- checks and batches


async def queue_check(uow: EligibilityUnitOfWork, *, member_id: str, mcp_code: str, reason: str,
                      service_date: date, referral_id: str | None = None, job_id: str | None = None) -> str:
    """Queue a member for the next 270 to an MCP (reusing an identical queued check); returns the check id.

    The MCP's flush timer is scheduled if none is pending, so a queued check waits at most the flush delay.
    """
    existing = [c for c in await uow.checks.queued(mcp_code) if c.member_id == member_id]
    reusable = next((c for c in existing if c.referral_id in (None, referral_id) and c.job_id in (None, job_id)
                     and c.service_date == service_date), None)
    now = uow.now()
    if reusable is not None:
        await uow.checks.link(reusable.check_id, referral_id=referral_id or reusable.referral_id,
                              job_id=job_id or reusable.job_id)
        return str(reusable.check_id)
    check_id = new_id("chk")
    await uow.checks.add(check_id=check_id, member_id=member_id, mcp_code=mcp_code, reason=reason,
                         status="queued", service_date=service_date, referral_id=referral_id, job_id=job_id,
                         requested_at=now)
    # Held, not merely seen: a flush already reading the queue would leave this check queued with no timer.
    if await hold_pending(uow.session, uow.tables, FLUSH_TIMER, mcp_code, now=now) is None:
        delay = timedelta(minutes=uow.settings.realtime_flush_minutes)
        await schedule(uow.session, uow.tables, kind=FLUSH_TIMER, subject=mcp_code, due_at=now + delay,
                       payload={})
    return check_id


async def ensure_monthly_timer(uow: EligibilityUnitOfWork, mcp_code: str) -> bool:
    """Schedule the MCP's next monthly batch unless one is pending; True when one was scheduled."""
    if await pending_timer(uow.session, uow, MONTHLY_TIMER, mcp_code) is not None:
        return False
    await schedule(uow.session, uow.tables, kind=MONTHLY_TIMER, subject=mcp_code,
                   due_at=monthly_schedule(uow, mcp_code).next_run(uow.now()), payload={})
    return True


def monthly_schedule(uow: EligibilityUnitOfWork, mcp_code: str) -> MonthlySchedule:
    """An MCP's monthly schedule (its own day if configured, else the service's)."""
    settings = uow.settings
    partner = settings.partner(mcp_code)
    return MonthlySchedule(partner.day_of_month or settings.batch_day_of_month, settings.batch_time)


@dataclass(frozen=True)
class BatchOutcome:
    """A 270 batch written (or found already written for its key)."""

    batch_id: str
    batch_key: str
    members: int
    skipped: int
    created: bool
    file: FileReference | None = None


def _envelope_for(uow: EligibilityUnitOfWork, mcp_code: str, control: int, created: datetime) -> EnvelopeSpec:
    settings = uow.settings
    partner = settings.partner(mcp_code)
    receiver_id = (partner.interchange_id or mcp_code.upper().replace("_", ""))[:15]
    return EnvelopeSpec(
        sender=Party(settings.submitter_qualifier, settings.submitter_id, settings.submitter_id),
        receiver=Party(partner.interchange_qualifier, receiver_id, partner.application_code or receiver_id),
        interchange_control_number=control, group_control_number=control,
        functional_code=codes.INQUIRY_FUNCTIONAL_CODE, version=codes.IMPLEMENTATION,
        created=created.astimezone(PACIFIC), usage=settings.usage_indicator)


async def build_batch(uow: EligibilityUnitOfWork, mcp_code: str, *, kind: str, key: str, period: str | None,
                      run_on: date, parent: Envelope[Any] | None = None) -> BatchOutcome | None:
    """Write one 270 for an MCP: every member with an active authorization (monthly), plus queued checks.

    Never twice for a key: an existing batch is returned as is. None when nobody needs checking.
    """
    existing = await uow.batches.by_key(key)
    if existing is not None:
        return BatchOutcome(existing.batch_id, key, existing.members, existing.skipped, created=False)
    now = uow.now()
    checks = list(await uow.checks.queued(mcp_code))
    if kind == "monthly":
        queued_members = {c.member_id for c in checks}
        fresh = [{"check_id": new_id("chk"), "member_id": member_id, "mcp_code": mcp_code, "reason": "monthly",
                  "status": "queued", "service_date": run_on, "requested_at": now}
                 for member_id in members_to_recheck(await uow.authorizations.open_for(mcp_code), mcp_code, run_on)
                 if member_id not in queued_members]
        await uow.checks.add_many(fresh)
        checks = list(await uow.checks.queued(mcp_code))
    if not checks:
        return None
    members = await uow.members.get_many([c.member_id for c in checks])
    sendable: list[tuple[Any, Any]] = []
    skipped = 0
    for check in checks:
        member = members.get(check.member_id)
        if member is None or not member.last_name or not member.first_name or member.birth_date is None:
            skipped += 1
            await uow.checks.finish(check.check_id, status="failed", at=now,
                                    detail="name and birth date are needed for a 270 and are not on file")
            continue
        sendable.append((check, member))
    if not sendable:
        log.warning("no member of the batch could be asked about", extra={"mcp_code": mcp_code,
                                                                                "skipped_count": skipped})
        return None
    batch_id = new_id("eb")
    control = await uow.batches.next_control_number(mcp_code)
    settings = uow.settings
    partner = settings.partner(mcp_code)
    plan = plan_by_code(mcp_code) if known_plan(mcp_code) else None
    receiver_id = (partner.interchange_id or mcp_code.upper().replace("_", ""))[:15]
    inquiry = InquiryBatch(
        reference=batch_id, created=now.astimezone(PACIFIC),
        source=Entity(plan.name if plan else mcp_code, "PI", partner.payer_id or receiver_id),
        receiver=Entity(settings.hub_name, "XX", settings.hub_npi),
        originator_id=settings.trace_originator,
        subscribers=[SubscriberInquiry(trace=check.check_id, cin=member.cin, last_name=member.last_name,
                                       first_name=member.first_name, middle_name=member.middle_name,
                                       birth_date=member.birth_date, gender=member.gender,
                                       service_date=check.service_date) for check, member in sendable],
        max_per_transaction=partner.max_per_transaction or settings.max_per_transaction)
    text = build_270(_envelope_for(uow, mcp_code, control, now), inquiry, line_breaks=True)
    reference = uow.files.put(text.encode("ascii"), media_type="application/edi-x12")
    await uow.batches.add(batch_id=batch_id, batch_key=key, mcp_code=mcp_code, kind=kind, period=period,
                          members=len(sendable), skipped=skipped, interchange_control_number=f"{control:09d}",
                          file_uri=reference.uri, file_sha256=reference.sha256, file_size=reference.size,
                          created_at=now)
    for set_reference, members_in_set in transaction_sets(inquiry):
        await uow.checks.mark_sent([m.trace for m in members_in_set], batch_id, now, set_reference=set_reference)
    data = EligibilityBatchCreated(batch_id=batch_id, mcp_code=mcp_code, members=len(sendable), file=reference,
                                   created_at=now, period=period, batch_key=key,
                                   interchange_control_number=f"{control:09d}")
    event = (caused_by(parent, data, subject=batch_id, source=SOURCE, time=now) if parent is not None
             else new_event(data, subject=batch_id, source=SOURCE, time=now))
    uow.record(event)
    log.info("270 batch written", extra={"batch_id": batch_id, "mcp_code": mcp_code,
                                         "member_count": len(sendable), "skipped_count": skipped, "kind": kind})
    return BatchOutcome(batch_id, key, len(sendable), skipped, created=True, file=reference)


async def run_monthly_batch(uow: EligibilityUnitOfWork, mcp_code: str, run_at: datetime) -> BatchOutcome | None:
    """The monthly batch of an MCP for the period `run_at` falls in (idempotent per MCP and period)."""
    period = period_of(run_at)
    return await build_batch(uow, mcp_code, kind="monthly", key=batch_key(mcp_code, period), period=period,
                             run_on=run_at.astimezone(PACIFIC).date())


async def flush_checks(uow: EligibilityUnitOfWork, mcp_code: str, flush_id: str) -> BatchOutcome | None:
    """Send the queued real-time checks of an MCP in one 270."""
    return await build_batch(uow, mcp_code, kind="realtime", key=realtime_batch_key(mcp_code, flush_id),
                             period=None, run_on=uow.today())


# ------------------------------------------------------------------------------------------------- 271s


@dataclass
class ResponseSummary:
    """Counts of one applied 271 (no member data)."""

    subscribers: int = 0
    verified: int = 0
    changed: int = 0
    rejected: int = 0
    unmatched: int = 0


def answered_check(answer: Answer, checks: Mapping[str, Any], *, mcp_code: str, member_id: str | None,
                   ) -> Any | None:
    """The check a 271 member answer belongs to, or None: the answer is then an exception, attached to no check.

    The echoed trace (TRN01=2, TRN03 = the hub's originator id) names it when it is a check sent to this MCP about
    this member (any member when the answer names no CIN to compare). Another candidate trace (TRN03 rewritten,
    or the echo sent as TRN01=1) is accepted only for a check sent to this MCP about this very member.
    """
    def belongs(check: Any | None, *, echoed: bool) -> bool:
        if check is None or check.mcp_code != mcp_code:
            return False
        return echoed if member_id is None else check.member_id == member_id

    if answer.trace is not None and belongs(checks.get(answer.trace), echoed=True):
        return checks[answer.trace]
    return next((checks[t] for t in answer.other_traces if belongs(checks.get(t), echoed=False)), None)


def _unmatched(subscriber: SubscriberAnswer) -> dict[str, Any]:
    # Position and rule only, as for a refused file: never the trace or member id (PHI-adjacent values).
    return {"position": subscriber.position, "segment": "TRN", "rule": "trace_unmatched",
            "message": "no TRN of the member answer (TRN01=2, TRN03 = the hub's originator id) names a check "
                       "CalHub sent to this MCP about this member; applied to the member, attached to no check"}


def _cin_of(member_id_element: str) -> str | None:
    value = member_id_element.strip().upper()
    if cin_problem(value) is None:
        return value
    if bic_problem(value) is None:
        return cin_from_bic(value)  # the BIC card id carries the CIN in its first 9 characters
    return None


async def _reject_check(uow: EligibilityUnitOfWork, check: Any, rejection: Rejection, *,
                        cin: str | None, mcp_code: str, parent: Envelope[Any]) -> None:
    reading = rejected(rejection)
    now = uow.now()
    await uow.checks.finish(check.check_id, status="rejected", at=now, result="rejected",
                            reject_reason_code=reading.reason_code, detail=reading.reason)
    if reading.retry:
        await queue_check(uow, member_id=check.member_id, mcp_code=check.mcp_code, reason=check.reason,
                          service_date=check.service_date, referral_id=check.referral_id, job_id=check.job_id)
    data = EligibilityCheckRejected(check_id=check.check_id, cin=cin, mcp_code=mcp_code, loop=reading.loop,
                                    reject_reason_code=reading.reason_code, reason=reading.reason,
                                    follow_up_code=reading.follow_up_code, follow_up=reading.follow_up,
                                    retry=reading.retry, rejected_at=now, referral_id=check.referral_id)
    uow.record(_event(data, member_id=check.member_id, subject=check.member_id, parent=parent, at=now))


async def refuse_response(uow: EligibilityUnitOfWork, event: Envelope[Any], errors: list[dict[str, Any]],
                          reason: str) -> None:
    """Record a 271 that cannot be applied (nothing in it is) and announce it."""
    data = event.data
    now = uow.now()
    await uow.responses.add(file_id=data.file_id, sha256=data.file.sha256, mcp_code=data.mcp_code,
                            status="refused", subscribers=0, errors=errors[:200], processed_at=now)
    uow.record(caused_by(event, EligibilityResponseRefused(file_id=data.file_id, mcp_code=data.mcp_code,
                                                           reason=reason, errors=len(errors), refused_at=now),
                         subject=data.file_id, source=SOURCE, time=now))
    log.warning("271 refused", extra={"file_id": data.file_id, "mcp_code": data.mcp_code,
                                       "error_count": len(errors)})


async def apply_response(uow: EligibilityUnitOfWork, event: Envelope[Any]) -> ResponseSummary | None:
    """Apply a 271 the gateway received: all of it, or (malformed) none of it with the reasons recorded.

    Raises RetryableError while the file is not yet readable from the store, PermanentError for a corrupted one.
    """
    data = event.data
    if await uow.responses.seen(data.file_id, data.file.sha256):
        return None  # the same file again (or the same bytes under another id): applied once
    try:
        content = uow.files.get(data.file)
    except FileNotStored as exc:
        raise RetryableError("271 file not yet in the file store") from exc
    except FileCorrupted as exc:
        raise PermanentError("271 file bytes do not match their digest") from exc
    try:
        response = read_271(content.decode("utf-8"))
    except UnicodeDecodeError:
        await refuse_response(uow, event, [{"position": 0, "segment": "ISA", "rule": "encoding",
                                            "message": "the file is not UTF-8/ASCII text"}],
                              "the file is not X12 text")
        return None
    except X279Invalid as exc:
        errors = [issue.as_dict() for issue in exc.issues]
        await refuse_response(uow, event, errors, str(exc))
        return None
    return await _apply_answers(uow, event, response)


async def _apply_answers(uow: EligibilityUnitOfWork, event: Envelope[Any],
                         response: Response271) -> ResponseSummary:
    data = event.data
    mcp_code: str = data.mcp_code
    now = uow.now()
    as_of = data.received_at.astimezone(PACIFIC).date()
    originator_id = uow.settings.trace_originator
    summary = ResponseSummary()
    unmatched: list[dict[str, Any]] = []
    answers: list[tuple[Answer, SubscriberAnswer]] = []
    for transaction in response.transactions:
        for source in transaction.sources:
            # A rejection of the MCP or of the hub answers every member of this transaction set (BHT03 echoes the
            # set's reference), not those of the batch's other sets.
            set_rejections = list(source.rejections) + [r for rc in source.receivers for r in rc.rejections]
            if set_rejections:
                for sent in await uow.checks.sent_in_set(transaction.reference):
                    member = await uow.members.get(sent.member_id)
                    await _reject_check(uow, sent, set_rejections[0], cin=member.cin if member else None,
                                        mcp_code=mcp_code, parent=event)
                    summary.rejected += 1
            for receiver in source.receivers:
                for subscriber in receiver.subscribers:
                    answer = interpret(subscriber, mcp_code=mcp_code, originator_id=originator_id,
                                       as_of=as_of, observed_at=now, plan_of=plan_for)
                    answers.append((answer, subscriber))
                    summary.subscribers += 1
    checks = await uow.checks.get_many([t for a, _ in answers for t in (a.trace, *a.other_traces) if t])
    cins = [c for c in (_cin_of(a.cin) for a, _ in answers) if c is not None]
    known = await uow.members.find_many_by_cin(cins)
    member_ids = [known[c].member_id if c in known else member_id_for(c) for c in cins]
    states = await uow.members.load_states(member_ids)
    for answer, subscriber in answers:
        cin = _cin_of(answer.cin)
        member_id = (known[cin].member_id if cin in known else member_id_for(cin)) if cin is not None else None
        check = answered_check(answer, checks, mcp_code=mcp_code, member_id=member_id)
        if check is None:
            unmatched.append(_unmatched(subscriber))
        if cin is None or member_id is None:
            summary.rejected += 1
            if check is not None:
                await uow.checks.finish(check.check_id, status="rejected", at=now, result="rejected",
                                        detail="the plan answered with a member id that is not a CIN")
            continue
        if cin not in known:
            await uow.members.ensure(member_id, cin, now, last_name=subscriber.last_name or None,
                                     first_name=subscriber.first_name or None, birth_date=subscriber.birth_date,
                                     gender=_gender(subscriber.gender))
        if answer.rejected is not None:
            summary.rejected += 1
            if check is not None:
                rejection = (list(subscriber.rejections) + [r for b in subscriber.benefits for r in b.rejections])[0]
                await _reject_check(uow, check, rejection, cin=cin, mcp_code=mcp_code, parent=event)
            continue
        before = states.get(member_id, MemberState())
        after, changes = fold(before, answer.observations)
        states[member_id] = after
        await uow.members.save_state(member_id, before, after, now)
        referral_id = check.referral_id if check is not None else None
        has_verified = any(c.kind is ChangeKind.VERIFIED for c in changes)
        events = change_events(changes, cin=cin, member_id=member_id, state=after, source=Source.X12_271,
                               as_of=as_of, at=now, parent=event, referral_id=referral_id)
        if referral_id and not has_verified and after.status is Status.ENROLLED:
            # The referral asked "which plan": answer it even when nothing changed.
            span = after.span_on(as_of)
            events.append(_event(EligibilityVerified(
                cin=cin, mcp_code=after.mcp_code, source=EligibilitySource.X12_271, as_of=as_of,
                verified_at=now, span_start=span.start if span else None, span_end=span.end if span else None,
                referral_id=referral_id), member_id=member_id, subject=member_id, parent=event, at=now))
        uow.record(*events)
        summary.verified += 1
        summary.changed += len(changes)
        if check is not None:
            await uow.checks.finish(check.check_id, status="answered", at=now,
                                    result=after.status.value if after.status is not Status.UNKNOWN else None,
                                    result_mcp_code=after.mcp_code if after.status is Status.ENROLLED else None)
    await uow.responses.add(file_id=data.file_id, sha256=data.file.sha256, mcp_code=mcp_code, status="processed",
                            subscribers=summary.subscribers, errors=unmatched[:200], processed_at=now)
    summary.unmatched = len(unmatched)
    uow.record(caused_by(event, EligibilityResponseProcessed(
        file_id=data.file_id, mcp_code=mcp_code, subscribers=summary.subscribers, verified=summary.verified,
        changed=summary.changed, rejected=summary.rejected, processed_at=now, unmatched=summary.unmatched),
        subject=data.file_id, source=SOURCE, time=now))
    log.info("271 applied", extra={"file_id": data.file_id, "mcp_code": mcp_code,
                                   "answer_count": summary.subscribers, "change_count": summary.changed,
                                   "rejected_count": summary.rejected, "unmatched_count": summary.unmatched})
    if unmatched:
        log.warning("271 answers matched no check of CalHub", extra={"file_id": data.file_id, "mcp_code": mcp_code,
                                                                      "unmatched_count": summary.unmatched})
    return summary


# -------------------------------------------------------------------------------------------- referrals


async def answer_referral(uow: EligibilityUnitOfWork, event: Envelope[Any]) -> None:
    """Tell referrals the member's plan when it is known; otherwise queue a real-time 270 to the likely MCPs."""
    referral = event.data
    member_id = await register_member(uow, referral.member)
    state = (await uow.members.load_states([member_id]))[member_id]
    today = uow.today()
    span = state.span_on(today)
    if state.status is Status.ENROLLED and span is not None:
        uow.record(_event(EligibilityVerified(
            cin=referral.member.cin, mcp_code=span.mcp_code,
            source=EligibilitySource((state.source or Source.MANUAL).value), as_of=state.as_of or today,
            verified_at=state.verified_at or uow.now(), span_start=span.start, span_end=span.end,
            referral_id=referral.referral_id), member_id=member_id, subject=member_id, parent=event,
            at=uow.now()))
        return
    candidates = [known_plan(referral.mcp_code)] if known_plan(referral.mcp_code) else []
    if not candidates:
        try:
            candidates = [p.code for p in plans_in_county(referral.county, today)]
        except ValueError:
            candidates = []
    for mcp_code in candidates:
        if mcp_code is not None:
            await queue_check(uow, member_id=member_id, mcp_code=mcp_code, reason="referral", service_date=today,
                              referral_id=referral.referral_id)
    if not candidates:
        log.warning("referral names no plan and its county has none on file",
                    extra={"referral_id": referral.referral_id})


# ------------------------------------------------------------------------------------- authorizations


async def track_authorization(uow: EligibilityUnitOfWork, event: Envelope[Any], status: str) -> None:
    """Keep the projection of authorizations that decides who is re-checked each month."""
    data = event.data
    values: dict[str, Any] = {"mcp_code": data.mcp_code, "status": status,
                              "cbo_organization_id": getattr(data, "cbo_organization_id", None),
                              "member_id": event.member_id}
    service = getattr(data, "service", None)
    if service is not None:
        values["program"] = service.program.value
    member = getattr(data, "member", None)
    if member is not None:
        values["member_id"] = await register_member(uow, member)
    existing = await uow.authorizations.get(data.authorization_id)
    if hasattr(data, "period_start") and period_supersedes(
            data.decided_at, aware(existing.decided_at) if existing is not None else None):
        # Approved twice (approved, then approved as modified): the newest decision's period stands.
        values["period_start"], values["period_end"] = data.period_start, data.period_end
        values["decided_at"] = data.decided_at
    if existing is None and "program" not in values:
        values["program"] = "ecm"  # expired/closed before we saw it: the program is unknown and irrelevant
    # A late or replayed event never moves the authorization back (a late `requested` after the approval, a
    # late approval after the end); its other facts (period, member) are still kept.
    status = values["status"] = tracked_status(existing.status if existing is not None else None, status)
    await uow.authorizations.upsert(data.authorization_id, uow.now(), **values)
    if status == "active":
        await ensure_monthly_timer(uow, data.mcp_code)


# ------------------------------------------------------------------------------------------- answers


def _iso(value: date | datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


async def eligibility_on(uow: EligibilityUnitOfWork, cin: str, on: date, cs_code: str | None = None,
                         ) -> tuple[Any, dict[str, Any]]:
    """The member row and the answer for a date: enrollment, source, age, programs and the rule engine's
    verdicts. Raises MemberNotFound."""
    member = await uow.members.find_by_cin(cin)
    if member is None:
        raise MemberNotFound(cin)
    state = (await uow.members.load_states([member.member_id]))[member.member_id]
    services = await uow.authorizations.services_for(member.member_id)
    now = uow.now()
    span = state.span_on(on)
    verdicts = {}
    rules = with_recheck_interval(uow.settings.recheck_interval_days)
    programs: list[tuple[Program, str | None]] = [(Program.ECM, None), (Program.CHW, None)]
    if cs_code:
        programs.append((Program.CS, cs_code))
    for program, code in programs:
        verdict = evaluate(state, program, on, services=services, cs_code=code, now=now, rules=rules)
        verdicts[program.value] = {
            "allowed": verdict.allowed,
            "reasons": [{"rule": f.rule, "code": f.code, "message": f.message, "marker": f.marker.value,
                         "program": f.program} for f in verdict.reasons],
            "warnings": [{"rule": f.rule, "code": f.code, "message": f.message, "marker": f.marker.value}
                         for f in verdict.warnings],
        }
        if code:
            verdicts[program.value]["cs_code"] = code
    verified_at = state.verified_at
    answer = {
        "member_id": member.member_id,
        "cin": member.cin,
        "date": on.isoformat(),
        "status": ("enrolled" if span is not None else
                   "unknown" if state.status is Status.UNKNOWN and not state.spans else "not_enrolled"),
        "mcp_code": span.mcp_code if span else None,
        "span": {"start": _iso(span.start), "end": _iso(span.end), "source": span.source.value} if span else None,
        "source": state.source.value if state.source else None,
        "verified_at": _iso(verified_at),
        "age_days": (now - verified_at).days if verified_at else None,
        "as_of": _iso(state.as_of),
        "programs": sorted(state.programs_on(on)),
        "eligibility": verdicts,
        "spans": [{"mcp_code": s.mcp_code, "start": _iso(s.start), "end": _iso(s.end), "source": s.source.value}
                  for s in state.spans],
    }
    return member, answer


async def record_manual(uow: EligibilityUnitOfWork, *, cin: str, observation: Observation,
                        demographics: dict[str, Any]) -> Applied:
    """Apply a fact entered by hand (hub staff or an MCP for its own members)."""
    member = await uow.members.find_by_cin(cin)
    member_id = member.member_id if member is not None else member_id_for(cin)
    canonical_cin = member.cin if member is not None else cin
    await uow.members.ensure(member_id, canonical_cin, uow.now(), **demographics)
    return await record_facts(uow, member_id=member_id, cin=canonical_cin, observations=[observation],
                              parent=None)


def program_observation(program_code: str, start: date, end: date | None, now: datetime) -> Observation:
    """A fact that only records a program flag (no enrollment conclusion)."""
    return Observation(True, None, start, Source.MANUAL, now, programs=(ProgramFlag(program_code, start, end),))


async def create_job(uow: EligibilityUnitOfWork, organization_id: str, items: Sequence[dict[str, Any]],
                     max_age_days: int | None) -> tuple[str, list[dict[str, Any]]]:
    """Queue checks for a list of members; items already fresh enough are answered from the registry.

    Each item: cin, optional mcp_code, last_name, first_name, birth_date, service_date. Returns the job id and
    the item rows written.
    """
    job_id = new_id("job")
    now = uow.now()
    today = uow.today()
    rows: list[dict[str, Any]] = []
    for position, item in enumerate(items):
        cin = item["cin"]
        member = await uow.members.find_by_cin(cin)
        member_id = member.member_id if member is not None else member_id_for(cin)
        await uow.members.ensure(member_id, member.cin if member is not None else cin, now,
                                 last_name=item.get("last_name"), first_name=item.get("first_name"),
                                 birth_date=item.get("birth_date"))
        state = (await uow.members.load_states([member_id]))[member_id]
        row: dict[str, Any] = {"job_id": job_id, "position": position, "member_id": member_id, "check_id": None,
                               "status": "pending", "detail": None}
        if max_age_days is not None and state.verified_at is not None and \
                now - state.verified_at <= timedelta(days=max_age_days):
            row.update(status="completed", detail="answered from verified data on file")
            rows.append(row)
            continue
        mcp_code = item.get("mcp_code") or (state.mcp_code if state.status is Status.ENROLLED else None)
        refreshed = await uow.members.get(member_id)
        if mcp_code is None:
            row.update(status="failed", detail="the member's plan is unknown: give mcp_code")
        elif refreshed is None or not refreshed.last_name or not refreshed.first_name or refreshed.birth_date is None:
            row.update(status="failed", detail="name and birth date are needed for a 270 and are not on file")
        else:
            row["check_id"] = await queue_check(uow, member_id=member_id, mcp_code=mcp_code, reason="job",
                                                service_date=item.get("service_date") or today, job_id=job_id)
        rows.append(row)
    await uow.checks.add_job(job_id, organization_id, len(items), now)
    await uow.checks.add_job_items(rows)
    return job_id, rows


async def job_view(uow: EligibilityUnitOfWork, job_id: str, organization_id: str, is_hub: bool) -> dict[str, Any]:
    """A job's progress and results. Raises JobNotFound (also for another organization's job)."""
    job = await uow.checks.job(job_id)
    if job is None or (not is_hub and job.organization_id != organization_id):
        raise JobNotFound(job_id)
    items = await uow.checks.job_items(job_id)
    checks = await uow.checks.get_many([i.check_id for i in items if i.check_id])
    members = await uow.members.get_many([i.member_id for i in items if i.member_id])
    states = await uow.members.load_states([i.member_id for i in items if i.member_id])
    out: list[dict[str, Any]] = []
    counts = {"pending": 0, "completed": 0, "failed": 0}
    for item in items:
        member = members.get(item.member_id)
        state = states.get(item.member_id, MemberState())
        status, detail, result = item.status, item.detail, None
        check = checks.get(item.check_id) if item.check_id else None
        if check is not None:
            if check.status == "answered":
                status = "completed"
            elif check.status in ("rejected", "failed"):
                status, detail = "failed", check.detail
            else:
                status, detail = "pending", f"check {check.status}"
        if status == "completed":
            span = state.span_on(check.service_date if check is not None else uow.today())
            result = {"status": "enrolled" if span else state.status.value,
                      "mcp_code": span.mcp_code if span else None,
                      "source": state.source.value if state.source else None,
                      "verified_at": _iso(aware(state.verified_at))}
        counts[status] += 1
        out.append({"position": item.position, "cin": member.cin if member else None, "status": status,
                    "check_id": item.check_id, "detail": detail, "result": result})
    return {"job_id": job.job_id, "created_at": _iso(aware(job.created_at)), "total": job.total, **counts,
            "status": "running" if counts["pending"] else "completed", "items": out}
