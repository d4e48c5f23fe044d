"""835 reconciliation as pure functions: balance, detect duplicates, match claim payments and plan the postings.

`plan_remittance_file(parsed 835, the claims it references, ...)` returns a `FilePlan`: whether the file is
refused (unbalanced, with the figures), a duplicate, or accepted, and for each transaction set the claim
postings (payments, corrections, reversals, denials, reporting-only), the provider-level (PLB) adjustments and
the exceptions that need a person. Every dollar of BPR02 lands in exactly one posting, PLB row or exception.
Rules cited are from the 835 TR3 (005010X221A1); choices are recorded in docs/decisions/0071.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from decimal import Decimal
from enum import StrEnum
from itertools import combinations
from typing import Final, NamedTuple

from claims.domain.denials import AdjustmentKind, CodeTable, DenialReason, classify_denial, default_code_table
from claims.x12.x835 import (
    Adjustment,
    ClaimPayment,
    Person,
    Procedure,
    ProviderAdjustment,
    Remittance,
    RemittanceFile,
    ServicePayment,
)
from shared.collector import collector_paused

ZERO: Final = Decimal(0)
REVERSAL: Final = "22"  # CLP02 = 22: reversal of a previous payment (835 TR3, loop 2100)
DENIED_STATUS: Final = "4"
PROCESSED_STATUSES: Final = frozenset({"1", "2", "3", "19", "20", "21"})  # processed as primary/secondary/...
NOT_OUR_CLAIM: Final = "23"  # not our claim, forwarded to an additional payer
PREDETERMINATION: Final = "25"  # predetermination pricing only: no payment


class PostingKind(StrEnum):
    """Why a claim payment is posted."""

    PAYMENT = "payment"
    CORRECTION = "correction"  # posted on top of a reversed payment of the same claim
    REVERSAL = "reversal"  # undoes a prior posting (CLP02 = 22)


class ClaimOutcome(StrEnum):
    """What one claim payment (CLP) says: from CLP02 and the adjustment codes, never from the amount alone."""

    PAID = "paid"
    PARTIALLY_DENIED = "partially_denied"  # money paid, and at least one denial code on the claim or a line
    DENIED = "denied"
    REPORTING_ONLY = "reporting_only"  # processed, nothing paid, no denial code (capitation, CO-96 reporting)
    REVERSED = "reversed"


class LineOutcome(StrEnum):
    """What one service line (SVC) says."""

    PAID = "paid"
    DENIED = "denied"
    REPORTING_ONLY = "reporting_only"
    REVERSED = "reversed"


class SettlementState(StrEnum):
    """A claim's state after this remittance, over all its active postings."""

    PAID = "paid"  # every line adjudicated, money received
    PARTIALLY_PAID = "partially_paid"  # money received, some of our lines not adjudicated yet (split claim)
    DENIED = "denied"
    REPORTING_ONLY = "reporting_only"
    REVERSED = "reversed"  # every posting reversed and no correction yet
    PENDING = "pending"  # lines still open, nothing paid


class ExceptionReason(StrEnum):
    """Why money or a fact could not be posted automatically."""

    UNKNOWN_CLAIM = "unknown_claim"  # CLP01 is not a claim we sent
    PAYER_MISMATCH = "payer_mismatch"  # the claim belongs to another MCP than the one that paid it
    CLAIM_UNBALANCED = "claim_unbalanced"  # CLP03 - CAS != CLP04, or a line SVC02 - CAS != SVC03
    REVERSAL_WITHOUT_ORIGINAL = "reversal_without_original"  # CLP02 = 22 and no active posting(s) to undo
    REVERSAL_AMBIGUOUS = "reversal_ambiguous"  # CLP02 = 22 matching more than one set of active postings
    DUPLICATE_PAYMENT = "duplicate_payment"  # pays lines that an active posting already paid
    UNATTRIBUTED_ADJUSTMENT = "unattributed_adjustment"  # PLB recoupment/interest naming no claim of ours


class ProviderAdjustmentKind(StrEnum):
    """What a PLB adjustment reason (PLB03-1) does to the provider's money."""

    INTEREST = "interest"
    RECOUPMENT = "recoupment"
    FORWARDING_BALANCE = "forwarding_balance"
    CAPITATION = "capitation"
    WITHHOLDING = "withholding"
    INCENTIVE = "incentive"
    OTHER = "other"


