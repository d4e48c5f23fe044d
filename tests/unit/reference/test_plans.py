"""MCP registry and the effective-dated county→MCP table."""

from __future__ import annotations

from datetime import date

import pytest

from shared.reference.counties import COUNTIES
from shared.reference.facts import packaged_csv_rows
from shared.reference.plans import (
    COUNTY_MCP_FILE,
    Arrangement,
    all_plans,
    counties_served_by,
    offerings_in_county,
    plan_by_code,
    plan_named,
    plan_offered_in,
    plans_in_county,
)

IN_2026 = date(2026, 3, 2)
PUBLISHED = date(2024, 8, 1)


def test_table_has_116_pairs_over_58_counties() -> None:
    rows = packaged_csv_rows(COUNTY_MCP_FILE)
    assert len(rows) == 116
    assert len({row["county"] for row in rows}) == 58
    assert sum(len(plans_in_county(county, IN_2026)) for county in COUNTIES) == 116


@pytest.mark.parametrize(
    "row", packaged_csv_rows(COUNTY_MCP_FILE), ids=lambda r: f"{r['county']}-{r['plan_code']}"
)
def test_every_published_pair_is_offered(row: dict[str, str]) -> None:
    for on in (PUBLISHED, IN_2026):
        assert plan_offered_in(row["plan_code"], row["county"], on)
    published = plan_named(row["mcp_as_published"])
    assert published is not None and published.code == row["plan_code"]


@pytest.mark.parametrize(
    ("plan_code", "county"),
    [("lacare", "San Diego"), ("iehp", "Los Angeles"), ("partnership", "Sacramento"), ("kaiser", "Alpine")],
)
def test_plan_not_in_the_table_is_not_offered(plan_code: str, county: str) -> None:
    assert not plan_offered_in(plan_code, county, IN_2026)


def test_los_angeles_has_six_plans_under_any_spelling() -> None:
    expected = ["kaiser", "anthem", "healthnet", "molina", "blue_shield_promise", "lacare"]
    for spelling in ("Los Angeles", "L.A.", "LA", "los angeles county"):
        assert [plan.code for plan in plans_in_county(spelling, IN_2026)] == expected


def test_table_is_not_in_force_before_its_effective_date() -> None:
    assert plans_in_county("Los Angeles", date(2023, 12, 31)) == []
    assert not plan_offered_in("lacare", "Los Angeles", date(2023, 12, 31))


@pytest.mark.parametrize(
    ("county", "local_plan"),
    [("Fresno", "calviva"), ("Kings", "calviva"), ("Madera", "calviva"), ("Imperial", "chpiv")],
)
def test_local_plan_administered_by_health_net_is_offered_through_the_aso_row(
    county: str, local_plan: str
) -> None:
    aso = [o for o in offerings_in_county(county, IN_2026) if o.arrangement is Arrangement.ASO]
    assert [(o.plan.code, o.local_plan and o.local_plan.code) for o in aso] == [("healthnet", local_plan)]
    assert plan_offered_in(local_plan, county, IN_2026)
    assert plan_by_code(local_plan).administered_by == "healthnet"
    assert not plan_offered_in(local_plan, "Sacramento", IN_2026)


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("L.A. Care", "lacare"),
        ("LA Care", "lacare"),
        ("lacare", "lacare"),
        ("Anthem Blue Cross", "anthem"),
        ("HealthNet", "healthnet"),
        ("health net", "healthnet"),
        ("IEHP", "iehp"),
        ("Inland Empire Health Plan", "iehp"),
        ("CalViva", "calviva"),
        ("San Joaquin/Mountain Valley Plan", "hpsj"),
        ("Partnership Health Plan", "partnership"),
        ("Kaiser", "kaiser"),
    ],
)
def test_plan_named_matches_codes_names_and_aliases(text: str, code: str) -> None:
    plan = plan_named(text)
    assert plan is not None and plan.code == code


def test_plan_named_returns_none_for_an_unknown_plan() -> None:
    assert plan_named("Acme Health") is None


def test_unknown_plan_code_or_county_raises() -> None:
    with pytest.raises(ValueError, match="unknown plan code"):
        plan_offered_in("acme", "Fresno", IN_2026)
    with pytest.raises(ValueError, match="unknown California county"):
        plans_in_county("Atlantis", IN_2026)


def test_kaiser_contracts_through_lead_entities_in_32_counties() -> None:
    kaiser = plan_by_code("kaiser")
    assert kaiser.contracts_via_lead_entity
    assert len(counties_served_by("kaiser", IN_2026)) == 32


def test_every_plan_serves_some_county() -> None:
    for plan in all_plans():
        assert counties_served_by(plan.code, IN_2026), plan.code
