"""Fee schedule pricing: PMPM, per unit, per encounter, outreach caps, one-time engagement, specificity."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from claims.domain.configuration import FeeSchedule, OutreachCap, Rate, RateBasis
from claims.domain.pricing import NoRate, PricedService, PricingRequest, price

SCHEDULE = FeeSchedule(effective_from=date(2025, 1, 1), rates=(
    Rate(program="ecm", service_code="ecm_clinical", basis=RateBasis.PMPM, amount=Decimal("400.00")),
    Rate(program="ecm", service_code="ecm_outreach", basis=RateBasis.OUTREACH, amount=Decimal("75.00")),
    Rate(program="ecm", basis=RateBasis.ONE_TIME_ENGAGEMENT, amount=Decimal("150.00")),
    Rate(program="cs", basis=RateBasis.PER_UNIT, amount=Decimal("35.00")),
    Rate(program="cs", service_code="housing_deposits", basis=RateBasis.PER_ENCOUNTER, amount=Decimal("1500.00")),
    Rate(program="chw", basis=RateBasis.PER_UNIT, amount=Decimal("27.43")),
    Rate(program="chw", hcpcs="98961", basis=RateBasis.PER_UNIT, amount=Decimal("13.00")),
))


def request(**overrides: Any) -> PricingRequest:
    base: dict[str, Any] = {"mcp_code": "healthnet", "program": "ecm", "service_code": "ecm_clinical",
                            "hcpcs": "G9008", "modifiers": ("U1",), "units": Decimal("1"),
                            "service_from": date(2025, 3, 3), "outreach_attempt": False, "outreach_successful": False}
    base.update(overrides)
    return PricingRequest(**base)


def done(basis: str, day: date = date(2025, 3, 1), program: str = "ecm", mcp: str = "healthnet",
         outreach: bool = False) -> PricedService:
    return PricedService(mcp, program, "x", day, outreach, (basis,), Decimal("1"))


OUTREACH = {"service_code": "ecm_outreach", "hcpcs": "G9012", "modifiers": ("U8",), "outreach_attempt": True}
CAP = OutreachCap(attempts=3, period="month")


@pytest.mark.parametrize(("label", "req", "history", "cap", "amount"), [
    ("PMPM: first encounter of the month", request(), [], CAP, "400.00"),
    ("PMPM: month already billed", request(), [done("pmpm")], CAP, "0.00"),
    ("PMPM: next month bills again", request(service_from=date(2025, 4, 1)), [done("pmpm")], CAP, "400.00"),
    ("PMPM: another MCP's month does not count", request(), [done("pmpm", mcp="lacare")], CAP, "400.00"),
    ("per unit x 2.5", request(program="cs", service_code="respite_services", units=Decimal("2.5")), [], CAP, "87.50"),
    ("per encounter ignores units", request(program="cs", service_code="housing_deposits", units=Decimal("3")), [],
     CAP, "1500.00"),
    ("code-specific rate beats the program rate", request(program="chw", service_code="chw", hcpcs="98961",
                                                          modifiers=(), units=Decimal("2")), [], CAP, "26.00"),
    ("outreach under the cap", request(**OUTREACH), [done("outreach", outreach=True)] * 2, CAP, "75.00"),
    ("outreach at the monthly cap is $0", request(**OUTREACH), [done("outreach", outreach=True)] * 3, CAP, "0.00"),
    ("monthly cap resets next month", request(**OUTREACH, service_from=date(2025, 4, 2)),
     [done("outreach", outreach=True)] * 3, CAP, "75.00"),
    ("lifetime cap does not reset", request(**OUTREACH, service_from=date(2025, 4, 2)),
     [done("outreach", outreach=True)] * 3, OutreachCap(attempts=3, period="lifetime"), "0.00"),
    ("successful outreach adds the one-time engagement", request(**OUTREACH, outreach_successful=True), [], CAP,
     "225.00"),
    ("engagement is paid once per member", request(**OUTREACH, outreach_successful=True),
     [done("one_time_engagement")], CAP, "75.00"),
])
def test_price(label: str, req: PricingRequest, history: list[PricedService], cap: OutreachCap, amount: str) -> None:
    assert price(req, SCHEDULE, history, cap).amount == Decimal(amount), label


def test_components_explain_the_amount() -> None:
    priced = price(request(**OUTREACH, outreach_successful=True), SCHEDULE, [], CAP)
    assert [(c.basis.value, str(c.amount)) for c in priced.components] == [("outreach", "75.00"),
                                                                           ("one_time_engagement", "150.00")]
    assert priced.paid_components() == ("outreach", "one_time_engagement")


def test_outreach_beyond_the_cap_is_flagged() -> None:
    priced = price(request(**OUTREACH), SCHEDULE, [done("outreach", outreach=True)] * 3, CAP)
    assert priced.flags == ("outreach_cap_reached",)


@pytest.mark.parametrize(("schedule", "req", "code"), [
    (None, request(), "no_fee_schedule"),
    (SCHEDULE, request(program="ecm", service_code="ecm_non_clinical"), "no_rate"),
])
def test_missing_rates_raise(schedule: FeeSchedule | None, req: PricingRequest, code: str) -> None:
    with pytest.raises(NoRate) as caught:
        price(req, schedule, [], CAP)
    assert caught.value.code == code


def test_amounts_round_half_up_to_cents() -> None:
    assert price(request(program="chw", service_code="chw", hcpcs="98960", modifiers=(), units=Decimal("0.5")),
                 SCHEDULE, [], CAP).amount == Decimal("13.72")
