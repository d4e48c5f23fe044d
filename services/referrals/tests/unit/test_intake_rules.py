"""Intake rules, table-driven: every bad-input class, every county of the county→MCP table, all errors at once."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from referrals.domain.intake import check_referral
from referrals.testkit import make_referral, with_path

from shared.contracts.values import Program, Urgency
from shared.reference.counties import COUNTIES
from shared.reference.facts import packaged_csv_rows
from shared.reference.plans import all_plans, plan_offered_in, plans_in_county

TODAY = date(2026, 11, 20)


def rules(body: Any) -> set[tuple[str, str]]:
    draft, violations = check_referral(body, today=TODAY)
    assert draft is None
    return {(v.field, v.rule) for v in violations}


def test_valid_ecm_referral_becomes_a_canonical_draft() -> None:
    draft, violations = check_referral(make_referral(mcp_code="L.A. Care"), today=TODAY)
    assert violations == []
    assert draft is not None
    assert draft.mcp_code == "lacare"  # a plan name is accepted and normalised to its code
    assert draft.county == "Los Angeles"
    assert draft.service.program is Program.ECM and draft.service.pof_codes == ("1a", "3")
    assert draft.member.phone == "2135550100"


@pytest.mark.parametrize(("path", "value", "field", "rule"), [
    ("member.cin", "9000001A", "member.cin", "cin_format"),
    ("member.cin", "90000001a", "member.cin", "cin_format"),
    ("member.cin", 90000001, "member.cin", "type"),
    ("member.last_name", ..., "member.last_name", "required"),
    ("member.first_name", "  ", "member.first_name", "required"),
    ("member.birth_date", "04/12/1968", "member.birth_date", "date_format"),
    ("member.birth_date", "19680412", "member.birth_date", "date_format"),
    ("member.birth_date", "2027-01-01", "member.birth_date", "birth_date_in_future"),
    ("member.birth_date", "1890-01-01", "member.birth_date", "birth_date_implausible"),
    ("member.sex", "Q", "member.sex", "enum"),
    ("member.phone", "555-0100", "member.phone", "phone_format"),
    ("member.preferred_language", "??", "member.preferred_language", "language"),
    ("member.address", ..., "member.address", "required"),
    ("member.address.county", "Gotham", "member.address.county", "california_county"),
    ("member.address.zip", "1234", "member.address.zip", "zip_format"),
    ("member.address.zip", "10001", "member.address.zip", "zip_california"),
    ("member.address.state", "NV", "member.address.state", "state_california"),
    ("member.nickname", "Ana", "member.nickname", "unknown_field"),
    ("mcp_code", "notaplan", "mcp_code", "known_plan"),
    ("mcp_code", "partnership", "mcp_code", "plan_offered_in_county"),
    ("service.program", "dental", "service.program", "enum"),
    ("service.pof_codes", [], "service.pof_codes", "required_for_ecm"),
    ("service.pof_codes", ["1a", "12"], "service.pof_codes[1]", "pof_code"),
    ("service.pof_codes", ["3", "3"], "service.pof_codes[1]", "unique"),
    ("service.pof_codes", "1a", "service.pof_codes", "type"),
    ("service.cs_code", "recuperative_care", "service.cs_code", "not_allowed_for_program"),
    ("urgency", "soon", "urgency", "enum"),
    ("urgency", "expedited", "expedited_reason", "required_when_expedited"),
    ("referring.npi", "1234567890", "referring.npi", "npi_check_digit"),
    ("referring.npi", "12345", "referring.npi", "npi_format"),
    ("referring.contact", {"name": "Sam"}, "referring.contact", "phone_or_email_required"),
    ("referring.contact", {"name": "Sam", "phone": ""}, "referring.contact", "phone_or_email_required"),
    ("referring.contact", {"name": "Sam", "phone": " ", "email": ""}, "referring.contact",
     "phone_or_email_required"),
    ("referring.contact", {"name": "Sam", "phone": "555"}, "referring.contact.phone", "phone_format"),
    ("referring.contact", {"name": "Sam", "email": "not-an-email"}, "referring.contact.email", "email_format"),
    ("referring", ..., "referring", "required"),
    ("cbo_organization_id", "cbo-7", "cbo_organization_id", "pattern"),
    ("notes", "x" * 4001, "notes", "max_length"),
    ("consent", {"share_with_mcp": "yes"}, "consent.share_with_mcp", "type"),
    ("consent", {"obtained_on": "2027-01-01"}, "consent.obtained_on", "date_in_future"),
    ("service", ..., "service", "required"),
    ("colour", "blue", "colour", "unknown_field"),
])
def test_each_bad_input_names_its_field_and_rule(path: str, value: Any, field: str, rule: str) -> None:
    assert (field, rule) in rules(with_path(make_referral(), path, value))


@pytest.mark.parametrize(("service", "field", "rule"), [
    ({"program": "cs"}, "service.cs_code", "required_for_cs"),
    ({"program": "cs", "cs_code": "space_travel"}, "service.cs_code", "cs_code"),
    ({"program": "chw", "pof_codes": ["2"]}, "service.pof_codes", "not_allowed_for_program"),
    ({"program": "chw", "cs_code": "sobering_centers"}, "service.cs_code", "not_allowed_for_program"),
])
def test_fields_required_and_refused_by_service_type(service: dict[str, Any], field: str, rule: str) -> None:
    assert (field, rule) in rules(make_referral(service=service))


def test_every_error_is_reported_at_once() -> None:
    body = make_referral()
    body = with_path(body, "member.cin", "123")
    body = with_path(body, "member.birth_date", "2099-01-01")
    body = with_path(body, "member.address.county", "Atlantis")
    body = with_path(body, "referring.npi", "1234567890")
    body = with_path(body, "service.pof_codes", ["99"])
    found = rules(body)
    assert {("member.cin", "cin_format"), ("member.birth_date", "birth_date_in_future"),
            ("member.address.county", "california_county"), ("referring.npi", "npi_check_digit"),
            ("service.pof_codes[0]", "pof_code")} <= found


def test_a_malformed_phone_is_its_own_error_not_a_missing_contact() -> None:
    found = rules(with_path(make_referral(), "referring.contact", {"name": "Sam", "phone": "555"}))
    assert ("referring.contact", "phone_or_email_required") not in found


@pytest.mark.parametrize(("overrides", "expected"), [
    ({"urgency": "expedited", "service": {"program": "ecmm", "pof_codes": ["1a"]}},
     {("service.program", "enum"), ("expedited_reason", "required_when_expedited")}),
    ({"urgency": "expedited", "service": None},
     {("service", "required"), ("expedited_reason", "required_when_expedited")}),
    ({"service": {"program": "ecmm", "pof_codes": ["1a", "99"]}},
     {("service.program", "enum"), ("service.pof_codes[1]", "pof_code")}),
    ({"service": {"program": "ccs", "cs_code": "yacht"}},
     {("service.program", "enum"), ("service.cs_code", "cs_code")}),
    # The code says "expedited by rule" even if the program is misspelt: no reason is owed for it.
    ({"urgency": "expedited", "service": {"program": "c s", "cs_code": "recuperative_care"}},
     {("service.program", "enum")}),
])
def test_rules_independent_of_the_service_are_checked_when_the_service_is_wrong(
        overrides: dict[str, Any], expected: set[tuple[str, str]]) -> None:
    body = make_referral(**overrides)
    if body["service"] is None:
        del body["service"]
    assert rules(body) == expected


def test_a_body_that_is_not_an_object_is_refused() -> None:
    assert rules(["not", "an", "object"]) == {("body", "type")}


def test_messages_never_echo_the_submitted_value() -> None:
    _, violations = check_referral(with_path(make_referral(), "member.cin", "12345678Z9"), today=TODAY)
    assert violations and all("12345678Z9" not in v.message for v in violations)


def test_always_expedited_community_support_is_expedited_by_rule() -> None:
    draft, violations = check_referral(make_referral(service={"program": "cs", "cs_code": "recuperative_care"},
                                                     mcp_code=None), today=TODAY)
    assert violations == [] and draft is not None
    assert draft.urgency is Urgency.EXPEDITED and draft.expedited_by_rule


def test_medically_tailored_meals_are_expedited_only_after_acute_care() -> None:
    meals = {"program": "cs", "cs_code": "medically_tailored_meals"}
    plain, _ = check_referral(make_referral(service=meals), today=TODAY)
    after, _ = check_referral(make_referral(service={**meals, "after_acute_care": True}), today=TODAY)
    assert plain is not None and plain.urgency is Urgency.STANDARD
    assert after is not None and after.urgency is Urgency.EXPEDITED


def test_county_aliases_and_suffix_are_accepted() -> None:
    draft, _ = check_referral(with_path(make_referral(), "member.address.county", "L.A. County"), today=TODAY)
    assert draft is not None and draft.county == "Los Angeles"


COUNTY_PLAN_ROWS = sorted({(row["county"], row["plan_code"]) for row in packaged_csv_rows("county_mcp.csv")})


def test_the_table_covers_all_58_counties() -> None:
    assert len({county for county, _ in COUNTY_PLAN_ROWS}) == len(COUNTIES) == 58


@pytest.mark.parametrize(("county", "plan_code"), COUNTY_PLAN_ROWS)
def test_every_county_accepts_its_plans_and_refuses_the_others(county: str, plan_code: str) -> None:
    body = with_path(make_referral(), "member.address.county", county)
    if plan_offered_in(plan_code, county, TODAY):
        draft, violations = check_referral(with_path(body, "mcp_code", plan_code), today=TODAY)
        assert violations == [] and draft is not None and draft.mcp_code == plan_code
    offered = {p.code for p in plans_in_county(county, TODAY)}
    elsewhere = next(p.code for p in all_plans() if p.code not in offered
                     and not plan_offered_in(p.code, county, TODAY))
    assert ("mcp_code", "plan_offered_in_county") in rules(with_path(body, "mcp_code", elsewhere))
