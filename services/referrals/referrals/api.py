"""HTTP routes of the referrals service: validate, call service.py, map domain errors to problem+json."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from referrals import service
from referrals.domain.intake import MAX_REASON, Violation, check_referral
from referrals.models import Referral
from referrals.repository import ReferralsUnitOfWork, TimelineRecord, can_see
from shared.app import runtime_of
from shared.auth import API_KEY_SECURITY, Caller, audit_values, caller_requiring, record_audit, require_scopes
from shared.contracts.referrals import ReferralStatus, RoutingBasis
from shared.contracts.values import Program, Urgency
from shared.db import read_one_snapshot
from shared.idempotency import (
    IDEMPOTENCY_KEY_PARAMETER,
    IdempotencyKeyTaken,
    IdempotentResponse,
    idempotency_key_of,
    json_request_hash,
    key_in_progress,
    produced_response,
    record_values,
    stored_response,
)
from shared.json_encoding import to_json_bytes
from shared.problems import FieldError, Problem, problem_responses, validation_problem
from shared.runtime import ServiceRuntime

router = APIRouter(tags=["referrals"])

SERVICE = "referrals"
Reader = Annotated[Caller, Depends(require_scopes("referrals:read"))]
Writer = Annotated[Caller, Depends(require_scopes("referrals:write"))]
_CURSOR = re.compile(r"ref_[0-9a-f]{32}")
MAX_BODY_BYTES = 256 * 1024


# ------------------------------------------------------------------------------------ documented shapes

class AddressIn(BaseModel):
    """The member's residential address; the county decides which MCPs may serve the member."""

    line1: str = Field(max_length=200)
    line2: str | None = Field(default=None, max_length=200)
    city: str = Field(max_length=100)
    state: Literal["CA"] = "CA"
    zip: str = Field(pattern=r"^[0-9]{5}(-?[0-9]{4})?$", description="A California ZIP (90xxx-961xx).")
    county: str = Field(description="One of the 58 California counties, e.g. `Los Angeles`.")


class MemberIn(BaseModel):
    """The member referred."""

    cin: str = Field(pattern=r"^[0-9]{8}[A-Z]$", description="Medi-Cal Client Index Number.")
    last_name: str = Field(max_length=100)
    first_name: str = Field(max_length=100)
    middle_name: str | None = Field(default=None, max_length=100)
    birth_date: date = Field(description="YYYY-MM-DD; not in the future, age at most 120.")
    sex: Literal["F", "M", "U", "X"] | None = None
    phone: str | None = Field(default=None, description="10-digit US number; punctuation allowed.")
    preferred_language: str | None = Field(default=None, description="BCP 47 code (e.g. `es`) or a name.")
    address: AddressIn


class ServiceIn(BaseModel):
    """What is requested: ECM with one or more Populations of Focus, one Community Support, or CHW."""

    program: Program
    pof_codes: list[str] = Field(default_factory=list, description="ECM only, at least one: 1a, 1b, 2 ... 9.")
    cs_code: str | None = Field(default=None, description="CS only: e.g. `recuperative_care`, "
                                "`housing_transition_navigation`, `medically_tailored_meals`.")
    after_acute_care: bool = Field(default=False, description="Medically tailored meals after an acute stay "
                                   "are expedited by rule.")


class ContactIn(BaseModel):
    """Who to call back at the referring organization (a phone or an email is required)."""

    name: str = Field(max_length=100)
    phone: str | None = None
    email: str | None = None


class ReferringIn(BaseModel):
    """The referring organization: its NPI (Luhn check digit verified) and a contact."""

    npi: str = Field(pattern=r"^[0-9]{10}$")
    name: str | None = Field(default=None, max_length=200)
    contact: ContactIn


class ConsentIn(BaseModel):
    """The member's consent flags as the referrer recorded them."""

    share_with_mcp: bool | None = None
    contact_member: bool | None = None
    obtained_on: date | None = None