# PLB03-1 adjustment reason codes (835 TR3, PLB) grouped by what they mean for a CBO's money.
PLB_KINDS: Final[Mapping[str, ProviderAdjustmentKind]] = {
    "L6": ProviderAdjustmentKind.INTEREST,
    "WO": ProviderAdjustmentKind.RECOUPMENT,  # overpayment recovery
    "WU": ProviderAdjustmentKind.RECOUPMENT,  # unspecified recovery
    "72": ProviderAdjustmentKind.RECOUPMENT,  # authorized return (the provider's refund)
    "B3": ProviderAdjustmentKind.RECOUPMENT,  # recovery allowance
    "FB": ProviderAdjustmentKind.FORWARDING_BALANCE,
    "CT": ProviderAdjustmentKind.CAPITATION,
    "CR": ProviderAdjustmentKind.CAPITATION,
    "L3": ProviderAdjustmentKind.WITHHOLDING,  # penalty
    "LE": ProviderAdjustmentKind.WITHHOLDING,  # levy
    "IR": ProviderAdjustmentKind.WITHHOLDING,
    "E3": ProviderAdjustmentKind.WITHHOLDING,
    "SL": ProviderAdjustmentKind.WITHHOLDING,
    "BN": ProviderAdjustmentKind.INCENTIVE,
    "IP": ProviderAdjustmentKind.INCENTIVE,
}
# Adjustments that belong to one claim (and so to one CBO): they must be attributed before a payout.
_ATTRIBUTABLE: Final = frozenset({ProviderAdjustmentKind.INTEREST, ProviderAdjustmentKind.RECOUPMENT})


# ----------------------------------------------------------------------------------------------------------
# What the caller supplies: our claims as the repository knows them.

class ClaimLine(NamedTuple):
    """One of our service lines, as billed in the 837P (REF*6R carries `line_id`)."""

    line_id: str
    hcpcs: str
    modifiers: tuple[str, ...]
    service_date: date
    charge: Decimal


@dataclass(frozen=True, slots=True)
class PriorPosting:
    """A posting an earlier remittance made for the claim."""

    posting_id: str
    payer_claim_number: str
    kind: PostingKind
    outcome: ClaimOutcome
    paid: Decimal
    line_ids: tuple[str, ...] = ()  # our lines it adjudicated
    paid_line_ids: tuple[str, ...] = ()  # our lines it paid money on
    reversed: bool = False  # a later reversal undid it


class ClaimRecord(NamedTuple):
    """One of our claims (CLM01 = `claim_id`), with its lines and earlier postings."""

    claim_id: str
    mcp_code: str
    cbo_organization_id: str
    member_id: str
    charge: Decimal
    lines: tuple[ClaimLine, ...] = ()
    payer_claim_numbers: tuple[str, ...] = ()  # from 277CA and earlier 835s (CLP07)
    postings: tuple[PriorPosting, ...] = ()


# ----------------------------------------------------------------------------------------------------------
# What the plan says.

@dataclass(frozen=True, slots=True)
class Balance:
    """BPR02 (signed by BPR03) against ΣCLP04 − ΣPLB; balanced when the difference is zero."""

    payment_amount: Decimal
    claims_paid: Decimal
    provider_adjustments: Decimal
    expected_payment: Decimal
    difference: Decimal

    @property
    def balanced(self) -> bool:
        """True when BPR02 equals ΣCLP04 − ΣPLB."""
        return self.difference == ZERO

    def as_dict(self) -> dict[str, str | bool]:
        """JSON-ready figures (amounts as strings)."""
        return {"payment_amount": str(self.payment_amount), "claims_paid": str(self.claims_paid),
                "provider_adjustments": str(self.provider_adjustments),
                "expected_payment": str(self.expected_payment), "difference": str(self.difference),
                "balanced": self.balanced}


@dataclass(frozen=True, slots=True)
class RemittanceKey:
    """Identity of a payment for duplicate detection: TRN02 + payer (TRN03) + BPR amount + BPR16 date."""

    trace_number: str
    payer_id: str
    amount: Decimal
    payment_date: date

    @property
    def value(self) -> str:
        """The key as text; amounts are normalized so 350 and 350.00 are the same payment."""
        amount = self.amount.quantize(Decimal("0.01"))
        return f"{self.trace_number}|{self.payer_id}|{amount}|{self.payment_date.isoformat()}"

    @property
    def digest(self) -> str:
        """SHA-256 of `value`, for a unique index."""
        return hashlib.sha256(self.value.encode()).hexdigest()


class LinePosting(NamedTuple):
    """One service line of a claim posting."""

    position: int
    line_id: str | None  # None: the SVC matched none of our lines (see the plan's warnings)
    procedure: Procedure
    charge: Decimal
    paid: Decimal
    outcome: LineOutcome
    adjustments: tuple[Adjustment, ...] = ()
    remarks: tuple[str, ...] = ()
    allowed: Decimal | None = None
    units_paid: Decimal | None = None
    denial: DenialReason | None = None


