"""HTTP routes of the authorizations service: validate, call service.py, map domain errors to problem+json."""

from __future__ import annotations

import statistics
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from authorizations.domain.periods import PeriodError
from authorizations.domain.status import OPEN, AuthorizationStatus, DecisionKind, TransitionRefused
from authorizations.models import Authorization, AuthorizationHistory, CareTeamTask, MifRowOutcome
from authorizations.repository import (
    SWEEPABLE,
    AuthorizationFilter,
    AuthorizationsUnitOfWork,
    aware,
    decode_cursor,
    encode_cursor,
)
from authorizations.service import (
    DecisionInput,
    complete_task,
    now_of,
    pacific_date,
    record_decision,
    request_reauthorization,
)
from shared.app import runtime_of
from shared.auth import Caller, Tenant, record_audit, require_scopes
from shared.contracts.values import MemberDemographics
from shared.db import read_one_snapshot
from shared.idempotency import IdempotencyKey, hash_request, idempotent
from shared.identity import member_id_for
from shared.problems import FieldError, Problem, problem_responses, validation_problem
from shared.reference.calendar import PACIFIC
from shared.reference.identifiers import cin_problem

router = APIRouter(tags=["authorizations"])

Reader = Annotated[Caller, Depends(require_scopes("authorizations:read"))]
Writer = Annotated[Caller, Depends(require_scopes("authorizations:write"))]
AuthorizationId = Annotated[str, Path(min_length=1, max_length=40, pattern=r"^auth_[0-9a-f]{32}$")]


async def unit_of_work(request: Request) -> AsyncIterator[AuthorizationsUnitOfWork]:
    """A unit of work of the authorizations runtime for one request (the route commits)."""
    async with runtime_of(request, "authorizations").uow() as uow:
        assert isinstance(uow, AuthorizationsUnitOfWork)
        yield uow


Uow = Annotated[AuthorizationsUnitOfWork, Depends(unit_of_work)]


# ------------------------------------------------------------------------------------------- schemas

class HistoryEntry(BaseModel):
    """One change of an authorization."""

    occurred_at: datetime
    action: str
    status: str
    actor: str
    detail: dict[str, Any]


class AuthorizationSummary(BaseModel):
    """An authorization without member demographics."""

    id: str
    referral_id: str | None
    member_id: str
    mcp_code: str
    cbo_organization_id: str | None
    program: str
    service_key: str
    service: dict[str, Any]
    urgency: str
    requested_urgency: str
    expedited_by_rule: bool
    origin: str
    previous_authorization_id: str | None
    status: str
    requested_at: datetime
    decision_due: datetime | None
    calendar: str
    deadline_basis: str
    clock_stopped: bool
    overdue: bool
    decision: str | None
    decided_at: datetime | None
    decided_within_deadline: bool | None
    mcp_authorization_number: str | None
    period_start: date | None
    period_end: date | None
    presumptive: bool
    review_flags: list[str]
    assigned_provider_npi: str | None
    reason: str | None
    expiring_raised_at: datetime | None
    reauthorization: str | None


class AuthorizationDetail(AuthorizationSummary):
    """An authorization with the member it is for and its full history."""

    member: MemberDemographics
    history: list[HistoryEntry]


class AuthorizationPage(BaseModel):
    """A page of authorizations; pass `next_cursor` as `cursor` for the next one."""

    items: list[AuthorizationSummary]
    next_cursor: str | None


class DecisionBody(BaseModel):
    """An MCP decision on a request."""

    model_config = ConfigDict(extra="forbid")

    decision: DecisionKind
    mcp_authorization_number: str | None = Field(default=None, min_length=1, max_length=100)
    period_start: date | None = None
    period_end: date | None = None
    reason: str | None = Field(default=None, min_length=1, max_length=500,
                               description="Required for denied and pended; no member data.")


class TaskOut(BaseModel):
    """A care-team task."""

    id: str
    authorization_id: str
    member_id: str
    mcp_code: str
    cbo_organization_id: str | None
    kind: str
    reason: str
    status: str
    due_on: date
    created_at: datetime
    completed_at: datetime | None
    outcome: str | None


class TaskPage(BaseModel):
    items: list[TaskOut]
    next_after: str | None


class TaskCompletion(BaseModel):
    model_config = ConfigDict(extra="forbid")

    outcome: Literal["reauthorization_requested", "not_reauthorized"]