class ExternalIdentifierIn(BaseModel):
    """The referrer's own id for the referral (echoed on FHIR resources)."""

    system: str | None = None
    value: str


class ReferralSubmission(BaseModel):
    """A referral as an EHR sends it. Every rule is checked and every violation reported at once."""

    model_config = ConfigDict(extra="forbid")

    member: MemberIn
    mcp_code: str | None = Field(default=None, description="The member's plan if known (code or name); it must "
                                 "operate in the member's county. Omitted: the member's latest known plan.")
    service: ServiceIn
    urgency: Urgency = Urgency.STANDARD
    expedited_reason: str | None = Field(default=None, max_length=MAX_REASON,
                                         description="Required when urgency is expedited (unless by rule).")
    referring: ReferringIn
    cbo_organization_id: str | None = Field(default=None, description="The CBO to serve the member, if chosen.")
    notes: str | None = Field(default=None, max_length=4000)
    consent: ConsentIn | None = None
    external_identifiers: list[ExternalIdentifierIn] = Field(default_factory=list, max_length=10)


_MEMBER_EXAMPLE = {
    "cin": "90000001A", "last_name": "Testperson", "first_name": "Ana", "birth_date": "1968-04-12", "sex": "F",
    "phone": "(213) 555-0100", "preferred_language": "es",
    "address": {"line1": "100 Example St", "city": "Los Angeles", "zip": "90012", "county": "Los Angeles"},
}
_REFERRING_EXAMPLE = {"npi": "1234567893", "name": "Harbor Community Services",
                      "contact": {"name": "Sam Coordinator", "phone": "213-555-0199"}}
EXAMPLES: dict[str, dict[str, Any]] = {
    "ecm": {"summary": "ECM for two Populations of Focus", "value": {
        "member": _MEMBER_EXAMPLE, "mcp_code": "lacare",
        "service": {"program": "ecm", "pof_codes": ["1a", "3"]}, "urgency": "standard",
        "referring": _REFERRING_EXAMPLE, "notes": "Unhoused since March; missed two behavioral health visits.",
        "consent": {"share_with_mcp": True, "contact_member": True, "obtained_on": "2026-11-02"}}},
    "cs": {"summary": "Community Support: recuperative care (expedited by rule)", "value": {
        "member": {**_MEMBER_EXAMPLE, "cin": "90000002B", "first_name": "Luis", "sex": "M"},
        "service": {"program": "cs", "cs_code": "recuperative_care"},
        "urgency": "expedited", "expedited_reason": "Discharged from hospital today with no safe place to recover.",
        "referring": _REFERRING_EXAMPLE, "consent": {"share_with_mcp": True}}},
    "chw": {"summary": "Community Health Worker services", "value": {
        "member": {**_MEMBER_EXAMPLE, "cin": "90000003C", "first_name": "Mei", "preferred_language": "zh-Hant"},
        "mcp_code": "healthnet", "service": {"program": "chw"},
        "referring": _REFERRING_EXAMPLE, "cbo_organization_id": "org_demo_cbo_valley"}},
}


def _inline(schema: Any, defs: Mapping[str, Any]) -> Any:
    """A JSON schema with its local $refs replaced by the definitions (for an inline request body)."""
    if isinstance(schema, dict):
        ref = schema.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            return _inline(defs[ref.removeprefix("#/$defs/")], defs)
        return {k: _inline(v, defs) for k, v in schema.items() if k != "$defs"}
    if isinstance(schema, list):
        return [_inline(item, defs) for item in schema]
    return schema


def _request_body(model: type[BaseModel], examples: Mapping[str, Any], media_type: str) -> dict[str, Any]:
    schema = model.model_json_schema()
    return {"requestBody": {"required": True, "content": {media_type: {
        "schema": _inline(schema, schema.get("$defs", {})), "examples": dict(examples)}}}}


class TimelineEntry(BaseModel):
    """One entry of a referral's history."""

    at: datetime
    kind: str
    status: ReferralStatus | None
    previous_status: ReferralStatus | None
    reason: str | None
    detail: dict[str, Any]


