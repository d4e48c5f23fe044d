"""HTTP routes of the eligibility service: validate, call service.py, map domain errors to problem+json."""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator

from eligibility import models, service
from eligibility.domain.enrollment import Observation, Source
from eligibility.domain.schedule import PACIFIC, parse_period, period_of
from eligibility.repository import EligibilityUnitOfWork, pending_timers
from shared.app import runtime_of
from shared.auth import Caller, Tenant, record_audit, require_scopes
from shared.idempotency import IdempotencyKey, hash_request, idempotent
from shared.problems import FieldError, Problem, problem_responses, validation_problem
from shared.reference.exclusions import program_codes

router = APIRouter(tags=["eligibility"])

CIN_PATTERN = r"^[0-9]{8}[A-Z]$"
Reader = Annotated[Caller, Depends(require_scopes("eligibility:read"))]
Writer = Annotated[Caller, Depends(require_scopes("eligibility:write"))]
CinPath = Annotated[str, Path(pattern=CIN_PATTERN, description="The member's Medi-Cal CIN.")]


def _uow(request: Request) -> EligibilityUnitOfWork:
    uow = runtime_of(request, "eligibility").uow()
    assert isinstance(uow, EligibilityUnitOfWork)
    return uow


def _member_not_found() -> Problem:
    return Problem(404, "member-not-found", "Member not found", "No member with this CIN is known to CalHub.")


def _require_plan(code: str, field: str) -> str:
    plan = service.known_plan(code)
    if plan is None:
        raise validation_problem([FieldError(field=field, rule="known_plan",
                                             message="Not a plan code CalHub knows (see the plan registry).")])
    return plan


def _hub_or_own_plan(caller: Caller, mcp_code: str | None, field: str) -> None:
    if caller.is_hub:
        return
    if caller.organization_kind == "mcp" and mcp_code is not None and mcp_code == caller.organization_code:
        return
    raise Problem(403, "not-your-plan", "Not allowed for this organization",
                  "Only the hub, or an MCP for its own plan, may enter eligibility facts.",
                  errors=[FieldError(field=field, rule="own_plan", message="An MCP may only enter its own plan.")])


class Member(BaseModel):
    """Demographics a 270 needs (optional when CalHub already has them)."""

    model_config = ConfigDict(extra="forbid")

    last_name: str | None = Field(None, min_length=1, max_length=60)
    first_name: str | None = Field(None, min_length=1, max_length=35)
    birth_date: date | None = None


class EnrollmentEntry(Member):
    """A fact entered by hand: enrolled (active) or not with an MCP as of a date."""

    mcp_code: str = Field(description="The MCP the fact is about (a CalHub plan code).")
    active: bool = Field(description="True: enrolled with the MCP; false: not (any longer).")
    as_of: date = Field(description="The date the fact was true on.")
    span_start: date | None = Field(None, description="Coverage start, when known.")
    span_end: date | None = Field(None, description="Coverage end, when known.")
    reason: str | None = Field(None, max_length=200, description="Why coverage ended (inactive facts).")

    @model_validator(mode="after")
    def _ordered(self) -> EnrollmentEntry:
        if self.span_start and self.span_end and self.span_end < self.span_start:
            raise ValueError("span_end is before span_start")
        return self


class ProgramEntry(BaseModel):
    """Membership in another program (hospice, PACE, a waiver…) under the exclusion table's code."""

    model_config = ConfigDict(extra="forbid")

    program_code: str = Field(description="A code of the exclusion table, e.g. hospice.")
    start: date
    end: date | None = None


class AliasEntry(BaseModel):
    """An older CIN left behind by a merged record."""

    model_config = ConfigDict(extra="forbid")

    alias_cin: str = Field(pattern=CIN_PATTERN)


class CheckItem(Member):
    """One member to check."""

    cin: str = Field(pattern=CIN_PATTERN)
    mcp_code: str | None = Field(None, description="The MCP to ask (default: the member's known plan).")
    service_date: date | None = Field(None, description="The date to ask about (default: today).")


class CheckRequest(BaseModel):
    """A list of members to check in the next real-time 270."""

    model_config = ConfigDict(extra="forbid")

    members: list[CheckItem] = Field(min_length=1, max_length=1000)
    max_age_days: int | None = Field(None, ge=0, le=365, description="Answer from the registry when verified "
                                     "data is at most this old; otherwise ask the MCP.")


class BatchRequest(BaseModel):
    """Run an MCP's monthly 270 now (idempotent: one batch per MCP and period)."""

    model_config = ConfigDict(extra="forbid")

    mcp_code: str
    period: str | None = Field(None, pattern=r"^[0-9]{4}-(0[1-9]|1[0-2])$", description="YYYY-MM (default: now).")


@router.get("/v1/members/{cin}/eligibility", summary="A member's eligibility on a date, with source, age and "
            "the rule engine's verdicts for ECM, CHW and (given cs_code) a Community Support",
            responses=problem_responses(401, 403, 404, 422))
