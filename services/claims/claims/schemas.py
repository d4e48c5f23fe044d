"""Request and response bodies of the claims API (pydantic). Validation errors name the field and the rule."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from claims.x12.x837p import REFERENCE_RULE, TEXT_RULE, reference_problem, text_problem
from shared.contracts.values import Program
from shared.reference.identifiers import npi_problem

ICD10 = r"^[A-TV-Z][0-9][0-9A-Z](\.?[0-9A-Z]{1,4})?$"


def _npi(value: str) -> str:
    problem = npi_problem(value)
    if problem is not None:
        # A custom error type becomes the problem's rule name: `npi_check_digit`.
        raise PydanticCustomError("npi_check_digit", "NPI {problem}", {"problem": problem})
    return value


def _reference(value: str) -> str:
    if reference_problem(value) is not None:
        # Written as REF02 of the 837P (REF*G1): a delimiter would split the segment for the whole batch.
        raise PydanticCustomError("x12_reference", "Must be " + REFERENCE_RULE + ".")
    return value


def _x12_text(value: str) -> str:
    if value and text_problem(value) is not None:  # empty: min_length decides (an optional one stays allowed)
        # Written into the 837P (NM1, N3, N4) in X12's character set; accents are folded (Peña -> PENA), any
        # other character would be dropped (a name in another script would arrive empty).
        raise PydanticCustomError("x12_text", "Must be " + TEXT_RULE + ".")
    return value


def _icd10(value: str) -> str:
    return value.replace(".", "").upper()


Npi = Annotated[str, AfterValidator(_npi)]
DiagnosisCode = Annotated[str, Field(pattern=ICD10), AfterValidator(_icd10)]
Modifier = Annotated[str, Field(pattern=r"^[A-Z0-9]{2}$")]
Reference = Annotated[str, AfterValidator(_reference)]
X12Text = Annotated[str, AfterValidator(_x12_text)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class AddressIn(_In):
    """The member's residential address (837P 2010BA N3/N4)."""

    line1: X12Text = Field(min_length=1, max_length=55)
    line2: X12Text | None = Field(None, max_length=55)
    city: X12Text = Field(min_length=1, max_length=30)
    state: str = Field("CA", pattern=r"^[A-Z]{2}$")
    zip: str = Field(pattern=r"^[0-9]{5}([0-9]{4})?$")


class MemberIn(_In):
    """The member served: CIN and the demographics the 837P subscriber loop carries."""

    cin: str = Field(pattern=r"^[0-9]{8}[A-Z]$")
    last_name: X12Text = Field(min_length=1, max_length=60)
    first_name: X12Text = Field(min_length=1, max_length=35)
    middle_name: X12Text | None = Field(None, max_length=25)
    birth_date: date
    sex: Literal["F", "M", "U", "X"] = "U"
    address: AddressIn


class RenderingProviderIn(_In):
    """Who rendered the service (837P 2310B): the care manager or CHW, with an NPI."""

    npi: Npi
    last_name: X12Text = Field(min_length=1, max_length=60)
    first_name: X12Text | None = Field(None, max_length=35)


class EncounterIn(_In):
    """One encounter a CBO delivered."""

    external_id: str | None = Field(None, min_length=1, max_length=100,
                                    description="The CBO's own id; a repeat returns the first encounter.")
    cbo_organization_id: str | None = Field(None, description="Required for hub callers; CBOs post their own.")
    mcp_code: str | None = Field(None, description="Omit to take the MCP from the authorization or eligibility.")
    member: MemberIn
    rendering_provider: RenderingProviderIn
    program: Program
    cs_code: str | None = Field(None, description="The Community Support, e.g. housing_deposits (program cs).")
    hcpcs: str = Field(pattern=r"^[A-Z0-9]{5}$")
    modifiers: list[Modifier] = Field(default_factory=list, max_length=4)
    units: Decimal = Field(gt=0, le=999, decimal_places=2)
    service_date: date
    service_date_to: date | None = None
    place_of_service: str = Field(pattern=r"^[0-9]{2}$")
    diagnosis_codes: list[DiagnosisCode] = Field(min_length=1, max_length=12)
    outreach_attempt: bool = False
    outreach_outcome: Literal["successful", "unsuccessful"] | None = None
    prerequisites: list[Literal["initiating_em_visit", "care_plan"]] = Field(default_factory=list)
    care_plan_on_file: bool = False

    @model_validator(mode="after")
    def _cs_names_its_service(self) -> EncounterIn:
        if self.program is Program.CS and not self.cs_code:
            raise PydanticCustomError("required_for_cs", "cs_code is required when program is cs")
        return self


