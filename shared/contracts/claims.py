"""Events of the claims service: encounters, claims, claim batches, remittances, CBO payouts."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from pydantic import Field

from shared.contracts.base import EventData, Topic, event
from shared.contracts.values import FileReference, Program

ENCOUNTER = Topic("claims", "encounter")
CLAIM = Topic("claims", "claim")
CLAIM_BATCH = Topic("claims", "claim_batch")
REMITTANCE = Topic("claims", "remittance")
PAYOUT = Topic("claims", "payout")


@event("encounter.recorded", ENCOUNTER)
class EncounterRecorded(EventData):
    """A CBO's encounter passed every check and will be billed."""

    encounter_id: str
    cbo_organization_id: str
    mcp_code: str
    authorization_id: str | None = None
    program: Program
    service_date: date
    hcpcs: str
    modifiers: tuple[str, ...] = ()
    units: Decimal
    outreach_attempt: bool = False
    service_to: date | None = Field(default=None, description="Last date of service when a range.")
    service_code: str | None = Field(default=None, description="Billing service, e.g. ecm_outreach.")
    claim_id: str | None = Field(default=None, description="The draft claim the encounter was added to.")
    expected_amount: Decimal | None = Field(default=None, description="Priced from the MCP's fee schedule.")
    flags: tuple[str, ...] = Field(default=(), description="Billed but flagged, e.g. chw_care_plan_required.")


@event("encounter.rejected", ENCOUNTER)
class EncounterRejected(EventData):
    """An encounter failed a check; it is kept with the reasons, never dropped."""

    encounter_id: str
    cbo_organization_id: str
    service_date: date
    reasons: tuple[str, ...]
    reason_codes: tuple[str, ...] = Field(default=(), description="Stable codes, e.g. no_authorization.")
    mcp_code: str | None = None


class _ClaimEvent(EventData):
    claim_id: str
    mcp_code: str
    cbo_organization_id: str


@event("claim.created", CLAIM)
class ClaimCreated(_ClaimEvent):
    expected_amount: Decimal
    service_from: date
    service_to: date
    frequency_code: str = Field(default="1", description="1 original, 7 replacement, 8 void (CLM05-3).")
    replaces_claim_id: str | None = Field(default=None, description="The claim a replacement or void changes.")
    batch_id: str | None = Field(default=None, description="The batch that sealed the claim.")
    lines: int | None = None


@event("claim.corrected", CLAIM)
class ClaimCorrected(_ClaimEvent):
    """A rejected claim was corrected and goes back to draft to be batched again."""

    expected_amount: Decimal
    corrected_fields: tuple[str, ...]


@event("claim.submitted", CLAIM)
class ClaimSubmitted(_ClaimEvent):
    batch_id: str
    submitted_at: datetime


@event("claim.accepted", CLAIM)
class ClaimAccepted(_ClaimEvent):
    acknowledgment: str = Field(description="999 or 277CA")
    payer_claim_number: str | None = None


@event("claim.rejected", CLAIM)
class ClaimRejected(_ClaimEvent):
    acknowledgment: str
    reasons: tuple[str, ...]


@event("claim.paid", CLAIM)
class ClaimPaid(_ClaimEvent):
    """An 835 adjudicated the claim with money (or a $0 reporting-only line): totals over active postings."""

    remittance_id: str
    paid_amount: Decimal
    adjustment_amount: Decimal
    paid_on: date
    settlement: str = Field(default="paid", description="paid, partially_paid (lines of the claim still open: "
                            "split across 835s) or reporting_only ($0, not a denial).")
    payment_id: str | None = Field(default=None, description="The claim payment posting (CLP) that did it.")
    trace_number: str | None = Field(default=None, description="TRN02 of the 835 payment.")
    payer_claim_number: str | None = None


@event("claim.denied", CLAIM)
class ClaimDenied(_ClaimEvent):
    """An 835 denied the claim (CLP02 = 4, or processed with a denial CARC and nothing paid)."""

    remittance_id: str
    reason_codes: tuple[str, ...]
    category: str
    next_action: str
    denial_id: str | None = Field(default=None, description="The denials work-queue item.")
    denied_amount: Decimal | None = None
    payer_claim_number: str | None = None


@event("claim.reversed", CLAIM)
class ClaimReversed(_ClaimEvent):
    """An 835 reversed (CLP02 = 22) an earlier payment of the claim; a correction may follow."""

    remittance_id: str
    reversed_amount: Decimal
    reversed_payment_id: str | None = Field(default=None, description="The posting the reversal undid.")


@event("claim_batch.created", CLAIM_BATCH)
class ClaimBatchCreated(EventData):
    """An 837P (or invoice) file is ready for an MCP; the gateway delivers it."""

    batch_id: str
    mcp_code: str
    claims: int
    total_amount: Decimal
    file: FileReference
    file_kind: str = Field(default="837P", description="837P or invoice")
    interchange_control_number: str | None = None
    created_at: datetime
    group_control_number: str | None = None
    transaction_sets: int = 1
    file_name: str | None = Field(default=None, description="Suggested name for the MCP's outbound folder.")


@event("claim_batch.acknowledged", CLAIM_BATCH)
class ClaimBatchAcknowledged(EventData):
    """A 999 answered the batch's functional group: A, E, P (partially accepted) or R."""

    batch_id: str
    mcp_code: str
    code: str
    sets_accepted: int
    sets_rejected: int
    claims_rejected: int
    acknowledged_at: datetime


@event("remittance.posted", REMITTANCE)
class RemittancePosted(EventData):
    """One 835 payment (transaction set) was balanced and posted."""

    remittance_id: str
    mcp_code: str
    trace_number: str
    paid_amount: Decimal
    claims_matched: int
    claims_unmatched: int
    posted_at: datetime
    file_id: str | None = Field(default=None, description="The remittance file that carried it.")
    payment_date: date | None = Field(default=None, description="BPR16: EFT effective or check date.")
    payment_method: str | None = Field(default=None, description="BPR04: ACH, CHK, NON...")
    exceptions: int = 0
    exception_amount: Decimal | None = None
    provider_adjustment_amount: Decimal | None = Field(default=None, description="Σ PLB (positive reduces).")


@event("remittance.refused", REMITTANCE)
class RemittanceRefused(EventData):
    """An 835 file was refused whole (nothing posted); `remittance_id` is the remittance file id."""

    remittance_id: str
    mcp_code: str | None
    reason: str
    refused_at: datetime
    file_sha256: str | None = None
    sets: tuple[dict[str, str | bool], ...] = Field(
        default=(), description="Per transaction set: control number, trace number and the balance figures.")


@event("payout.generated", PAYOUT)
class PayoutGenerated(EventData):
    """A CBO's payout statement for a period: collected minus the hub's fee and recoupments."""

    payout_id: str
    cbo_organization_id: str
    period_start: date
    period_end: date
    collected: Decimal
    hub_fee: Decimal
    recoupments: Decimal
    payable: Decimal
    payout_amount: Decimal | None = Field(default=None, description="What is paid now (never below zero).")
    balance_forward: Decimal | None = None
    carry_forward: Decimal | None = Field(default=None, description="A negative payable carried to the next "
                                          "period.")
    lines: int | None = None
