"""HTTP routes of the claims service: validate, call service.py, map domain errors to problem+json.

Encounters (one, or up to 1,000 with per-item results), claims (list with filters, search by CIN in a body,
detail with history, corrections, replacement, void), claim batches (on demand per MCP), remittances (835
intake, payments for bank reconciliation, exception queue), the denials work queue, the timely-payment report
and CBO payouts.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request, Response
from pydantic import TypeAdapter, ValidationError

from claims import service
from claims.models import Claim, ClaimBatch
from claims.models import Encounter as EncounterRow
from claims.repository import ClaimFilter, ClaimsUnitOfWork, decode_cursor, encode_cursor
from claims.schemas import (
    AdjustmentOut,
    BatchIn,
    BatchOut,
    ClaimCorrectionIn,
    ClaimDetail,
    ClaimLineOut,
    ClaimPage,
    ClaimPaymentOut,
    ClaimSearchIn,
    ClaimSummary,
    DenialOut,
    DenialPage,
    DenialResolveIn,
    EncounterBatchIn,
    EncounterBatchOut,
    EncounterIn,
    EncounterItemResult,
    EncounterOut,
    EncounterPage,
    ExceptionOut,
    ExceptionPage,
    ExceptionResolveIn,
    HistoryOut,
    LinePaymentOut,
    PayoutIn,
    PayoutOut,
    ProviderAdjustmentOut,
    ReasonOut,
    RemittanceDetail,
    RemittanceFileOut,
    RemittanceOut,
    RemittancePage,
    VoidIn,
)
from shared.app import runtime_of
from shared.auth import Caller, Tenant, TenantScope, require_scopes
from shared.db import read_one_snapshot
from shared.idempotency import IdempotencyKey, hash_request, idempotent
from shared.identity import member_id_for
from shared.problems import (
    PROBLEM_MEDIA_TYPE,
    FieldError,
    Problem,
    field_errors,
    problem_responses,
    validation_problem,
)
from shared.reference.calendar import PACIFIC

router = APIRouter(tags=["claims"])

SERVICE = "claims"
Reader = Annotated[Caller, Depends(require_scopes("claims:read"))]
Writer = Annotated[Caller, Depends(require_scopes("claims:write"))]
_ENCOUNTER = TypeAdapter(EncounterIn)
_ENCOUNTER_BATCH = TypeAdapter(EncounterBatchIn)


def _uow(request: Request) -> ClaimsUnitOfWork:
    uow = runtime_of(request, SERVICE).uow()
    assert isinstance(uow, ClaimsUnitOfWork)
    return uow


def _problem(error: service.ClaimsError) -> Problem:
    if isinstance(error, service.InvalidCorrection):
        return validation_problem([FieldError(field=error.field, rule=error.rule, message=error.detail)])
    if isinstance(error, service.BatchFailedValidation):
        return Problem(error.status, error.slug, error.title, error.detail,
                       errors=[FieldError(field=f"file.segment[{i.position}].{i.segment or 'envelope'}", rule=i.rule,
                                          message=i.message) for i in error.issues[:200]])
    return Problem(error.status, error.slug, error.title, error.detail)


def _cbo_for(caller: Caller, requested: str | None, field: str) -> str:
    """The CBO an encounter belongs to: a CBO posts its own; the hub names one; MCPs do not post encounters."""
    if caller.organization_kind == "cbo":
        if requested is not None and requested != caller.organization_id:
            raise validation_problem([FieldError(field=field, rule="own_organization",
                                                 message="A CBO posts encounters for itself only.")])
        return caller.organization_id
    if caller.organization_kind == "hub":
        if not requested:
            raise validation_problem([FieldError(field=field, rule="required",
                                                 message="The hub names the CBO that delivered the service.")])
        return requested
    raise Problem(403, "forbidden", "Forbidden", "MCP organizations do not post encounters.")


def encounter_out(row: EncounterRow) -> EncounterOut:
    """The API view of an encounter (no member demographics)."""
    return EncounterOut(
        id=row.id, external_id=row.external_id, status=row.status,
        cbo_organization_id=row.cbo_organization_id, mcp_code=row.mcp_code, program=row.program,
        service_code=row.service_code, hcpcs=row.hcpcs, modifiers=list(row.modifiers), units=Decimal(row.units),
        service_date=row.service_from, service_date_to=row.service_to,
        reasons=[ReasonOut(**r) for r in row.reasons], flags=[ReasonOut(**f) for f in row.flags],
        authorization_id=row.authorization_id, claim_id=row.claim_id,
        expected_amount=Decimal(row.expected_amount) if row.expected_amount is not None else None,
        pricing=list(row.pricing), received_at=service._aware(row.received_at) or row.received_at)


def _errors_of(exc: ValidationError, prefix: tuple[str | int, ...] = ()) -> list[dict[str, str]]:
    """Field errors of a body (or of item `prefix` of a batch), named and ruled, without the submitted values."""
    return [e.model_dump() for e in field_errors([
        {"loc": ("body", *prefix, *err["loc"]), "type": err["type"], "msg": err["msg"], "input": err.get("input")}
        for err in exc.errors()])]


ENCOUNTER_BODY = {
    "requestBody": {"required": True, "content": {"application/json": {"schema": {"oneOf": [
        {"$ref": "#/components/schemas/EncounterIn"}, {"$ref": "#/components/schemas/EncounterBatchIn"}]}}}},
}


@router.post("/v1/encounters", status_code=201, openapi_extra=ENCOUNTER_BODY,
             responses={200: {"model": EncounterBatchOut, "description": "Batch: per-item results"},
                        201: {"model": EncounterOut, "description": "One encounter: recorded or rejected"},
                        **problem_responses(400, 401, 403, 409, 422)},
             summary="Record one encounter, or a batch of up to 1,000 with per-item results")
async def post_encounters(request: Request, caller: Writer, key: IdempotencyKey,
                          body: Annotated[dict[str, Any], Body()]) -> Any:
    """Check, price and keep encounters; rejected ones are kept with their reasons and never dropped."""
    batch = "encounters" in body
    if batch:
        try:
            envelope = _ENCOUNTER_BATCH.validate_python(body)
        except ValidationError as exc:
            raise validation_problem([FieldError(**e) for e in _errors_of(exc)]) from None
        items: list[dict[str, Any]] = envelope.encounters
    else:
        try:
            single = _ENCOUNTER.validate_python(body)
        except ValidationError as exc:
            raise validation_problem([FieldError(**e) for e in _errors_of(exc)]) from None
    fingerprint = await hash_request(request)

    async def produce() -> tuple[int, Any]:
        actor = service.Actor(caller=caller)
        if not batch:
            cbo = _cbo_for(caller, single.cbo_organization_id, "cbo_organization_id")
            outcome = await service.record_encounter(uow, single, cbo_organization_id=cbo, actor=actor)
            return (200 if outcome.existing else 201), encounter_out(outcome.encounter).model_dump(mode="json")
        results: list[EncounterItemResult] = []
        for index, item in enumerate(items):
            try:
                parsed = _ENCOUNTER.validate_python(item)
                cbo = _cbo_for(caller, parsed.cbo_organization_id, f"encounters[{index}].cbo_organization_id")
            except ValidationError as exc:
                results.append(EncounterItemResult(index=index, status="invalid",
                                                   errors=_errors_of(exc, ("encounters", index))))
                continue
            except Problem as problem:
                results.append(EncounterItemResult(index=index, status="invalid", errors=[
                    e.model_dump() for e in (problem.errors or [])]))
                continue
            outcome = await service.record_encounter(uow, parsed, cbo_organization_id=cbo, actor=actor)
            row = outcome.encounter
            results.append(EncounterItemResult(index=index, status=row.status,
                                               encounter=encounter_out(row)))
        summary = EncounterBatchOut(
            recorded=sum(1 for r in results if r.status == "recorded"),
            rejected=sum(1 for r in results if r.status == "rejected"),
            invalid=sum(1 for r in results if r.status == "invalid"), results=results)
        return 200, summary.model_dump(mode="json")

    async with _uow(request) as uow:
        result = await idempotent(uow.session, uow.tables, caller, key, fingerprint, produce)
        await uow.commit()
    return result.to_response()


@router.get("/v1/encounters/{encounter_id}", response_model=EncounterOut, responses=problem_responses(401, 403, 404),
            summary="One encounter with its verdict")
async def get_encounter(request: Request, encounter_id: str, caller: Reader, scope: Tenant) -> EncounterOut:
    """An encounter the caller may see."""
    async with _uow(request) as uow:
        row = await uow.encounters.get(encounter_id)
        if row is None or not scope.allows(cbo_id=row.cbo_organization_id, mcp_code=row.mcp_code):
            raise Problem(404, "encounter-not-found", "Encounter not found")
        return encounter_out(row)


@router.get("/v1/encounters", response_model=EncounterPage, responses=problem_responses(401, 403, 422),
            summary="Encounters, newest first")
async def list_encounters(request: Request, caller: Reader, scope: Tenant,
                          status: Annotated[str | None, Query(pattern="^(recorded|rejected)$")] = None,
                          claim_id: str | None = None, limit: Annotated[int, Query(ge=1, le=500)] = 100,
                          cursor: str | None = None) -> EncounterPage:
    """Encounters the caller may see (a CBO its own, an MCP its plan's)."""
    after = _cursor(cursor)
    # Rows are rendered inside the unit of work: leaving it rolls back, which expires loaded objects.
    async with _uow(request) as uow:
        rows = await uow.encounters.listing(scope, status=status, claim_id=claim_id, limit=limit + 1, after=after)
        page = rows[:limit]
        next_cursor = encode_cursor(service._aware(page[-1].received_at) or page[-1].received_at, page[-1].id) \
            if len(rows) > limit else None
        return EncounterPage(items=[encounter_out(r) for r in page], next_cursor=next_cursor)


# ------------------------------------------------------------------------------------------------- claims

def _cursor(cursor: str | None) -> tuple[datetime, str] | None:
    if cursor is None:
        return None
    try:
        return decode_cursor(cursor)
    except ValueError:
        raise validation_problem([FieldError(field="query.cursor", rule="cursor",
                                             message="Not a cursor this API returned.")]) from None


def claim_summary(claim: Claim, now: datetime) -> ClaimSummary:
    """The list view of a claim."""
    return ClaimSummary(
        id=claim.id, status=claim.status, mcp_code=claim.mcp_code, cbo_organization_id=claim.cbo_organization_id,
        member_id=claim.member_id, program=claim.program, service_code=claim.service_code,
        frequency_code=claim.frequency_code, replaces_claim_id=claim.replaces_claim_id,
        payer_claim_number=claim.payer_claim_number, service_from=claim.service_from, service_to=claim.service_to,
        expected_amount=Decimal(claim.expected_amount),
        paid_amount=Decimal(claim.paid_amount) if claim.paid_amount is not None else None, batch_id=claim.batch_id,
        rejection_reasons=list(claim.rejection_reasons),
        created_at=service._aware(claim.created_at) or claim.created_at,
        submitted_at=service._aware(claim.submitted_at), age_days=service.age_days(claim, now))


async def _claims_page(request: Request, scope: TenantScope, filters: ClaimFilter, limit: int,
                       cursor: str | None) -> ClaimPage:
    after = _cursor(cursor)
    async with _uow(request) as uow:
        now = service.clock(uow).now()
        rows = await uow.claims.listing(scope, filters, limit=limit + 1, after=after, now=now)
        page = rows[:limit]
        next_cursor = encode_cursor(service._aware(page[-1].created_at) or page[-1].created_at, page[-1].id) \
            if len(rows) > limit else None
        return ClaimPage(items=[claim_summary(c, now) for c in page], next_cursor=next_cursor)


@router.get("/v1/claims", response_model=ClaimPage, responses=problem_responses(401, 403, 422),
            summary="Claims with filters (status, MCP, CBO, member id, service dates, age), newest first")
async def list_claims(
    request: Request, caller: Reader, scope: Tenant,
    status: Annotated[str | None, Query(pattern="^(draft|batched|submitted|accepted|rejected|paid|denied|reversed)$")]
    = None,
    mcp_code: str | None = None, cbo_organization_id: str | None = None,
    member_id: Annotated[str | None, Query(pattern="^mbr_[0-9a-f]{24}$",
                                           description="CalHub member id; search by CIN with POST "
                                           "/v1/claims/search so a CIN never sits in a URL.")] = None,
    service_from: date | None = None, service_to: date | None = None, batch_id: str | None = None,
    min_age_days: Annotated[int | None, Query(ge=0, le=36500)] = None,
    max_age_days: Annotated[int | None, Query(ge=0, le=36500)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100, cursor: str | None = None,
) -> ClaimPage:
    """Claims the caller may see (a CBO its own, an MCP its plan's)."""
    filters = ClaimFilter(status=status, mcp_code=mcp_code, cbo_organization_id=cbo_organization_id,
                          member_id=member_id, service_from=service_from, service_to=service_to,
                          min_age_days=min_age_days, max_age_days=max_age_days, batch_id=batch_id)
    return await _claims_page(request, scope, filters, limit, cursor)


@router.post("/v1/claims/search", response_model=ClaimPage, responses=problem_responses(401, 403, 422),
             summary="Claims by member CIN and the same filters, with the CIN in the body")
async def search_claims(request: Request, caller: Reader, scope: Tenant, body: ClaimSearchIn) -> ClaimPage:
    """Like GET /v1/claims, for lookups by CIN."""
    filters = ClaimFilter(status=body.status, mcp_code=body.mcp_code, cbo_organization_id=body.cbo_organization_id,
                          member_id=member_id_for(body.member_cin) if body.member_cin else None,
                          service_from=body.service_from, service_to=body.service_to,
                          min_age_days=body.min_age_days, max_age_days=body.max_age_days)
    return await _claims_page(request, scope, filters, body.limit, body.cursor)


# ------------------------------------------------------------------------------------------------ batches

def batch_out(batch: ClaimBatch) -> BatchOut:
    """The API view of a batch."""
    return BatchOut(id=batch.id, mcp_code=batch.mcp_code, file_kind=batch.file_kind, claims=batch.claims,
                    total_amount=Decimal(batch.total_amount), transaction_sets=batch.transaction_sets,
                    interchange_control_number=batch.interchange_control_number,
                    group_control_number=batch.group_control_number,
                    file={"uri": batch.file_uri, "sha256": batch.file_sha256, "size": batch.file_size},
                    status=batch.status, acknowledgment_code=batch.acknowledgment_code, trigger=batch.trigger,
                    created_at=service._aware(batch.created_at) or batch.created_at,
                    delivered_at=service._aware(batch.delivered_at))


def _hub_only(caller: Caller) -> None:
    if not caller.is_hub:
        raise Problem(403, "forbidden", "Forbidden", "Only the hub batches claims and reads batches.")


@router.post("/v1/claims/batches", status_code=201, response_model=BatchOut,
             responses=problem_responses(400, 401, 403, 404, 409, 422),
             summary="Batch an MCP's draft claims now into a validated 837P (or invoice) for the gateway")
async def create_batch(request: Request, caller: Writer, key: IdempotencyKey, body: BatchIn) -> Any:
    """Seal the MCP's draft claims into one file in the file store; claim_batch.created tells the gateway."""
    _hub_only(caller)
    fingerprint = await hash_request(request)
    settings = runtime_of(request, SERVICE).settings
    validate = bool(getattr(settings, "validate_batches", True))
    max_claims = int(getattr(settings, "max_claims_per_batch", 50_000))
    async with _uow(request) as uow:
        async def produce() -> tuple[int, Any] | tuple[int, Any, dict[str, str]]:
            try:
                result = await service.create_batch(uow, body.mcp_code, actor=service.Actor(caller=caller),
                                                    trigger="on_demand", validate=validate, max_claims=max_claims)
            except service.ClaimsError as error:
                raise _problem(error) from None
            if result is None:
                raise Problem(409, "no-claims-to-batch", "No claims to batch",
                              "The MCP has no draft claims.")
            if result.batch is None:
                # Answered, not raised: the drafts rejected at batching stay rejected (the transaction commits).
                refused = Problem(409, "no-claims-to-batch", "No claims to batch",
                                  f"No draft claim could go in the file: {len(result.rejected_ids)} were rejected "
                                  "at batching, each with its reasons.")
                return (409, refused.details().model_dump(mode="json", exclude_none=True),
                        {"content-type": PROBLEM_MEDIA_TYPE})
            return 201, batch_out(result.batch).model_dump(mode="json")

        response = await idempotent(uow.session, uow.tables, caller, key, fingerprint, produce)
        await uow.commit()
    return response.to_response()


@router.get("/v1/claims/batches/{batch_id}", response_model=BatchOut, responses=problem_responses(401, 403, 404),
            summary="One claim batch")
async def get_batch(request: Request, batch_id: str, caller: Reader) -> BatchOut:
    """A batch, with its acknowledgment state."""
    _hub_only(caller)
    async with _uow(request) as uow:
        batch = await uow.batches.get(batch_id)
        if batch is None:
            raise Problem(404, "batch-not-found", "Batch not found")
        return batch_out(batch)


@router.get("/v1/claims/batches", response_model=list[BatchOut], responses=problem_responses(401, 403),
            summary="Recent claim batches")
async def list_batches(request: Request, caller: Reader, mcp_code: str | None = None,
                       limit: Annotated[int, Query(ge=1, le=200)] = 50) -> list[BatchOut]:
    """Recent batches, newest first."""
    _hub_only(caller)
    async with _uow(request) as uow:
        return [batch_out(b) for b in await uow.batches.listing(mcp_code, limit)]


async def _detail(uow: ClaimsUnitOfWork, claim: Claim, caller: Caller) -> ClaimDetail:
    now = service.clock(uow).now()
    lines = await uow.claims.lines(claim.id)
    history = await uow.claims.history(claim.id)
    await service.audit_read(uow, caller, "claim", claim.id)
    summary = claim_summary(claim, now)
    return ClaimDetail(
        **summary.model_dump(), member={"cin": claim.cin, **claim.member}, authorization_id=claim.authorization_id,
        prior_authorization_number=claim.prior_authorization_number, rendering_npi=claim.rendering_npi,
        billing_provider=claim.billing_provider, billing_npi=claim.billing_npi, claim_format=claim.claim_format,
        place_of_service=claim.place_of_service, diagnosis_codes=list(claim.diagnosis_codes),
        adjustment_amount=Decimal(claim.adjustment_amount) if claim.adjustment_amount is not None else None,
        acknowledged_at=service._aware(claim.acknowledged_at),
        lines=[ClaimLineOut(line_number=ln.line_number, encounter_id=ln.encounter_id, hcpcs=ln.hcpcs,
                            modifiers=list(ln.modifiers), units=Decimal(ln.units), charge=Decimal(ln.charge),
                            service_from=ln.service_from, service_to=ln.service_to,
                            place_of_service=ln.place_of_service, diagnosis_pointers=list(ln.diagnosis_pointers),
                            paid_amount=Decimal(ln.paid_amount) if ln.paid_amount is not None else None,
                            adjustment_amount=Decimal(ln.adjustment_amount)
                            if ln.adjustment_amount is not None else None) for ln in lines],
        history=[HistoryOut(occurred_at=service._aware(h.occurred_at) or h.occurred_at, actor=h.actor,
                            action=h.action, from_status=h.from_status, to_status=h.to_status,
                            detail=dict(h.detail)) for h in history])


@router.get("/v1/claims/{claim_id}", response_model=ClaimDetail, responses=problem_responses(401, 403, 404),
            summary="One claim with its member, lines and history (the read is audited)")
async def get_claim(request: Request, claim_id: str, caller: Reader, scope: Tenant) -> ClaimDetail:
    """A claim the caller may see; its member data makes the read an audited PHI read."""
    async with _uow(request) as uow:
        await read_one_snapshot(uow.session)  # the claim, its lines and history as of one moment
        claim = await uow.claims.get(claim_id)
        if claim is None:
            raise Problem(404, "claim-not-found", "Claim not found")
        scope.require(cbo_id=claim.cbo_organization_id, mcp_code=claim.mcp_code, resource="claim")
        detail = await _detail(uow, claim, caller)
        await uow.commit()
    return detail


async def _change(request: Request, caller: Caller, key: str | None, action: Any) -> Any:
    fingerprint = await hash_request(request)
    async with _uow(request) as uow:
        async def produce() -> tuple[int, Any]:
            try:
                claim = await action(uow)
            except service.ClaimsError as error:
                raise _problem(error) from None
            await uow.flush()
            return 201, (await _detail(uow, claim, caller)).model_dump(mode="json")

        result = await idempotent(uow.session, uow.tables, caller, key, fingerprint, produce)
        await uow.commit()
    return result.to_response()


def _not_mcp(caller: Caller) -> None:
    if caller.organization_kind == "mcp":
        raise Problem(403, "forbidden", "Forbidden", "MCP organizations do not change claims.")


@router.post("/v1/claims/{claim_id}/corrections", status_code=201, response_model=ClaimDetail,
             responses=problem_responses(400, 401, 403, 404, 409, 422),
             summary="Correct a rejected claim; it returns to draft and goes out in the next batch")
async def correct_claim(request: Request, claim_id: str, caller: Writer, key: IdempotencyKey,
                        body: ClaimCorrectionIn) -> Any:
    """Corrections to a claim the MCP rejected (999 or 277CA)."""
    _not_mcp(caller)
    return await _change(request, caller, key, lambda uow: service.correct_claim(uow, claim_id, body, caller))


@router.post("/v1/claims/{claim_id}/replacement", status_code=201, response_model=ClaimDetail,
             responses=problem_responses(400, 401, 403, 404, 409, 422),
             summary="Replace an accepted or adjudicated claim (frequency 7, REF*F8)")
async def replace_claim(request: Request, claim_id: str, caller: Writer, key: IdempotencyKey,
                        body: ClaimCorrectionIn) -> Any:
    """A new draft claim with frequency 7 carrying the corrections and the payer claim number."""
    _not_mcp(caller)
    return await _change(request, caller, key, lambda uow: service.supersede_claim(
        uow, claim_id, frequency="7", reason=body.reason, caller=caller, corrections=body))


@router.post("/v1/claims/{claim_id}/void", status_code=201, response_model=ClaimDetail,
             responses=problem_responses(400, 401, 403, 404, 409, 422),
             summary="Void an accepted or adjudicated claim (frequency 8, REF*F8)")
async def void_claim(request: Request, claim_id: str, caller: Writer, key: IdempotencyKey, body: VoidIn) -> Any:
    """A new draft claim with frequency 8 that cancels the original at the MCP."""
    _not_mcp(caller)
    return await _change(request, caller, key, lambda uow: service.supersede_claim(
        uow, claim_id, frequency="8", reason=body.reason, caller=caller))


# -------------------------------------------------------------------------------------------- remittances

X12_BODY = {"requestBody": {"required": True, "content": {
    "application/edi-x12": {"schema": {"type": "string"}}, "text/plain": {"schema": {"type": "string"}}},
    "description": "The 835 interchange (005010X221A1) exactly as received."}}


def _isa_sender(body: bytes) -> str | None:
    """ISA06 of an interchange (fixed width: the element separator is the 4th character)."""
    head = body[:200].decode("ascii", errors="replace").lstrip("\ufeff \r\n\t")
    if not head.startswith("ISA") or len(head) < 4:
        return None
    elements = head.split(head[3])
    return elements[6].strip() if len(elements) > 6 else None


def _remittance_mcp(caller: Caller, requested: str | None, body: bytes, uow: ClaimsUnitOfWork) -> str:
    """Whose 835 this is: an MCP posts its own; the hub names the MCP or it is known by ISA06."""
    config = service.configuration(uow)
    if caller.organization_kind == "cbo":
        raise Problem(403, "forbidden", "Forbidden", "CBOs do not post remittances; the hub or the MCP does.")
    if caller.organization_kind == "mcp":
        if requested and requested != caller.organization_code:
            raise validation_problem([FieldError(field="query.mcp_code", rule="own_plan",
                                                 message="An MCP posts its own remittances only.")])
        return caller.organization_code or ""
    if requested:
        if config.mcp(requested) is None:
            raise validation_problem([FieldError(field="query.mcp_code", rule="known_mcp",
                                                 message="CalHub does not bill this MCP.")])
        return requested
    sender = _isa_sender(body)
    found = config.mcp_for_sender(sender) if sender else None
    if found is None:
        raise validation_problem([FieldError(field="query.mcp_code", rule="required",
                                             message="Name the paying MCP: ISA06 matches no MCP's interchange id.")])
    return found


def _refusal_problem(intake: service.RemittanceIntake) -> Problem:
    sets = intake.file.detail.get("sets", [])
    errors = [FieldError(field=f"file.transaction_set[{s['control_number']}].BPR02", rule="BPR02 = ΣCLP04 − ΣPLB",
                         message=f"payment {s['payment_amount']}, claims paid {s['claims_paid']}, provider "
                         f"adjustments {s['provider_adjustments']}, expected {s['expected_payment']}, "
                         f"difference {s['difference']}")
              for s in sets if s.get("balanced") is False]
    return Problem(422, "remittance-unbalanced", "The 835 does not balance",
                   "The file is refused whole: nothing was posted. BPR02 must equal the sum of CLP04 minus the "
                   "provider-level adjustments (PLB) in every payment.", errors=errors, file_id=intake.file.id,
                   sets=sets)


@router.post("/v1/remittances", status_code=201, response_model=RemittanceFileOut, openapi_extra=X12_BODY,
             responses={200: {"model": RemittanceFileOut, "description": "The same file (or payments) again: "
                              "recognized, nothing posted"},
                        **problem_responses(400, 401, 403, 409, 422)},
             summary="Post an 835 (raw X12): balanced payments are posted, an unbalanced file is refused whole")
async def post_remittance(request: Request, caller: Writer, key: IdempotencyKey,
                          mcp_code: Annotated[str | None, Query(max_length=50, description="The paying MCP "
                                                                "(hub callers; default: by ISA06)")] = None) -> Any:
    """Balance, match and post an 835 exactly as the gateway's SFTP intake does (one function behind both)."""
    body = await request.body()
    if not body.strip():
        raise validation_problem([FieldError(field="body", rule="required", message="Send the 835 interchange.")])
    fingerprint = await hash_request(request)
    async with _uow(request) as uow:
        paying = _remittance_mcp(caller, mcp_code, body, uow)

        async def produce() -> tuple[int, Any] | tuple[int, Any, dict[str, str]]:
            try:
                intake = await service.take_remittance(
                    uow, body, mcp_code=paying, source="api", actor=service.Actor(caller=caller),
                    received_at=service.clock(uow).now())
            except service.RemittanceUnreadable as error:
                raise validation_problem([FieldError(field=error.field, rule="835-structure",
                                                     message=error.detail)], detail=error.title) from None
            if intake.status == "refused_unbalanced":
                problem = _refusal_problem(intake)
                return 422, problem.details().model_dump(mode="json", exclude_none=True), \
                    {"content-type": "application/problem+json"}
            return (201 if intake.status == "accepted" else 200), intake.as_dict()

        result = await idempotent(uow.session, uow.tables, caller, key, fingerprint, produce)
        await uow.commit()
    return result.to_response()


def _remittance_out(row: Any) -> RemittanceOut:
    return RemittanceOut(**service.remittance_summary(row))


@router.get("/v1/remittances", response_model=RemittancePage, responses=problem_responses(401, 403, 422),
            summary="Posted 835 payments (TRN02 trace, BPR amount, date) for bank reconciliation, newest first")
async def list_remittances(request: Request, caller: Reader, mcp_code: str | None = None,
                           trace_number: Annotated[str | None, Query(max_length=50)] = None,
                           paid_from: date | None = None, paid_to: date | None = None,
                           limit: Annotated[int, Query(ge=1, le=500)] = 100, cursor: str | None = None
                           ) -> RemittancePage:
    """The hub sees every MCP's payments, an MCP its own; CBOs see theirs through payouts."""
    if caller.organization_kind == "cbo":
        raise Problem(403, "forbidden", "Forbidden", "CBOs see their money through payouts.")
    if caller.organization_kind == "mcp":
        mcp_code = caller.organization_code
    after = _cursor(cursor)
    async with _uow(request) as uow:
        rows = await uow.remittances.listing(mcp_code=mcp_code, trace_number=trace_number, paid_from=paid_from,
                                             paid_to=paid_to, limit=limit + 1, after=after)
        page = rows[:limit]
        next_cursor = encode_cursor(service._aware(page[-1].posted_at) or page[-1].posted_at, page[-1].id) \
            if len(rows) > limit else None
        return RemittancePage(items=[_remittance_out(r) for r in page], next_cursor=next_cursor)


def _adjustments(items: list[dict[str, str]]) -> list[AdjustmentOut]:
    return [AdjustmentOut(group=a["group"], reason=a["reason"], amount=Decimal(a["amount"])) for a in items]


def payment_out(row: Any, lines: list[Any]) -> ClaimPaymentOut:
    """The API view of a claim payment posting."""
    return ClaimPaymentOut(
        id=row.id, remittance_id=row.remittance_id, claim_id=row.claim_id,
        cbo_organization_id=row.cbo_organization_id, kind=row.kind, outcome=row.outcome,
        status_code=row.status_code, charge=Decimal(row.charge), paid=Decimal(row.paid),
        adjustment_total=Decimal(row.adjustment_total), patient_responsibility=Decimal(row.patient_responsibility),
        payer_claim_number=row.payer_claim_number, adjustments=_adjustments(row.adjustments),
        remarks=list(row.remarks), denial=row.denial, reverses_payment_id=row.reverses_payment_id,
        reversed_by=row.reversed_by, received_on=row.received_on, paid_on=row.paid_on,
        trace_number=row.trace_number,
        lines=[LinePaymentOut(line_id=ln.line_id, procedure=ln.procedure, charge=Decimal(ln.charge),
                              paid=Decimal(ln.paid), allowed=None if ln.allowed is None else Decimal(ln.allowed),
                              units_paid=None if ln.units_paid is None else Decimal(ln.units_paid),
                              outcome=ln.outcome, adjustments=_adjustments(ln.adjustments), remarks=list(ln.remarks),
                              denial=ln.denial) for ln in lines])


async def _payments(uow: ClaimsUnitOfWork, rows: list[Any]) -> list[ClaimPaymentOut]:
    from sqlalchemy import select

    from claims.models import LinePayment

    by_payment: dict[str, list[Any]] = {row.id: [] for row in rows}
    ids = list(by_payment)
    for start in range(0, len(ids), 1000):
        for line in (await uow.session.scalars(select(LinePayment).where(
                LinePayment.claim_payment_id.in_(ids[start:start + 1000])).order_by(LinePayment.position))).all():
            by_payment[line.claim_payment_id].append(line)
    return [payment_out(row, by_payment[row.id]) for row in rows]


@router.get("/v1/remittances/exceptions", response_model=ExceptionPage, responses=problem_responses(401, 403, 422),
            summary="The remittance exception queue: money that matched nothing, reversals without an original, "
                    "unattributed recoupments")
async def list_exceptions(request: Request, caller: Reader, scope: Tenant,
                          status: Annotated[str | None, Query(pattern="^(open|resolved)$")] = "open",
                          mcp_code: str | None = None, reason: str | None = None, remittance_id: str | None = None,
                          limit: Annotated[int, Query(ge=1, le=500)] = 100, cursor: str | None = None
                          ) -> ExceptionPage:
    """Exceptions the caller may see (hub all, MCP its own); patient data only in GET .../{id}."""
    if caller.organization_kind == "cbo":
        raise Problem(403, "forbidden", "Forbidden", "The exception queue is worked by the hub.")
    after = _cursor(cursor)
    async with _uow(request) as uow:
        rows = await uow.remittances.exceptions(scope, status=status, mcp_code=mcp_code, reason=reason,
                                                remittance_id=remittance_id, limit=limit + 1, after=after)
        page = rows[:limit]
        next_cursor = encode_cursor(service._aware(page[-1].created_at) or page[-1].created_at, page[-1].id) \
            if len(rows) > limit else None
        return ExceptionPage(items=[exception_out(r) for r in page], next_cursor=next_cursor)


def exception_out(row: Any, *, with_patient: bool = False) -> ExceptionOut:
    """The API view of an exception; the patient (PHI) only when asked (an audited single read)."""
    return ExceptionOut(
        id=row.id, remittance_id=row.remittance_id, mcp_code=row.mcp_code, reason=row.reason,
        position=row.position, amount=Decimal(row.amount), patient_control_number=row.patient_control_number,
        payer_claim_number=row.payer_claim_number, status_code=row.status_code,
        charge=None if row.charge is None else Decimal(row.charge), service_from=row.service_from,
        service_to=row.service_to, procedures=list(row.procedures), claim_id=row.claim_id,
        provider_adjustment_id=row.provider_adjustment_id, detail=dict(row.detail), trace_number=row.trace_number,
        payment_date=row.payment_date, status=row.status, resolution=row.resolution,
        resolution_note=row.resolution_note, resolved_claim_id=row.resolved_claim_id, resolved_by=row.resolved_by,
        resolved_at=service._aware(row.resolved_at), created_at=service._aware(row.created_at) or row.created_at,
        patient=dict(row.patient) if with_patient and row.patient else None)


@router.get("/v1/remittances/exceptions/{exception_id}", response_model=ExceptionOut,
            responses=problem_responses(401, 403, 404),
            summary="One exception with the patient as the 835 named them (audited PHI read)")
async def get_exception(request: Request, exception_id: str, caller: Reader, scope: Tenant) -> ExceptionOut:
    """Everything needed to resolve an exception."""
    if caller.organization_kind == "cbo":
        raise Problem(403, "forbidden", "Forbidden", "The exception queue is worked by the hub.")
    async with _uow(request) as uow:
        row = await uow.remittances.exception(exception_id)
        if row is None:
            raise Problem(404, "exception-not-found", "Exception not found")
        scope.require(mcp_code=row.mcp_code, resource="exception")
        out = exception_out(row, with_patient=True)
        await service.audit_read(uow, caller, "remittance_exception", row.id)
        await uow.commit()
    return out


@router.post("/v1/remittances/exceptions/{exception_id}/resolve", response_model=ExceptionOut,
             responses=problem_responses(400, 401, 403, 404, 409, 422),
             summary="Resolve an exception (attribute a PLB adjustment to a claim, match, return, write off)")
async def resolve_exception(request: Request, exception_id: str, caller: Writer, key: IdempotencyKey,
                            body: ExceptionResolveIn) -> Any:
    """Hub only; audited."""
    _hub_only(caller)
    fingerprint = await hash_request(request)
    async with _uow(request) as uow:
        async def produce() -> tuple[int, Any]:
            try:
                row = await service.resolve_exception(uow, exception_id, resolution=body.resolution, note=body.note,
                                                      claim_id=body.claim_id, caller=caller)
            except service.ClaimsError as error:
                raise _problem(error) from None
            await uow.flush()
            return 200, exception_out(row).model_dump(mode="json")

        result = await idempotent(uow.session, uow.tables, caller, key, fingerprint, produce)
        await uow.commit()
    return result.to_response()


@router.get("/v1/remittances/{remittance_id}", response_model=RemittanceDetail,
            responses=problem_responses(401, 403, 404),
            summary="One posted payment with its claim payments (CAS, CARC/RARC) and PLB adjustments")
async def get_remittance(request: Request, remittance_id: str, caller: Reader, scope: Tenant) -> RemittanceDetail:
    """The hub or the paying MCP."""
    if caller.organization_kind == "cbo":
        raise Problem(403, "forbidden", "Forbidden", "CBOs see their money through payouts and claims.")
    async with _uow(request) as uow:
        await read_one_snapshot(uow.session)  # the payment, its claim payments and adjustments as of one moment
        row = await uow.remittances.get(remittance_id)
        if row is None:
            raise Problem(404, "remittance-not-found", "Remittance not found")
        scope.require(mcp_code=row.mcp_code, resource="remittance")
        payments = await _payments(uow, await uow.remittances.payments_of(remittance_id=row.id))
        adjustments = [ProviderAdjustmentOut(
            id=a.id, provider_id=a.provider_id, fiscal_period_date=a.fiscal_period_date, reason=a.reason,
            kind=a.kind, reference=a.reference, amount=Decimal(a.amount), claim_id=a.claim_id,
            cbo_organization_id=a.cbo_organization_id) for a in await uow.remittances.adjustments_of(row.id)]
        return RemittanceDetail(**service.remittance_summary(row), payments=payments,
                                provider_adjustments=adjustments)


@router.get("/v1/claims/{claim_id}/payments", response_model=list[ClaimPaymentOut],
            responses=problem_responses(401, 403, 404),
            summary="A claim's 835 postings: payments, reversals, corrections with CAS and CARC/RARC")
async def claim_payments(request: Request, claim_id: str, caller: Reader, scope: Tenant) -> list[ClaimPaymentOut]:
    """Postings of a claim the caller may see, oldest first."""
    async with _uow(request) as uow:
        claim = await uow.claims.get(claim_id)
        if claim is None:
            raise Problem(404, "claim-not-found", "Claim not found")
        scope.require(cbo_id=claim.cbo_organization_id, mcp_code=claim.mcp_code, resource="claim")
        return await _payments(uow, await uow.remittances.payments_of(claim_id=claim.id))


# ------------------------------------------------------------------------------------------------ denials

def denial_out(row: Any) -> DenialOut:
    """The API view of a denial."""
    return DenialOut(
        id=row.id, claim_id=row.claim_id, claim_payment_id=row.claim_payment_id, remittance_id=row.remittance_id,
        mcp_code=row.mcp_code, cbo_organization_id=row.cbo_organization_id, outcome=row.outcome,
        category=row.category, next_action=row.next_action, deciding_code=row.deciding_code,
        codes=list(row.codes), unknown_codes=list(row.unknown_codes), denied_amount=Decimal(row.denied_amount),
        payer_claim_number=row.payer_claim_number, paid_on=row.paid_on, status=row.status,
        resolution=row.resolution, resolution_note=row.resolution_note, follow_up_claim_id=row.follow_up_claim_id,
        resolved_by=row.resolved_by, resolved_at=service._aware(row.resolved_at),
        created_at=service._aware(row.created_at) or row.created_at)


@router.get("/v1/denials", response_model=DenialPage, responses=problem_responses(401, 403, 422),
            summary="The denials work queue: category and suggested next action per denied claim")
async def list_denials(
    request: Request, caller: Reader, scope: Tenant,
    status: Annotated[str | None, Query(pattern="^(open|resubmitted|resolved|reversed)$")] = "open",
    category: Annotated[str | None, Query(pattern="^(eligibility|authorization|coding|duplicate|timely_filing|"
                                                  "missing_information|other)$")] = None,
    mcp_code: str | None = None, cbo_organization_id: str | None = None, claim_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100, cursor: str | None = None,
) -> DenialPage:
    """A CBO sees its own denials, an MCP its plan's, the hub all. Replace (frequency 7) or void (8) a denied
    claim with POST /v1/claims/{id}/replacement or /void: its denials become `resubmitted`."""
    after = _cursor(cursor)
    async with _uow(request) as uow:
        rows = await uow.remittances.denials(scope, status=status, category=category, mcp_code=mcp_code,
                                             cbo_organization_id=cbo_organization_id, claim_id=claim_id,
                                             limit=limit + 1, after=after)
        page = rows[:limit]
        next_cursor = encode_cursor(service._aware(page[-1].created_at) or page[-1].created_at, page[-1].id) \
            if len(rows) > limit else None
        return DenialPage(items=[denial_out(r) for r in page], next_cursor=next_cursor)


@router.get("/v1/denials/{denial_id}", response_model=DenialOut, responses=problem_responses(401, 403, 404),
            summary="One denial")
async def get_denial(request: Request, denial_id: str, caller: Reader, scope: Tenant) -> DenialOut:
    """A denial the caller may see."""
    async with _uow(request) as uow:
        row = await uow.remittances.denial(denial_id)
        if row is None:
            raise Problem(404, "denial-not-found", "Denial not found")
        scope.require(cbo_id=row.cbo_organization_id, mcp_code=row.mcp_code, resource="denial")
        return denial_out(row)


@router.post("/v1/denials/{denial_id}/resolve", response_model=DenialOut,
             responses=problem_responses(400, 401, 403, 404, 409, 422),
             summary="Take a denial off the queue without a new claim (appealed, written off...)")
async def resolve_denial(request: Request, denial_id: str, caller: Writer, key: IdempotencyKey,
                         body: DenialResolveIn) -> Any:
    """The hub or the CBO that owns the claim; audited."""
    _not_mcp(caller)
    fingerprint = await hash_request(request)
    async with _uow(request) as uow:
        async def produce() -> tuple[int, Any]:
            try:
                row = await service.resolve_denial(uow, denial_id, resolution=body.resolution, note=body.note,
                                                   caller=caller)
            except service.ClaimsError as error:
                raise _problem(error) from None
            await uow.flush()
            return 200, denial_out(row).model_dump(mode="json")

        result = await idempotent(uow.session, uow.tables, caller, key, fingerprint, produce)
        await uow.commit()
    return result.to_response()


# ------------------------------------------------------------------------------------------------ reports

@router.get("/v1/reports/timely-payment", responses=problem_responses(401, 403, 422),
            summary="Per MCP: clean claims paid within 30/90 days vs 90%/99%, aging, interest owed vs paid, "
                    "last remittance and silence")
async def timely_payment_report(request: Request, caller: Reader, scope: Tenant, as_of: date | None = None,
                                mcp_code: str | None = None) -> dict[str, Any]:
    """The hub sees every MCP, an MCP its own plan, a CBO the figures of its own claims."""
    async with _uow(request) as uow:
        day = as_of or service.clock(uow).now().astimezone(PACIFIC).date()
        return await service.timely_payment(uow, scope, as_of=day, mcp_code=mcp_code)


# ------------------------------------------------------------------------------------------------ payouts

def payout_out(row: Any, warnings: list[str] | None = None) -> PayoutOut:
    """The API view of a payout."""
    return PayoutOut(
        id=row.id, cbo_organization_id=row.cbo_organization_id, period_start=row.period_start,
        period_end=row.period_end, balance_forward=Decimal(row.balance_forward), collected=Decimal(row.collected),
        hub_fee=Decimal(row.hub_fee), recoupments=Decimal(row.recoupments), payable=Decimal(row.payable),
        payout_amount=Decimal(row.payout_amount), carry_forward=Decimal(row.carry_forward),
        statement=dict(row.statement), generated_by=row.generated_by,
        generated_at=service._aware(row.generated_at) or row.generated_at, warnings=warnings or [])


@router.post("/v1/payouts", status_code=201, response_model=PayoutOut,
             responses={200: {"model": PayoutOut, "description": "The payout of this period already exists"},
                        **problem_responses(400, 401, 403, 409, 422)},
             summary="Generate a CBO's payout for a period: collected minus the hub's fee and recoupments")
async def create_payout(request: Request, caller: Writer, key: IdempotencyKey, body: PayoutIn) -> Any:
    """Hub only; payout.generated; each posting is paid out once."""
    _hub_only(caller)
    fingerprint = await hash_request(request)
    async with _uow(request) as uow:
        async def produce() -> tuple[int, Any]:
            try:
                outcome = await service.generate_payout(uow, body.cbo_organization_id, body.period_start,
                                                        body.period_end, actor=service.Actor(caller=caller))
            except service.ClaimsError as error:
                raise _problem(error) from None
            return (201 if outcome.created else 200), payout_out(outcome.payout, outcome.warnings).model_dump(
                mode="json")

        result = await idempotent(uow.session, uow.tables, caller, key, fingerprint, produce)
        await uow.commit()
    return result.to_response()


@router.get("/v1/payouts", response_model=list[PayoutOut], responses=problem_responses(401, 403),
            summary="Payouts, newest period first (a CBO sees its own)")
async def list_payouts(request: Request, caller: Reader, scope: Tenant, cbo_organization_id: str | None = None,
                       limit: Annotated[int, Query(ge=1, le=200)] = 50) -> list[PayoutOut]:
    """Payouts the caller may see."""
    async with _uow(request) as uow:
        return [payout_out(r) for r in await uow.remittances.payouts(scope, cbo_organization_id=cbo_organization_id,
                                                                      limit=limit)]


async def _payout(request: Request, payout_id: str, scope: TenantScope, render: Callable[[Any], Any]) -> Any:
    # Rendered inside the unit of work: leaving it rolls back, which expires loaded objects.
    async with _uow(request) as uow:
        row = await uow.remittances.payout(payout_id)
        if row is None or not scope.allows(cbo_id=row.cbo_organization_id):
            raise Problem(404, "payout-not-found", "Payout not found")
        return render(row)


@router.get("/v1/payouts/{payout_id}", response_model=PayoutOut, responses=problem_responses(401, 403, 404),
            summary="One payout with its statement (JSON)")
async def get_payout(request: Request, payout_id: str, caller: Reader, scope: Tenant) -> PayoutOut:
    """A payout the caller may see."""
    out: PayoutOut = await _payout(request, payout_id, scope, payout_out)
    return out


@router.get("/v1/payouts/{payout_id}/statement.csv", responses={
    200: {"content": {"text/csv": {}}, "description": "The statement: lines, balance forward, totals"},
    **problem_responses(401, 403, 404)}, summary="One payout's statement as CSV")
async def get_payout_csv(request: Request, payout_id: str, caller: Reader, scope: Tenant) -> Response:
    """The statement as CSV, for the CBO's bookkeeping."""
    def render(row: Any) -> Response:
        return Response(content=service.payout_statement(row).to_csv(), media_type="text/csv",
                        headers={"Content-Disposition": f'attachment; filename="payout_{row.id}.csv"'})

    response: Response = await _payout(request, payout_id, scope, render)
    return response