class ClaimPosting(NamedTuple):
    """One claim payment (CLP) to post against our claim."""

    position: int
    claim_id: str
    cbo_organization_id: str
    member_id: str
    kind: PostingKind
    outcome: ClaimOutcome
    status_code: str
    charge: Decimal
    paid: Decimal
    adjustment_total: Decimal  # Σ CAS amounts, claim and lines
    patient_responsibility: Decimal
    payer_claim_number: str
    adjustments: tuple[Adjustment, ...] = ()  # claim-level CAS
    remarks: tuple[str, ...] = ()
    lines: tuple[LinePosting, ...] = ()
    denial: DenialReason | None = None
    reverses_posting_ids: tuple[str, ...] = ()  # the prior postings a reversal undoes (several: a split payment)
    received_on: date | None = None  # DTM*050
    interest_reported: Decimal | None = None  # AMT*I (informational: interest itself is paid in PLB L6)
    # Our lines this posting adjudicated and paid money on (every line of the claim when the 835 reports the
    # claim without SVC lines): store them as PriorPosting.line_ids / paid_line_ids for the next remittance.
    line_ids: tuple[str, ...] = ()
    paid_line_ids: tuple[str, ...] = ()

    @property
    def reverses_posting_id(self) -> str | None:
        """The first (usually the only) prior posting a reversal undoes."""
        return self.reverses_posting_ids[0] if self.reverses_posting_ids else None


@dataclass(frozen=True, slots=True)
class ProviderAdjustmentPosting:
    """One PLB adjustment recorded against the provider and fiscal period (positive reduces the payment)."""

    position: int
    provider_id: str
    fiscal_period_date: date
    reason: str
    kind: ProviderAdjustmentKind
    reference: str
    amount: Decimal
    claim_id: str | None = None  # the claim the reference names, when it names one of ours
    cbo_organization_id: str | None = None


@dataclass(frozen=True, slots=True)
class RemittanceException:
    """Money or a fact that needs a person, with what they need to resolve it."""

    reason: ExceptionReason
    position: int  # segment position of the CLP or PLB
    amount: Decimal  # the money concerned (CLP04, or the PLB amount)
    patient_control_number: str  # CLP01, or the PLB reference
    payer_claim_number: str = ""
    status_code: str = ""
    charge: Decimal | None = None
    patient: Person | None = None  # PHI: for the exception queue's authorized readers only
    service_from: date | None = None
    service_to: date | None = None
    procedures: tuple[str, ...] = ()
    claim_id: str | None = None  # our claim, when matched but not postable
    detail: Mapping[str, str] = field(default_factory=dict)  # figures and codes, never PHI


class ClaimSettlement(NamedTuple):
    """A claim's totals and state over all its active postings once this remittance is posted."""

    claim_id: str
    state: SettlementState
    paid_total: Decimal
    lines_pending: tuple[str, ...]


class RemittanceStatus(StrEnum):
    """What to do with one transaction set."""

    POST = "post"
    DUPLICATE = "duplicate"  # the same payment (key) was posted before: nothing to post
    REFUSED = "refused"  # the file is refused whole: nothing to post


@dataclass(frozen=True, slots=True)
class RemittancePlan:
    """The plan for one 835 transaction set (one payment)."""

    control_number: str
    key: RemittanceKey
    balance: Balance
    status: RemittanceStatus
    trace_number: str
    payer_id: str
    payment_amount: Decimal
    payment_method: str
    payment_date: date
    postings: tuple[ClaimPosting, ...] = ()
    provider_adjustments: tuple[ProviderAdjustmentPosting, ...] = ()
    exceptions: tuple[RemittanceException, ...] = ()
    settlements: tuple[ClaimSettlement, ...] = ()
    warnings: tuple[str, ...] = ()  # no PHI: codes, positions and ids only

    @property
    def posted_amount(self) -> Decimal:
        """Σ CLP04 of the postings (reversals negative)."""
        return sum((p.paid for p in self.postings), ZERO)

    @property
    def exception_amount(self) -> Decimal:
        """Σ CLP04 of claim payments sent to exceptions (PLB exceptions are already in provider adjustments)."""
        return sum((e.amount for e in self.exceptions if e.reason != ExceptionReason.UNATTRIBUTED_ADJUSTMENT),
                   ZERO)


class FileStatus(StrEnum):
    """What to do with the file as a whole."""

    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"  # same bytes (SHA-256) seen before, or every payment in it was posted before
    REFUSED_UNBALANCED = "refused_unbalanced"


@dataclass(frozen=True, slots=True)
class FilePlan:
    """The plan for one 835 file."""

    sha256: str
    status: FileStatus
    remittances: tuple[RemittancePlan, ...]

    @property
    def refusal(self) -> list[dict[str, object]]:
        """The figures of every unbalanced transaction set (empty unless refused)."""
        return [{"control_number": r.control_number, "trace_number": r.trace_number, **r.balance.as_dict()}
                for r in self.remittances if not r.balance.balanced]


# ----------------------------------------------------------------------------------------------------------
# Pure functions.

def file_sha256(data: bytes) -> str:
    """SHA-256 of the file's bytes, hex: the same file twice is recognized before parsing."""
    return hashlib.sha256(data).hexdigest()