class EncounterBatchIn(_In):
    """Up to 1,000 encounters; each is validated and checked on its own."""

    encounters: list[dict[str, Any]] = Field(min_length=1, max_length=1000)


class ReasonOut(BaseModel):
    """A failed (or flagged) check."""

    code: str
    message: str


class EncounterOut(BaseModel):
    """An encounter's verdict: recorded (with its claim and price) or rejected (with every reason)."""

    id: str
    external_id: str | None
    status: Literal["recorded", "rejected"]
    cbo_organization_id: str
    mcp_code: str | None
    program: str
    service_code: str | None
    hcpcs: str
    modifiers: list[str]
    units: Decimal
    service_date: date
    service_date_to: date
    reasons: list[ReasonOut]
    flags: list[ReasonOut]
    authorization_id: str | None
    claim_id: str | None
    expected_amount: Decimal | None
    pricing: list[dict[str, str]]
    received_at: datetime


class EncounterItemResult(BaseModel):
    """One item of a batch: its verdict, or the field errors that kept it from being an encounter."""

    index: int
    status: Literal["recorded", "rejected", "invalid"]
    encounter: EncounterOut | None = None
    errors: list[dict[str, str]] = Field(default_factory=list)


class EncounterBatchOut(BaseModel):
    """Per-item results of an encounter batch."""

    recorded: int
    rejected: int
    invalid: int
    results: list[EncounterItemResult]


class EncounterPage(BaseModel):
    """A page of encounters."""

    items: list[EncounterOut]
    next_cursor: str | None


class ClaimLineOut(BaseModel):
    """A service line."""

    line_number: int
    encounter_id: str
    hcpcs: str
    modifiers: list[str]
    units: Decimal
    charge: Decimal
    service_from: date
    service_to: date
    place_of_service: str
    diagnosis_pointers: list[int]
    paid_amount: Decimal | None
    adjustment_amount: Decimal | None


class HistoryOut(BaseModel):
    """One change to a claim."""

    occurred_at: datetime
    actor: str
    action: str
    from_status: str | None
    to_status: str | None
    detail: dict[str, Any]


class ClaimSummary(BaseModel):
    """A claim in a list (no member demographics)."""

    id: str
    status: str
    mcp_code: str
    cbo_organization_id: str
    member_id: str
    program: str
    service_code: str
    frequency_code: str
    replaces_claim_id: str | None
    payer_claim_number: str | None
    service_from: date
    service_to: date
    expected_amount: Decimal
    paid_amount: Decimal | None
    batch_id: str | None
    rejection_reasons: list[str]
    created_at: datetime
    submitted_at: datetime | None
    age_days: int


class ClaimDetail(ClaimSummary):
    """A claim with its member (PHI, audited), lines and history."""

    member: dict[str, Any]
    authorization_id: str | None
    prior_authorization_number: str | None
    rendering_npi: str
    billing_provider: str
    billing_npi: str
    claim_format: str
    place_of_service: str
    diagnosis_codes: list[str]
    adjustment_amount: Decimal | None
    acknowledged_at: datetime | None
    lines: list[ClaimLineOut]
    history: list[HistoryOut]


class ClaimPage(BaseModel):
    """A page of claims."""

    items: list[ClaimSummary]
    next_cursor: str | None


class ClaimSearchIn(_In):
    """Claim filters in a body, so a member's CIN never travels in a URL."""

    member_cin: str | None = Field(None, pattern=r"^[0-9]{8}[A-Z]$")
    status: str | None = None
    mcp_code: str | None = None
    cbo_organization_id: str | None = None
    service_from: date | None = None
    service_to: date | None = None
    min_age_days: int | None = Field(None, ge=0, le=36500)  # a century: beyond it timedelta overflows
    max_age_days: int | None = Field(None, ge=0, le=36500)
    limit: int = Field(100, ge=1, le=500)
    cursor: str | None = None


class LineCorrection(_In):
    """What may change on a line: modifiers, units, diagnosis pointers, place of service."""

    line_number: int = Field(ge=1, le=50)
    modifiers: list[Modifier] | None = Field(None, max_length=4)
    units: Decimal | None = Field(None, gt=0, le=999, decimal_places=2)
    diagnosis_pointers: list[int] | None = Field(None, min_length=1, max_length=4)
    place_of_service: str | None = Field(None, pattern=r"^[0-9]{2}$")


