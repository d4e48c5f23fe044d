"""CBO payouts: effective-dated hub fee, reversals, recoupments, carry-forward, JSON and CSV statements."""

from __future__ import annotations

import csv
import io
from datetime import date
from decimal import Decimal

import pytest
from claims.domain.payouts import (
    Collection,
    FeeSchedule,
    FeeTerm,
    NoFeeTerm,
    Recoupment,
    build_statement,
    hub_fee,
)

D = Decimal
FEES = FeeSchedule([
    FeeTerm("cbo_a", D("10"), date(2026, 1, 1), date(2026, 10, 31)),
    FeeTerm("cbo_a", D("12.5"), date(2026, 11, 1)),
])
NOVEMBER = (date(2026, 11, 1), date(2026, 11, 30))


@pytest.mark.parametrize(("amount", "percent", "fee"), [
    ("350", "10", "35.00"),
    ("300", "12.5", "37.50"),
    ("0.25", "10", "0.02"),  # 0.025: half-even rounds to the even cent
    ("0.35", "10", "0.04"),  # 0.035
    ("-350", "10", "-35.00"),  # a reversal takes the fee back
    ("123.45", "0", "0.00"),
])
def test_hub_fee_rounds_half_even_to_cents(amount: str, percent: str, fee: str) -> None:
    assert hub_fee(D(amount), D(percent)) == D(fee)


def test_fee_term_in_force_on_the_payment_date_applies() -> None:
    assert FEES.percent_on("cbo_a", date(2026, 10, 31)) == D("10")
    assert FEES.percent_on("cbo_a", date(2026, 11, 1)) == D("12.5")
    with pytest.raises(NoFeeTerm, match="cbo_b"):
        FEES.percent_on("cbo_b", date(2026, 11, 1))
    with pytest.raises(NoFeeTerm):
        FEES.percent_on("cbo_a", date(2025, 12, 31))


def test_overlapping_fee_terms_are_refused() -> None:
    with pytest.raises(ValueError, match="overlap"):
        FeeSchedule([FeeTerm("cbo_a", D("10"), date(2026, 1, 1)), FeeTerm("cbo_a", D("12"), date(2026, 6, 1))])
    with pytest.raises(ValueError, match="between 0 and 100"):
        FeeTerm("cbo_a", D("101"), date(2026, 1, 1))


def test_statement_with_reversal_correction_and_recoupment_carries_a_negative_balance() -> None:
    statement = build_statement("cbo_a", *NOVEMBER, [
        Collection("CLM-1001", "EFT0005", date(2026, 11, 1), D(-350), "reversal", fee_basis_date=date(2026, 10, 15)),
        Collection("CLM-1001", "EFT0005", date(2026, 11, 1), D(300), "correction"),
        Collection("CLM-1006", "NOPAY0004", date(2026, 11, 2), D(0)),  # reporting-only: left out
    ], [Recoupment("CLM-1002", "PCN1002", date(2026, 11, 2), D(100))], FEES)
    assert [(line.kind, line.hub_fee) for line in statement.lines] == [
        ("correction", D("37.50")), ("reversal", D("-35.00")), ("recoupment", D(0))]
    assert (statement.collected, statement.hub_fee, statement.recoupments) == (D(-50), D("2.50"), D(100))
    assert statement.payable == D("-152.50")
    assert (statement.payout_amount, statement.carry_forward) == (D(0), D("-152.50"))


def test_carried_balance_is_taken_from_the_next_period() -> None:
    statement = build_statement("cbo_a", date(2026, 12, 1), date(2026, 12, 31),
                                [Collection("CLM-1020", "EFT0100", date(2026, 12, 3), D(1000))], [], FEES,
                                balance_forward=D("-152.50"))
    assert statement.hub_fee == D("125.00")
    assert statement.payable == statement.payout_amount == D("722.50")


def test_statement_json_and_csv_add_up() -> None:
    statement = build_statement("cbo_a", *NOVEMBER, [
        Collection("CLM-1001", "EFT0005", date(2026, 11, 1), D("300.10")),
        Collection("CLM-1005", "EFT0005", date(2026, 11, 1), D("200")),
    ], [], FEES)
    data = statement.as_dict()
    assert data["collected"] == "500.10" and data["hub_fee"] == "62.51" and data["payable"] == "437.59"
    assert [line["hub_fee"] for line in data["lines"]] == ["37.51", "25.00"]  # type: ignore[index]
    rows = list(csv.DictReader(io.StringIO(statement.to_csv())))
    assert [r["kind"] for r in rows] == ["payment", "payment", "balance_forward", "total"]
    assert sum(D(r["net"]) for r in rows[:2]) == D(rows[-1]["net"]) == D("437.59")


def test_money_is_never_float_and_items_stay_in_the_period() -> None:
    with pytest.raises(TypeError, match="Decimal"):
        Collection("CLM-1", "EFT", date(2026, 11, 1), 350.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="positive"):
        Recoupment("CLM-1", "WO", date(2026, 11, 1), D(-1))
    with pytest.raises(ValueError, match="outside the period"):
        build_statement("cbo_a", *NOVEMBER, [Collection("CLM-1", "EFT", date(2026, 12, 1), D(1))], [], FEES)
    with pytest.raises(ValueError, match="balance_forward"):
        build_statement("cbo_a", *NOVEMBER, [], [], FEES, balance_forward=D(5))