class ReferralSummary(BaseModel):
    """A referral without member demographics (lists carry no PHI)."""

    id: str
    status: ReferralStatus
    status_changed_at: datetime
    status_date: date = Field(description="RTF 'Date of Referral Status Update' (Pacific date).")
    status_reason: str | None
    closure_reason_code: str | None = Field(description="RTF 'Reason for Referral Loop Closure' (coded).")
    member_id: str = Field(description="CalHub's internal member id (filter lists by it).")
    program: Program
    service: dict[str, Any]
    urgency: Urgency
    county: str
    mcp_code: str | None
    routing_basis: RoutingBasis | None
    referring_organization_id: str
    cbo_organization_id: str | None
    authorization_id: str | None
    channel: str
    created_at: datetime
    links: dict[str, str]


class ReferralOut(ReferralSummary):
    """A referral with its member, referrer, notes, consent and timeline."""

    member: dict[str, Any]
    requested_mcp_code: str | None
    expedited_reason: str | None
    referring_npi: str
    referring: dict[str, Any]
    notes: str | None
    consent: dict[str, Any]
    external_identifiers: list[dict[str, str]]
    timeline: list[TimelineEntry]


class ReferralPage(BaseModel):
    """A page of referrals, newest first."""

    items: list[ReferralSummary]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")