class MemberCorrectionIn(_In):
    """The member's names or address as the MCP holds them: an 837P rejected for a name the plan does not match,
    or a name stored before intake refused what the 837P cannot write. The CIN and birth date are not corrected
    here (a different member is a different claim)."""

    last_name: X12Text | None = Field(None, min_length=1, max_length=60)
    first_name: X12Text | None = Field(None, min_length=1, max_length=35)
    middle_name: X12Text | None = Field(None, max_length=25, description="null removes it.")
    address: AddressIn | None = None

    @field_validator("last_name", "first_name", "address")
    @classmethod
    def _corrected_not_removed(cls, value: Any) -> Any:
        # Runs only for a value sent: an explicit null would leave the 837P without a required element.
        if value is None:
            raise ValueError("can be corrected, not removed")
        return value


class ClaimCorrectionIn(_In):
    """Corrections to a claim; `reason` is recorded in the claim's history."""

    reason: str = Field(min_length=3, max_length=200)
    member: MemberCorrectionIn | None = Field(None, description="Names or address of the subscriber loop (2010BA).")
    diagnosis_codes: list[DiagnosisCode] | None = Field(None, min_length=1, max_length=12)
    prior_authorization_number: Reference | None = Field(None, description="REF*G1: " + REFERENCE_RULE + ".")
    rendering_npi: Npi | None = None
    place_of_service: str | None = Field(None, pattern=r"^[0-9]{2}$")
    lines: list[LineCorrection] = Field(default_factory=list, max_length=50)


class VoidIn(_In):
    """Why a claim is voided (recorded in history)."""

    reason: str = Field(min_length=3, max_length=200)


class BatchIn(_In):
    """Batch an MCP's draft claims now."""

    mcp_code: str = Field(min_length=1, max_length=50)


class BatchOut(BaseModel):
    """A claim batch."""

    id: str
    mcp_code: str
    file_kind: str
    claims: int
    total_amount: Decimal
    transaction_sets: int
    interchange_control_number: int
    group_control_number: int
    file: dict[str, Any]
    status: str
    acknowledgment_code: str | None
    trigger: str
    created_at: datetime
    delivered_at: datetime | None


# ------------------------------------------------------------------------------------------- remittances

class RemittanceOut(BaseModel):
    """One posted 835 payment: TRN02 trace and BPR amount for bank reconciliation, and what it posted."""

    id: str
    file_id: str
    mcp_code: str
    control_number: str
    trace_number: str = Field(description="TRN02: the EFT trace or check number on the bank deposit.")
    payer_id: str = Field(description="TRN03: the payer's id (1 + EIN, usually).")
    payment_amount: Decimal = Field(description="BPR02 (negative for a debit, BPR03 = D).")
    payment_method: str = Field(description="BPR04: ACH, CHK, NON, BOP, FWT.")
    payment_date: date = Field(description="BPR16: EFT effective or check date.")
    claims_posted: int
    exceptions: int
    posted_amount: Decimal
    exception_amount: Decimal
    provider_adjustment_amount: Decimal
    warnings: list[str]
    posted_at: datetime


class RemittanceFileOut(BaseModel):
    """What one 835 file did: accepted (payments posted), duplicate (nothing posted) or refused_unbalanced."""

    file_id: str
    status: Literal["accepted", "duplicate", "refused_unbalanced"]
    mcp_code: str
    source: str
    file_sha256: str
    interchange_control_number: str
    transaction_sets: int
    claim_payments: int
    duplicate_of: str | None
    detail: dict[str, Any]
    remittances: list[RemittanceOut]


class RemittancePage(BaseModel):
    """A page of posted payments."""

    items: list[RemittanceOut]
    next_cursor: str | None


class AdjustmentOut(BaseModel):
    """A CAS adjustment: group (CO, PR, OA, PI), CARC and amount."""

    group: str
    reason: str
    amount: Decimal


class LinePaymentOut(BaseModel):
    """One service line of a claim payment."""

    line_id: str | None = Field(description="Our line (REF*6R, the encounter id); null when the SVC matched none.")
    procedure: str
    charge: Decimal
    paid: Decimal
    allowed: Decimal | None
    units_paid: Decimal | None
    outcome: str
    adjustments: list[AdjustmentOut]
    remarks: list[str] = Field(description="RARCs (LQ*HE).")
    denial: dict[str, Any] | None


