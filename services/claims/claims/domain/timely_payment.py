"""MCP timely payment: the 30/90-day clean-claim standard, aging of open claims, and late-payment interest.

Standard [rule]: 90% of clean claims paid within 30 days of receipt and 99% within 90 days. Interest [rule,
formula unconfirmed in its details]: California Health & Safety Code 1371 / 1371.35 and 28 CCR 1300.71 — a
complete claim not paid within 30 working days of receipt (45 for an HMO) carries interest from the first
calendar day after that period: the greater of $15 per 12-month period or 15% per annum. The exact formula and
every parameter are in `InterestRule` and docs/decisions/0073. Money is Decimal; rounding to cents is
half-even once, at the end.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Final

from claims.domain.remittance import ProviderAdjustmentKind, ProviderAdjustmentPosting
from shared.reference.calendar import DEFAULT_CALENDAR, BusinessCalendar

ZERO: Final = Decimal(0)
CENT: Final = Decimal("0.01")
SHARE_PLACES: Final = Decimal("0.0001")


@dataclass(frozen=True, slots=True)
class PaymentStandard:
    """Share `target` of clean claims must be paid within `days` calendar days of receipt."""

    days: int
    target: Decimal


STANDARDS: Final = (PaymentStandard(30, Decimal("0.90")), PaymentStandard(90, Decimal("0.99")))
# Aging of claims not yet paid or denied: (label, first day, last day or None).
AGING_BUCKETS: Final = (("0-30", 0, 30), ("31-60", 31, 60), ("61-90", 61, 90), ("91-120", 91, 120),
                        ("121+", 121, None))


@dataclass(frozen=True, slots=True)
class ClaimTiming:
    """One claim's clock: receipt by the MCP, and the first remittance date that paid or denied it."""

    claim_id: str
    mcp_code: str
    received_on: date  # the MCP's receipt (DTM*050, else 277CA acceptance, else 999 date)
    amount: Decimal  # billed amount, for aging
    clean: bool  # accepted as complete (277CA A1/A2, not pended for information)
    resolved_on: date | None = None  # BPR16 of the first 835 that paid or denied the claim

    def __post_init__(self) -> None:
        if not isinstance(self.amount, Decimal):
            raise TypeError("amount must be a Decimal")
        if self.resolved_on is not None and self.resolved_on < self.received_on:
            raise ValueError("resolved_on is before received_on")


@dataclass(frozen=True, slots=True)
class StandardResult:
    """How an MCP did against one standard."""

    standard: PaymentStandard
    eligible: int  # clean claims resolved, or whose window has closed by the report date
    within: int  # of those, resolved within the window
    share: Decimal | None  # within / eligible, 4 places; None when nothing is eligible yet

    @property
    def meets(self) -> bool | None:
        """True when the share reaches the target; None when nothing is eligible."""
        return None if self.share is None else self.share >= self.standard.target


@dataclass(frozen=True, slots=True)
class AgingBucket:
    """Open claims whose age (days since receipt) falls in the bucket."""

    label: str
    claims: int
    amount: Decimal


@dataclass(frozen=True, slots=True)
class TimelyPaymentReport:
    """One MCP's timely-payment figures on a date."""

    mcp_code: str
    as_of: date
    clean_claims: int
    standards: tuple[StandardResult, ...]
    aging: tuple[AgingBucket, ...]

    def as_dict(self) -> dict[str, object]:
        """JSON-ready data (amounts and shares as strings)."""
        return {
            "mcp_code": self.mcp_code, "as_of": self.as_of.isoformat(), "clean_claims": self.clean_claims,
            "standards": [{"days": r.standard.days, "target": str(r.standard.target), "eligible": r.eligible,
                           "within": r.within, "share": None if r.share is None else str(r.share),
                           "meets": r.meets} for r in self.standards],
            "aging": [{"bucket": b.label, "claims": b.claims, "amount": str(b.amount)} for b in self.aging],
        }


def timely_payment_report(timings: Iterable[ClaimTiming], *, mcp_code: str, as_of: date,
                          standards: Sequence[PaymentStandard] = STANDARDS) -> TimelyPaymentReport:
    """The 30/90-day shares and aging for one MCP's claims as of a date (claims of other MCPs are ignored).

    A clean claim counts toward an n-day standard once it is resolved or n days have passed since receipt, so
    a claim received yesterday is not yet a failure. Resolved means paid or denied (first adjudication).
    """
    mine = [t for t in timings if t.mcp_code == mcp_code and t.received_on <= as_of]
    clean = [t for t in mine if t.clean]
    results = []
    for standard in standards:
        eligible = within = 0
        for timing in clean:
            resolved = timing.resolved_on if timing.resolved_on is not None and timing.resolved_on <= as_of \
                else None
            if resolved is None and (as_of - timing.received_on).days <= standard.days:
                continue  # still inside its window: neither on time nor late yet
            eligible += 1
            if resolved is not None and (resolved - timing.received_on).days <= standard.days:
                within += 1
        share = (Decimal(within) / Decimal(eligible)).quantize(SHARE_PLACES, ROUND_HALF_EVEN) if eligible else None
        results.append(StandardResult(standard, eligible, within, share))
    buckets: dict[str, tuple[int, Decimal]] = {label: (0, ZERO) for label, _, _ in AGING_BUCKETS}
    for timing in mine:
        if timing.resolved_on is not None and timing.resolved_on <= as_of:
            continue
        age = (as_of - timing.received_on).days
        for label, low, high in AGING_BUCKETS:
            if age >= low and (high is None or age <= high):
                count, amount = buckets[label]
                buckets[label] = (count + 1, amount + timing.amount)
                break
    return TimelyPaymentReport(mcp_code, as_of, len(clean), tuple(results),
                               tuple(AgingBucket(label, *buckets[label]) for label, _, _ in AGING_BUCKETS))