class WithdrawIn(BaseModel):
    """Why the referrer withdraws the referral (reported as the reason for loop closure)."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=MAX_REASON)


# ------------------------------------------------------------------------------------------- rendering

def _instant(moment: datetime) -> str:
    # As pydantic writes an aware UTC datetime (ReferralOut's documented format): ISO 8601 ending in Z.
    return service.as_utc(moment).isoformat().replace("+00:00", "Z")


def summary_of(referral: Referral) -> dict[str, Any]:
    """The PHI-free summary of a referral as JSON-ready data (`ReferralSummary`)."""
    # Field for field in the model's order: the row's values are what the model would hold (statuses, programs
    # and urgencies are stored as their enum values).
    return {
        "id": referral.id, "status": referral.status, "status_changed_at": _instant(referral.status_changed_at),
        "status_date": service.pacific_date(referral.status_changed_at).isoformat(),
        "status_reason": referral.status_reason, "closure_reason_code": referral.closure_reason_code,
        "member_id": referral.member_id, "program": referral.program, "service": referral.service,
        "urgency": referral.urgency, "county": referral.county, "mcp_code": referral.mcp_code,
        "routing_basis": referral.routing_basis or None,
        "referring_organization_id": referral.referring_organization_id,
        "cbo_organization_id": referral.cbo_organization_id, "authorization_id": referral.authorization_id,
        "channel": referral.channel, "created_at": _instant(referral.created_at), "links": _links(referral),
    }


def detail_of(referral: Referral, timeline: Sequence[TimelineRecord]) -> dict[str, Any]:
    """The full referral (PHI) with its timeline, as JSON-ready data (`ReferralOut`).

    Written out directly rather than built as `ReferralOut` and dumped: intake renders one per referral, and
    the model's validation and serialization cost a twentieth of it. Tests hold it to the model (it must
    validate as `ReferralOut` and dump back to itself)."""
    return {
        **summary_of(referral), "member": referral.member, "requested_mcp_code": referral.requested_mcp_code,
        "expedited_reason": referral.expedited_reason, "referring_npi": referral.referring_npi,
        "referring": referral.referring, "notes": referral.notes, "consent": referral.consent,
        "external_identifiers": referral.external_identifiers,
        "timeline": [{"at": _instant(t.occurred_at), "kind": t.kind, "status": t.status or None,
                      "previous_status": t.previous_status or None, "reason": t.reason, "detail": t.detail}
                     for t in timeline],
    }


def detail_json(referral: Referral, timeline: Sequence[TimelineRecord]) -> bytes:
    """`detail_of` as UTF-8 JSON bytes."""
    return to_json_bytes(detail_of(referral, timeline))


def _links(referral: Referral) -> dict[str, str]:
    fhir = referral.id.replace("_", "-")  # FHIR ids allow no underscore (referrals.fhir.fhir_id)
    return {"self": f"/v1/referrals/{referral.id}", "task": f"/fhir/r4/Task/{fhir}",
            "service_request": f"/fhir/r4/ServiceRequest/{fhir}",
            "withdraw": f"/v1/referrals/{referral.id}/withdraw"}


def referral_not_found() -> Problem:
    """404 for a referral that does not exist or that the caller may not see (existence is not revealed)."""
    return Problem(404, "referral-not-found", "Referral not found")


def field_problem(violations: Sequence[Violation], rename: Callable[[str], str] | None = None) -> Problem:
    """A 422 naming every violated field and rule."""
    return validation_problem([FieldError(field=rename(v.field) if rename else v.field, rule=v.rule,
                                          message=v.message) for v in violations])


def duplicate_problem(existing: Referral, caller: Caller) -> Problem:
    """409 for a duplicate; it points at the open referral when the caller may see it, and only then."""
    if can_see(caller, existing):
        return Problem(409, "duplicate-referral", "Duplicate referral",
                       "An open referral exists for this member and service.",
                       headers={"Location": f"/v1/referrals/{existing.id}"},
                       existing_referral_id=existing.id, existing_referral=f"/v1/referrals/{existing.id}",
                       existing_status=existing.status)
    return Problem(409, "duplicate-referral", "Duplicate referral",
                   "An open referral exists for this member and service with another organization; "
                   "contact the hub to coordinate.")


# ---------------------------------------------------------------------------------------------- intake

def referrals_runtime(request: Request) -> ServiceRuntime:
    """The referrals runtime serving this request."""
    return runtime_of(request, SERVICE)


async def json_body(request: Request) -> Any:
    """The request body parsed as JSON; a 422 problem for an empty, oversized or malformed body."""
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        raise Problem(413, "payload-too-large", "Payload too large", f"At most {MAX_BODY_BYTES} bytes.")
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise validation_problem([FieldError(field="body", rule="json", message="The body is not valid JSON.")],
                                 ) from None


async def intake(request: Request, caller: Caller, key: str | None, body: Any, raw: Any, *, channel: str,
                 render: Callable[[ReferralsUnitOfWork, Referral], Awaitable[tuple[Any, dict[str, str]]]],
                 rename: Callable[[str], str] | None = None,
                 pre_violations: Sequence[Violation] = ()) -> Response:
    """Check, store and answer a submission once per Idempotency-Key (JSON API and FHIR alike).

    `body` is the request's parsed JSON (its fingerprint for the key), `raw` the submission it maps to. The
    answer is rendered from memory before anything is written, and stored with the referral (one statement on
    PostgreSQL). A request that fails, or whose key turns out taken, answers the key's stored answer when
    there is one. `render` answers JSON-able data or ready JSON bytes (stored as they are)."""
    runtime = referrals_runtime(request)
    # The fingerprint only matters for a keyed request (canonicalising the body costs a dump).
    fingerprint = json_request_hash(request.method, request.url.path, body) if key is not None else ""
    uow = runtime.uow()
    assert isinstance(uow, ReferralsUnitOfWork)
    async with uow:
        try:
            answer = await _accept(uow, caller, key, fingerprint, raw, channel=channel, render=render,
                                   rename=rename, pre_violations=pre_violations)
        except (Problem, IdempotencyKeyTaken) as failure:
            if key is None:
                raise
            await uow.rollback()
            stored = await stored_response(uow.session, uow.tables, caller, key, fingerprint)
            if stored is not None:
                return stored.to_response()
            if isinstance(failure, IdempotencyKeyTaken):  # its record was purged in between: try again later
                raise key_in_progress() from None
            raise
        await uow.commit()
    return answer.to_response()


_INDEX = re.compile(r"\[[0-9]+\]")


def _plain_path(field: str) -> str:
    return _INDEX.sub("", field)


def _said_already(violation: Violation, refused: Sequence[str]) -> bool:
    """True when an intake rule's error only repeats what the channel's reading refused: at or inside a refused
    element, or a "required" element that holds one (left out because of it). Any other error on an element
    that holds a refused one is a finding of its own (a wrong program code next to a bad display)."""
    path = _plain_path(violation.field)
    return any(path == r or path.startswith(r + ".") or (violation.rule == "required" and r.startswith(path + "."))
               for r in refused)


async def _accept(uow: ReferralsUnitOfWork, caller: Caller, key: str | None, fingerprint: str, raw: Any, *,
                  channel: str,
                  render: Callable[[ReferralsUnitOfWork, Referral], Awaitable[tuple[Any, dict[str, str]]]],
                  rename: Callable[[str], str] | None,
                  pre_violations: Sequence[Violation]) -> IdempotentResponse:
    if raw is None:  # the payload could not even be read (FHIR model errors)
        raise field_problem(pre_violations)
    now = service.clock_of(uow).now()
    draft, violations = check_referral(raw, today=service.pacific_date(now))
    named = [Violation(rename(v.field), v.rule, v.message) if rename else v for v in violations]
    if draft is None or pre_violations:
        # An element the channel's own reading refused (e.g. a FHIR model error, whose element was left out)
        # is reported once, not again as missing by the intake rules.
        refused = [_plain_path(v.field) for v in pre_violations]
        raise field_problem([*pre_violations, *(v for v in named if not _said_already(v, refused))])
    referral = await service.new_referral(uow, draft, caller, channel=channel, now=now)
    body, headers = await render(uow, referral)
    answer = produced_response(201, body, headers)
    audit = audit_values(action="referral.created", resource_type="referral", resource_id=referral.id,
                         caller=caller, detail={"channel": channel})
    try:
        await service.store_referral(uow, referral, audit=audit, answer=record_values(
            caller, key, fingerprint, answer) if key is not None else None)
    except service.DuplicateReferral as duplicate:
        raise duplicate_problem(duplicate.existing, caller) from None
    return answer


async def _render_json(uow: ReferralsUnitOfWork, referral: Referral) -> dict[str, Any]:
    return detail_of(referral, await uow.referrals.timeline(referral.id))


def _render_new(uow: ReferralsUnitOfWork, referral: Referral) -> bytes:
    # A referral created in this unit: its whole timeline is what the unit staged (no read-back).
    return detail_json(referral, uow.referrals.staged_timeline_of(referral.id))


# ---------------------------------------------------------------------------------------------- routes

_writer_of = caller_requiring("referrals:write")


# The busiest route: the caller and the key are read by plain functions, not FastAPI dependencies (the same
# checks and problems as `Writer` and `IdempotencyKey`; the same OpenAPI, from `openapi_extra`).
@router.post("/v1/referrals", status_code=201, response_model=ReferralOut, summary="Submit a referral",
             openapi_extra={**_request_body(ReferralSubmission, EXAMPLES, "application/json"),
                            "security": API_KEY_SECURITY, "parameters": [IDEMPOTENCY_KEY_PARAMETER]},
             responses=problem_responses(400, 401, 403, 409, 413, 422))
async def submit_referral(request: Request) -> Response:
    """Validate a referral (every error at once), store it, route it to the member's MCP and emit events.

    The same `Idempotency-Key` returns the first answer; an open referral for the same member and service
    answers 409 pointing at it.
    """
    caller = await _writer_of(request)
    key = idempotency_key_of(request)
    raw = await json_body(request)

    async def render(uow: ReferralsUnitOfWork, referral: Referral) -> tuple[bytes, dict[str, str]]:
        return _render_new(uow, referral), {"Location": f"/v1/referrals/{referral.id}"}

    return await intake(request, caller, key, raw, raw, channel="api", render=render)


@router.get("/v1/referrals/{referral_id}", response_model=ReferralOut, summary="A referral and its timeline",
            responses=problem_responses(401, 403, 404))
async def get_referral(referral_id: str, request: Request, caller: Reader) -> dict[str, Any]:
    """The referral's status, closed-loop fields, member, referrer and timeline (the read is audited)."""
    runtime = referrals_runtime(request)
    uow = runtime.uow()
    assert isinstance(uow, ReferralsUnitOfWork)
    async with uow:
        await read_one_snapshot(uow.session)  # the row and its timeline as of one moment
        referral = await uow.referrals.get(referral_id)
        if referral is None or not can_see(caller, referral):
            raise referral_not_found()
        body = await _render_json(uow, referral)
        await record_audit(uow.session, uow.audit, action="referral.read", resource_type="referral",
                           resource_id=referral.id, caller=caller)
        await uow.commit()
    return body