class ClaimPaymentOut(BaseModel):
    """A claim payment (CLP) posted against one of our claims."""

    id: str
    remittance_id: str
    claim_id: str
    cbo_organization_id: str
    kind: str = Field(description="payment, correction (on top of a reversal) or reversal (CLP02 = 22).")
    outcome: str = Field(description="paid, partially_denied, denied, reporting_only or reversed.")
    status_code: str = Field(description="CLP02.")
    charge: Decimal
    paid: Decimal
    adjustment_total: Decimal
    patient_responsibility: Decimal
    payer_claim_number: str
    adjustments: list[AdjustmentOut]
    remarks: list[str]
    denial: dict[str, Any] | None
    reverses_payment_id: str | None
    reversed_by: str | None
    received_on: date | None = Field(description="DTM*050: the MCP's receipt date.")
    paid_on: date
    trace_number: str
    lines: list[LinePaymentOut]


class ProviderAdjustmentOut(BaseModel):
    """A PLB adjustment (positive reduces the payment; interest L6 is negative)."""

    id: str
    provider_id: str
    fiscal_period_date: date
    reason: str
    kind: str
    reference: str
    amount: Decimal
    claim_id: str | None
    cbo_organization_id: str | None


class RemittanceDetail(RemittanceOut):
    """A posted payment with its claim payments and provider-level adjustments."""

    payments: list[ClaimPaymentOut]
    provider_adjustments: list[ProviderAdjustmentOut]


class ExceptionOut(BaseModel):
    """Money or a fact from an 835 that needs a person (patient data only in the single-item view)."""

    id: str
    remittance_id: str
    mcp_code: str
    reason: str
    position: int
    amount: Decimal
    patient_control_number: str = Field(description="CLP01 (our claim id, if it were ours) or the PLB reference.")
    payer_claim_number: str
    status_code: str
    charge: Decimal | None
    service_from: date | None
    service_to: date | None
    procedures: list[str]
    claim_id: str | None
    provider_adjustment_id: str | None
    detail: dict[str, str]
    trace_number: str
    payment_date: date
    status: str
    resolution: str | None
    resolution_note: str | None
    resolved_claim_id: str | None
    resolved_by: str | None
    resolved_at: datetime | None
    created_at: datetime
    patient: dict[str, str] | None = Field(None, description="NM1*QC as the 835 gave it (PHI; audited read).")


class ExceptionPage(BaseModel):
    """A page of exceptions."""

    items: list[ExceptionOut]
    next_cursor: str | None


class ExceptionResolveIn(_In):
    """How an exception was resolved."""

    resolution: Literal["attributed", "matched", "returned_to_payer", "written_off", "other"] = Field(
        description="attributed: put an unattributed PLB adjustment on `claim_id` (counts in that CBO's payout); "
        "matched: the money belongs to `claim_id` (recorded on the claim's history).")
    claim_id: str | None = Field(None, min_length=1, max_length=20)
    note: str | None = Field(None, max_length=500)


class DenialOut(BaseModel):
    """A denial in the work queue: why (category, codes) and what to do next."""

    id: str
    claim_id: str
    claim_payment_id: str
    remittance_id: str
    mcp_code: str
    cbo_organization_id: str
    outcome: str
    category: str = Field(description="eligibility, authorization, coding, duplicate, timely_filing, "
                          "missing_information, other.")
    next_action: str
    deciding_code: str
    codes: list[str]
    unknown_codes: list[str]
    denied_amount: Decimal
    payer_claim_number: str
    paid_on: date
    status: str = Field(description="open, resubmitted (a replacement or void went out), resolved, reversed.")
    resolution: str | None
    resolution_note: str | None
    follow_up_claim_id: str | None
    resolved_by: str | None
    resolved_at: datetime | None
    created_at: datetime


class DenialPage(BaseModel):
    """A page of the denials work queue."""

    items: list[DenialOut]
    next_cursor: str | None


class DenialResolveIn(_In):
    """Take a denial off the queue without a new claim."""

    resolution: Literal["appealed", "written_off", "paid_after_inquiry", "other"]
    note: str | None = Field(None, max_length=500)


class PayoutIn(_In):
    """Generate a CBO's payout for a period (both dates inclusive)."""

    cbo_organization_id: str = Field(min_length=1, max_length=64)
    period_start: date
    period_end: date


class PayoutOut(BaseModel):
    """A CBO payout with its statement."""

    id: str
    cbo_organization_id: str
    period_start: date
    period_end: date
    balance_forward: Decimal
    collected: Decimal
    hub_fee: Decimal
    recoupments: Decimal
    payable: Decimal
    payout_amount: Decimal
    carry_forward: Decimal
    statement: dict[str, Any]
    generated_by: str
    generated_at: datetime
    warnings: list[str] = []