def remittance_key(remittance: Remittance) -> RemittanceKey:
    """The duplicate-detection key of one payment (TRN02, TRN03, BPR02, BPR16)."""
    return RemittanceKey(remittance.trace_number, remittance.originator_id, remittance.net_payment,
                         remittance.payment_date)


def balance(remittance: Remittance) -> Balance:
    """BPR02 must equal ΣCLP04 − ΣPLB (835 TR3 1.10.2.1); a debit (BPR03 = D) counts negative."""
    claims_paid = sum((c.paid for c in remittance.claims), ZERO)
    adjustments = sum((a.amount for a in remittance.provider_adjustments), ZERO)
    expected = claims_paid - adjustments
    return Balance(remittance.net_payment, claims_paid, adjustments, expected, remittance.net_payment - expected)


def claim_references(parsed: RemittanceFile) -> frozenset[str]:
    """Every CLP01 and PLB reference of the file: the claim ids (or payer claim numbers) to load."""
    refs = {c.patient_control_number for r in parsed.remittances for c in r.claims}
    refs.update(a.reference for r in parsed.remittances for a in r.provider_adjustments if a.reference)
    return frozenset(refs)


_PLANNED: Final = "planned@"


def planned_posting_id(position: int) -> str:
    """The id a posting planned from the CLP at this segment position has until it is stored: a later
    transaction set of the same file sees it as a prior posting (and may reverse it) under this id."""
    return f"{_PLANNED}{position}"


def _total(adjustments: Sequence[Adjustment]) -> Decimal:
    # Most claim payments and lines carry no CAS at all: skip the generator for them (50,000 claims at month end).
    return sum((a.amount for a in adjustments), ZERO) if adjustments else ZERO


def claim_imbalance(claim: ClaimPayment) -> dict[str, str] | None:
    """Figures when CLP03 − ΣCAS ≠ CLP04, or a line's SVC02 − ΣCAS ≠ SVC03 (TR3 claim/line balancing)."""
    line_adjustments = ZERO
    for service in claim.services:
        service_adjustment = _total(service.adjustments)
        line_adjustments += service_adjustment
        if service.charge - service_adjustment != service.paid:
            return {"rule": "SVC02 - CAS must equal SVC03", "line_position": str(service.position),
                    "line_charge": str(service.charge), "line_adjustments": str(service_adjustment),
                    "line_paid": str(service.paid)}
    adjustments = _total(claim.adjustments) + line_adjustments
    if claim.charge - adjustments != claim.paid:
        return {"rule": "CLP03 - CAS must equal CLP04", "charge": str(claim.charge),
                "adjustments": str(adjustments), "paid": str(claim.paid)}
    return None


def claim_outcome(status_code: str, paid: Decimal, adjustments: Iterable[Adjustment], table: CodeTable,
                  on: date) -> ClaimOutcome:
    """A claim payment's outcome from CLP02 and its adjustment codes (a $0 payment is not by itself a denial)."""
    if status_code == REVERSAL:
        return ClaimOutcome.REVERSED
    if status_code in (DENIED_STATUS, NOT_OUR_CLAIM):
        return ClaimOutcome.DENIED
    if status_code == PREDETERMINATION:
        return ClaimOutcome.REPORTING_ONLY
    denial = any(a.amount != ZERO and table.adjustment_kind(a.reason, on) is AdjustmentKind.DENIAL
                 for a in adjustments)
    if paid > ZERO:
        return ClaimOutcome.PARTIALLY_DENIED if denial else ClaimOutcome.PAID
    return ClaimOutcome.DENIED if denial else ClaimOutcome.REPORTING_ONLY


def line_outcome(claim_status: str, service: ServicePayment, table: CodeTable, on: date) -> LineOutcome:
    """A service line's outcome: reversed or denied with its claim, else paid, or by its codes when $0."""
    if claim_status == REVERSAL:
        return LineOutcome.REVERSED
    if claim_status in (DENIED_STATUS, NOT_OUR_CLAIM):
        return LineOutcome.DENIED
    if service.paid > ZERO:
        return LineOutcome.PAID
    if claim_status != PREDETERMINATION and any(
            a.amount != ZERO and table.adjustment_kind(a.reason, on) is AdjustmentKind.DENIAL
            for a in service.adjustments):
        return LineOutcome.DENIED
    return LineOutcome.REPORTING_ONLY


def provider_adjustment_kind(reason: str) -> ProviderAdjustmentKind:
    """What a PLB03-1 reason code does (unknown codes: OTHER)."""
    return PLB_KINDS.get(reason, ProviderAdjustmentKind.OTHER)