class MifExceptionOut(BaseModel):
    """A Member Information File row that needs a person."""

    id: str
    file_id: str
    row_number: int
    mcp_code: str
    member_id: str
    reason: str | None
    authorization_id: str | None
    ecm_status: str | None
    mcp_authorization_id: str | None
    created_at: datetime
    resolved_at: datetime | None
    resolution: str | None


class MifExceptionPage(BaseModel):
    items: list[MifExceptionOut]
    next_after: str | None


class Resolution(BaseModel):
    model_config = ConfigDict(extra="forbid")

    resolution: str = Field(min_length=1, max_length=500, description="What was done; no member data.")


class McpSla(BaseModel):
    """One MCP's decision performance."""

    mcp_code: str
    decided: int
    median_decision_hours: float | None
    decided_within_deadline_share: float | None
    open_overdue: int
    expiring_next_30_days: int


class SlaReport(BaseModel):
    period_from: date
    period_to: date
    generated_at: datetime
    mcps: list[McpSla]


# ----------------------------------------------------------------------------------------- mapping

def _summary_fields(auth: Authorization, now: datetime) -> dict[str, Any]:
    due = aware(auth.decision_due)
    awaiting = auth.status in {s.value for s in OPEN} or auth.decision == "presumptive"
    return {
        "id": auth.id, "referral_id": auth.referral_id, "member_id": auth.member_id, "mcp_code": auth.mcp_code,
        "cbo_organization_id": auth.cbo_organization_id, "program": auth.program, "service_key": auth.service_key,
        "service": auth.service, "urgency": auth.urgency, "requested_urgency": auth.requested_urgency,
        "expedited_by_rule": auth.expedited_by_rule, "origin": auth.origin,
        "previous_authorization_id": auth.previous_authorization_id, "status": auth.status,
        "requested_at": aware(auth.requested_at), "decision_due": due, "calendar": auth.calendar,
        "deadline_basis": auth.deadline_basis, "clock_stopped": auth.clock_stopped,
        "overdue": bool(awaiting and due is not None and now > due), "decision": auth.decision,
        "decided_at": aware(auth.decided_at), "decided_within_deadline": auth.decided_within_deadline,
        "mcp_authorization_number": auth.mcp_authorization_number, "period_start": auth.period_start,
        "period_end": auth.period_end, "presumptive": auth.presumptive, "review_flags": list(auth.review_flags),
        "assigned_provider_npi": auth.assigned_provider_npi, "reason": auth.reason,
        "expiring_raised_at": aware(auth.expiring_raised_at), "reauthorization": auth.reauthorization,
    }


def summary(auth: Authorization, now: datetime) -> AuthorizationSummary:
    """The API view of an authorization without demographics."""
    return AuthorizationSummary(**_summary_fields(auth, now))


def detail(auth: Authorization, entries: list[AuthorizationHistory], now: datetime) -> AuthorizationDetail:
    """The API view with member and history."""
    return AuthorizationDetail(
        **_summary_fields(auth, now), member=MemberDemographics.model_validate(auth.member),
        history=[HistoryEntry(occurred_at=aware(h.occurred_at), action=h.action, status=h.status,
                              actor=h.actor, detail=h.detail) for h in entries])


def _task(task: CareTeamTask) -> TaskOut:
    return TaskOut(id=task.id, authorization_id=task.authorization_id, member_id=task.member_id,
                   mcp_code=task.mcp_code, cbo_organization_id=task.cbo_organization_id, kind=task.kind,
                   reason=task.reason, status=task.status, due_on=task.due_on,
                   created_at=aware(task.created_at),
                   completed_at=aware(task.completed_at), outcome=task.outcome)


def _exception(row: MifRowOutcome) -> MifExceptionOut:
    return MifExceptionOut(id=row.id, file_id=row.file_id, row_number=row.row_number, mcp_code=row.mcp_code,
                           member_id=row.member_id, reason=row.reason, authorization_id=row.authorization_id,
                           ecm_status=row.ecm_status, mcp_authorization_id=row.mcp_authorization_id,
                           created_at=aware(row.created_at),
                           resolved_at=aware(row.resolved_at), resolution=row.resolution)


def _not_found() -> Problem:
    return Problem(404, "authorization-not-found", "Authorization not found")


def _refused(exc: TransitionRefused) -> Problem:
    return Problem(409, "authorization-state-conflict", "The authorization's state does not allow this",
                   str(exc), rule=exc.rule)


async def _visible(uow: AuthorizationsUnitOfWork, scope: Tenant, authorization_id: str, *,
                   for_update: bool = False) -> Authorization:
    auth = await uow.authorizations.get(authorization_id, for_update=for_update)
    if auth is None:
        raise _not_found()
    scope.require(cbo_id=auth.cbo_organization_id, mcp_code=auth.mcp_code, resource="authorization")
    return auth