@dataclass(frozen=True, slots=True)
class InterestRule:
    """Late-payment interest parameters (H&S 1371 / 1371.35, 28 CCR 1300.71); see docs/decisions/0073."""

    working_days: int = 30  # 45 for an HMO
    annual_rate: Decimal = Decimal("0.15")
    minimum_per_year: Decimal = Decimal("15")
    # 28 CCR 1300.71: "$15 for each 12-month period or portion thereof on a non-prorated basis" [unconfirmed
    # for every claim type]: a payment one day late owes at least $15. True prorates the $15 by days instead.
    minimum_prorated: bool = False
    day_basis: int = 365  # actual days late over a 365-day year, leap years included


NON_HMO: Final = InterestRule(working_days=30)
HMO: Final = InterestRule(working_days=45)


@dataclass(frozen=True, slots=True)
class InterestDue:
    """Interest a late payment should have carried, with every figure that produced it."""

    claim_id: str
    principal: Decimal
    received_on: date
    paid_on: date
    deadline: date  # last working day to pay without interest
    days_late: int  # calendar days from the day after the deadline through the payment date
    rate_interest: Decimal  # principal × annual rate × days / basis (unrounded)
    minimum_interest: Decimal  # the $15 floor for the period (unrounded)
    owed: Decimal  # the greater of the two, half-even to cents; 0 when on time


def payment_deadline(received_on: date, rule: InterestRule = NON_HMO,
                     calendar: BusinessCalendar = DEFAULT_CALENDAR) -> date:
    """The last day to pay: the n-th California working day after receipt (receipt day never counts)."""
    return calendar.business_day_after(received_on, rule.working_days)


def late_payment_interest(claim_id: str, principal: Decimal, received_on: date, paid_on: date,
                          rule: InterestRule = NON_HMO,
                          calendar: BusinessCalendar = DEFAULT_CALENDAR) -> InterestDue:
    """Interest owed on a payment of `principal` made on `paid_on` for a claim received on `received_on`.

    owed = max(principal × rate × days / 365, $15 × ⌈days / 365⌉) for days late > 0 (the $15 prorated as
    $15 × days / 365 when `rule.minimum_prorated`), rounded half-even to cents. Raises TypeError for a
    non-Decimal principal and ValueError for a negative principal or a payment before receipt.
    """
    if not isinstance(principal, Decimal):
        raise TypeError("principal must be a Decimal")
    if principal < ZERO:
        raise ValueError("principal must not be negative")
    if paid_on < received_on:
        raise ValueError("paid_on is before received_on")
    deadline = payment_deadline(received_on, rule, calendar)
    days = max((paid_on - deadline).days, 0)
    if days == 0:
        return InterestDue(claim_id, principal, received_on, paid_on, deadline, 0, ZERO, ZERO, ZERO)
    rate_interest = principal * rule.annual_rate * days / rule.day_basis
    if rule.minimum_prorated:
        minimum = rule.minimum_per_year * days / rule.day_basis
    else:
        periods = -(-days // rule.day_basis)  # each 12-month period or portion thereof
        minimum = rule.minimum_per_year * periods
    owed = max(rate_interest, minimum).quantize(CENT, ROUND_HALF_EVEN)
    return InterestDue(claim_id, principal, received_on, paid_on, deadline, days, rate_interest, minimum, owed)


@dataclass(frozen=True, slots=True)
class InterestGap:
    """Interest owed versus paid for one claim."""

    claim_id: str
    owed: Decimal
    paid: Decimal

    @property
    def shortfall(self) -> Decimal:
        """What the MCP still owes (negative when it paid more)."""
        return self.owed - self.paid


def interest_paid_by_claim(adjustments: Iterable[ProviderAdjustmentPosting]) -> dict[str, Decimal]:
    """Interest the MCP paid per claim: PLB L6 rows attributed to a claim (a PLB L6 amount is negative)."""
    paid: dict[str, Decimal] = {}
    for adjustment in adjustments:
        if adjustment.kind is ProviderAdjustmentKind.INTEREST and adjustment.claim_id is not None:
            paid[adjustment.claim_id] = paid.get(adjustment.claim_id, ZERO) - adjustment.amount
    return paid


def compare_interest(dues: Iterable[InterestDue], paid: Mapping[str, Decimal]) -> tuple[InterestGap, ...]:
    """Owed vs paid per claim, for every claim that owes interest or received some; ordered by claim id."""
    owed: dict[str, Decimal] = {}
    for due in dues:
        owed[due.claim_id] = owed.get(due.claim_id, ZERO) + due.owed
    claim_ids = sorted({c for c, amount in owed.items() if amount != ZERO} | set(paid))
    return tuple(InterestGap(c, owed.get(c, ZERO), paid.get(c, ZERO)) for c in claim_ids)


@dataclass(frozen=True, slots=True)
class SilentPayer:
    """An MCP whose 835s have stopped arriving."""

    mcp_code: str
    last_received: date | None
    days_silent: int | None


def silent_payers(last_received: Mapping[str, date | None], *, as_of: date,
                  max_days: int = 35) -> tuple[SilentPayer, ...]:
    """MCPs with no 835 for more than `max_days` days (or never), most silent first."""
    silent = []
    for mcp_code, last in last_received.items():
        days = None if last is None else (as_of - last).days
        if days is None or days > max_days:
            silent.append(SilentPayer(mcp_code, last, days))
    return tuple(sorted(silent, key=lambda s: (s.days_silent is not None, -(s.days_silent or 0), s.mcp_code)))
