"""Timely payment: 30/90-day standard, aging, late-payment interest (working days, HMO, $15 floor), silence."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from claims.domain.remittance import ProviderAdjustmentKind, ProviderAdjustmentPosting
from claims.domain.timely_payment import (
    HMO,
    NON_HMO,
    ClaimTiming,
    InterestRule,
    compare_interest,
    interest_paid_by_claim,
    late_payment_interest,
    payment_deadline,
    silent_payers,
    timely_payment_report,
)

D = Decimal
RECEIVED = date(2026, 9, 1)  # Tuesday; Labor Day (Sept 7) falls inside the 30 working days


@pytest.mark.parametrize(("received", "rule", "deadline"), [
    (RECEIVED, NON_HMO, date(2026, 10, 14)),
    (RECEIVED, HMO, date(2026, 11, 4)),
    # Thanksgiving, the day after, Christmas and New Year's Day are not working days.
    (date(2026, 11, 25), NON_HMO, date(2027, 1, 12)),
])
def test_deadline_counts_california_working_days(received: date, rule: InterestRule, deadline: date) -> None:
    assert payment_deadline(received, rule) == deadline


@pytest.mark.parametrize(("principal", "paid_on", "rule", "days", "owed"), [
    ("350", date(2026, 10, 14), NON_HMO, 0, "0"),  # paid on the last working day: no interest
    ("350", date(2026, 10, 15), NON_HMO, 1, "15.00"),  # one day late: the $15 floor
    ("350", date(2026, 10, 15), HMO, 0, "0"),  # an HMO has 45 working days
    ("350", date(2026, 11, 5), HMO, 1, "15.00"),
    ("100000", date(2026, 10, 24), NON_HMO, 10, "410.96"),  # 15% per annum beats the floor
    ("100", date(2027, 11, 18), NON_HMO, 400, "30.00"),  # two 12-month periods (or portion): $30
    ("350", date(2026, 10, 24), InterestRule(minimum_prorated=True), 10, "1.44"),  # prorated floor 0.41
    ("100.10", date(2027, 10, 14), NON_HMO, 365, "15.02"),  # 15.015 rounds half-even up to the even cent
    ("100.30", date(2027, 10, 14), NON_HMO, 365, "15.04"),  # 15.045 rounds half-even down
])
def test_late_payment_interest(principal: str, paid_on: date, rule: InterestRule, days: int, owed: str) -> None:
    due = late_payment_interest("CLM-1", D(principal), RECEIVED, paid_on, rule)
    assert (due.days_late, due.owed) == (days, D(owed))


def test_interest_inputs_are_checked() -> None:
    with pytest.raises(TypeError):
        late_payment_interest("CLM-1", 350.0, RECEIVED, date(2026, 12, 1))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="before"):
        late_payment_interest("CLM-1", D(1), RECEIVED, date(2026, 8, 1))


def test_interest_owed_is_compared_with_plb_l6_paid() -> None:
    plb = [ProviderAdjustmentPosting(10, "1234567893", date(2026, 12, 31), "L6", ProviderAdjustmentKind.INTEREST,
                                     "CLM-1007", D("-4.38"), "CLM-1007", "cbo_a"),
           ProviderAdjustmentPosting(10, "1234567893", date(2026, 12, 31), "WO", ProviderAdjustmentKind.RECOUPMENT,
                                     "PCN1002", D(100), "CLM-1002", "cbo_b")]
    paid = interest_paid_by_claim(plb)
    assert paid == {"CLM-1007": D("4.38")}
    dues = [late_payment_interest("CLM-1007", D(350), RECEIVED, date(2026, 10, 20)),
            late_payment_interest("CLM-1008", D(350), RECEIVED, date(2026, 10, 1))]
    gaps = compare_interest(dues, paid)
    assert [(g.claim_id, g.owed, g.paid, g.shortfall) for g in gaps] == [("CLM-1007", D("15.00"), D("4.38"),
                                                                          D("10.62"))]


def timing(claim_id: str, received: date, resolved: date | None, clean: bool = True,
           mcp: str = "testplan") -> ClaimTiming:
    return ClaimTiming(claim_id, mcp, received, D(100), clean, resolved)


def test_standard_shares_and_aging() -> None:
    claims = [timing(f"C{i}", date(2026, 10, 1), date(2026, 10, 20)) for i in range(9)]
    claims += [
        timing("C9", date(2026, 10, 1), date(2026, 11, 15)),  # 45 days: late for 30, on time for 90
        timing("C10", date(2026, 12, 20), None),  # 11 days old, unpaid: not yet late for either
        timing("C11", date(2026, 11, 1), None),  # 60 days old, unpaid: late for 30, open for 90
        timing("C12", date(2026, 8, 1), None, clean=False),  # not clean: aging only
        timing("X1", date(2026, 8, 1), None, mcp="othermcp"),
    ]
    report = timely_payment_report(claims, mcp_code="testplan", as_of=date(2026, 12, 31))
    thirty, ninety = report.standards
    assert (thirty.eligible, thirty.within, thirty.share, thirty.meets) == (11, 9, D("0.8182"), False)
    assert (ninety.eligible, ninety.within, ninety.share, ninety.meets) == (10, 10, D("1.0000"), True)
    assert [(b.label, b.claims, b.amount) for b in report.aging] == [
        ("0-30", 1, D(100)), ("31-60", 1, D(100)), ("61-90", 0, D(0)), ("91-120", 0, D(0)), ("121+", 1, D(100))]
    assert report.as_dict()["standards"][0]["meets"] is False  # type: ignore[index]


def test_exactly_ninety_percent_meets_the_standard_and_nothing_eligible_is_unknown() -> None:
    claims = [timing(f"C{i}", date(2026, 10, 1), date(2026, 10, 31 if i else 1)) for i in range(10)]
    claims[0] = timing("C0", date(2026, 10, 1), date(2026, 11, 1))  # 31 days
    report = timely_payment_report(claims, mcp_code="testplan", as_of=date(2026, 12, 31))
    assert report.standards[0].share == D("0.9000") and report.standards[0].meets is True
    empty = timely_payment_report([], mcp_code="testplan", as_of=date(2026, 12, 31))
    assert empty.standards[0].share is None and empty.standards[0].meets is None


def test_mcps_whose_835s_stop_arriving_are_flagged() -> None:
    flagged = silent_payers({"a": date(2026, 12, 1), "b": date(2026, 10, 1), "c": None, "d": date(2026, 11, 20)},
                            as_of=date(2026, 12, 31), max_days=35)
    assert [(s.mcp_code, s.days_silent) for s in flagged] == [("c", None), ("b", 91), ("d", 41)]
