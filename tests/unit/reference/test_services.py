"""Populations of Focus, Community Supports, authorization periods and doula facts."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from shared.reference.facts import Marker
from shared.reference.services import (
    DurationCap,
    community_support,
    community_supports,
    decision_deadlines,
    doula_benefit,
    duration_cap,
    ecm_authorization_months,
    is_always_expedited,
    population_of_focus,
    populations_of_focus,
)


def make_cap(amount: int, unit: str = "months") -> DurationCap:
    return DurationCap.model_validate(
        {"amount": amount, "unit": unit, "marker": "practice", "configurable": False, "source": "MCP setting"}
    )


def test_populations_of_focus_are_1a_1b_then_2_to_9() -> None:
    assert [p.code for p in populations_of_focus()] == ["1a", "1b", "2", "3", "4", "5", "6", "7", "8", "9"]


def test_only_1a_and_1b_numbering_is_confirmed() -> None:
    markers = {p.code: p.marker for p in populations_of_focus()}
    assert markers.pop("1a") is markers.pop("1b") is Marker.RULE
    assert set(markers.values()) == {Marker.UNCONFIRMED}


@pytest.mark.parametrize(
    ("code", "adults", "children_youth"),
    [
        ("1a", True, False),
        ("1b", True, True),
        ("5", True, False),
        ("6", True, False),
        ("7", False, True),
        ("8", False, True),
    ],
)
def test_population_of_focus_flags_adults_and_children(code: str, adults: bool, children_youth: bool) -> None:
    population = population_of_focus(code)
    assert (population.adults, population.children_youth) == (adults, children_youth)


def test_unknown_population_of_focus_raises() -> None:
    with pytest.raises(ValueError):
        population_of_focus("10")


def test_there_are_14_community_supports_by_rule_plus_transitional_rent() -> None:
    supports = community_supports()
    assert len(supports) == 15
    assert [s.code for s in supports if s.marker is Marker.RULE].__len__() == 14
    assert community_support("transitional_rent").marker is Marker.PRACTICE


@pytest.mark.parametrize(
    ("cs_code", "after_acute_care", "expedited"),
    [
        ("recuperative_care", False, True),
        ("short_term_post_hospitalization_housing", False, True),
        ("sobering_centers", False, True),
        ("medically_tailored_meals", True, True),
        ("medically_tailored_meals", False, False),
        ("housing_deposits", True, False),
        ("asthma_remediation", False, False),
    ],
)
def test_some_community_supports_are_always_expedited(
    cs_code: str, after_acute_care: bool, expedited: bool
) -> None:
    assert is_always_expedited(cs_code, after_acute_care=after_acute_care) is expedited


def test_unknown_community_support_raises() -> None:
    with pytest.raises(ValueError, match="unknown Community Support"):
        is_always_expedited("yoga")


@pytest.mark.parametrize(
    ("cs_code", "amount", "unit", "marker"),
    [
        ("recuperative_care", 90, "days", Marker.RULE),
        ("sobering_centers", 24, "hours", Marker.RULE),
        ("short_term_post_hospitalization_housing", 6, "months", Marker.UNCONFIRMED),
    ],
)
def test_duration_caps(cs_code: str, amount: int, unit: str, marker: Marker) -> None:
    cap = duration_cap(cs_code)
    assert cap is not None
    assert (cap.amount, cap.unit, cap.marker) == (amount, unit, marker)


def test_unconfirmed_duration_cap_can_be_overridden_per_mcp() -> None:
    override = make_cap(180, "days")
    assert (
        duration_cap(
            "short_term_post_hospitalization_housing", {"short_term_post_hospitalization_housing": override}
        )
        == override
    )


@pytest.mark.parametrize("cs_code", ["recuperative_care", "housing_deposits"])
def test_rule_or_absent_duration_cap_cannot_be_overridden(cs_code: str) -> None:
    with pytest.raises(ValueError, match="not configurable"):
        duration_cap(cs_code, {cs_code: make_cap(1)})


def test_lifetime_caps_are_decimal_dollars() -> None:
    asthma = community_support("asthma_remediation").lifetime_cap
    deposits = community_support("housing_deposits").lifetime_cap
    assert asthma is not None and asthma.amount == Decimal("7500")
    assert deposits is not None and deposits.amount == Decimal("5000")
    assert community_support("recuperative_care").lifetime_cap is None


@pytest.mark.parametrize(
    ("kind", "starts_on", "months"),
    [
        ("initial", date(2022, 1, 1), 12),
        ("initial", date(2026, 1, 1), 12),
        ("reauthorization", date(2023, 7, 1), 6),
    ],
)
def test_ecm_authorization_periods(kind: str, starts_on: date, months: int) -> None:
    assert ecm_authorization_months(kind, starts_on) == months  # type: ignore[arg-type]


def test_ecm_reauthorization_before_july_2023_is_unknown() -> None:
    with pytest.raises(LookupError):
        ecm_authorization_months("reauthorization", date(2023, 6, 30))


def test_decision_deadlines() -> None:
    deadlines = decision_deadlines()
    assert (
        deadlines.standard_business_days,
        deadlines.standard_max_calendar_days,
        deadlines.expedited_hours,
    ) == (5, 14, 72)


def test_doula_benefit_amounts_are_exact() -> None:
    doula = doula_benefit()
    assert doula.max_amount == Decimal("3152.65")
    assert doula.second_recommendation_max_amount == Decimal("1458.99")
    assert doula.prenatal_postpartum_visits == 8