def match_lines(services: Sequence[ServicePayment], lines: Sequence[ClaimLine]) -> list[str | None]:
    """Our line id for each SVC: by REF*6R first, then by code, modifiers, date and charge; None if no match."""
    by_id = {line.line_id: line for line in lines}
    taken: set[str] = set()
    result: list[str | None] = [None] * len(services)
    for index, service in enumerate(services):
        if service.line_control_number in by_id and service.line_control_number not in taken:
            result[index] = service.line_control_number
            taken.add(service.line_control_number)
    for index, service in enumerate(services):
        if result[index] is not None:
            continue
        billed = service.submitted_procedure
        for line in lines:
            if line.line_id in taken or line.hcpcs != billed.code or line.modifiers != billed.modifiers:
                continue
            if service.service_from is not None and service.service_from != line.service_date:
                continue
            if abs(service.charge) != line.charge:
                continue
            result[index] = line.line_id
            taken.add(line.line_id)
            break
    return result


class _ClaimIndex:
    """The paying MCP's claims by claim id and by payer claim number.

    A payer claim number is only unique within one payer, and a PLB moves money of the paying MCP: a reference
    that names another MCP's claim names none of this payment's (the exception queue takes it)."""

    def __init__(self, claims: Mapping[str, ClaimRecord], mcp_code: str) -> None:
        self.by_id = claims
        self.mcp_code = mcp_code
        self.by_payer_number: dict[str, ClaimRecord] = {}
        for claim in claims.values():
            self.add(claim)

    def add(self, claim: ClaimRecord) -> None:
        if claim.mcp_code != self.mcp_code:
            return
        for number in claim.payer_claim_numbers:
            self.by_payer_number.setdefault(number, claim)
        for posting in claim.postings:
            self.by_payer_number.setdefault(posting.payer_claim_number, claim)

    def for_reference(self, reference: str) -> ClaimRecord | None:
        # A PLB reference names the claim by our id or by the payer's claim number; some payers append
        # more after a space or a dash-free suffix, so only the first token is compared.
        token = reference.split(" ", 1)[0]
        claim = self.by_id.get(token)
        if claim is not None and claim.mcp_code == self.mcp_code:
            return claim
        return self.by_payer_number.get(token)


def _exception(reason: ExceptionReason, claim: ClaimPayment, detail: Mapping[str, str] | None = None,
               claim_id: str | None = None) -> RemittanceException:
    starts = [d for d in (claim.statement_from, *(s.service_from for s in claim.services)) if d is not None]
    ends = [d for d in (claim.statement_to, *(s.service_to for s in claim.services)) if d is not None]
    return RemittanceException(
        reason=reason, position=claim.position, amount=claim.paid,
        patient_control_number=claim.patient_control_number, payer_claim_number=claim.payer_claim_number,
        status_code=claim.status, charge=claim.charge, patient=claim.patient,
        service_from=min(starts, default=None),
        service_to=max(ends, default=None),
        procedures=tuple(sorted({":".join((s.submitted_procedure.code, *s.submitted_procedure.modifiers))
                                 for s in claim.services})),
        claim_id=claim_id, detail=dict(detail or {}),
    )


def find_reversed(claim: ClaimRecord, payment: ClaimPayment, lines: Collection[str],
                  already: Collection[str] = ()) -> list[tuple[PriorPosting, ...]]:
    """Each way the reversal `payment` (CLP02 = 22) can undo active prior postings of `claim` (not in `already`):
    none, one (the match), or several (ambiguous). `lines` are our lines the reversal names.

    The reversal carries the original's payer claim number (CLP07) and the negated amount: one posting with that
    number and amount (the one that adjudicated these lines when two have it); else the postings with that number
    whose amounts add up to it (a claim the payer paid in parts and reverses whole), narrowed by the lines when
    several sets do; else the one posting of any number with that amount.
    """
    active = [p for p in claim.postings
              if not p.reversed and p.kind is not PostingKind.REVERSAL and p.posting_id not in already]
    amount = -payment.paid
    numbered = [p for p in active if p.payer_claim_number == payment.payer_claim_number]
    exact = [p for p in numbered if p.paid == amount]
    if exact:
        return [(next((p for p in exact if set(p.line_ids) == set(lines)), exact[0]),)]
    sums = _adding_up_to(numbered, amount) if len(numbered) <= _MAX_SUMMED else []
    if len(sums) > 1 and lines:
        sums = [s for s in sums if {line for p in s for line in p.line_ids} == set(lines)] or sums
    if sums:
        return sums
    same_amount = [p for p in active if p.paid == amount]
    return [(same_amount[0],)] if len(same_amount) == 1 else []


_MAX_SUMMED: Final = 12  # postings of one payer claim number searched for a sum (at most 4,096 sets)


def _adding_up_to(postings: Sequence[PriorPosting], amount: Decimal) -> list[tuple[PriorPosting, ...]]:
    """Every set of two or more postings whose amounts add up to `amount`."""
    return [chosen for size in range(2, len(postings) + 1) for chosen in combinations(postings, size)
            if sum((p.paid for p in chosen), ZERO) == amount]


