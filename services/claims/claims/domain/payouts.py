"""CBO payouts: per CBO and period, collected − the hub's fee − recoupments = payable, as a statement.

The fee is a percentage of each collection set by the CBO's contract, effective-dated: the term in force on
the payment date (BPR16) applies. A reversal is a negative collection and takes back the fee charged on the
payment it undoes (at that payment's rate). Recoupments reduce the payable without a fee credit. A
negative payable is not paid: it is carried forward to the next period. Money is Decimal; each line's fee is
rounded half-even to cents and the totals are the sums of the lines, so the statement always adds up.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Final

ZERO: Final = Decimal(0)
CENT: Final = Decimal("0.01")
HUNDRED: Final = Decimal(100)


class NoFeeTerm(LookupError):
    """No fee term of the CBO's contract is in force on a payment date (names CBO and date, no PHI)."""


def _require_decimal(value: object, name: str) -> None:
    if not isinstance(value, Decimal):
        raise TypeError(f"{name} must be a Decimal, never a float")


@dataclass(frozen=True, slots=True)
class FeeTerm:
    """The hub's fee for one CBO: `percent` of collections, from `effective_from` to `effective_to` inclusive."""

    cbo_organization_id: str
    percent: Decimal
    effective_from: date
    effective_to: date | None = None

    def __post_init__(self) -> None:
        _require_decimal(self.percent, "percent")
        if not ZERO <= self.percent <= HUNDRED:
            raise ValueError("percent must be between 0 and 100")
        if self.effective_to is not None and self.effective_to < self.effective_from:
            raise ValueError("effective_to is before effective_from")

    def in_force_on(self, day: date) -> bool:
        """True when `day` falls inside the term."""
        return self.effective_from <= day and (self.effective_to is None or day <= self.effective_to)


class FeeSchedule:
    """The fee terms of every CBO contract; terms of one CBO must not overlap."""

    def __init__(self, terms: Iterable[FeeTerm]) -> None:
        self._terms: dict[str, list[FeeTerm]] = {}
        for term in terms:
            for other in self._terms.get(term.cbo_organization_id, []):
                if (term.effective_to is None or other.effective_from <= term.effective_to) and \
                        (other.effective_to is None or term.effective_from <= other.effective_to):
                    raise ValueError(f"fee terms of {term.cbo_organization_id} overlap")
            self._terms.setdefault(term.cbo_organization_id, []).append(term)

    def percent_on(self, cbo_organization_id: str, day: date) -> Decimal:
        """The fee percent in force for the CBO on `day`. Raises NoFeeTerm."""
        for term in self._terms.get(cbo_organization_id, []):
            if term.in_force_on(day):
                return term.percent
        raise NoFeeTerm(f"no fee term for {cbo_organization_id} on {day.isoformat()}")


@dataclass(frozen=True, slots=True)
class Collection:
    """Money the MCP paid on one of the CBO's claims (negative for a reversal)."""

    claim_id: str
    reference: str  # the 835's trace number (TRN02)
    paid_on: date  # BPR16
    amount: Decimal
    kind: str = "payment"  # payment, correction, reversal
    # The date whose fee term applies: a reversal takes back the fee at the rate of the payment it undoes, so
    # part two passes the original payment's date here; None means `paid_on`.
    fee_basis_date: date | None = None

    def __post_init__(self) -> None:
        _require_decimal(self.amount, "amount")


@dataclass(frozen=True, slots=True)
class Recoupment:
    """Money the MCP took back from the CBO's claims (PLB WO and similar), positive."""

    claim_id: str | None
    reference: str  # PLB03-2
    recouped_on: date
    amount: Decimal

    def __post_init__(self) -> None:
        _require_decimal(self.amount, "amount")
        if self.amount < ZERO:
            raise ValueError("a recoupment amount is positive (money taken back)")


@dataclass(frozen=True, slots=True)
class StatementLine:
    """One line of a payout statement."""

    day: date
    kind: str  # payment, correction, reversal, recoupment
    claim_id: str
    reference: str
    collected: Decimal
    fee_percent: Decimal | None
    hub_fee: Decimal
    recoupment: Decimal

    @property
    def net(self) -> Decimal:
        """What this line adds to the CBO's payable."""
        return self.collected - self.hub_fee - self.recoupment


CSV_COLUMNS: Final = ("date", "kind", "claim_id", "reference", "collected", "fee_percent", "hub_fee",
                      "recoupment", "net")