async def get_eligibility(request: Request, cin: CinPath, caller: Reader, scope: Tenant,
                          on: Annotated[date | None, Query(alias="date", description="Default: today.")] = None,
                          cs_code: Annotated[str | None, Query(max_length=60)] = None) -> dict[str, Any]:
    async with _uow(request) as uow:
        try:
            member, answer = await service.eligibility_on(uow, cin, on or uow.today(), cs_code)
        except service.MemberNotFound:
            raise _member_not_found() from None
        cbos = await uow.authorizations.cbos_for(member.member_id)
        plans = {s["mcp_code"] for s in answer["spans"]}
        if not (caller.is_hub or any(scope.allows(cbo_id=c) for c in cbos)
                or any(scope.allows(mcp_code=p) for p in plans)):
            raise _member_not_found()
        await record_audit(uow.session, models.audit_event, action="member.eligibility.read",
                           resource_type="member", resource_id=member.member_id, caller=caller)
        await uow.commit()
    return answer


@router.post("/v1/members/{cin}/enrollment", status_code=200, summary="Enter an enrollment fact by hand",
             responses=problem_responses(401, 403, 409, 422))
async def post_enrollment(request: Request, cin: CinPath, body: EnrollmentEntry, caller: Writer,
                          key: IdempotencyKey) -> Any:
    mcp_code = _require_plan(body.mcp_code, "mcp_code")
    _hub_or_own_plan(caller, mcp_code, "mcp_code")
    async with _uow(request) as uow:
        async def produce() -> tuple[int, Any]:
            observation = Observation(body.active, mcp_code, body.as_of, Source.MANUAL, uow.now(),
                                      span_start=body.span_start, span_end=body.span_end, reason=body.reason)
            applied = await service.record_manual(uow, cin=cin, observation=observation, demographics={
                "last_name": body.last_name, "first_name": body.first_name, "birth_date": body.birth_date})
            await record_audit(uow.session, models.audit_event, action="member.enrollment.entered",
                               resource_type="member", resource_id=applied.member_id, caller=caller,
                               detail={"mcp_code": mcp_code, "active": body.active})
            return 200, {"member_id": applied.member_id, "status": applied.after.status.value,
                         "mcp_code": applied.after.mcp_code,
                         "changes": [c.kind.value for c in applied.changes]}

        result = await idempotent(uow.session, uow.tables, caller, key, await hash_request(request), produce)
        await uow.commit()
    return result.to_response()


@router.post("/v1/members/{cin}/programs", summary="Record the member's membership in another program",
             responses=problem_responses(401, 403, 404, 422))
async def post_program(request: Request, cin: CinPath, body: ProgramEntry, caller: Writer,
                       key: IdempotencyKey) -> Any:
    if body.program_code not in program_codes():
        raise validation_problem([FieldError(field="program_code", rule="known_program",
                                             message="Not a program code of the exclusion table.")])
    if body.end is not None and body.end < body.start:
        raise validation_problem([FieldError(field="end", rule="after_start", message="end is before start.")])
    _hub_or_own_plan(caller, None, "program_code")
    async with _uow(request) as uow:
        if await uow.members.find_by_cin(cin) is None:
            raise _member_not_found()

        async def produce() -> tuple[int, Any]:
            applied = await service.record_manual(uow, cin=cin, demographics={}, observation=service.
                                                  program_observation(body.program_code, body.start, body.end,
                                                                      uow.now()))
            await record_audit(uow.session, models.audit_event, action="member.program.entered",
                               resource_type="member", resource_id=applied.member_id, caller=caller,
                               detail={"program_code": body.program_code})
            return 200, {"member_id": applied.member_id, "programs": [p.code for p in applied.after.programs],
                         "changes": [c.kind.value for c in applied.changes]}

        result = await idempotent(uow.session, uow.tables, caller, key, await hash_request(request), produce)
        await uow.commit()
    return result.to_response()


@router.post("/v1/members/{cin}/aliases", status_code=201, summary="Record an older CIN of the member",
             responses=problem_responses(401, 403, 404, 409, 422))
async def post_alias(request: Request, cin: CinPath, body: AliasEntry, caller: Writer) -> dict[str, Any]:
    _hub_or_own_plan(caller, None, "alias_cin")
    if body.alias_cin == cin:
        raise validation_problem([FieldError(field="alias_cin", rule="different_cin",
                                             message="An alias must differ from the member's CIN.")])
    async with _uow(request) as uow:
        member = await uow.members.find_by_cin(cin)
        if member is None:
            raise _member_not_found()
        if await uow.members.find_by_cin(body.alias_cin) is not None:
            raise Problem(409, "cin-in-use", "CIN already in use",
                          "The alias CIN already belongs to a member; merge records through the hub.",
                          errors=[FieldError(field="alias_cin", rule="unused_cin",
                                             message="This CIN is already a member or an alias.")])
        await uow.members.add_alias(body.alias_cin, member.member_id, uow.now())
        await record_audit(uow.session, models.audit_event, action="member.alias.added", resource_type="member",
                           resource_id=member.member_id, caller=caller)
        await uow.commit()
    return {"member_id": member.member_id, "aliases": 1}