def plan_remittance(remittance: Remittance, claims: Mapping[str, ClaimRecord], *, mcp_code: str,
                    table: CodeTable | None = None, duplicate: bool = False,
                    index: _ClaimIndex | None = None) -> RemittancePlan:
    """Plan the postings of one transaction set against our claims (keyed by claim id = CLP01).

    Nothing is posted for an unbalanced or duplicate payment (status REFUSED / DUPLICATE, no postings).
    """
    table = table or default_code_table()
    index = index or _ClaimIndex(claims, mcp_code)
    if not balance(remittance).balanced:
        return _unposted(remittance, RemittanceStatus.REFUSED)
    if duplicate:
        return _unposted(remittance, RemittanceStatus.DUPLICATE)
    on = remittance.production_date or remittance.payment_date
    postings: list[ClaimPosting] = []
    exceptions: list[RemittanceException] = []
    warnings: list[str] = []
    reversed_ids: set[str] = set()
    reversed_claims = {c.patient_control_number for c in remittance.claims if c.status == REVERSAL}
    # Reversals first: a correction later in the file (or earlier, some payers order them so) posts on top.
    order = sorted(remittance.claims, key=lambda c: c.status != REVERSAL)
    planned: dict[int, ClaimPosting] = {}
    # Lines paid by this set's postings so far: the next CLP of the set checks them as it checks prior postings.
    paid_here: dict[str, set[str]] = {}
    for payment in order:
        claim = claims.get(payment.patient_control_number)
        if claim is None:
            exceptions.append(_exception(ExceptionReason.UNKNOWN_CLAIM, payment))
            continue
        if claim.mcp_code != mcp_code:
            exceptions.append(_exception(ExceptionReason.PAYER_MISMATCH, payment,
                                         {"claim_mcp": claim.mcp_code, "paying_mcp": mcp_code}, claim.claim_id))
            continue
        imbalance = claim_imbalance(payment)
        if imbalance is not None:
            exceptions.append(_exception(ExceptionReason.CLAIM_UNBALANCED, payment, imbalance, claim.claim_id))
            continue
        line_ids = match_lines(payment.services, claim.lines)
        if payment.services:
            covered = tuple(line for line in line_ids if line is not None)
            paying = tuple(line for line, s in zip(line_ids, payment.services, strict=True)
                           if line is not None and s.paid > ZERO)
        else:  # adjudicated at claim level: the whole claim
            covered = tuple(line.line_id for line in claim.lines)
            paying = covered if payment.paid > ZERO else ()
        reverses: tuple[str, ...] = ()
        if payment.status == REVERSAL:
            matches = find_reversed(claim, payment, covered, reversed_ids)
            if len(matches) != 1:
                # None, or several sets of postings that could be the one reversed: a person decides.
                reason = ExceptionReason.REVERSAL_AMBIGUOUS if matches else ExceptionReason.REVERSAL_WITHOUT_ORIGINAL
                detail = {"candidates": " | ".join("+".join(p.posting_id for p in m) for m in matches)} \
                    if matches else None
                exceptions.append(_exception(reason, payment, detail, claim.claim_id))
                continue
            reverses = tuple(p.posting_id for p in matches[0])
            reversed_ids.update(reverses)
            kind = PostingKind.REVERSAL
        elif claim.claim_id in reversed_claims or any(p.reversed for p in claim.postings):
            kind = PostingKind.CORRECTION
        else:
            kind = PostingKind.PAYMENT
        if payment.status in (DENIED_STATUS, NOT_OUR_CLAIM):
            # CLP02 = 4 denies the whole claim, lines the payer did not repeat in an SVC loop included.
            covered = tuple(line.line_id for line in claim.lines) or covered
        if kind is not PostingKind.REVERSAL:
            already_paid = {line for p in claim.postings if not p.reversed and p.posting_id not in reversed_ids
                            for line in p.paid_line_ids}
            already_paid.update(paid_here.get(claim.claim_id, ()))
            if paying and set(paying) <= already_paid:
                exceptions.append(_exception(ExceptionReason.DUPLICATE_PAYMENT, payment,
                                             {"lines": ",".join(paying)}, claim.claim_id))
                continue
        lines: list[LinePosting] = []
        for line_id, service in zip(line_ids, payment.services, strict=True):
            outcome = line_outcome(payment.status, service, table, on)
            if line_id is None:
                warnings.append(f"unmatched_service_line: claim {claim.claim_id} SVC at segment {service.position}")
            denial = None
            if outcome is LineOutcome.DENIED:
                denial = classify_denial(
                    [(a.group, a.reason) for a in (*service.adjustments, *payment.adjustments)],
                    (*service.remarks, *payment.remarks), on, table)
            lines.append(LinePosting(service.position, line_id, service.procedure, service.charge, service.paid,
                                     outcome, service.adjustments, service.remarks, service.allowed,
                                     service.units_paid, denial))
        all_adjustments = [*payment.adjustments, *(a for s in payment.services for a in s.adjustments)]
        outcome_ = claim_outcome(payment.status, payment.paid, all_adjustments, table, on)
        denial = None
        if outcome_ in (ClaimOutcome.DENIED, ClaimOutcome.PARTIALLY_DENIED):
            denial = classify_denial([(a.group, a.reason) for a in all_adjustments
                                      if outcome_ is ClaimOutcome.DENIED
                                      or table.adjustment_kind(a.reason, on) is AdjustmentKind.DENIAL],
                                     (*payment.remarks, *(r for s in payment.services for r in s.remarks)),
                                     on, table)
        patient_share = _total([a for a in all_adjustments if a.group == "PR"])
        planned[payment.position] = ClaimPosting(
            position=payment.position, claim_id=claim.claim_id, cbo_organization_id=claim.cbo_organization_id,
            member_id=claim.member_id, kind=kind, outcome=outcome_, status_code=payment.status,
            charge=payment.charge, paid=payment.paid,
            adjustment_total=_total(all_adjustments),
            patient_responsibility=payment.patient_responsibility
            if payment.patient_responsibility is not None else patient_share,
            payer_claim_number=payment.payer_claim_number, adjustments=payment.adjustments,
            remarks=payment.remarks, lines=tuple(lines), denial=denial, reverses_posting_ids=reverses,
            received_on=payment.received_on, interest_reported=payment.amount("I"), line_ids=covered,
            paid_line_ids=paying,
        )
        if paying and kind is not PostingKind.REVERSAL:
            paid_here.setdefault(claim.claim_id, set()).update(paying)
    # Postings in file order, as an analyst reads the 835.
    postings = [planned[c.position] for c in remittance.claims if c.position in planned]
    adjustments: list[ProviderAdjustmentPosting] = []
    for plb in remittance.provider_adjustments:
        adjustment = _provider_adjustment(plb, index)
        adjustments.append(adjustment)
        if adjustment.kind in _ATTRIBUTABLE and adjustment.claim_id is None:
            exceptions.append(RemittanceException(
                reason=ExceptionReason.UNATTRIBUTED_ADJUSTMENT, position=plb.position, amount=plb.amount,
                patient_control_number=plb.reference, detail={"plb_reason": plb.reason,
                                                              "kind": adjustment.kind.value}))
    exceptions.sort(key=lambda e: e.position)
    return _unposted(remittance, RemittanceStatus.POST, postings=tuple(postings),
                     provider_adjustments=tuple(adjustments), exceptions=tuple(exceptions),
                     settlements=tuple(_settlements(postings, claims, reversed_ids)), warnings=tuple(warnings))


