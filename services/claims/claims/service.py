"""Use cases of the claims service, shared by api.py, handlers.py and the batch schedule.

Each function works inside the caller's unit of work: it changes rows, records events and audit entries, and
never commits (the edge does).
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Coroutine, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy import insert

from claims.domain.claims import (
    REPLACEABLE,
    ClaimKey,
    ClaimStatus,
    InvalidTransition,
    check_transition,
    merge_diagnoses,
    new_batch_id,
    new_claim_id,
    new_encounter_id,
)
from claims.domain.configuration import BillingConfiguration, ClaimFormat, McpBilling
from claims.domain.coverage import approval_supersedes, next_status, with_resumption, with_suspension
from claims.domain.encounters import CheckContext, Coverage, EncounterSubmission, check_encounter
from claims.domain.payouts import (
    Collection,
    FeeTerm,
    NoFeeTerm,
    PayoutStatement,
    Recoupment,
    StatementLine,
    build_statement,
)
from claims.domain.payouts import FeeSchedule as PayoutFees
from claims.domain.pricing import cents
from claims.domain.remittance import (
    ClaimOutcome,
    ClaimPosting,
    ExceptionReason,
    FileStatus,
    LineOutcome,
    PostingKind,
    ProviderAdjustmentKind,
    ProviderAdjustmentPosting,
    RemittancePlan,
    RemittanceStatus,
    SettlementState,
    file_sha256,
    plan_remittance_file,
    planned_posting_id,
    remittance_key,
)
from claims.domain.timely_payment import (
    HMO,
    NON_HMO,
    ClaimTiming,
    compare_interest,
    interest_paid_by_claim,
    late_payment_interest,
    silent_payers,
    timely_payment_report,
)
from claims.models import (
    AcknowledgmentFile,
    AuthorizationCoverage,
    Claim,
    ClaimBatch,
    ClaimHistory,
    ClaimLine,
    ClaimPayment,
    Denial,
    LinePayment,
    Payout,
    ProviderAdjustment,
    Remittance,
    RemittanceExceptionRow,
    RemittanceFile,
)
from claims.models import Encounter as EncounterRow
from claims.models import audit_event as audit_table
from claims.repository import ClaimState, ClaimsUnitOfWork, ControlNumbersExhausted, mark_claims, new_history
from claims.schemas import ClaimCorrectionIn, EncounterIn
from claims.x12.invoice import build_invoice
from claims.x12.validation import ValidationIssue, claims_at, validate_837p
from claims.x12.x277ca import parse_277ca
from claims.x12.x835 import parse_835
from claims.x12.x837p import (
    BatchHeader,
    BillingProvider,
    Built837,
    ClaimBuildError,
    Payer,
    PostalAddress,
    ProfessionalClaim,
    Receiver,
    RenderingProvider,
    ServiceLine,
    Subscriber,
    build_837p,
    check_claim,
    reference_problem,
)
from claims.x12.x837p import Submitter as X12Submitter
from claims.x12.x999 import ACCEPTED_CODES, FunctionalAcknowledgment, parse_999
from shared.auth import Caller, TenantScope, record_audit
from shared.collector import collector_paused
from shared.contracts.base import EventData
from shared.contracts.claims import (
    ClaimAccepted,
    ClaimBatchAcknowledged,
    ClaimBatchCreated,
    ClaimCorrected,
    ClaimCreated,
    ClaimDenied,
    ClaimPaid,
    ClaimRejected,
    ClaimReversed,
    ClaimSubmitted,
    EncounterRecorded,
    EncounterRejected,
    PayoutGenerated,
    RemittancePosted,
    RemittanceRefused,
)
from shared.contracts.gateway import FileDelivered, FileReceived
from shared.contracts.values import Program
from shared.envelope import DataT, Envelope, EventBatch, caused_by, new_event
from shared.filestore import FileStore
from shared.identity import member_id_for
from shared.ids import uuid7
from shared.reference import codes
from shared.reference.calendar import PACIFIC
from shared.scheduler import Clock
from shared.uow import OutboxRow, encode_outbox_rows, insert_outbox_rows
from shared.x12.envelope import Party
from shared.x12.segments import X12SyntaxError

log = logging.getLogger("calhub.claims")

SOURCE = "claims"


# ------------------------------------------------------------------------------------------------- errors

class ClaimsError(Exception):
    """A use case refused; api.py turns it into problem+json (`slug`, `title`, `detail` carry no PHI)."""

    status = 409

    def __init__(self, slug: str, title: str, detail: str) -> None:
        super().__init__(title)
        self.slug = slug
        self.title = title
        self.detail = detail


class NotFound(ClaimsError):
    """No such resource (or not the caller's)."""

    status = 404


class InvalidCorrection(ClaimsError):
    """A correction breaks a rule; `field` and `rule` name it."""

    status = 422

    def __init__(self, field: str, rule: str, detail: str) -> None:
        super().__init__("validation-failed", "Request validation failed", detail)
        self.field = field
        self.rule = rule


class BatchFailedValidation(ClaimsError):
    """The generated 837P did not pass the validator outside any one claim (envelope, header, billing provider);
    nothing left, the claims stay draft."""

    status = 422

    def __init__(self, issues: Sequence[ValidationIssue]) -> None:
        super().__init__("batch-failed-validation", "The 837P failed validation",
                         f"{len(issues)} issue(s); the claims stay draft and no file left.")
        self.issues = list(issues)


# ------------------------------------------------------------------------------------------------- actors

@dataclass(frozen=True)
class Actor:
    """Who changes billing data: an API caller, or the system acting on a file or schedule."""

    caller: Caller | None = None
    system: str | None = None

    @property
    def label(self) -> str:
        """Organization id, or `system:<what>`."""
        if self.caller is not None:
            return self.caller.organization_id
        return f"system:{self.system or 'claims'}"

    @property
    def key_id(self) -> str | None:
        """The API key used, if any."""
        return self.caller.key_id if self.caller is not None else None


def configuration(uow: ClaimsUnitOfWork) -> BillingConfiguration:
    """The billing configuration port."""
    config: BillingConfiguration = uow.ports["billing"]
    return config


def clock(uow: ClaimsUnitOfWork) -> Clock:
    """The clock port."""
    value: Clock = uow.ports["clock"]
    return value


def file_store(uow: ClaimsUnitOfWork) -> FileStore:
    """The file store port."""
    store: FileStore = uow.ports["files"]
    return store


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


# ---------------------------------------------------------------------------------------------- encounters

@dataclass
class EncounterOutcome:
    """An encounter and whether it was already known (same external id)."""

    encounter: EncounterRow
    existing: bool = False


def _member_json(body: EncounterIn) -> dict[str, Any]:
    member = body.member
    return {"last_name": member.last_name, "first_name": member.first_name, "middle_name": member.middle_name,
            "birth_date": member.birth_date.isoformat(), "sex": member.sex,
            "address": member.address.model_dump()}


async def record_encounter(uow: ClaimsUnitOfWork, body: EncounterIn, *, cbo_organization_id: str,
                           actor: Actor) -> EncounterOutcome:
    """Check, price and keep an encounter; attach it to a draft claim when it passes. Flushes."""
    if body.external_id:
        existing = await uow.encounters.by_external_id(cbo_organization_id, body.external_id)
        if existing is not None:
            return EncounterOutcome(existing, existing=True)
    config = configuration(uow)
    now = clock(uow).now()
    today = now.astimezone(PACIFIC).date()
    member_id = member_id_for(body.member.cin)
    await uow.lock_member(member_id)
    context = CheckContext(configuration=config, coverages=await uow.coverages.for_member(member_id),
                           eligibility=await uow.eligibility.for_member(member_id),
                           history=await uow.encounters.history(member_id), today=today)
    service_to = body.service_date_to or body.service_date
    modifiers = tuple(m.upper() for m in body.modifiers)
    submission = EncounterSubmission(
        cbo_organization_id=cbo_organization_id, mcp_code=body.mcp_code, program=body.program.value,
        cs_code=body.cs_code, hcpcs=body.hcpcs.upper(), modifiers=modifiers, units=body.units,
        service_from=body.service_date, service_to=service_to, rendering_npi=body.rendering_provider.npi,
        outreach_attempt=body.outreach_attempt, outreach_outcome=body.outreach_outcome,
        prerequisites=frozenset(body.prerequisites), care_plan_on_file=body.care_plan_on_file)
    result = check_encounter(submission, context)
    authorization = result.authorization
    row = EncounterRow(
        id=new_encounter_id(), external_id=body.external_id, cbo_organization_id=cbo_organization_id,
        mcp_code=result.mcp_code, member_id=member_id, cin=body.member.cin, member=_member_json(body),
        program=body.program.value, cs_code=body.cs_code, service_code=result.service_code, hcpcs=submission.hcpcs,
        modifiers=list(modifiers), units=body.units, service_from=body.service_date, service_to=service_to,
        place_of_service=body.place_of_service, diagnosis_codes=list(body.diagnosis_codes),
        rendering_npi=body.rendering_provider.npi, rendering_last_name=body.rendering_provider.last_name,
        rendering_first_name=body.rendering_provider.first_name, outreach_attempt=body.outreach_attempt,
        outreach_outcome=body.outreach_outcome, prerequisites=sorted(body.prerequisites),
        care_plan_on_file=body.care_plan_on_file, status="recorded" if result.accepted else "rejected",
        reasons=[{"code": r.code, "message": r.message} for r in result.reasons],
        flags=[{"code": f.code, "message": f.message} for f in result.flags],
        authorization_id=authorization.authorization_id if authorization else None,
        prior_authorization_number=_billable_number(authorization),
        expected_amount=result.price.amount if result.price and result.accepted else None,
        pricing=[{"basis": c.basis.value, "amount": str(c.amount), "note": c.note}
                 for c in (result.price.components if result.price else ())],
        received_at=now, submitted_by=actor.label)
    uow.encounters.add(row)
    # An encounter billed against an authorization continues the referral's lineage (ARCHITECTURE "Events");
    # one without (CHW) starts its own.
    lineage = await _authorization_lineage(uow, row.authorization_id)
    if result.accepted:
        assert result.mcp_code is not None and result.service_code is not None
        claim = await _attach_to_claim(uow, row, config, now, actor)
        row.claim_id = claim.id
        recorded = new_event(EncounterRecorded(
            encounter_id=row.id, cbo_organization_id=cbo_organization_id, mcp_code=result.mcp_code,
            authorization_id=row.authorization_id, program=Program(row.program), service_date=row.service_from,
            service_to=row.service_to, hcpcs=row.hcpcs, modifiers=modifiers, units=row.units,
            outreach_attempt=row.outreach_attempt, service_code=row.service_code, claim_id=claim.id,
            expected_amount=row.expected_amount, flags=tuple(f.code for f in result.flags)),
            subject=row.id, source=SOURCE, member_id=member_id, correlation_id=lineage, time=now)
        uow.record(recorded)
        # The claim's events (claim.created at batching, then submitted, accepted, paid...) continue this lineage:
        # the authorization's, or for a claim without one the lineage its first encounter started.
        claim.correlation_id = claim.correlation_id or recorded.correlation_id
    else:
        uow.record(new_event(EncounterRejected(
            encounter_id=row.id, cbo_organization_id=cbo_organization_id, service_date=row.service_from,
            reasons=tuple(r.message for r in result.reasons), reason_codes=tuple(r.code for r in result.reasons),
            mcp_code=result.mcp_code), subject=row.id, source=SOURCE, member_id=member_id, correlation_id=lineage,
            time=now))
    await record_audit(uow.session, audit_table, action=f"encounter.{row.status}", resource_type="encounter",
                       resource_id=row.id, caller=actor.caller, occurred_at=now,
                       detail={"claim_id": row.claim_id, "reason_codes": [r.code for r in result.reasons],
                               "expected_amount": row.expected_amount, "mcp_code": row.mcp_code})
    await uow.flush()  # the next encounter of the same request must see this one in the member's history
    return EncounterOutcome(row)


def _billable_number(authorization: Coverage | None) -> str | None:
    # A number REF*G1 cannot carry refuses the encounter (authorization_number_unusable); it is not kept on it.
    number = authorization.mcp_authorization_number if authorization is not None else None
    return number if number is not None and reference_problem(number) is None else None


async def _authorization_lineage(uow: ClaimsUnitOfWork, authorization_id: str | None) -> UUID | None:
    """The correlation id of the authorization's events, or None (no authorization, or projected before 0004)."""
    if authorization_id is None:
        return None
    # The checks just loaded the member's projection rows: this is an identity-map hit, not a query.
    row = await uow.coverages.get(authorization_id)
    return row.correlation_id if row is not None else None


def _claim_event(claim: Claim, data: DataT, *, parent: Envelope[Any] | None, now: datetime) -> Envelope[DataT]:
    """A claim.* event in the claim's own lineage, caused by `parent` (a batch trigger, file event...) if any.

    Claims opened before migration 0004 have no stored lineage: their events follow `parent` as they always did.
    """
    if claim.correlation_id is None:
        return (caused_by(parent, data, subject=claim.id, source=SOURCE, member_id=claim.member_id, time=now)
                if parent is not None else
                new_event(data, subject=claim.id, source=SOURCE, member_id=claim.member_id, time=now))
    return new_event(data, subject=claim.id, source=SOURCE, member_id=claim.member_id,
                     correlation_id=claim.correlation_id, causation_id=parent.id if parent is not None else None,
                     time=now)


async def _attach_to_claim(uow: ClaimsUnitOfWork, encounter: EncounterRow, config: BillingConfiguration,
                           now: datetime, actor: Actor) -> Claim:
    assert encounter.mcp_code is not None and encounter.service_code is not None
    billing = config.mcp(encounter.mcp_code)
    identity = config.billing_identity(encounter.mcp_code, encounter.cbo_organization_id)
    assert billing is not None and identity is not None  # the checks refused the encounter otherwise
    key = ClaimKey(mcp_code=encounter.mcp_code, cbo_organization_id=encounter.cbo_organization_id,
                   member_id=encounter.member_id, program=encounter.program, service_code=encounter.service_code,
                   authorization_id=encounter.authorization_id, rendering_npi=encounter.rendering_npi,
                   service_month=ClaimKey.month_of(encounter.service_from))
    amount = Decimal(encounter.expected_amount or 0)
    for claim in await uow.claims.open_draft(**key.__dict__):
        lines = await uow.claims.lines(claim.id)
        if len(lines) >= 50:
            continue
        merged = merge_diagnoses(tuple(claim.diagnosis_codes), tuple(encounter.diagnosis_codes))
        if merged is None:
            continue
        claim.diagnosis_codes, pointers = list(merged[0]), merged[1]
        claim.expected_amount = Decimal(claim.expected_amount) + amount
        claim.service_from = min(claim.service_from, encounter.service_from)
        claim.service_to = max(claim.service_to, encounter.service_to)
        claim.updated_at = now
        claim.version += 1
        claim.member = encounter.member  # the newest demographics the CBO sent
        uow.claims.add_line(_line(claim.id, len(lines) + 1, encounter, pointers, amount))
        uow.claims.add_history(new_history(claim.id, action="line_added", actor=actor.label, actor_key_id=actor.key_id,
                                           from_status="draft", to_status="draft", at=now,
                                           detail={"encounter_id": encounter.id, "charge": str(amount)}))
        return claim
    first = merge_diagnoses((), tuple(encounter.diagnosis_codes))
    assert first is not None
    claim = Claim(
        id=new_claim_id(), mcp_code=key.mcp_code, cbo_organization_id=key.cbo_organization_id,
        member_id=key.member_id, cin=encounter.cin, member=encounter.member, program=key.program,
        service_code=key.service_code, authorization_id=key.authorization_id,
        prior_authorization_number=encounter.prior_authorization_number, rendering_npi=key.rendering_npi,
        rendering_last_name=encounter.rendering_last_name, rendering_first_name=encounter.rendering_first_name,
        billing_provider=billing.profile.billing_provider.value, billing_npi=identity.npi,
        claim_format=billing.profile.claim_format.value, place_of_service=encounter.place_of_service,
        diagnosis_codes=list(first[0]), service_month=key.service_month, service_from=encounter.service_from,
        service_to=encounter.service_to, frequency_code="1", replaces_claim_id=None, payer_claim_number=None,
        status=ClaimStatus.DRAFT.value, expected_amount=amount, paid_amount=None, adjustment_amount=None,
        paid_on=None, rejection_reasons=[], batch_id=None, transaction_set=None, created_at=now, updated_at=now,
        submitted_at=None, acknowledged_at=None, version=1)
    uow.claims.add(claim)
    uow.claims.add_line(_line(claim.id, 1, encounter, first[1], amount))
    uow.claims.add_history(new_history(claim.id, action="opened", actor=actor.label, actor_key_id=actor.key_id,
                                       from_status=None, to_status="draft", at=now,
                                       detail={"encounter_id": encounter.id, "charge": str(amount)}))
    return claim


def _line(claim_id: str, number: int, encounter: EncounterRow, pointers: tuple[int, ...], amount: Decimal
          ) -> ClaimLine:
    return ClaimLine(claim_id=claim_id, line_number=number, encounter_id=encounter.id, hcpcs=encounter.hcpcs,
                     modifiers=list(encounter.modifiers), units=encounter.units, charge=amount,
                     service_from=encounter.service_from, service_to=encounter.service_to,
                     place_of_service=encounter.place_of_service, diagnosis_pointers=list(pointers),
                     paid_amount=None, adjustment_amount=None)


# ------------------------------------------------------------------------------------------- claim -> 837P

def _address(data: dict[str, Any]) -> PostalAddress:
    return PostalAddress(line1=data["line1"], line2=data.get("line2"), city=data["city"],
                         state=data.get("state") or "CA", zip=data["zip"])


def _subscriber(claim: Claim) -> Subscriber:
    member = claim.member
    return Subscriber(cin=claim.cin, last_name=member["last_name"], first_name=member["first_name"],
                      middle_name=member.get("middle_name"), birth_date=date.fromisoformat(member["birth_date"]),
                      sex=member.get("sex") or "U", address=_address(member["address"]))


def professional_claim(claim: Claim, lines: Sequence[ClaimLine], config: BillingConfiguration,
                       billing: McpBilling) -> ProfessionalClaim:
    """The 837P view of a stored claim. Raises LookupError if the billing identity is no longer configured,
    ClaimBuildError if the member data stored with the claim is incomplete."""
    identity = config.hub if claim.billing_provider == "hub" else config.cbos.get(claim.cbo_organization_id)
    if identity is None:
        raise LookupError("billing identity not configured")
    try:
        subscriber = _subscriber(claim)
    except (KeyError, TypeError, ValueError):
        raise ClaimBuildError("2010BA subscriber: the member data stored with the claim is incomplete") from None
    provider = BillingProvider(name=identity.name, npi=identity.npi, tin=identity.tin,
                               address=PostalAddress(identity.address.line1, identity.address.city,
                                                     identity.address.state, identity.address.zip,
                                                     identity.address.line2),
                               taxonomy=identity.taxonomy)
    rendering = RenderingProvider(npi=claim.rendering_npi, last_name=claim.rendering_last_name or "PROVIDER",
                                  first_name=claim.rendering_first_name,
                                  organization=claim.rendering_first_name is None)
    return ProfessionalClaim(
        claim_id=claim.id, billing_provider=provider, subscriber=subscriber,
        payer=Payer(billing.profile.payer_name, billing.profile.payer_id), place_of_service=claim.place_of_service,
        diagnosis_codes=tuple(claim.diagnosis_codes),
        lines=tuple(ServiceLine(procedure_code=line.hcpcs, charge=Decimal(line.charge), units=Decimal(line.units),
                                service_from=line.service_from, service_to=line.service_to,
                                diagnosis_pointers=tuple(line.diagnosis_pointers), modifiers=tuple(line.modifiers),
                                place_of_service=line.place_of_service, control_number=line.encounter_id)
                    for line in lines),
        frequency_code=claim.frequency_code, payer_claim_number=claim.payer_claim_number,
        prior_authorization=claim.prior_authorization_number, rendering_provider=rendering)


def _validated_837p(header: BatchHeader, claims: list[ProfessionalClaim], refused: dict[str, list[str]], *,
                    validate: bool, mcp_code: str) -> tuple[Built837 | None, list[ProfessionalClaim]]:
    """The 837P of `claims` and the claims it carries. A claim whose own loops fail the validator goes to `refused`
    and the file is built again without it (None when no claim is left). Raises BatchFailedValidation for an issue
    outside every claim: the envelope, header or billing provider are the configuration's, not one claim's."""
    built = build_837p(header, claims)
    if not validate:
        return built, claims
    for _ in range(3):  # a rebuild without the failing claims is valid at once unless something else is wrong
        issues = validate_837p(built.text)
        if not issues:
            return built, claims
        owners = claims_at(built.text, [issue.file_position for issue in issues])
        if any(issue.file_position not in owners for issue in issues):
            log.error("generated 837P failed validation", extra={"mcp_code": mcp_code, "count": len(issues)})
            raise BatchFailedValidation(issues)
        for issue in issues:
            refused.setdefault(owners[issue.file_position], []).append(
                f"837P validation: {issue.segment or 'segment'} {issue.message} ({issue.rule})")
        log.warning("claims refused: 837P validation", extra={"mcp_code": mcp_code, "count": len(set(owners.values()))})
        claims = [claim for claim in claims if claim.claim_id not in refused]
        if not claims:
            return None, []
        built = build_837p(header, claims)
    log.error("generated 837P failed validation", extra={"mcp_code": mcp_code, "count": len(issues)})
    raise BatchFailedValidation(issues)


def _refuse_at_batching(uow: ClaimsUnitOfWork, drafts: Sequence[Claim], refused: dict[str, list[str]], *,
                        actor: Actor, now: datetime, parent: Envelope[Any] | None) -> None:
    """Reject the drafts the 837P cannot carry, each with its reasons, so the CBO sees why and corrects it."""
    if not refused:
        return
    log.warning("claims refused at batching", extra={"count": len(refused)})
    for claim in drafts:
        reasons = refused.get(claim.id)
        if reasons is None or not _transition(uow, claim, ClaimStatus.REJECTED, actor=actor,
                                              action="rejected_at_batching", now=now, detail={"reasons": reasons}):
            continue
        claim.rejection_reasons = reasons
        uow.record(_claim_event(claim, ClaimRejected(claim_id=claim.id, mcp_code=claim.mcp_code,
                                                     cbo_organization_id=claim.cbo_organization_id,
                                                     acknowledgment="calhub", reasons=tuple(reasons)),
                                parent=parent, now=now))


def _party(party: Any) -> Party:
    return Party(qualifier=party.qualifier, id=party.id, application_code=party.application_code)


@dataclass
class BatchResult:
    """A batch and the claims it sealed, and the drafts rejected at batching (no batch when none could go)."""

    batch: ClaimBatch | None
    claim_ids: list[str]
    rejected_ids: list[str] = field(default_factory=list)


async def create_batch(uow: ClaimsUnitOfWork, mcp_code: str, *, actor: Actor, trigger: str,
                       max_claims: int = 50_000, validate: bool = True,
                       parent: Envelope[Any] | None = None) -> BatchResult | None:
    """Seal the MCP's draft claims into one 837P (or invoice) file in the file store; None if none are drafts,
    a result without a batch if every draft was rejected at batching.

    A claim the 837P cannot carry (`check_claim`) or whose own loops fail the validator is rejected on its own
    with the reasons (`rejected_at_batching`, corrected like an MCP rejection) and the others go out. Raises
    NotFound for an MCP CalHub does not bill, BatchFailedValidation when the file fails the validator outside
    any claim (the transaction must then roll back), ClaimsError when control numbers are exhausted.
    """
    config = configuration(uow)
    billing = config.mcp(mcp_code)
    if billing is None:
        raise NotFound("mcp-not-billed", "MCP not billed", "CalHub has no billing profile for this MCP.")
    counter = await uow.batches.lock_control_numbers(mcp_code)
    drafts = await uow.claims.drafts(mcp_code, max_claims)
    if not drafts:
        return None
    now = clock(uow).now()
    lines = await uow.claims.lines_of([c.id for c in drafts])
    professional: list[ProfessionalClaim] = []
    held: list[str] = []
    refused: dict[str, list[str]] = {}  # claim id -> why the 837P cannot carry it
    x12 = billing.profile.claim_format is ClaimFormat.X12_837P
    for claim in drafts:
        try:
            view = professional_claim(claim, lines[claim.id], config, billing)
            if x12:
                check_claim(view)
        except ClaimBuildError as error:
            refused[claim.id] = [f"837P: {error}"]
            continue
        except LookupError:
            held.append(claim.id)  # the CBO's billing identity was removed from the configuration
            continue
        professional.append(view)
    if held:
        log.warning("claims held: billing identity missing", extra={"mcp_code": mcp_code, "count": len(held)})
    if not professional:
        _refuse_at_batching(uow, drafts, refused, actor=actor, now=now, parent=parent)
        return BatchResult(None, [], sorted(refused)) if refused else None
    try:
        interchange, group = uow.batches.advance(counter)
    except ControlNumbersExhausted:
        raise ClaimsError("control-numbers-exhausted", "Control numbers exhausted",
                          "ISA13 for this MCP reached 499999999 (claims' half of the range).") from None
    batch_id = new_batch_id()
    created_local = now.astimezone(PACIFIC)
    transaction_of: dict[str, str | None]
    if billing.profile.claim_format is ClaimFormat.X12_837P:
        submitter = config.submitter
        header = BatchHeader(
            sender=_party(submitter.interchange), receiver_party=_party(billing.profile.interchange),
            submitter=X12Submitter(submitter.name, submitter.id, submitter.contact_name, submitter.contact_phone),
            receiver=Receiver(billing.profile.receiver_name, billing.profile.receiver_id),
            interchange_control_number=interchange, group_control_number=group, created=created_local,
            reference=batch_id, usage=billing.profile.usage)
        built, professional = _validated_837p(header, professional, refused, validate=validate, mcp_code=mcp_code)
        if built is None:
            _refuse_at_batching(uow, drafts, refused, actor=actor, now=now, parent=parent)
            return BatchResult(None, [], sorted(refused))
        content = built.text.encode("ascii")
        media_type, extension, kind = "application/edi-x12", "x12", "837P"
        transaction_of = dict(built.transaction_of_claim)
        sets = built.transaction_sets
    else:
        content = build_invoice(professional).encode("utf-8")
        media_type, extension, kind = "text/csv", "csv", "invoice"
        transaction_of = {c.claim_id: None for c in professional}
        sets = 0
    reference = file_store(uow).put(content, media_type=media_type)
    total = sum((c.total_charge for c in professional), Decimal("0"))
    batch = ClaimBatch(id=batch_id, mcp_code=mcp_code, file_kind=kind, interchange_control_number=interchange,
                       group_control_number=group, transaction_sets=sets, claims=len(professional),
                       total_amount=total, file_uri=reference.uri, file_sha256=reference.sha256,
                       file_size=reference.size, status="created", acknowledgment_code=None, trigger=trigger,
                       created_by=actor.label, created_at=now, delivered_at=None)
    uow.batches.add(batch)
    by_set: dict[str | None, list[str]] = defaultdict(list)
    for claim_id, control in transaction_of.items():
        by_set[control].append(claim_id)
    for control, ids in by_set.items():
        await mark_claims(uow.session, ids, status=ClaimStatus.BATCHED.value, batch_id=batch_id,
                          transaction_set=control, updated_at=now, version=Claim.version + 1)
    sealed = {c.claim_id for c in professional}
    history = [{"id": uuid7(), "claim_id": c.id, "occurred_at": now, "actor": actor.label,
                "actor_key_id": actor.key_id, "action": "batched", "from_status": "draft", "to_status": "batched",
                "detail": {"batch_id": batch_id, "interchange_control_number": interchange,
                           "transaction_set": transaction_of.get(c.id)}}
               for c in drafts if c.id in sealed]
    await uow.session.execute(insert(ClaimHistory), history)
    _refuse_at_batching(uow, drafts, refused, actor=actor, now=now, parent=parent)
    for claim in drafts:
        if claim.id not in sealed:
            continue
        data = ClaimCreated(claim_id=claim.id, mcp_code=mcp_code, cbo_organization_id=claim.cbo_organization_id,
                            expected_amount=Decimal(claim.expected_amount), service_from=claim.service_from,
                            service_to=claim.service_to, frequency_code=claim.frequency_code,
                            replaces_claim_id=claim.replaces_claim_id, batch_id=batch_id,
                            lines=len(lines[claim.id]))
        uow.record(_claim_event(claim, data, parent=parent, now=now))
    name = f"{mcp_code}_{kind}_{created_local:%Y%m%d%H%M}_{interchange:09d}.{extension}"
    batch_event = ClaimBatchCreated(batch_id=batch_id, mcp_code=mcp_code, claims=len(professional),
                                    total_amount=total, file=reference, file_kind=kind,
                                    interchange_control_number=f"{interchange:09d}",
                                    group_control_number=str(group), transaction_sets=sets, created_at=now,
                                    file_name=name)
    uow.record(caused_by(parent, batch_event, subject=batch_id, source=SOURCE, time=now) if parent
               else new_event(batch_event, subject=batch_id, source=SOURCE, time=now))
    await record_audit(uow.session, audit_table, action="claim_batch.created", resource_type="claim_batch",
                       resource_id=batch_id, caller=actor.caller, occurred_at=now,
                       detail={"mcp_code": mcp_code, "claims": len(professional), "total_amount": total,
                               "trigger": trigger, "held": len(held), "refused": len(refused)})
    log.info("claim batch created", extra={"batch_id": batch_id, "mcp_code": mcp_code, "count": len(professional)})
    return BatchResult(batch, [c.claim_id for c in professional], sorted(refused))


# ------------------------------------------------------------------------------------------ status changes

def _transition(uow: ClaimsUnitOfWork, claim: Claim, target: ClaimStatus, *, actor: Actor, action: str,
                now: datetime, detail: dict[str, Any] | None = None) -> bool:
    """Move a claim if the lifecycle allows it; record history. False (and a history note) when it does not."""
    current = ClaimStatus(claim.status)
    try:
        check_transition(current, target)
    except InvalidTransition:
        uow.claims.add_history(new_history(claim.id, action=f"{action}_ignored", actor=actor.label,
                                           from_status=current.value, to_status=current.value, at=now,
                                           detail={**(detail or {}), "asked": target.value}))
        return False
    claim.status = target.value
    claim.updated_at = now
    claim.version += 1
    uow.claims.add_history(new_history(claim.id, action=action, actor=actor.label, actor_key_id=actor.key_id,
                                       from_status=current.value, to_status=target.value, at=now, detail=detail))
    return True


async def mark_delivered(uow: ClaimsUnitOfWork, event: Envelope[FileDelivered]) -> int:
    """The gateway put a batch's file in the MCP's folder: its claims are submitted. Returns how many."""
    data = event.data
    if not data.source_id:
        return 0
    batch = await uow.batches.get(data.source_id)
    if batch is None or batch.mcp_code != data.mcp_code:
        return 0
    if batch.delivered_at is not None:
        return 0  # business idempotency: a second delivery report changes nothing
    now = clock(uow).now()
    batch.delivered_at = data.delivered_at
    if batch.status == "created":
        batch.status = "delivered"
    actor = Actor(system="sftp-gateway")
    moved = 0
    claims = await uow.claims.by_ids(await _batch_claim_ids(uow, batch.id))
    for claim in claims.values():
        if claim.status != ClaimStatus.BATCHED.value:
            continue
        if _transition(uow, claim, ClaimStatus.SUBMITTED, actor=actor, action="submitted", now=now,
                       detail={"batch_id": batch.id, "file_id": data.file_id}):
            claim.submitted_at = data.delivered_at
            moved += 1
            uow.record(_claim_event(claim, ClaimSubmitted(
                claim_id=claim.id, mcp_code=claim.mcp_code, cbo_organization_id=claim.cbo_organization_id,
                batch_id=batch.id, submitted_at=data.delivered_at), parent=event, now=now))
    return moved


async def _batch_claim_ids(uow: ClaimsUnitOfWork, batch_id: str) -> list[str]:
    from sqlalchemy import select

    return list((await uow.session.scalars(select(Claim.id).where(Claim.batch_id == batch_id))).all())


def _reject(uow: ClaimsUnitOfWork, claim: Claim, reasons: list[str], *, acknowledgment: str, actor: Actor,
            now: datetime, parent: Envelope[Any]) -> bool:
    if not _transition(uow, claim, ClaimStatus.REJECTED, actor=actor, action=f"rejected_{acknowledgment}",
                       now=now, detail={"reasons": reasons}):
        return False
    claim.rejection_reasons = reasons
    claim.acknowledged_at = now
    uow.record(_claim_event(claim, ClaimRejected(claim_id=claim.id, mcp_code=claim.mcp_code,
                                                 cbo_organization_id=claim.cbo_organization_id,
                                                 acknowledgment=acknowledgment, reasons=tuple(reasons)),
                            parent=parent, now=now))
    return True


def _accept(uow: ClaimsUnitOfWork, claim: Claim, *, acknowledgment: str, actor: Actor, now: datetime,
            parent: Envelope[Any], payer_claim_number: str | None = None) -> bool:
    if claim.status == ClaimStatus.ACCEPTED.value:
        if payer_claim_number and claim.payer_claim_number != payer_claim_number:
            claim.payer_claim_number = payer_claim_number
            uow.claims.add_history(new_history(claim.id, action="payer_claim_number", actor=actor.label,
                                               from_status=claim.status, to_status=claim.status, at=now,
                                               detail={"acknowledgment": acknowledgment}))
        return False
    if not _transition(uow, claim, ClaimStatus.ACCEPTED, actor=actor, action=f"accepted_{acknowledgment}",
                       now=now, detail={"payer_claim_number": payer_claim_number}):
        return False
    claim.acknowledged_at = now
    claim.rejection_reasons = []
    if payer_claim_number:
        claim.payer_claim_number = payer_claim_number
    uow.record(_claim_event(claim, ClaimAccepted(claim_id=claim.id, mcp_code=claim.mcp_code,
                                                 cbo_organization_id=claim.cbo_organization_id,
                                                 acknowledgment=acknowledgment,
                                                 payer_claim_number=claim.payer_claim_number),
                            parent=parent, now=now))
    return True


def _sets_accepted(ack: FunctionalAcknowledgment, transaction_sets: int) -> int:
    """How many of the batch's transaction sets a 999 accepted: those its AK2 loops accept; all of them when an
    accepted group (AK9 A or E) names none; none when the group is rejected or partly accepted naming none."""
    if ack.rejected:
        return 0
    if ack.sets:
        return sum(1 for s in ack.sets if s.accepted)
    return transaction_sets if ack.code in ACCEPTED_CODES else 0


def _accepted_by_999(uow: ClaimsUnitOfWork, claim: Claim, billing: McpBilling | None, *, code: str, noted: list[str],
                     actor: Actor, now: datetime, parent: Envelope[Any]) -> str | None:
    """Move a claim of an accepted transaction set on (accepted where the MCP's acceptance is the 999, else
    submitted); which summary count it adds to, if any. An E (accepted with errors) notes the errors."""
    moved: str | None = None
    if billing is not None and billing.profile.acceptance == "999":
        if _accept(uow, claim, acknowledgment="999", actor=actor, now=now, parent=parent):
            moved = "claims_accepted"
    elif claim.status == ClaimStatus.BATCHED.value:
        # The 999 proves the MCP has the file even if the gateway's delivery report is late.
        if _transition(uow, claim, ClaimStatus.SUBMITTED, actor=actor, action="submitted_999", now=now,
                       detail={"ik5": code}):
            claim.submitted_at = claim.submitted_at or now
            moved = "claims_submitted"
    if code == "E":
        uow.claims.add_history(new_history(claim.id, action="noted_999", actor=actor.label,
                                           from_status=claim.status, to_status=claim.status, at=now,
                                           detail={"reasons": noted}))
    return moved


async def apply_999(uow: ClaimsUnitOfWork, event: Envelope[FileReceived], text: str) -> dict[str, Any]:
    """Apply a 999 to the batches it answers: rejected sets reject their claims, a rejected group (AK9 M/R/W/X)
    every claim of its batch; accepted sets move them on."""
    data = event.data
    now = clock(uow).now()
    actor = Actor(system="999")
    summary: dict[str, Any] = {"groups": 0, "unmatched_groups": 0, "claims_rejected": 0, "claims_accepted": 0,
                               "claims_submitted": 0, "other_functional_groups": 0}
    billing = configuration(uow).mcp(data.mcp_code)
    for ack in parse_999(text):
        if ack.functional_code != "HC":
            summary["other_functional_groups"] += 1  # e.g. a 999 for eligibility's 270: not ours
            continue
        batch = await uow.batches.by_group(data.mcp_code, int(ack.group_control_number)) \
            if ack.group_control_number.isdigit() else None
        if batch is None:
            summary["unmatched_groups"] += 1
            log.warning("999 for an unknown claim batch", extra={"mcp_code": data.mcp_code, "file_id": data.file_id})
            continue
        summary["groups"] += 1
        batch.acknowledgment_code = ack.code
        batch.status = "acknowledged"
        rejected_sets, rejected_claims = 0, 0
        for set_ack in ack.sets:
            claims = await uow.claims.in_transaction_set(batch.id, set_ack.control_number)
            if not set_ack.accepted or ack.rejected:
                # A rejected group (AK9 M/R/W/X) takes none of its sets, even one whose IK5 says A.
                reasons = set_ack.reasons() if not set_ack.accepted else ack.reasons()
                rejected_sets += 1
                for claim in claims:
                    if _reject(uow, claim, reasons, acknowledgment="999", actor=actor, now=now, parent=event):
                        rejected_claims += 1
                continue
            for claim in claims:
                moved = _accepted_by_999(uow, claim, billing, code=set_ack.code, noted=set_ack.reasons(),
                                         actor=actor, now=now, parent=event)
                if moved is not None:
                    summary[moved] += 1
        # The group's AK9 answers for the claims no AK2 loop named: a rejection (M/R/W/X) may name no set at all,
        # and some translators accept a group (A/E) with no AK2 loop. A partial acceptance (P) naming no set says
        # nothing of any claim: they wait for the 277CA.
        if ack.rejected or (not ack.sets and ack.code in ACCEPTED_CODES):
            answered = {set_ack.control_number for set_ack in ack.sets}
            in_batch = await uow.claims.by_ids(await _batch_claim_ids(uow, batch.id))
            unanswered = [claim for _, claim in sorted(in_batch.items()) if claim.transaction_set not in answered]
            if ack.rejected:
                rejected_sets = max(rejected_sets, batch.transaction_sets)
            for claim in unanswered:
                if ack.rejected:
                    if _reject(uow, claim, ack.reasons(), acknowledgment="999", actor=actor, now=now,
                               parent=event):
                        rejected_claims += 1
                    continue
                moved = _accepted_by_999(uow, claim, billing, code=ack.code, noted=ack.reasons(), actor=actor,
                                         now=now, parent=event)
                if moved is not None:
                    summary[moved] += 1
        summary["claims_rejected"] += rejected_claims
        uow.record(caused_by(event, ClaimBatchAcknowledged(
            batch_id=batch.id, mcp_code=batch.mcp_code, code=ack.code,
            sets_accepted=_sets_accepted(ack, batch.transaction_sets),
            sets_rejected=rejected_sets,
            claims_rejected=rejected_claims, acknowledged_at=now), subject=batch.id, source=SOURCE, time=now))
    return summary


async def apply_277ca(uow: ClaimsUnitOfWork, event: Envelope[FileReceived], text: str) -> dict[str, Any]:
    """Apply a 277CA claim by claim: accepted (with the payer claim number) or rejected with the reasons."""
    data = event.data
    now = clock(uow).now()
    actor = Actor(system="277ca")
    parsed = parse_277ca(text)
    claims = await uow.claims.by_ids([c.claim_id for c in parsed.claims])
    summary: dict[str, Any] = {"claims": len(parsed.claims), "accepted": 0, "rejected": 0, "informational": 0,
                               "unmatched": 0, "ignored": 0}
    for ack in parsed.claims:
        claim = claims.get(ack.claim_id)
        if claim is None or claim.mcp_code != data.mcp_code:
            summary["unmatched"] += 1  # an MCP can only acknowledge its own claims
            continue
        outcome = ack.outcome
        if outcome == "rejected":
            changed = _reject(uow, claim, ack.reasons(), acknowledgment="277CA", actor=actor, now=now, parent=event)
        elif outcome == "accepted":
            changed = _accept(uow, claim, acknowledgment="277CA", actor=actor, now=now, parent=event,
                              payer_claim_number=ack.payer_claim_number)
            changed = changed or claim.status == ClaimStatus.ACCEPTED.value
        else:
            uow.claims.add_history(new_history(claim.id, action="noted_277ca", actor=actor.label,
                                               from_status=claim.status, to_status=claim.status, at=now,
                                               detail={"reasons": ack.reasons()}))
            changed = True
        summary[outcome if changed else "ignored"] += 1
    return summary


async def take_acknowledgment(uow: ClaimsUnitOfWork, event: Envelope[FileReceived], text: str) -> dict[str, Any]:
    """Apply a 999 or 277CA once per file (by SHA-256), and keep what it did."""
    data = event.data
    kind = data.kind.value
    if await uow.acknowledgments.seen(kind, data.file.sha256):
        return {"duplicate": True}
    summary = await (apply_999 if kind == "999" else apply_277ca)(uow, event, text)
    uow.acknowledgments.add(AcknowledgmentFile(id=uuid7(), kind=kind, file_id=data.file_id, mcp_code=data.mcp_code,
                                               file_sha256=data.file.sha256, received_at=data.received_at,
                                               processed_at=clock(uow).now(), summary=summary))
    await record_audit(uow.session, audit_table, action=f"acknowledgment.{kind}", resource_type="file",
                       resource_id=data.file_id, occurred_at=clock(uow).now(),
                       detail={k: v for k, v in summary.items() if isinstance(v, int)})
    return summary


# ------------------------------------------------------------------------------------- corrections, 7 and 8

async def _claim_for_change(uow: ClaimsUnitOfWork, claim_id: str, caller: Caller) -> Claim:
    claim = await uow.claims.get(claim_id, for_update=True)
    if claim is None or not TenantScope(caller).allows(cbo_id=claim.cbo_organization_id, mcp_code=claim.mcp_code):
        raise NotFound("claim-not-found", "Claim not found", "No claim with this id is visible to the caller.")
    return claim


def _apply_corrections(claim: Claim, lines: list[ClaimLine], body: ClaimCorrectionIn,
                       pricing: dict[str, list[dict[str, str]]]) -> list[str]:
    """Apply corrections in place; returns the corrected field names. Raises InvalidCorrection."""
    changed: list[str] = []
    if body.member is not None:
        fixes = body.member.model_dump(exclude_unset=True)
        claim.member = {**claim.member, **fixes}
        changed += [f"member.{name}" for name in fixes]
    if body.diagnosis_codes is not None:
        claim.diagnosis_codes = list(body.diagnosis_codes)
        changed.append("diagnosis_codes")
    if body.prior_authorization_number is not None:
        claim.prior_authorization_number = body.prior_authorization_number
        changed.append("prior_authorization_number")
    if body.rendering_npi is not None:
        claim.rendering_npi = body.rendering_npi
        changed.append("rendering_npi")
    if body.place_of_service is not None:
        claim.place_of_service = body.place_of_service
        changed.append("place_of_service")
    by_number = {line.line_number: line for line in lines}
    for index, fix in enumerate(body.lines):
        line = by_number.get(fix.line_number)
        if line is None:
            raise InvalidCorrection(f"lines[{index}].line_number", "line_exists", "The claim has no such line.")
        if fix.modifiers is not None:
            modifiers = [m.upper() for m in fix.modifiers]
            problem = codes.check_code(claim.service_code, line.hcpcs, modifiers, line.service_from)
            if problem is not None:
                raise InvalidCorrection(f"lines[{index}].modifiers", "code_table", f"Modifiers: {problem}.")
            line.modifiers = modifiers
            changed.append(f"lines[{fix.line_number}].modifiers")
        if fix.units is not None:
            old = Decimal(line.units)
            per_unit = any(c["basis"] == "per_unit" for c in pricing.get(line.encounter_id, []))
            if per_unit and old > 0:
                line.charge = cents(Decimal(line.charge) / old * fix.units)
            line.units = fix.units
            changed.append(f"lines[{fix.line_number}].units")
        if fix.diagnosis_pointers is not None:
            line.diagnosis_pointers = list(fix.diagnosis_pointers)
            changed.append(f"lines[{fix.line_number}].diagnosis_pointers")
        if fix.place_of_service is not None:
            line.place_of_service = fix.place_of_service
            changed.append(f"lines[{fix.line_number}].place_of_service")
    for index, line in enumerate(lines):
        if any(not 1 <= p <= len(claim.diagnosis_codes) for p in line.diagnosis_pointers):
            raise InvalidCorrection(f"lines[{index}].diagnosis_pointers", "pointer_in_range",
                                    "A diagnosis pointer points past the claim's diagnosis codes.")
    if not changed:
        raise InvalidCorrection("body", "nothing_to_correct", "Name at least one field to correct.")
    claim.expected_amount = sum((Decimal(line.charge) for line in lines), Decimal("0"))
    return changed


async def _pricing_of(uow: ClaimsUnitOfWork, lines: Sequence[ClaimLine]) -> dict[str, list[dict[str, str]]]:
    result: dict[str, list[dict[str, str]]] = {}
    for line in lines:
        encounter = await uow.encounters.get(line.encounter_id)
        result[line.encounter_id] = list(encounter.pricing) if encounter is not None else []
    return result


async def correct_claim(uow: ClaimsUnitOfWork, claim_id: str, body: ClaimCorrectionIn, caller: Caller) -> Claim:
    """Correct a rejected claim and put it back to draft (same CLM01, frequency unchanged) for the next batch."""
    claim = await _claim_for_change(uow, claim_id, caller)
    if claim.status != ClaimStatus.REJECTED.value:
        raise ClaimsError("claim-not-correctable", "Claim cannot be corrected",
                          "Only rejected claims are corrected in place; accepted or adjudicated claims are "
                          "changed with a replacement (frequency 7) or a void (frequency 8).")
    lines = await uow.claims.lines(claim.id)
    now = clock(uow).now()
    changed = _apply_corrections(claim, lines, body, await _pricing_of(uow, lines))
    actor = Actor(caller=caller)
    previous_batch = claim.batch_id
    _transition(uow, claim, ClaimStatus.DRAFT, actor=actor, action="corrected", now=now,
                detail={"fields": changed, "reason": body.reason, "previous_batch_id": previous_batch})
    claim.batch_id = None
    claim.transaction_set = None
    uow.record(_claim_event(claim, ClaimCorrected(claim_id=claim.id, mcp_code=claim.mcp_code,
                                                  cbo_organization_id=claim.cbo_organization_id,
                                                  expected_amount=Decimal(claim.expected_amount),
                                                  corrected_fields=tuple(changed)),
                            parent=None, now=now))
    await record_audit(uow.session, audit_table, action="claim.corrected", resource_type="claim", resource_id=claim.id,
                       caller=caller, occurred_at=now, detail={"fields": list(changed)})
    return claim


async def supersede_claim(uow: ClaimsUnitOfWork, claim_id: str, *, frequency: str, reason: str, caller: Caller,
                          corrections: ClaimCorrectionIn | None = None) -> Claim:
    """A replacement (7, with corrections) or void (8) of an accepted/adjudicated claim, as a new draft claim
    quoting the payer claim number (REF*F8)."""
    original = await _claim_for_change(uow, claim_id, caller)
    if ClaimStatus(original.status) not in REPLACEABLE:
        raise ClaimsError("claim-not-replaceable", "Claim cannot be replaced or voided",
                          "Only accepted, paid or denied claims are replaced or voided; correct a rejected claim.")
    if not original.payer_claim_number:
        raise ClaimsError("payer-claim-number-missing", "Payer claim number missing",
                          "A replacement or void quotes the payer's claim number (REF*F8), which this claim lacks.")
    if original.frequency_code == "8":
        raise ClaimsError("claim-is-void", "Claim is a void", "A void claim cannot be replaced or voided.")
    if await uow.claims.replacement_of(original.id) is not None:
        raise ClaimsError("replacement-pending", "Replacement pending",
                          "A replacement or void of this claim is already on its way.")
    now = clock(uow).now()
    actor = Actor(caller=caller)
    lines = await uow.claims.lines(original.id)
    copy = Claim(**{column: getattr(original, column) for column in Claim.__table__.columns.keys()})
    copy.id = new_claim_id()
    copy.frequency_code = frequency
    copy.replaces_claim_id = original.id
    copy.status = ClaimStatus.DRAFT.value
    copy.batch_id = copy.transaction_set = None
    copy.paid_amount = copy.adjustment_amount = copy.paid_on = None
    copy.submitted_at = copy.acknowledged_at = None
    copy.rejection_reasons = []
    copy.created_at = copy.updated_at = now
    copy.version = 1
    new_lines = [ClaimLine(**{c: getattr(line, c) for c in ClaimLine.__table__.columns.keys() if c != "id"})
                 for line in lines]
    for line in new_lines:
        line.claim_id = copy.id
        line.paid_amount = line.adjustment_amount = None
    changed: list[str] = []
    if corrections is not None:
        changed = _apply_corrections(copy, new_lines, corrections, await _pricing_of(uow, lines))
    uow.claims.add(copy)
    for line in new_lines:
        uow.claims.add_line(line)
    action = "replacement" if frequency == "7" else "void"
    uow.claims.add_history(new_history(copy.id, action=f"{action}_opened", actor=actor.label, actor_key_id=actor.key_id,
                                       from_status=None, to_status="draft", at=now,
                                       detail={"replaces_claim_id": original.id, "reason": reason, "fields": changed}))
    uow.claims.add_history(new_history(original.id, action=f"{action}_requested", actor=actor.label,
                                       actor_key_id=actor.key_id, from_status=original.status,
                                       to_status=original.status, at=now,
                                       detail={"new_claim_id": copy.id, "reason": reason}))
    await _denials_followed_up(uow, original, copy, caller, now)
    await record_audit(uow.session, audit_table, action=f"claim.{action}", resource_type="claim",
                       resource_id=original.id, caller=caller, occurred_at=now,
                       detail={"new_claim_id": copy.id, "fields": list(changed)})
    return copy


def age_days(claim: Claim, now: datetime) -> int:
    """Days since the claim was submitted (or opened, before submission)."""
    since = _aware(claim.submitted_at) or _aware(claim.created_at) or now
    return max(0, (now - since) // timedelta(days=1))


async def audit_read(uow: ClaimsUnitOfWork, caller: Caller, resource_type: str, resource_id: str) -> None:
    """Record a read of PHI (a claim's member data) in the audit trail."""
    await record_audit(uow.session, audit_table, action=f"{resource_type}.read", resource_type=resource_type,
                       resource_id=resource_id, caller=caller)


# ------------------------------------------------------------------------------------------- projections

async def project_authorization(uow: ClaimsUnitOfWork, event: Envelope[Any]) -> None:
    """Keep the authorization projection current from authorization.* events, whatever order they arrive in
    (claims.domain.coverage; idempotent by design)."""
    data = event.data
    now = clock(uow).now()
    row = await uow.coverages.get(data.authorization_id)
    event_type = event.type
    service = getattr(data, "service", None)
    if row is None:
        # A suspension, resumption or end can arrive before the decision (a replayed dead letter): it is kept on
        # a row whose service the decision fills in; until then the row covers nothing (no program, no period).
        row = AuthorizationCoverage(
            authorization_id=data.authorization_id, member_id=None, mcp_code=data.mcp_code,
            cbo_organization_id=getattr(data, "cbo_organization_id", None), program="", cs_code=None,
            status="requested", period_start=None, period_end=None, ends_before=None, suspensions=[],
            presumptive=False, mcp_authorization_number=None, updated_at=now, correlation_id=event.correlation_id)
        uow.coverages.add(row)
        await uow.session.flush()  # sessions do not autoflush: the next event of a batch must find this row
    if service is not None and not row.program:
        row.program, row.cs_code = service.program.value, service.cs_code
    if row.correlation_id is None:
        # Every event of one authorization shares the referral's correlation id; the first one seen sets it.
        row.correlation_id = event.correlation_id
    if event_type == "authorization.requested":
        row.member_id = member_id_for(data.member.cin)
    elif event.member_id and row.member_id is None:
        row.member_id = event.member_id
    if event_type == "authorization.approved":
        row.status = next_status(row.status, "approved")
        if approval_supersedes(data.decided_at, _aware(row.decided_at)):
            # Approved twice (approved, then approved as modified): the newest decision's period stands.
            row.decided_at = data.decided_at
            row.period_start, row.period_end = data.period_start, data.period_end
            row.presumptive = data.presumptive
            row.mcp_code = data.mcp_code
            row.mcp_authorization_number = data.mcp_authorization_number or row.mcp_authorization_number
        else:
            # An older approval arriving late (a replayed dead letter) only fills what the newer one left empty.
            row.mcp_authorization_number = row.mcp_authorization_number or data.mcp_authorization_number
        row.cbo_organization_id = data.cbo_organization_id or row.cbo_organization_id
    elif event_type == "authorization.denied":
        row.status = next_status(row.status, "denied")
    elif event_type == "authorization.suspended":
        row.suspensions = _stored(with_suspension(_intervals(row.suspensions), data.effective))
    elif event_type == "authorization.resumed":
        row.suspensions = _stored(with_resumption(_intervals(row.suspensions), data.effective))
    elif event_type == "authorization.expired":
        row.status = next_status(row.status, "expired")  # dates up to period_end stay covered (billed later)
    elif event_type == "authorization.closed":
        row.status = next_status(row.status, "closed")
        row.ends_before = data.effective
    row.updated_at = now


def _intervals(stored: Sequence[Sequence[str | None]]) -> list[list[date | None]]:
    return [[date.fromisoformat(v) if v else None for v in pair] for pair in stored]


def _stored(intervals: Sequence[Sequence[date | None]]) -> list[list[str | None]]:
    return [[v.isoformat() if v else None for v in pair] for pair in intervals]


async def project_eligibility(uow: ClaimsUnitOfWork, event: Envelope[Any]) -> None:
    """Turn eligibility.* events into dated facts about the member."""
    data = event.data
    member_id = member_id_for(data.cin)
    now = clock(uow).now()
    kind, effective, mcp_code = "enrolled", data.as_of, data.mcp_code
    effective_to: date | None = None
    program: str | None = None
    exclusion: str | None = None
    if event.type == "eligibility.verified":
        effective = data.span_start or data.as_of
        effective_to = data.span_end
    elif event.type == "eligibility.lost":
        kind, effective, mcp_code = "not_enrolled", data.effective, None
    elif event.type in ("eligibility.regained", "eligibility.plan_changed"):
        effective = data.effective
    elif event.type == "eligibility.excluded":
        kind, effective, program, exclusion = "excluded", data.effective, data.program, data.exclusion
        effective_to = data.effective_to  # None: no end known (also every event written before it had one)
    if kind != "excluded" and event.type != "eligibility.verified":
        await uow.eligibility.close_open_enrollment(member_id, effective)
    from claims.models import EligibilityFactRow

    await uow.eligibility.add(EligibilityFactRow(
        event_id=event.id, member_id=member_id, kind=kind, mcp_code=mcp_code, program=program, exclusion=exclusion,
        effective_from=effective, effective_to=effective_to, recorded_at=now))
    await uow.session.flush()


# ------------------------------------------------------------------------------------------- remittances (835)

class RemittanceUnreadable(ClaimsError):
    """The body is not a well-formed 005010X221A1 835; names position, segment, element and rule (no values)."""

    status = 422

    def __init__(self, error: X12SyntaxError) -> None:
        super().__init__("remittance-unreadable", "The 835 is not well-formed", str(error))
        self.error = error

    @property
    def field(self) -> str:
        """Where: file.segment[position].SEG[element]."""
        segment = getattr(self.error, "segment_id", None) or "envelope"
        element = getattr(self.error, "element", None)
        where = f"file.segment[{getattr(self.error, 'position', 0)}].{segment}"
        return f"{where}.{element}" if element else where


@dataclass
class RemittanceIntake:
    """What one 835 file did: accepted (payments posted), duplicate, or refused (with the figures)."""

    file: RemittanceFile
    remittances: list[Remittance]

    @property
    def status(self) -> str:
        """accepted, duplicate or refused_unbalanced."""
        return self.file.status

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready summary (ids, codes, amounts; no member data)."""
        row = self.file
        return {"file_id": row.id, "status": row.status, "mcp_code": row.mcp_code, "source": row.source,
                "file_sha256": row.file_sha256, "interchange_control_number": row.interchange_control_number,
                "transaction_sets": row.transaction_sets, "claim_payments": row.claim_payments,
                "duplicate_of": row.duplicate_of, "detail": dict(row.detail),
                "remittances": [remittance_summary(r) for r in self.remittances]}


def remittance_summary(row: Remittance) -> dict[str, Any]:
    """A posted payment for bank reconciliation: TRN02 trace, BPR amount, date and method, and what it posted."""
    return {"id": row.id, "file_id": row.file_id, "mcp_code": row.mcp_code, "control_number": row.control_number,
            "trace_number": row.trace_number, "payer_id": row.payer_id,
            "payment_amount": _cents(row.payment_amount), "payment_method": row.payment_method,
            "payment_date": row.payment_date.isoformat(), "claims_posted": row.claims_posted,
            "exceptions": row.exceptions, "posted_amount": _cents(row.posted_amount),
            "exception_amount": _cents(row.exception_amount),
            "provider_adjustment_amount": _cents(row.provider_adjustment_amount),
            "warnings": list(row.warnings), "posted_at": (_aware(row.posted_at) or row.posted_at).isoformat()}


def _cents(amount: Decimal | str) -> str:
    """Money as text with two places (X12 sends 350, the books show 350.00)."""
    return str(Decimal(amount).quantize(Decimal("0.01")))


def _new_id(prefix: str) -> str:
    return f"{prefix}_{uuid7().hex}"


def _q(amount: Decimal) -> Decimal:
    """Money to cents (X12 amounts arrive as 350 or 350.5)."""
    return amount.quantize(Decimal("0.01"))


def _adjustments_json(adjustments: Sequence[Any]) -> list[dict[str, str]]:
    if not adjustments:
        return []
    return [{"group": a.group, "reason": a.reason, "amount": _cents(a.amount)} for a in adjustments]


def _procedure_text(procedure: Any) -> str:
    return ":".join((procedure.code, *procedure.modifiers))


# Settlement state -> claim status (docs/decisions/0075): money received or a $0 reporting-only adjudication is
# "paid" (the settlement column tells them apart); open lines with nothing paid leave the status alone.
_SETTLED_STATUS: dict[SettlementState, ClaimStatus | None] = {
    SettlementState.PAID: ClaimStatus.PAID, SettlementState.PARTIALLY_PAID: ClaimStatus.PAID,
    SettlementState.REPORTING_ONLY: ClaimStatus.PAID, SettlementState.DENIED: ClaimStatus.DENIED,
    SettlementState.REVERSED: ClaimStatus.REVERSED, SettlementState.PENDING: None,
}


async def take_remittance(uow: ClaimsUnitOfWork, content: bytes, *, mcp_code: str, source: str, actor: Actor,
                          received_at: datetime, gateway_file_id: str | None = None, file_uri: str | None = None,
                          parent: Envelope[Any] | None = None) -> RemittanceIntake:
    """Take in one 835 file (POST /v1/remittances and file.received kind 835 both call this).

    The same bytes again are a duplicate (nothing posted); a file with any unbalanced payment (BPR02 ≠ ΣCLP04 −
    ΣPLB) is refused whole with the figures and remittance.refused; otherwise every new payment is posted:
    claim and line postings with CAS/CARC/RARC, reversals and corrections, PLB adjustments, exceptions, denials,
    claim status and amounts, claim.paid/denied/reversed and remittance.posted. Flushes, never commits.
    Raises RemittanceUnreadable for a malformed file.

    The events are written to the outbox here, while the cyclic collector is held off (shared.collector): a
    month-end file makes millions of acyclic objects, and they are all freed before collection resumes.
    """
    with collector_paused():
        intake = await _take_remittance(uow, content, mcp_code=mcp_code, source=source, actor=actor,
                                        received_at=received_at, gateway_file_id=gateway_file_id,
                                        file_uri=file_uri, parent=parent)
        await uow.flush()
    return intake


async def _take_remittance(uow: ClaimsUnitOfWork, content: bytes, *, mcp_code: str, source: str, actor: Actor,
                           received_at: datetime, gateway_file_id: str | None, file_uri: str | None,
                           parent: Envelope[Any] | None) -> RemittanceIntake:
    now = clock(uow).now()
    sha256 = file_sha256(content)
    repo = uow.remittances
    file_row = RemittanceFile(
        id=_new_id("rmf"), mcp_code=mcp_code, source=source, gateway_file_id=gateway_file_id, file_sha256=sha256,
        file_uri=file_uri, size=len(content), status="accepted", interchange_control_number="",
        transaction_sets=0, claim_payments=0, duplicate_of=None, detail={}, received_at=received_at,
        processed_at=now, actor=actor.label)
    previous = await repo.accepted_file(sha256)
    try:
        parsed = parse_835(content.decode("utf-8", errors="replace"))
    except X12SyntaxError as exc:
        if previous is None:
            raise RemittanceUnreadable(exc) from None
        parsed = None
    if parsed is not None:
        file_row.interchange_control_number = parsed.interchange_control_number[:9]
        file_row.transaction_sets = len(parsed.remittances)
        file_row.claim_payments = parsed.claim_count
    if previous is not None:
        return await _file_outcome(uow, file_row, "duplicate", actor, now, duplicate_of=previous.id,
                                   detail={"reason": "same_bytes"})
    assert parsed is not None
    clp_ids = [c.patient_control_number for r in parsed.remittances for c in r.claims]
    references = [a.reference.split(" ", 1)[0] for r in parsed.remittances for a in r.provider_adjustments
                  if a.reference]
    records, states = await repo.claims_for(clp_ids, references, mcp_code=mcp_code)
    keys = {r.control_number: remittance_key(r).digest for r in parsed.remittances}
    posted_keys = await repo.posted_keys(list(keys.values()))
    plan = plan_remittance_file(parsed, records, sha256=sha256, mcp_code=mcp_code, seen_keys=set(posted_keys))
    del parsed, records  # the plan keeps what posting needs; the segments and claim records can go
    if plan.status is FileStatus.REFUSED_UNBALANCED:
        sets = [{k: (v if isinstance(v, bool) or k in ("control_number", "trace_number") else _cents(str(v)))
                 for k, v in figures.items()} for figures in plan.refusal]
        row = await _file_outcome(uow, file_row, FileStatus.REFUSED_UNBALANCED.value, actor, now,
                                  detail={"reason": "unbalanced", "rule": "BPR02 = ΣCLP04 − ΣPLB", "sets": sets})
        data = RemittanceRefused(remittance_id=file_row.id, mcp_code=mcp_code, reason="unbalanced", refused_at=now,
                                 file_sha256=sha256, sets=tuple(sets))
        uow.record(caused_by(parent, data, subject=file_row.id, source=SOURCE, time=now) if parent
                   else new_event(data, subject=file_row.id, source=SOURCE, time=now))
        log.warning("835 refused: unbalanced", extra={"file_id": file_row.id, "mcp_code": mcp_code,
                                                      "count": len(sets)})
        return row
    duplicates = [r.control_number for r in plan.remittances if r.status is RemittanceStatus.DUPLICATE]
    if plan.status is FileStatus.DUPLICATE:
        first = next(iter(posted_keys.values()), None)
        return await _file_outcome(uow, file_row, "duplicate", actor, now, duplicate_of=first,
                                   detail={"reason": "payments_already_posted", "sets": duplicates})
    file_row.detail = {"duplicate_sets": duplicates} if duplicates else {}
    repo.add_file(file_row)
    await uow.flush()
    posted: list[Remittance] = []
    stored: dict[str, str] = {}  # planned_posting_id -> claim_payment.id, for a later set reversing it
    for remittance_plan in plan.remittances:
        if remittance_plan.status is RemittanceStatus.POST:
            posted.append(await _post_remittance(uow, remittance_plan, file_row, states, stored, actor, now,
                                                 parent))
    log.info("835 posted", extra={"file_id": file_row.id, "mcp_code": mcp_code, "count": len(posted)})
    return RemittanceIntake(file_row, posted)


async def _file_outcome(uow: ClaimsUnitOfWork, row: RemittanceFile, status: str, actor: Actor, now: datetime, *,
                        detail: dict[str, Any], duplicate_of: str | None = None) -> RemittanceIntake:
    row.status = status
    row.detail = detail
    row.duplicate_of = duplicate_of
    uow.remittances.add_file(row)
    await record_audit(uow.session, audit_table, action=f"remittance_file.{status}", resource_type="remittance_file",
                       resource_id=row.id, caller=actor.caller, occurred_at=now,
                       detail={"mcp_code": row.mcp_code, "transaction_sets": row.transaction_sets,
                               "claim_payments": row.claim_payments, "duplicate_of": duplicate_of})
    await uow.flush()
    return RemittanceIntake(row, [])


# Columns of the rows posting writes, in the order its tuples carry them.
_PAYMENT_COLUMNS = (
    "id", "remittance_id", "claim_id", "mcp_code", "cbo_organization_id", "position", "kind", "outcome",
    "status_code", "charge", "paid", "adjustment_total", "patient_responsibility", "payer_claim_number",
    "adjustments", "remarks", "denial", "reverses_payment_id", "reversed_by", "line_ids", "paid_line_ids",
    "received_on", "paid_on", "trace_number", "payout_id", "posted_at")
_LINE_COLUMNS = ("claim_payment_id", "claim_id", "line_id", "position", "procedure", "charge", "paid", "allowed",
                 "units_paid", "outcome", "adjustments", "remarks", "denial")
_DENIAL_COLUMNS = (
    "id", "claim_id", "claim_payment_id", "remittance_id", "mcp_code", "cbo_organization_id", "outcome",
    "category", "next_action", "deciding_code", "codes", "unknown_codes", "denied_amount", "payer_claim_number",
    "paid_on", "status", "resolution", "resolution_note", "follow_up_claim_id", "resolved_by", "resolved_at",
    "created_at")
_ADJUSTMENT_COLUMNS = (
    "id", "remittance_id", "mcp_code", "position", "provider_id", "fiscal_period_date", "reason", "kind",
    "reference", "amount", "claim_id", "cbo_organization_id", "paid_on", "trace_number", "payout_id", "posted_at")
_EXCEPTION_COLUMNS = (
    "id", "remittance_id", "mcp_code", "reason", "position", "amount", "patient_control_number",
    "payer_claim_number", "status_code", "charge", "patient", "service_from", "service_to", "procedures",
    "claim_id", "provider_adjustment_id", "detail", "trace_number", "payment_date", "status", "resolution",
    "resolution_note", "resolved_claim_id", "resolved_by", "resolved_at", "created_at")
_HISTORY_COLUMNS = ("id", "claim_id", "occurred_at", "actor", "actor_key_id", "action", "from_status", "to_status",
                    "detail")
_CLAIM_UPDATE_COLUMNS = ("id", "status", "paid_amount", "adjustment_amount", "paid_on", "payer_claim_number",
                         "settlement", "received_on", "updated_at", "version")
_LINE_UPDATE_COLUMNS = ("id", "paid_amount", "adjustment_amount")
_REVERSED_COLUMNS = ("id", "reversed_by")

Row = tuple[Any, ...]


@dataclass
class _PostingRows:
    """One payment's claim and line postings, denials, PLB rows and exceptions, as tuples in column order."""

    payments: list[Row] = field(default_factory=list)
    lines: list[Row] = field(default_factory=list)
    denials: list[Row] = field(default_factory=list)
    reversed: list[Row] = field(default_factory=list)  # (prior posting id, the reversal's id)
    line_updates: dict[int, Row] = field(default_factory=dict)  # claim_line.id -> (id, paid, adjustments)
    adjustments: list[Row] = field(default_factory=list)
    exceptions: list[Row] = field(default_factory=list)
    payment_of: dict[int, str] = field(default_factory=dict)  # CLP position -> claim_payment.id
    reverses_of: dict[int, str] = field(default_factory=dict)  # reversal's CLP position -> claim_payment.id undone
    denial_of: dict[str, str] = field(default_factory=dict)  # claim_payment.id -> denial.id


@dataclass
class _Settlements:
    """What posting does to the claims: updated columns, history rows and the claim.* payloads to publish."""

    claims: list[Row] = field(default_factory=list)
    history: list[Row] = field(default_factory=list)
    events: list[tuple[EventData, str, str | None, UUID | None]] = field(default_factory=list)


async def _post_remittance(uow: ClaimsUnitOfWork, plan: RemittancePlan, file_row: RemittanceFile,
                           states: dict[str, ClaimState], stored: dict[str, str], actor: Actor, now: datetime,
                           parent: Envelope[Any] | None) -> Remittance:
    """Write one balanced payment's plan with bulk statements, and its events. `stored` maps the planner's ids
    of postings made earlier in the file to their claim_payment ids, and gains this payment's.

    A month-end payment is 50,000 claims. Rows are tuples in column order (no ORM objects), each kind of row is
    one statement (COPY / UPDATE … FROM unnest on PostgreSQL), and the Python that builds the next rows runs in
    a worker thread while the database executes the statements of the previous ones."""
    repo = uow.remittances
    mcp_code = file_row.mcp_code
    remittance = Remittance(
        id=_new_id("rmt"), file_id=file_row.id, mcp_code=mcp_code, control_number=plan.control_number,
        trace_number=plan.trace_number, payer_id=plan.payer_id, payment_amount=plan.payment_amount,
        payment_method=plan.payment_method, payment_date=plan.payment_date, key_digest=plan.key.digest,
        claims_posted=len(plan.postings), exceptions=len(plan.exceptions), posted_amount=plan.posted_amount,
        exception_amount=plan.exception_amount,
        provider_adjustment_amount=sum((a.amount for a in plan.provider_adjustments), Decimal(0)),
        warnings=list(plan.warnings), posted_at=now)
    uow.session.add(remittance)
    await uow.flush()  # the unique payment key stops a concurrent post of the same payment here; events so far

    rows = _posting_rows(plan, states, stored, remittance.id, mcp_code, now)
    settled = _Settlements()
    outbox: list[OutboxRow] = []
    claims_settled, events_encoded = asyncio.Event(), asyncio.Event()
    posted = RemittancePosted(
        remittance_id=remittance.id, mcp_code=mcp_code, trace_number=plan.trace_number,
        paid_amount=_q(plan.payment_amount), claims_matched=len({p.claim_id for p in plan.postings}),
        claims_unmatched=sum(1 for e in plan.exceptions if e.reason is not ExceptionReason.UNATTRIBUTED_ADJUSTMENT),
        posted_at=now, file_id=file_row.id, payment_date=plan.payment_date, payment_method=plan.payment_method,
        exceptions=len(plan.exceptions), exception_amount=_q(plan.exception_amount),
        provider_adjustment_amount=_q(remittance.provider_adjustment_amount))

    async def write() -> None:
        await repo.insert(ClaimPayment.__table__, _PAYMENT_COLUMNS, rows.payments)
        await repo.insert(LinePayment.__table__, _LINE_COLUMNS, rows.lines)
        rows.payments, rows.lines = [], []  # written: tens of megabytes at month end, not needed again
        await repo.insert(Denial.__table__, _DENIAL_COLUMNS, rows.denials)
        await repo.update_by_id(ClaimPayment.__table__, _REVERSED_COLUMNS, rows.reversed)
        await repo.reversed_denials([row[0] for row in rows.reversed])
        await repo.update_by_id(ClaimLine.__table__, _LINE_UPDATE_COLUMNS, list(rows.line_updates.values()))
        await repo.insert(ProviderAdjustment.__table__, _ADJUSTMENT_COLUMNS, rows.adjustments)
        await repo.insert(RemittanceExceptionRow.__table__, _EXCEPTION_COLUMNS, rows.exceptions)
        await claims_settled.wait()
        await repo.update_by_id(Claim.__table__, _CLAIM_UPDATE_COLUMNS, settled.claims)
        await repo.insert(ClaimHistory.__table__, _HISTORY_COLUMNS, settled.history)
        await events_encoded.wait()
        # Straight to the outbox, in order (what was recorded before this payment was flushed above).
        await insert_outbox_rows(uow.session, uow.tables, outbox)

    def build() -> Iterator[None]:
        yield from _settle_claims(plan, states, rows, remittance.id, mcp_code, now, actor, settled)
        claims_settled.set()
        yield from _encode_events(EventBatch(source=SOURCE, time=now, parent=parent),
                                  [*settled.events, (posted, remittance.id, None, None)], outbox)
        events_encoded.set()

    await _alongside(build(), write())
    await record_audit(uow.session, audit_table, action="remittance.posted", resource_type="remittance",
                       resource_id=remittance.id, caller=actor.caller, occurred_at=now,
                       detail={"file_id": file_row.id, "mcp_code": mcp_code, "claims_posted": len(plan.postings),
                               "exceptions": len(plan.exceptions), "payment_amount": plan.payment_amount,
                               "posted_amount": plan.posted_amount, "denials": len(rows.denials),
                               "reversals": len(rows.reversed)})
    return remittance


_SLICE = 2_000  # claims or events built between two turns of the event loop (a few milliseconds of Python)


async def _alongside(work: Iterator[None], writes: Coroutine[Any, Any, None]) -> None:
    """Run `writes` on the session as a task and step through `work` (pure Python that yields between slices):
    at every step the event loop sends the next statement if the database has finished the previous one, so
    PostgreSQL executes while Python builds what the later statements write (they wait for it). One thread: a
    worker thread cost more in lock handoffs than it saved. Both have finished when this returns or raises; if
    the work fails the writes are cancelled (the transaction is lost anyway)."""
    writing = asyncio.ensure_future(writes)
    try:
        for _ in work:
            await asyncio.sleep(0)
            if writing.done():
                break  # failed (it waits for the work otherwise): no need to build the rest
    except BaseException:
        writing.cancel()
        await asyncio.wait([writing])
        if not writing.cancelled():
            writing.exception()  # retrieved and dropped: the work's error is the one to raise
        raise
    await writing


def _encode_events(batch: EventBatch, events: Sequence[tuple[EventData, str, str | None, UUID | None]],
                   into: list[OutboxRow]) -> Iterator[None]:
    """Envelopes for the payloads, encoded as outbox rows into `into`, a slice at a time (each envelope is
    dropped once encoded)."""
    for start in range(0, len(events), _SLICE):
        into.extend(encode_outbox_rows(
            batch.event(data, subject=subject, member_id=member_id, correlation_id=correlation_id)
            for data, subject, member_id, correlation_id in events[start:start + _SLICE]))
        yield


def _posting_rows(plan: RemittancePlan, states: dict[str, ClaimState], stored: dict[str, str], remittance_id: str,
                  mcp_code: str, now: datetime) -> _PostingRows:
    """The rows of one payment's postings (pure); brings each claim's active postings up to date in `states`
    and records each posting's id under its planned id in `stored` (a reversal later in the file may name it)."""
    rows = _PostingRows()
    trace_number, paid_on = plan.trace_number, plan.payment_date
    payments, lines, line_updates = rows.payments, rows.lines, rows.line_updates
    # Reversals first, as the planner matched them, so a correction in the same file lands on top.
    for posting in sorted(plan.postings, key=lambda p: p.kind is not PostingKind.REVERSAL):
        state = states[posting.claim_id]
        claim_id = posting.claim_id
        reversal = posting.kind is PostingKind.REVERSAL
        payment_id = _new_id("pay")
        rows.payment_of[posting.position] = payment_id
        stored[planned_posting_id(posting.position)] = payment_id
        # The planner names a posting of an earlier set of this file by its planned id. A reversal of a claim
        # paid in parts undoes several postings: each is marked reversed by it, the first is the row's link.
        reverses = [stored.get(undone, undone) for undone in posting.reverses_posting_ids]
        payments.append((
            payment_id, remittance_id, claim_id, mcp_code, posting.cbo_organization_id, posting.position,
            posting.kind.value, posting.outcome.value, posting.status_code, posting.charge, posting.paid,
            posting.adjustment_total, posting.patient_responsibility, posting.payer_claim_number,
            _adjustments_json(posting.adjustments), posting.remarks,
            posting.denial.as_dict() if posting.denial else None, reverses[0] if reverses else None, None,
            posting.line_ids, posting.paid_line_ids, posting.received_on, paid_on, trace_number, None, now))
        line_pks = state.line_pks
        for line in posting.lines:
            lines.append((
                payment_id, claim_id, line.line_id, line.position, _procedure_text(line.procedure), line.charge,
                line.paid, line.allowed, line.units_paid, line.outcome.value, _adjustments_json(line.adjustments),
                line.remarks, line.denial.as_dict() if line.denial else None))
            pk = line_pks.get(line.line_id or "")
            if pk is not None:
                line_updates[pk] = (pk, None, None) if reversal else (
                    pk, line.paid, sum((a.amount for a in line.adjustments), Decimal(0)))
        if reversal and reverses:
            rows.reverses_of[posting.position] = reverses[0]
            for undone in reverses:
                rows.reversed.append((undone, payment_id))
                state.active.pop(undone, None)
        else:
            state.active[payment_id] = (posting.paid, posting.adjustment_total, paid_on,
                                        posting.payer_claim_number)
            if posting.received_on is not None and state.received_on is None:
                state.received_on = posting.received_on
        if posting.denial is not None and posting.outcome in (ClaimOutcome.DENIED, ClaimOutcome.PARTIALLY_DENIED):
            denied = sum((line.charge - line.paid for line in posting.lines if line.outcome is LineOutcome.DENIED),
                         Decimal(0)) if posting.outcome is ClaimOutcome.PARTIALLY_DENIED and posting.lines \
                else posting.charge - posting.paid
            denial_id = _new_id("den")
            rows.denial_of[payment_id] = denial_id
            why = posting.denial
            rows.denials.append((
                denial_id, claim_id, payment_id, remittance_id, mcp_code, posting.cbo_organization_id,
                posting.outcome.value, why.category.value, why.next_action[:500], why.deciding_code, why.codes,
                why.unknown_codes, denied, posting.payer_claim_number, paid_on, "open", None, None, None, None,
                None, now))
    # One PLB segment carries up to six adjustments: an exception finds its row by position, reference and reason.
    adjustment_at: dict[tuple[int, str, str], str] = {}
    for adjustment in plan.provider_adjustments:
        adjustment_id = _new_id("plb")
        adjustment_at.setdefault((adjustment.position, adjustment.reference, adjustment.reason), adjustment_id)
        rows.adjustments.append((
            adjustment_id, remittance_id, mcp_code, adjustment.position, adjustment.provider_id,
            adjustment.fiscal_period_date, adjustment.reason, adjustment.kind.value, adjustment.reference,
            adjustment.amount, adjustment.claim_id, adjustment.cbo_organization_id, paid_on, trace_number, None, now))
    rows.exceptions = [(
        _new_id("exc"), remittance_id, mcp_code, e.reason.value, e.position, e.amount, e.patient_control_number,
        e.payer_claim_number, e.status_code, e.charge, e.patient._asdict() if e.patient is not None else None,
        e.service_from, e.service_to, e.procedures, e.claim_id,
        adjustment_at.get((e.position, e.patient_control_number, e.detail.get("plb_reason", "")))
        if e.reason is ExceptionReason.UNATTRIBUTED_ADJUSTMENT else None, dict(e.detail), trace_number, paid_on,
        "open", None, None, None, None, None, now) for e in plan.exceptions]
    return rows


def _settle_claims(plan: RemittancePlan, states: dict[str, ClaimState], rows: _PostingRows, remittance_id: str,
                   mcp_code: str, now: datetime, actor: Actor,
                   out: _Settlements) -> Iterator[None]:
    """Each touched claim's status and totals over its active postings, one history row per posting, and the
    claim.paid / claim.denied / claim.reversed payloads, into `out`, a slice of claims at a time (pure;
    updates `states`)."""
    history, events = out.history, out.events
    trace_number, paid_on = plan.trace_number, plan.payment_date
    payment_of = rows.payment_of
    by_claim: dict[str, list[ClaimPosting]] = defaultdict(list)
    for posting in plan.postings:
        by_claim[posting.claim_id].append(posting)
    actor_label, actor_key_id = actor.label, actor.key_id
    for done, settlement in enumerate(plan.settlements, start=1):
        if done % _SLICE == 0:
            yield
        state = states[settlement.claim_id]
        claim_id = state.claim_id
        current = ClaimStatus(state.status)
        target = _SETTLED_STATUS[settlement.state]
        allowed = True
        if target is not None and target is not current:
            try:
                check_transition(current, target)
            except InvalidTransition:
                allowed = False
        new_status = target if target is not None and allowed else current
        active = list(state.active.values())
        paid_total = sum((a[0] for a in active), Decimal(0))
        adjustment_total = sum((a[1] for a in active), Decimal(0))
        latest = max(active, key=lambda a: a[2]) if active else None
        payer_claim_number = (latest[3] if latest else None) or state.payer_claim_number
        out.claims.append((
            claim_id, new_status.value, paid_total, adjustment_total, latest[2] if latest else None,
            payer_claim_number, settlement.state.value, state.received_on, now, state.version + 1))
        postings = by_claim[settlement.claim_id]
        for posting in postings:
            action = "reversal_posted" if posting.kind is PostingKind.REVERSAL else f"{posting.kind.value}_posted"
            history.append((
                uuid7(), claim_id, now, actor_label, actor_key_id,
                action if allowed else f"{action}_status_ignored", current.value, new_status.value,
                {"remittance_id": remittance_id, "payment_id": payment_of[posting.position],
                 "trace_number": trace_number, "status_code": posting.status_code,
                 "outcome": posting.outcome.value, "paid": str(posting.paid),
                 "adjustments": str(posting.adjustment_total), "settlement": settlement.state.value,
                 **({"asked": target.value} if not allowed and target is not None else {})}))
            if posting.kind is PostingKind.REVERSAL:
                events.append((ClaimReversed(
                    claim_id=claim_id, mcp_code=mcp_code, cbo_organization_id=state.cbo_organization_id,
                    remittance_id=remittance_id, reversed_amount=_q(-posting.paid),
                    reversed_payment_id=rows.reverses_of.get(posting.position)), claim_id, state.member_id,
                    state.correlation_id))
        last = postings[-1]
        if new_status is ClaimStatus.PAID and settlement.state is not SettlementState.REVERSED:
            events.append((ClaimPaid(
                claim_id=claim_id, mcp_code=mcp_code, cbo_organization_id=state.cbo_organization_id,
                remittance_id=remittance_id, paid_amount=_q(paid_total), adjustment_amount=_q(adjustment_total),
                paid_on=paid_on, settlement=settlement.state.value, payment_id=payment_of[last.position],
                trace_number=trace_number, payer_claim_number=last.payer_claim_number),
                claim_id, state.member_id, state.correlation_id))
        elif new_status is ClaimStatus.DENIED:
            denial = next((p for p in reversed(postings) if p.denial is not None), None)
            reason = denial.denial if denial is not None else None
            events.append((ClaimDenied(
                claim_id=claim_id, mcp_code=mcp_code, cbo_organization_id=state.cbo_organization_id,
                remittance_id=remittance_id, reason_codes=reason.codes if reason else (),
                category=reason.category.value if reason else "other",
                next_action=reason.next_action if reason else "",
                denial_id=rows.denial_of.get(payment_of[denial.position]) if denial else None,
                denied_amount=_q(sum((p.charge - p.paid for p in postings if p.kind is not PostingKind.REVERSAL),
                                     Decimal(0))),
                payer_claim_number=last.payer_claim_number), claim_id, state.member_id, state.correlation_id))
        state.status = new_status.value
        state.version += 1
        state.payer_claim_number = payer_claim_number


# ------------------------------------------------------------------------------------ exceptions and denials

EXCEPTION_RESOLUTIONS = ("attributed", "matched", "returned_to_payer", "written_off", "other")
DENIAL_RESOLUTIONS = ("appealed", "written_off", "paid_after_inquiry", "other")


async def resolve_exception(uow: ClaimsUnitOfWork, exception_id: str, *, resolution: str, note: str | None,
                            claim_id: str | None, caller: Caller) -> RemittanceExceptionRow:
    """Close an exception with what was done. `attributed` puts an unattributed PLB adjustment on one of our
    claims (so payouts count it against that claim's CBO). Audited. Raises NotFound, ClaimsError,
    InvalidCorrection."""
    row = await uow.remittances.exception(exception_id, for_update=True)
    if row is None or not TenantScope(caller).allows(mcp_code=row.mcp_code):
        raise NotFound("exception-not-found", "Exception not found", "No exception with this id is visible.")
    if row.status != "open":
        raise ClaimsError("exception-resolved", "Exception already resolved", "The exception is not open.")
    if resolution not in EXCEPTION_RESOLUTIONS:
        raise InvalidCorrection("resolution", "one_of", f"One of: {', '.join(EXCEPTION_RESOLUTIONS)}.")
    claim: Claim | None = None
    if resolution in ("attributed", "matched"):
        if not claim_id:
            raise InvalidCorrection("claim_id", "required", "Name the claim the money belongs to.")
        claim = await uow.claims.get(claim_id)
        if claim is None or claim.mcp_code != row.mcp_code:
            raise InvalidCorrection("claim_id", "claim_of_paying_mcp", "No claim with this id for the paying MCP.")
    now = clock(uow).now()
    if resolution == "attributed":
        if row.provider_adjustment_id is None:
            raise InvalidCorrection("resolution", "attributed_needs_plb",
                                    "Only an unattributed provider-level adjustment is attributed to a claim.")
        adjustment = await uow.remittances.provider_adjustment(row.provider_adjustment_id)
        assert adjustment is not None and claim is not None
        if adjustment.payout_id is not None:
            raise ClaimsError("adjustment-paid-out", "Adjustment already in a payout",
                              "The adjustment was settled in a payout; correct it in the next period.")
        adjustment.claim_id = claim.id
        adjustment.cbo_organization_id = claim.cbo_organization_id
    row.status = "resolved"
    row.resolution = resolution
    row.resolution_note = note
    row.resolved_claim_id = claim.id if claim else None
    row.resolved_by = caller.organization_id
    row.resolved_at = now
    if claim is not None:
        uow.claims.add_history(new_history(claim.id, action=f"exception_{resolution}", actor=caller.organization_id,
                                           actor_key_id=caller.key_id, from_status=claim.status,
                                           to_status=claim.status, at=now,
                                           detail={"exception_id": row.id, "amount": str(row.amount)}))
    await record_audit(uow.session, audit_table, action="remittance_exception.resolved",
                       resource_type="remittance_exception", resource_id=row.id, caller=caller, occurred_at=now,
                       detail={"resolution": resolution, "claim_id": row.resolved_claim_id, "amount": row.amount,
                               "reason": row.reason})
    return row


async def resolve_denial(uow: ClaimsUnitOfWork, denial_id: str, *, resolution: str, note: str | None,
                         caller: Caller) -> Denial:
    """Take a denial off the work queue without a new claim (appealed, written off...). Audited."""
    row = await uow.remittances.denial(denial_id, for_update=True)
    if row is None or not TenantScope(caller).allows(cbo_id=row.cbo_organization_id, mcp_code=row.mcp_code):
        raise NotFound("denial-not-found", "Denial not found", "No denial with this id is visible to the caller.")
    if row.status != "open":
        raise ClaimsError("denial-not-open", "Denial not open", "The denial was already worked.")
    if resolution not in DENIAL_RESOLUTIONS:
        raise InvalidCorrection("resolution", "one_of", f"One of: {', '.join(DENIAL_RESOLUTIONS)}.")
    now = clock(uow).now()
    row.status = "resolved"
    row.resolution = resolution
    row.resolution_note = note
    row.resolved_by = caller.organization_id
    row.resolved_at = now
    await record_audit(uow.session, audit_table, action="denial.resolved", resource_type="denial",
                       resource_id=row.id, caller=caller, occurred_at=now,
                       detail={"claim_id": row.claim_id, "resolution": resolution, "category": row.category})
    return row


async def _denials_followed_up(uow: ClaimsUnitOfWork, original: Claim, follow_up: Claim, caller: Caller,
                               now: datetime) -> None:
    """A replacement (7) or void (8) works the original claim's open denials."""
    for denial in await uow.remittances.open_denials_of(original.id):
        denial.status = "resubmitted"
        denial.follow_up_claim_id = follow_up.id
        denial.resolution = "replaced" if follow_up.frequency_code == "7" else "voided"
        denial.resolved_by = caller.organization_id
        denial.resolved_at = now


# -------------------------------------------------------------------------------------- timely-payment report

async def timely_payment(uow: ClaimsUnitOfWork, scope: TenantScope, *, as_of: date,
                         mcp_code: str | None = None, interest_claims: int = 100) -> dict[str, Any]:
    """Per MCP: 30/90-day shares of clean claims against 90%/99%, aging, late-payment interest owed (H&S
    1371/1371.35, HMO or not per MCP configuration) vs paid in PLB L6, and the last 835 with a silence flag.

    An MCP caller sees its own plan; a CBO sees the figures of its own claims.
    """
    config = configuration(uow)
    codes_ = sorted(config.mcps)
    if scope.caller.organization_kind == "mcp":
        codes_ = [c for c in codes_ if c == scope.caller.organization_code]
    if mcp_code:
        codes_ = [c for c in codes_ if c == mcp_code]
    repo = uow.remittances
    rows = await repo.timely_rows(scope, codes_) if codes_ else []
    first = await repo.first_adjudications(codes_) if codes_ else {}
    interest_rows = await repo.interest_paid(codes_) if codes_ else []
    last_files = await repo.last_received()
    last_payments = await repo.last_payment_dates()
    visible = {row.id for row in rows}
    reports = []
    for code in codes_:
        billing = config.mcps[code]
        rule = HMO if billing.profile.hmo else NON_HMO
        timings: list[ClaimTiming] = []
        dues = []
        for row in rows:
            if row.mcp_code != code:
                continue
            received = row.received_on or _pacific_date(row.acknowledged_at) or _pacific_date(row.submitted_at)
            if received is None:
                continue
            adjudicated = first.get(row.id)
            clean = row.acknowledged_at is not None or adjudicated is not None
            resolved_on = adjudicated[0] if adjudicated and adjudicated[0] >= received else \
                (received if adjudicated else None)
            timings.append(ClaimTiming(row.id, code, received, Decimal(row.expected_amount), clean, resolved_on))
            if clean and adjudicated is not None and adjudicated[1] > 0 and resolved_on is not None:
                dues.append(late_payment_interest(row.id, adjudicated[1], received, resolved_on, rule))
        report = timely_payment_report(timings, mcp_code=code, as_of=as_of)
        paid = interest_paid_by_claim(_plb_postings(r for r in interest_rows if r.mcp_code == code
                                                    and (r.claim_id in visible or scope.caller.is_hub)))
        gaps = compare_interest(dues, paid)
        last = last_files.get(code)
        last_day = _pacific_date(last)
        silent = silent_payers({code: last_day}, as_of=as_of, max_days=billing.profile.silent_after_days)
        owed = sum((g.owed for g in gaps), Decimal(0))
        paid_total = sum((g.paid for g in gaps), Decimal(0))
        reports.append({
            **report.as_dict(), "hmo": billing.profile.hmo,
            "interest": {"working_days": rule.working_days, "annual_rate": str(rule.annual_rate),
                         "minimum_per_year": str(rule.minimum_per_year), "owed": str(owed),
                         "paid": str(paid_total), "shortfall": str(owed - paid_total),
                         "late_claims": sum(1 for d in dues if d.days_late > 0),
                         "claims": [{"claim_id": g.claim_id, "owed": str(g.owed), "paid": str(g.paid),
                                     "shortfall": str(g.shortfall)}
                                    for g in sorted(gaps, key=lambda g: -g.shortfall)[:interest_claims]]},
            "last_remittance_received": last_day.isoformat() if last_day else None,
            "last_payment_date": last_payments[code].isoformat() if code in last_payments else None,
            "days_silent": silent[0].days_silent if silent else (as_of - last_day).days if last_day else None,
            "silent": bool(silent), "silent_after_days": billing.profile.silent_after_days})
    return {"as_of": as_of.isoformat(), "mcps": reports}


def _pacific_date(moment: datetime | None) -> date | None:
    aware = _aware(moment)
    return aware.astimezone(PACIFIC).date() if aware is not None else None


def _plb_postings(rows: Any) -> list[ProviderAdjustmentPosting]:
    return [ProviderAdjustmentPosting(r.position, r.provider_id, r.fiscal_period_date, r.reason,
                                      ProviderAdjustmentKind(r.kind), r.reference, Decimal(r.amount), r.claim_id,
                                      r.cbo_organization_id) for r in rows]


# ------------------------------------------------------------------------------------------------ payouts

class PayoutConflict(ClaimsError):
    """A payout for an overlapping period of the CBO exists."""

    status = 409


@dataclass
class PayoutOutcome:
    """A payout and whether this call created it."""

    payout: Payout
    created: bool
    warnings: list[str]


def fee_schedule(config: BillingConfiguration, cbo_organization_id: str) -> PayoutFees:
    """The hub's effective-dated fee terms for a CBO from configuration. Raises InvalidCorrection if none."""
    contract = config.cbo_contracts.get(cbo_organization_id)
    if contract is None or not contract.fee_terms:
        raise InvalidCorrection("cbo_organization_id", "fee_terms_configured",
                                "The billing configuration has no fee terms (cbo_contracts) for this CBO.")
    return PayoutFees(FeeTerm(cbo_organization_id, t.percent, t.effective_from, t.effective_to)
                      for t in contract.fee_terms)


async def generate_payout(uow: ClaimsUnitOfWork, cbo_organization_id: str, period_start: date, period_end: date,
                          *, actor: Actor) -> PayoutOutcome:
    """The CBO's payout for [period_start, period_end]: collections (postings and PLB interest) minus the hub's
    fee and PLB recoupments, plus a carried negative balance; payout.generated. Each posting and PLB row is
    settled in exactly one payout. The same period again returns the existing payout; an overlapping one is a
    conflict. Raises InvalidCorrection (dates, no fee terms), PayoutConflict."""
    if period_end < period_start:
        raise InvalidCorrection("period_end", "not_before_start", "period_end is before period_start.")
    repo = uow.remittances
    existing = await repo.payout_for(cbo_organization_id, period_start)
    if existing is not None and existing.period_end == period_end:
        return PayoutOutcome(existing, False, [])
    if existing is not None or await repo.overlapping_payout(cbo_organization_id, period_start, period_end):
        raise PayoutConflict("payout-period-overlaps", "Payout period overlaps",
                             "The CBO has a payout for an overlapping period; money is paid out once.")
    fees = fee_schedule(configuration(uow), cbo_organization_id)
    payments = await repo.unsettled_payments(cbo_organization_id, period_start, period_end)
    adjustments = await repo.unsettled_adjustments(cbo_organization_id, period_start, period_end)
    basis = await repo.payment_dates([p.reverses_payment_id for p in payments if p.reverses_payment_id])
    collections = [Collection(p.claim_id, p.trace_number, p.paid_on, Decimal(p.paid), p.kind,
                              basis.get(p.reverses_payment_id) if p.reverses_payment_id else None)
                   for p in payments]
    recoupments: list[Recoupment] = []
    for a in adjustments:
        amount = Decimal(a.amount)
        if a.kind == "recoupment" and amount > 0:
            recoupments.append(Recoupment(a.claim_id, a.reference or a.trace_number, a.paid_on, amount))
        elif a.kind in ("interest", "recoupment"):
            # Interest (L6, negative in PLB) adds to what the CBO collected; a negative recoupment returns money.
            collections.append(Collection(a.claim_id or "", a.trace_number, a.paid_on, -amount, a.kind))
    previous = await repo.previous_payout(cbo_organization_id, period_start)
    balance_forward = Decimal(previous.carry_forward) if previous is not None else Decimal(0)
    try:
        statement = build_statement(cbo_organization_id, period_start, period_end, collections, recoupments, fees,
                                    balance_forward=balance_forward)
    except NoFeeTerm:
        raise InvalidCorrection("period_start", "fee_term_in_force",
                                "No hub fee term of the CBO's contract covers a payment date in the period.") from None
    now = clock(uow).now()
    payout = Payout(id=_new_id("pyo"), cbo_organization_id=cbo_organization_id, period_start=period_start,
                    period_end=period_end, balance_forward=_q(statement.balance_forward),
                    collected=_q(statement.collected), hub_fee=_q(statement.hub_fee),
                    recoupments=_q(statement.recoupments), payable=_q(statement.payable),
                    payout_amount=_q(statement.payout_amount), carry_forward=_q(statement.carry_forward),
                    statement=statement.as_dict(),
                    generated_by=actor.label, generated_at=now)
    repo.add_payout(payout)
    await repo.update_by_id(ClaimPayment.__table__, ("id", "payout_id"), [(p.id, payout.id) for p in payments])
    await repo.update_by_id(ProviderAdjustment.__table__, ("id", "payout_id"),
                            [(a.id, payout.id) for a in adjustments])
    warnings: list[str] = []
    late = await repo.unsettled_before(cbo_organization_id, period_start)
    if late:
        warnings.append(f"{late} posting(s) dated before the period are not in any payout (an 835 arrived after "
                        "that period was paid out); they need a manual adjustment.")
    uow.record(new_event(PayoutGenerated(
        payout_id=payout.id, cbo_organization_id=cbo_organization_id, period_start=period_start,
        period_end=period_end, collected=payout.collected, hub_fee=payout.hub_fee,
        recoupments=payout.recoupments, payable=payout.payable, payout_amount=payout.payout_amount,
        balance_forward=payout.balance_forward, carry_forward=payout.carry_forward,
        lines=len(statement.lines)), subject=payout.id, source=SOURCE, time=now))
    await record_audit(uow.session, audit_table, action="payout.generated", resource_type="payout",
                       resource_id=payout.id, caller=actor.caller, occurred_at=now,
                       detail={"cbo_organization_id": cbo_organization_id, "collected": statement.collected,
                               "hub_fee": statement.hub_fee, "recoupments": statement.recoupments,
                               "payable": statement.payable, "lines": len(statement.lines)})
    await uow.flush()
    return PayoutOutcome(payout, True, warnings)


def payout_statement(row: Payout) -> PayoutStatement:
    """The stored statement as the domain object (for CSV)."""
    data = row.statement
    lines = tuple(StatementLine(date.fromisoformat(line["date"]), line["kind"], line["claim_id"], line["reference"],
                                Decimal(line["collected"]),
                                Decimal(line["fee_percent"]) if line["fee_percent"] else None,
                                Decimal(line["hub_fee"]), Decimal(line["recoupment"])) for line in data["lines"])
    return PayoutStatement(row.cbo_organization_id, row.period_start, row.period_end, lines,
                           Decimal(data["balance_forward"]))