@router.post("/v1/eligibility/checks", status_code=202, summary="Check a list of members: returns a job",
             responses=problem_responses(401, 403, 409, 422))
async def post_checks(request: Request, body: CheckRequest, caller: Writer, key: IdempotencyKey) -> Any:
    errors = [FieldError(field=f"members[{i}].mcp_code", rule="known_plan",
                         message="Not a plan code CalHub knows (see the plan registry).")
              for i, item in enumerate(body.members) if item.mcp_code and service.known_plan(item.mcp_code) is None]
    if errors:
        raise validation_problem(errors)
    async with _uow(request) as uow:
        async def produce() -> tuple[int, Any, dict[str, str]]:
            job_id, rows = await service.create_job(uow, caller.organization_id,
                                                    [item.model_dump() for item in body.members],
                                                    body.max_age_days)
            await record_audit(uow.session, models.audit_event, action="eligibility.checks.requested",
                               resource_type="check_job", resource_id=job_id, caller=caller,
                               detail={"members": len(rows)})
            return 202, {"job_id": job_id, "total": len(rows),
                         "pending": sum(r["status"] == "pending" for r in rows),
                         "completed": sum(r["status"] == "completed" for r in rows),
                         "failed": sum(r["status"] == "failed" for r in rows)}, \
                {"Location": f"/v1/eligibility/checks/{job_id}"}

        result = await idempotent(uow.session, uow.tables, caller, key, await hash_request(request), produce)
        await uow.commit()
    return result.to_response()


@router.get("/v1/eligibility/checks/{job_id}", summary="A check job's progress and results",
            responses=problem_responses(401, 403, 404))
async def get_check_job(request: Request, job_id: Annotated[str, Path(max_length=40)],
                        caller: Reader) -> dict[str, Any]:
    async with _uow(request) as uow:
        try:
            view = await service.job_view(uow, job_id, caller.organization_id, caller.is_hub)
        except service.JobNotFound:
            raise Problem(404, "job-not-found", "Job not found") from None
        await record_audit(uow.session, models.audit_event, action="eligibility.checks.read",
                           resource_type="check_job", resource_id=job_id, caller=caller)
        await uow.commit()
    return view


@router.get("/v1/eligibility/batches", summary="270 batches, newest first", responses=problem_responses(401, 403))
async def list_batches(request: Request, caller: Reader, scope: Tenant,
                       mcp_code: Annotated[str | None, Query(max_length=50)] = None,
                       limit: Annotated[int, Query(ge=1, le=500)] = 50) -> dict[str, Any]:
    if not caller.is_hub:
        if caller.organization_kind != "mcp":
            return {"items": []}
        mcp_code = caller.organization_code
    async with _uow(request) as uow:
        rows = await uow.batches.recent(mcp_code, limit)
    return {"items": [{"batch_id": r.batch_id, "batch_key": r.batch_key, "mcp_code": r.mcp_code, "kind": r.kind,
                       "period": r.period, "members": r.members, "skipped": r.skipped,
                       "interchange_control_number": r.interchange_control_number, "file_uri": r.file_uri,
                       "file_sha256": r.file_sha256, "created_at": r.created_at} for r in rows
                      if scope.allows(mcp_code=r.mcp_code)]}


@router.post("/v1/eligibility/batches", summary="Run an MCP's monthly 270 now (once per MCP and period)",
             responses=problem_responses(401, 403, 422))
async def post_batch(request: Request, body: BatchRequest, caller: Writer) -> JSONResponse:
    if not caller.is_hub:
        raise Problem(403, "hub-only", "Hub only", "Only the hub runs 270 batches.")
    mcp_code = _require_plan(body.mcp_code, "mcp_code")
    async with _uow(request) as uow:
        run_at = uow.now()
        if body.period is not None and body.period != period_of(run_at):
            run_at = datetime.combine(parse_period(body.period), time(12, 0), tzinfo=PACIFIC)
        outcome = await service.run_monthly_batch(uow, mcp_code, run_at)
        await record_audit(uow.session, models.audit_event, action="eligibility.batch.requested",
                           resource_type="eligibility_batch", resource_id=outcome.batch_id if outcome else mcp_code,
                           caller=caller)
        await uow.commit()
    if outcome is None:
        return JSONResponse({"batch_id": None, "members": 0, "created": False,
                             "detail": "no member of this MCP needs checking"}, status_code=200)
    return JSONResponse({"batch_id": outcome.batch_id, "batch_key": outcome.batch_key, "members": outcome.members,
                         "skipped": outcome.skipped, "created": outcome.created},
                        status_code=201 if outcome.created else 200)


@router.get("/v1/eligibility/schedules", summary="When each MCP's next monthly 270 runs",
            responses=problem_responses(401, 403))
async def list_schedules(request: Request, caller: Reader, scope: Tenant) -> dict[str, Any]:
    async with _uow(request) as uow:
        timers = await pending_timers(uow.session, uow, service.MONTHLY_TIMER)
    return {"items": [{"mcp_code": t.subject, "next_run": t.due_at} for t in timers
                      if scope.allows(mcp_code=t.subject)]}