@dataclass(frozen=True, slots=True)
class PayoutStatement:
    """A CBO's payout for one period."""

    cbo_organization_id: str
    period_start: date
    period_end: date
    lines: tuple[StatementLine, ...]
    balance_forward: Decimal = ZERO  # a negative payable carried from the previous period

    @property
    def collected(self) -> Decimal:
        """Σ collections (reversals negative)."""
        return sum((line.collected for line in self.lines), ZERO)

    @property
    def hub_fee(self) -> Decimal:
        """Σ per-line fees."""
        return sum((line.hub_fee for line in self.lines), ZERO)

    @property
    def recoupments(self) -> Decimal:
        """Σ recoupments."""
        return sum((line.recoupment for line in self.lines), ZERO)

    @property
    def payable(self) -> Decimal:
        """balance forward + collected − hub fee − recoupments (may be negative)."""
        return self.balance_forward + self.collected - self.hub_fee - self.recoupments

    @property
    def payout_amount(self) -> Decimal:
        """What is paid to the CBO now: the payable, never below zero."""
        return max(self.payable, ZERO)

    @property
    def carry_forward(self) -> Decimal:
        """A negative payable, carried to the next period's `balance_forward` (else 0)."""
        return min(self.payable, ZERO)

    def as_dict(self) -> dict[str, object]:
        """JSON-ready statement (amounts as strings, dates ISO)."""
        return {
            "cbo_organization_id": self.cbo_organization_id, "period_start": self.period_start.isoformat(),
            "period_end": self.period_end.isoformat(), "balance_forward": str(self.balance_forward),
            "collected": str(self.collected), "hub_fee": str(self.hub_fee), "recoupments": str(self.recoupments),
            "payable": str(self.payable), "payout_amount": str(self.payout_amount),
            "carry_forward": str(self.carry_forward),
            "lines": [dict(zip(CSV_COLUMNS, _row(line), strict=True)) for line in self.lines],
        }

    def to_csv(self) -> str:
        """The statement as CSV: one row per line, then balance forward and totals rows."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        writer.writerows(_row(line) for line in self.lines)
        end = self.period_end.isoformat()
        writer.writerow([end, "balance_forward", "", "", "", "", "", "", str(self.balance_forward)])
        writer.writerow([end, "total", "", "", str(self.collected), "", str(self.hub_fee), str(self.recoupments),
                         str(self.payable)])
        return out.getvalue()


def _row(line: StatementLine) -> list[str]:
    return [line.day.isoformat(), line.kind, line.claim_id, line.reference, str(line.collected),
            "" if line.fee_percent is None else str(line.fee_percent), str(line.hub_fee), str(line.recoupment),
            str(line.net)]


def hub_fee(amount: Decimal, percent: Decimal) -> Decimal:
    """The fee on one collection: amount × percent / 100, half-even to cents (negative for a reversal)."""
    _require_decimal(amount, "amount")
    return (amount * percent / HUNDRED).quantize(CENT, ROUND_HALF_EVEN)


def build_statement(cbo_organization_id: str, period_start: date, period_end: date,
                    collections: Iterable[Collection], recoupments: Iterable[Recoupment], fees: FeeSchedule,
                    *, balance_forward: Decimal = ZERO) -> PayoutStatement:
    """The CBO's statement for [period_start, period_end] (inclusive).

    Every collection and recoupment must fall in the period (ValueError otherwise: the caller selects them);
    $0 collections (reporting-only lines) are left out. Raises NoFeeTerm when no fee term covers a payment date.
    """
    _require_decimal(balance_forward, "balance_forward")
    if period_end < period_start:
        raise ValueError("period_end is before period_start")
    if balance_forward > ZERO:
        raise ValueError("balance_forward is a carried negative payable (zero or less)")
    lines: list[StatementLine] = []
    for item in collections:
        if not period_start <= item.paid_on <= period_end:
            raise ValueError(f"collection paid on {item.paid_on.isoformat()} is outside the period")
        if item.amount == ZERO:
            continue
        percent = fees.percent_on(cbo_organization_id, item.fee_basis_date or item.paid_on)
        lines.append(StatementLine(item.paid_on, item.kind, item.claim_id, item.reference, item.amount, percent,
                                   hub_fee(item.amount, percent), ZERO))
    for recoupment in recoupments:
        if not period_start <= recoupment.recouped_on <= period_end:
            raise ValueError(f"recoupment on {recoupment.recouped_on.isoformat()} is outside the period")
        lines.append(StatementLine(recoupment.recouped_on, "recoupment", recoupment.claim_id or "",
                                   recoupment.reference, ZERO, None, ZERO, recoupment.amount))
    lines.sort(key=lambda line: (line.day, line.kind, line.claim_id, line.reference))
    return PayoutStatement(cbo_organization_id, period_start, period_end, tuple(lines), balance_forward)