@router.get("/v1/referrals", response_model=ReferralPage, summary="Find referrals",
            responses=problem_responses(401, 403, 422))
async def list_referrals(
    request: Request, caller: Reader,
    status: Annotated[list[ReferralStatus] | None, Query(description="One or more statuses.")] = None,
    mcp_code: Annotated[str | None, Query(max_length=40)] = None,
    cbo_organization_id: Annotated[str | None, Query(max_length=64, description="Referred by or assigned to.")] = None,
    member_id: Annotated[str | None, Query(max_length=40, description="CalHub member id (never a CIN in a URL).")]
    = None,
    created_since: Annotated[datetime | None, Query(description="ISO 8601; UTC when no offset is given.")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=40, description="`next_cursor` of the previous page.")] = None,
) -> ReferralPage:
    """Referrals the caller may see (a CBO its own, an MCP those routed to it, the hub all), newest first."""
    if cursor is not None and not _CURSOR.fullmatch(cursor):
        raise validation_problem([FieldError(field="query.cursor", rule="cursor",
                                             message="Not a cursor returned by this endpoint.")])
    # As UTC: SQLite compares the stored UTC wall time with the parameter's wall time, whatever its offset.
    since = service.as_utc(created_since) if created_since is not None else None
    runtime = referrals_runtime(request)
    uow = runtime.uow()
    assert isinstance(uow, ReferralsUnitOfWork)
    async with uow:
        rows = await uow.referrals.search(
            caller=caller, statuses=[s.value for s in status or ()], mcp_code=mcp_code,
            cbo_organization_id=cbo_organization_id, member_id=member_id, created_since=since,
            before_id=cursor, limit=limit + 1)
        more = len(rows) > limit
        page = list(rows[:limit])
        # Rendered inside the unit of work: leaving it rolls back and expires the loaded rows.
        return ReferralPage(items=[ReferralSummary.model_validate(summary_of(r)) for r in page],
                            next_cursor=page[-1].id if more and page else None)


@router.post("/v1/referrals/{referral_id}/withdraw", response_model=ReferralOut, summary="Withdraw a referral",
             responses=problem_responses(401, 403, 404, 409, 422))
async def withdraw_referral(referral_id: str, body: WithdrawIn, request: Request, caller: Writer) -> dict[str, Any]:
    """The referrer (or the hub) withdraws an open referral; the loop closes with the reason given."""
    runtime = referrals_runtime(request)
    uow = runtime.uow()
    assert isinstance(uow, ReferralsUnitOfWork)
    async with uow:
        now = service.clock_of(uow).now()
        try:
            referral = await service.withdraw(uow, referral_id, caller, reason=body.reason.strip(), now=now)
        except service.ReferralNotFound:
            raise referral_not_found() from None
        except service.ReferralClosed as closed:
            raise Problem(409, "referral-not-open", "Referral is not open",
                          "A closed, withdrawn or declined referral cannot be withdrawn.",
                          referral_status=closed.status) from None
        await uow.flush()
        result = await _render_json(uow, referral)
        await uow.commit()
    return result