def _unposted(remittance: Remittance, status: RemittanceStatus, *, postings: tuple[ClaimPosting, ...] = (),
              provider_adjustments: tuple[ProviderAdjustmentPosting, ...] = (),
              exceptions: tuple[RemittanceException, ...] = (), settlements: tuple[ClaimSettlement, ...] = (),
              warnings: tuple[str, ...] = ()) -> RemittancePlan:
    return RemittancePlan(
        control_number=remittance.control_number, key=remittance_key(remittance), balance=balance(remittance),
        status=status, trace_number=remittance.trace_number, payer_id=remittance.originator_id,
        payment_amount=remittance.net_payment, payment_method=remittance.payment_method,
        payment_date=remittance.payment_date, postings=postings, provider_adjustments=provider_adjustments,
        exceptions=exceptions, settlements=settlements, warnings=warnings,
    )


def _provider_adjustment(plb: ProviderAdjustment, index: _ClaimIndex) -> ProviderAdjustmentPosting:
    kind = provider_adjustment_kind(plb.reason)
    claim = index.for_reference(plb.reference) if plb.reference else None
    return ProviderAdjustmentPosting(
        position=plb.position, provider_id=plb.provider_id, fiscal_period_date=plb.fiscal_period_date,
        reason=plb.reason, kind=kind, reference=plb.reference, amount=plb.amount,
        claim_id=claim.claim_id if claim else None,
        cbo_organization_id=claim.cbo_organization_id if claim else None,
    )