# ------------------------------------------------------------------------------------------- routes

@router.get("/v1/authorizations", response_model=AuthorizationPage, summary="Search authorizations",
            responses=problem_responses(401, 403, 422))
async def list_authorizations(
    caller: Reader, scope: Tenant, uow: Uow,
    member_id: Annotated[str | None, Query(max_length=40, pattern=r"^mbr_[0-9a-f]{24}$")] = None,
    cin: Annotated[str | None, Query(description="The member's CIN; hashed to the member id, never stored "
                                                 "or logged.")] = None,
    mcp_code: Annotated[str | None, Query(max_length=50)] = None,
    cbo_organization_id: Annotated[str | None, Query(max_length=64)] = None,
    status: Annotated[list[AuthorizationStatus] | None, Query()] = None,
    expiring_within_days: Annotated[int | None, Query(ge=0, le=366)] = None,
    overdue: Annotated[bool | None, Query(description="Only requests past their decision deadline.")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> AuthorizationPage:
    """Authorizations the caller may see, newest request first, filtered."""
    errors: list[FieldError] = []
    if cin is not None:
        problem = cin_problem(cin)
        if problem:
            errors.append(FieldError(field="query.cin", rule="cin", message=problem))
        elif member_id is not None and member_id != member_id_for(cin):
            errors.append(FieldError(field="query.cin", rule="conflicts_with_member_id",
                                     message="cin and member_id name different members"))
    position = None
    if cursor is not None:
        try:
            position = decode_cursor(cursor)
            datetime.fromisoformat(str(position[0]))
        except (ValueError, IndexError):
            errors.append(FieldError(field="query.cursor", rule="cursor", message="Not a cursor from this API."))
    if errors:
        raise validation_problem(errors)
    now = now_of(uow)
    today = pacific_date(now)
    flt = AuthorizationFilter(
        member_id=member_id or (member_id_for(cin) if cin else None), mcp_code=mcp_code,
        cbo_organization_id=cbo_organization_id, statuses=tuple(s.value for s in status or ()),
        expiring_by=today + timedelta(days=expiring_within_days) if expiring_within_days is not None else None,
        today=today, overdue_at=now if overdue else None)
    rows = await uow.authorizations.search(scope, flt, limit=limit + 1, cursor=position)
    items = [summary(a, now) for a in rows[:limit]]
    if overdue is False:
        items = [i for i in items if not i.overdue]
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        next_cursor = encode_cursor(aware(last.requested_at).isoformat(), last.id)  # type: ignore[union-attr]
    return AuthorizationPage(items=items, next_cursor=next_cursor)


@router.get("/v1/authorizations/{authorization_id}", response_model=AuthorizationDetail,
            summary="One authorization with member and full history", responses=problem_responses(401, 403, 404))
async def get_authorization(authorization_id: AuthorizationId, caller: Reader, scope: Tenant,
                            uow: Uow) -> AuthorizationDetail:
    """An authorization, the member it is for (PHI: the read is audited) and its history."""
    await read_one_snapshot(uow.session)  # the row and its history as of one moment
    auth = await _visible(uow, scope, authorization_id)
    entries = await uow.authorizations.history(auth.id)
    await record_audit(uow.session, uow.audit, action="authorization.read", resource_type="authorization",
                       resource_id=auth.id, caller=caller, occurred_at=datetime.now(UTC))
    await uow.commit()
    return detail(auth, entries, now_of(uow))


def _decision_input(body: DecisionBody) -> DecisionInput:
    errors: list[FieldError] = []
    if body.decision in (DecisionKind.DENIED, DecisionKind.PENDED) and not body.reason:
        errors.append(FieldError(field="reason", rule="required",
                                 message=f"A {body.decision.value} decision needs a reason."))
    if body.decision in (DecisionKind.DENIED, DecisionKind.PENDED):
        # One error per period field actually sent, so the caller is told which one to drop.
        sent = [name for name, value in (("period_start", body.period_start), ("period_end", body.period_end))
                if value is not None]
        errors.extend(FieldError(field=name, rule="not_allowed",
                                 message=f"A {body.decision.value} decision has no period.") for name in sent)
    if body.period_start and body.period_end and body.period_end < body.period_start:
        errors.append(FieldError(field="period_end", rule="not_before_start",
                                 message="The period end is before its start."))
    if errors:
        raise validation_problem(errors)
    return DecisionInput(kind=body.decision, mcp_authorization_number=body.mcp_authorization_number,
                         period_start=body.period_start, period_end=body.period_end, reason=body.reason)


@router.post("/v1/authorizations/{authorization_id}/decision", response_model=AuthorizationSummary,
             summary="Record the MCP's decision", responses=problem_responses(401, 403, 404, 409, 422))
async def post_decision(authorization_id: AuthorizationId, body: DecisionBody, request: Request, caller: Writer,
                        scope: Tenant, uow: Uow, key: IdempotencyKey) -> Response:
    """Approved (with period and MCP authorization number), approved as modified, denied with a reason, or
    pended for information (the clock stops only where the MCP's terms allow an extension)."""
    if caller.organization_kind == "cbo":
        raise Problem(403, "forbidden", "Only the MCP or the hub records an MCP decision")
    decision = _decision_input(body)

    async def produce() -> tuple[int, Any]:
        auth = await _visible(uow, scope, authorization_id, for_update=True)
        try:
            await record_decision(uow, auth, decision, actor=caller.organization_id, parent=None)
        except TransitionRefused as exc:
            raise _refused(exc) from exc
        except PeriodError as exc:
            raise validation_problem([FieldError(field=exc.field, rule=exc.rule, message=str(exc))]) from exc
        await record_audit(uow.session, uow.audit, action="authorization.decision_recorded",
                           resource_type="authorization", resource_id=auth.id, caller=caller,
                           detail={"decision": decision.kind.value})
        await uow.flush()
        return 200, summary(auth, now_of(uow)).model_dump(mode="json")

    result = await idempotent(uow.session, uow.tables, caller, key, await hash_request(request), produce)
    await uow.commit()
    return result.to_response()


@router.post("/v1/authorizations/{authorization_id}/reauthorization", status_code=201,
             summary="Ask the MCP to reauthorize (the care team's decision)",
             responses=problem_responses(401, 403, 404, 409))
async def post_reauthorization(authorization_id: AuthorizationId, request: Request, caller: Writer,
                               scope: Tenant, uow: Uow, key: IdempotencyKey) -> Response:
    """Open a reauthorization request for an approved or expired authorization not already followed by one."""

    async def produce() -> tuple[int, Any]:
        auth = await _visible(uow, scope, authorization_id, for_update=True)
        try:
            new_id = await request_reauthorization(uow, auth, actor=caller.organization_id)
        except TransitionRefused as exc:
            raise _refused(exc) from exc
        await uow.flush()
        return 201, {"authorization_id": auth.id, "new_authorization_id": new_id}

    result = await idempotent(uow.session, uow.tables, caller, key, await hash_request(request), produce)
    await uow.commit()
    return result.to_response()


@router.get("/v1/authorization-tasks", response_model=TaskPage, summary="Care-team tasks",
            responses=problem_responses(401, 403, 422))
async def list_tasks(caller: Reader, scope: Tenant, uow: Uow,
                     status: Annotated[Literal["open", "done"] | None, Query()] = "open",
                     authorization_id: Annotated[str | None, Query(max_length=40)] = None,
                     limit: Annotated[int, Query(ge=1, le=200)] = 50,
                     after: Annotated[str | None, Query(max_length=40)] = None) -> TaskPage:
    """Tasks the caller may see (a CBO its own), oldest first; `next_after` pages on."""
    rows = await uow.tasks.search(scope, status=status, authorization_id=authorization_id, limit=limit + 1,
                                  after=after)
    return TaskPage(items=[_task(t) for t in rows[:limit]],
                    next_after=rows[limit - 1].id if len(rows) > limit else None)


@router.post("/v1/authorization-tasks/{task_id}/complete", summary="Close a care-team task",
             responses=problem_responses(401, 403, 404, 409, 422))
async def post_task_completion(task_id: Annotated[str, Path(max_length=40)], body: TaskCompletion, caller: Writer,
                               scope: Tenant, uow: Uow) -> dict[str, Any]:
    """Done: either the reauthorization is requested now, or the member is not reauthorized."""
    task = await uow.tasks.get(task_id)
    if task is None:
        raise Problem(404, "task-not-found", "Task not found")
    scope.require(cbo_id=task.cbo_organization_id, mcp_code=task.mcp_code, resource="task")
    try:
        new_id = await complete_task(uow, task_id, outcome=body.outcome, actor=caller.organization_id)
    except TransitionRefused as exc:
        raise _refused(exc) from exc
    await uow.commit()
    return {"task_id": task_id, "outcome": body.outcome, "new_authorization_id": new_id}


@router.get("/v1/authorization-exceptions", response_model=MifExceptionPage,
            summary="Member Information File rows kept for a person", responses=problem_responses(401, 403, 422))
async def list_exceptions(caller: Reader, scope: Tenant, uow: Uow,
                          open_only: Annotated[bool, Query(alias="open")] = True,
                          mcp_code: Annotated[str | None, Query(max_length=50)] = None,
                          limit: Annotated[int, Query(ge=1, le=200)] = 50,
                          after: Annotated[str | None, Query(max_length=40)] = None) -> MifExceptionPage:
    """Exceptions, oldest first (the hub sees all, an MCP its own, a CBO none)."""
    rows = await uow.mif.exceptions(scope, open_only=open_only, mcp_code=mcp_code, limit=limit + 1, after=after)
    return MifExceptionPage(items=[_exception(r) for r in rows[:limit]],
                            next_after=rows[limit - 1].id if len(rows) > limit else None)


@router.post("/v1/authorization-exceptions/{exception_id}/resolve", response_model=MifExceptionOut,
             summary="Mark a MIF exception resolved", responses=problem_responses(401, 403, 404, 409, 422))
async def resolve_exception(exception_id: Annotated[str, Path(max_length=40)], body: Resolution, caller: Writer,
                            scope: Tenant, uow: Uow) -> MifExceptionOut:
    """Record what was done about an exception (the hub or the MCP)."""
    row = await uow.mif.get(exception_id, for_update=True)
    if row is None or row.outcome != "exception" or caller.organization_kind == "cbo":
        raise Problem(404, "exception-not-found", "Exception not found")
    scope.require(mcp_code=row.mcp_code, resource="exception")
    if row.resolved_at is not None:
        raise Problem(409, "exception-resolved", "The exception is already resolved")
    row.resolved_at, row.resolved_by, row.resolution = now_of(uow), caller.organization_id, body.resolution
    await uow.commit()
    return _exception(row)


@router.get("/v1/reports/authorization-sla", response_model=SlaReport, summary="Decision SLA per MCP",
            responses=problem_responses(401, 403, 422))
async def sla_report(caller: Reader, scope: Tenant, uow: Uow,
                     period_from: Annotated[date | None, Query(alias="from")] = None,
                     period_to: Annotated[date | None, Query(alias="to")] = None,
                     mcp_code: Annotated[str | None, Query(max_length=50)] = None) -> SlaReport:
    """Per MCP: median decision time, share decided within the deadline (decisions on requests made in the period,
    Pacific dates, default the last 90 days; MCP assignments are not counted), requests open past their deadline
    and approvals ending in 30 days."""
    now = now_of(uow)
    today = pacific_date(now)
    end = period_to or today
    start = period_from or end - timedelta(days=89)
    if end < start:
        raise validation_problem([FieldError(field="query.to", rule="not_before_from",
                                             message="`to` is before `from`.")])
    decided = await uow.authorizations.decided_between(
        scope, datetime.combine(start, time(0), tzinfo=PACIFIC),
        datetime.combine(end + timedelta(days=1), time(0), tzinfo=PACIFIC), mcp_code)
    hours: dict[str, list[float]] = {}
    within: dict[str, list[bool]] = {}
    for mcp, requested_at, decided_at, in_time in decided:
        hours.setdefault(mcp, []).append((decided_at - requested_at).total_seconds() / 3600)
        if in_time is not None:
            within.setdefault(mcp, []).append(in_time)
    awaiting = (Authorization.status.in_([s.value for s in OPEN])) | (Authorization.decision == "presumptive")
    extra = [Authorization.mcp_code == mcp_code] if mcp_code else []
    overdue = await uow.authorizations.count_by_mcp(scope, awaiting, Authorization.decision_due < now, *extra)
    expiring = await uow.authorizations.count_by_mcp(
        scope, Authorization.status.in_(SWEEPABLE), Authorization.period_end >= today,
        Authorization.period_end <= today + timedelta(days=30), *extra)
    mcps = sorted(set(hours) | set(overdue) | set(expiring))
    return SlaReport(period_from=start, period_to=end, generated_at=now, mcps=[
        McpSla(mcp_code=m, decided=len(hours.get(m, [])),
               median_decision_hours=round(statistics.median(hours[m]), 2) if hours.get(m) else None,
               decided_within_deadline_share=(round(sum(within[m]) / len(within[m]), 4) if within.get(m) else None),
               open_overdue=overdue.get(m, 0), expiring_next_30_days=expiring.get(m, 0)) for m in mcps])