def _settlements(postings: Sequence[ClaimPosting], claims: Mapping[str, ClaimRecord],
                 reversed_ids: set[str]) -> list[ClaimSettlement]:
    touched: dict[str, list[ClaimPosting]] = {}
    for posting in postings:
        touched.setdefault(posting.claim_id, []).append(posting)
    out: list[ClaimSettlement] = []
    for claim_id, new in touched.items():
        claim = claims[claim_id]
        prior = [p for p in claim.postings
                 if not p.reversed and p.posting_id not in reversed_ids and p.kind is not PostingKind.REVERSAL]
        fresh = [p for p in new if p.kind is not PostingKind.REVERSAL]
        paid = sum((p.paid for p in prior), ZERO) + sum((p.paid for p in fresh), ZERO)
        adjudicated = {line for p in prior for line in p.line_ids}
        adjudicated.update(line for p in fresh for line in p.line_ids)
        pending = tuple(sorted(line.line_id for line in claim.lines if line.line_id not in adjudicated))
        outcomes = [p.outcome for p in prior] + [p.outcome for p in fresh]
        if not outcomes:
            state = SettlementState.REVERSED
        elif paid > ZERO:
            state = SettlementState.PARTIALLY_PAID if pending else SettlementState.PAID
        elif pending:
            state = SettlementState.PENDING
        elif all(o is ClaimOutcome.REPORTING_ONLY for o in outcomes):
            state = SettlementState.REPORTING_ONLY
        else:
            state = SettlementState.DENIED
        out.append(ClaimSettlement(claim_id, state, paid, pending))
    return out


def _carry(postings: Sequence[ClaimPosting], claims: dict[str, ClaimRecord], index: _ClaimIndex) -> None:
    """Make planned postings prior postings of their claims in `claims` (ids from `planned_posting_id`), mark
    the postings they reverse reversed, and index their payer claim numbers."""
    reversed_ids = {posting_id for p in postings for posting_id in p.reverses_posting_ids}
    made: dict[str, list[PriorPosting]] = {}
    for p in postings:
        made.setdefault(p.claim_id, []).append(PriorPosting(
            planned_posting_id(p.position), p.payer_claim_number, p.kind, p.outcome, p.paid, p.line_ids,
            p.paid_line_ids))
    for claim_id, new in made.items():
        claim = claims[claim_id]
        kept = tuple(replace(p, reversed=True) if p.posting_id in reversed_ids else p for p in claim.postings)
        claims[claim_id] = claim = claim._replace(postings=(*kept, *new))
        index.add(claim)


def plan_remittance_file(parsed: RemittanceFile, claims: Mapping[str, ClaimRecord], *, sha256: str,
                         mcp_code: str, seen_files: Collection[str] = (), seen_keys: Collection[str] = (),
                         table: CodeTable | None = None) -> FilePlan:
    """Plan a whole 835 file: duplicate file (SHA-256) or payment (key digest), balance, then each payment.

    `claims` holds our claims the file references (see `claim_references`), keyed by claim id; `seen_files`
    and `seen_keys` are SHA-256 digests of files and `RemittanceKey.digest`s already posted. An unbalanced
    transaction set refuses the whole file: nothing is posted, the figures are in `FilePlan.refusal`.
    """
    # Planning a month-end file builds a few hundred thousand small frozen objects and no reference cycles; the
    # cyclic collector would rescan them over and over for nothing (about a third of the time at 50,000 claims).
    with collector_paused():
        return _plan_file(parsed, claims, sha256=sha256, mcp_code=mcp_code, seen_files=seen_files,
                          seen_keys=seen_keys, table=table or default_code_table())


def _plan_file(parsed: RemittanceFile, claims: Mapping[str, ClaimRecord], *, sha256: str, mcp_code: str,
               seen_files: Collection[str], seen_keys: Collection[str], table: CodeTable) -> FilePlan:
    index = _ClaimIndex(claims, mcp_code)
    if sha256 in seen_files:
        duplicates = [_unposted(r, RemittanceStatus.DUPLICATE) for r in parsed.remittances]
        return FilePlan(sha256, FileStatus.DUPLICATE, tuple(duplicates))
    if any(not balance(r).balanced for r in parsed.remittances):
        # One unbalanced set refuses the whole file: every set is reported with its figures, none is posted.
        refused = [_unposted(r, RemittanceStatus.REFUSED) for r in parsed.remittances]
        return FilePlan(sha256, FileStatus.REFUSED_UNBALANCED, tuple(refused))
    seen = set(seen_keys)
    plans = []
    last = len(parsed.remittances) - 1
    working: dict[str, ClaimRecord] | None = None
    for number, remittance in enumerate(parsed.remittances):
        digest = remittance_key(remittance).digest
        plan = plan_remittance(remittance, claims, mcp_code=mcp_code, table=table, duplicate=digest in seen,
                               index=index)
        plans.append(plan)
        seen.add(digest)
        if plan.postings and number < last:
            # The next set sees this one's postings as prior postings: duplicates, reversals and split claims
            # within one file are then judged exactly as across files. The caller's mapping is left alone.
            if working is None:
                working = dict(claims)
                claims = index.by_id = working
            _carry(plan.postings, working, index)
    status = FileStatus.DUPLICATE if plans and all(p.status is RemittanceStatus.DUPLICATE for p in plans) \
        else FileStatus.ACCEPTED
    return FilePlan(sha256, status, tuple(plans))
