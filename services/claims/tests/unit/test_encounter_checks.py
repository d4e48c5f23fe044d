"""Rule tables for every encounter check: codes by date, authorization, eligibility, limits, overlap, filing."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from claims.domain.encounters import (
    CheckContext,
    Coverage,
    EligibilityFact,
    EncounterSubmission,
    PriorEncounter,
    check_encounter,
    chw_period_start,
)
from claims.testkit import make_billing

TODAY = date(2025, 6, 30)
CONFIG = make_billing()


def make_submission(**overrides: Any) -> EncounterSubmission:
    base = EncounterSubmission(cbo_organization_id="org_cbo_a", mcp_code="healthnet", program="ecm", cs_code=None,
                               hcpcs="G9008", modifiers=("U1",), units=Decimal("1"), service_from=date(2025, 6, 2),
                               service_to=date(2025, 6, 2), rendering_npi="1245319599")
    return replace(base, **overrides)


def make_coverage(**overrides: Any) -> Coverage:
    base = Coverage(authorization_id="auth_1", mcp_code="healthnet", program="ecm", cs_code=None, status="approved",
                    period_start=date(2025, 1, 1), period_end=date(2025, 12, 31), mcp_authorization_number="A1")
    return replace(base, **overrides)


def enrolled(mcp: str = "healthnet", start: date = date(2024, 1, 1), end: date | None = None) -> EligibilityFact:
    return EligibilityFact(kind="enrolled", effective_from=start, effective_to=end, mcp_code=mcp)


def prior(**overrides: Any) -> PriorEncounter:
    base = PriorEncounter(encounter_id="E1", cbo_organization_id="org_cbo_a", mcp_code="healthnet", program="ecm",
                          service_code="ecm_clinical", hcpcs="G9008", modifiers=frozenset({"U1"}), units=Decimal("1"),
                          service_from=date(2025, 6, 2), service_to=date(2025, 6, 2), rendering_npi="1245319599",
                          outreach_attempt=False, expected_amount=Decimal("400"), components=("pmpm",))
    return replace(base, **overrides)


def context(coverages: list[Coverage] | None = None, eligibility: list[EligibilityFact] | None = None,
            history: list[PriorEncounter] | None = None, today: date = TODAY, config: Any = CONFIG) -> CheckContext:
    return CheckContext(configuration=config, coverages=[make_coverage()] if coverages is None else coverages,
                        eligibility=[enrolled()] if eligibility is None else eligibility,
                        history=history or [], today=today)


def codes_of(submission: EncounterSubmission, ctx: CheckContext) -> list[str]:
    return [r.code for r in check_encounter(submission, ctx).reasons]


# --------------------------------------------------------------------------------------------- happy paths

@pytest.mark.parametrize(("label", "submission", "coverages", "service_code", "amount"), [
    ("ECM clinical in person", make_submission(), None, "ecm_clinical", Decimal("400.00")),
    ("ECM non-clinical by phone", make_submission(hcpcs="G9012", modifiers=("U2", "GQ")), None, "ecm_non_clinical",
     Decimal("400.00")),
    ("ECM outreach attempt", make_submission(hcpcs="G9012", modifiers=("U8",), outreach_attempt=True,
                                             outreach_outcome="unsuccessful"), None, "ecm_outreach", Decimal("75.00")),
    ("successful outreach adds the engagement fee",
     make_submission(hcpcs="G9012", modifiers=("U8", "GQ"), outreach_attempt=True, outreach_outcome="successful"),
     None, "ecm_outreach", Decimal("225.00")),
    ("housing deposit", make_submission(program="cs", cs_code="housing_deposits", hcpcs="H0044", modifiers=("U2",)),
     [make_coverage(program="cs", cs_code="housing_deposits")], "housing_deposits", Decimal("1500.00")),
    ("housing outreach under a housing authorization",
     make_submission(program="cs", cs_code="housing_tenancy_sustaining", hcpcs="T1016", modifiers=("U8",),
                     outreach_attempt=True),
     [make_coverage(program="cs", cs_code="housing_tenancy_sustaining")], "housing_outreach", Decimal("35.00")),
    ("CHW without an MCP authorization", make_submission(program="chw", hcpcs="98960", modifiers=(),
                                                         units=Decimal("2")), [], "chw", Decimal("54.86")),
    ("CHW G0019 with its prerequisites from 2025-04-01",
     make_submission(program="chw", hcpcs="G0019", modifiers=(),
                     prerequisites=frozenset({"initiating_em_visit", "care_plan"})), [], "chw", Decimal("27.43")),
])
def test_valid_encounters_pass_and_are_priced(label: str, submission: EncounterSubmission,
                                              coverages: list[Coverage] | None, service_code: str,
                                              amount: Decimal) -> None:
    result = check_encounter(submission, context(coverages=coverages))
    assert result.reasons == [], label
    assert result.service_code == service_code
    assert result.price is not None and result.price.amount == amount


# ------------------------------------------------------------------------------------- code table by date

@pytest.mark.parametrize(("label", "overrides", "reason"), [
    ("ECM code under CHW", {"program": "chw", "hcpcs": "G9008"}, "code_not_allowed"),
    ("wrong modifier for G9008", {"modifiers": ("U2",)}, "modifiers_not_allowed"),
    ("GQ alone is not a modifier set", {"modifiers": ("GQ",)}, "modifiers_not_allowed"),
    ("five modifiers", {"modifiers": ("U1", "GQ", "U2", "U3", "U4")}, "too_many_modifiers"),
    ("repeated modifier", {"modifiers": ("U1", "U1")}, "modifier_repeated"),
    ("G0019 before 2025-04-01 is not active",
     {"program": "chw", "hcpcs": "G0019", "modifiers": (), "service_from": date(2025, 3, 31),
      "service_to": date(2025, 3, 31), "prerequisites": frozenset({"initiating_em_visit", "care_plan"})},
     "code_not_active"),
    ("G0019 without its prerequisites", {"program": "chw", "hcpcs": "G0019", "modifiers": ()}, "prerequisite_missing"),
    ("G0022 without G0019 in the month",
     {"program": "chw", "hcpcs": "G0022", "modifiers": (),
      "prerequisites": frozenset({"initiating_em_visit", "care_plan"})}, "add_on_without_primary"),
    ("asthma remediation code under housing deposits",
     {"program": "cs", "cs_code": "housing_deposits", "hcpcs": "S5165", "modifiers": ("U5",)}, "code_not_allowed"),
    ("CS without its service", {"program": "cs", "cs_code": None, "hcpcs": "H0044", "modifiers": ("U2",)},
     "cs_code_required"),
])
def test_code_table_rules(label: str, overrides: dict[str, Any], reason: str) -> None:
    coverages = [make_coverage(), make_coverage(authorization_id="a2", program="cs", cs_code="housing_deposits")]
    assert reason in codes_of(make_submission(**overrides), context(coverages=coverages)), label


def test_g0022_passes_with_g0019_in_the_same_month() -> None:
    primary = prior(program="chw", service_code="chw", hcpcs="G0019", modifiers=frozenset(), components=("per_unit",),
                    expected_amount=Decimal("27.43"))
    submission = make_submission(program="chw", hcpcs="G0022", modifiers=(),
                                 prerequisites=frozenset({"initiating_em_visit", "care_plan"}),
                                 service_from=date(2025, 6, 9), service_to=date(2025, 6, 9))
    assert codes_of(submission, context(coverages=[], history=[primary])) == []


@pytest.mark.parametrize(("outreach", "code", "modifiers", "reason"), [
    (True, "G9008", ("U1",), "outreach_code_mismatch"),  # an attempt billed as a service
    (False, "G9012", ("U8",), "outreach_code_mismatch"),  # outreach code without the flag
])
def test_outreach_flag_and_code_agree(outreach: bool, code: str, modifiers: tuple[str, ...], reason: str) -> None:
    submission = make_submission(hcpcs=code, modifiers=modifiers, outreach_attempt=outreach)
    assert reason in codes_of(submission, context())


# ----------------------------------------------------------------------------------------- authorization

@pytest.mark.parametrize(("label", "coverages", "reason"), [
    ("none at all", [], "no_authorization"),
    ("for another MCP", [make_coverage(mcp_code="lacare")], "no_authorization"),
    ("for another program", [make_coverage(program="cs", cs_code="recuperative_care")], "no_authorization"),
    ("period ends before the date", [make_coverage(period_end=date(2025, 5, 31))], "no_authorization"),
    ("period starts after the date", [make_coverage(period_start=date(2025, 6, 3))], "no_authorization"),
    ("still requested", [make_coverage(status="requested")], "no_authorization"),
    ("denied", [make_coverage(status="denied")], "authorization_denied"),
    ("suspended on the date", [make_coverage(suspensions=((date(2025, 6, 1), None),))], "authorization_suspended"),
    ("closed before the date", [make_coverage(status="closed", ends_before=date(2025, 6, 2))], "no_authorization"),
])
def test_authorization_must_cover_the_date(label: str, coverages: list[Coverage], reason: str) -> None:
    assert reason in codes_of(make_submission(), context(coverages=coverages)), label


@pytest.mark.parametrize(("label", "coverage"), [
    ("expired after the date: dates inside the period stay billable", make_coverage(status="expired")),
    ("suspension ended before the date", make_coverage(suspensions=((date(2025, 5, 1), date(2025, 5, 31)),))),
    ("closed after the date", make_coverage(status="closed", ends_before=date(2025, 6, 3))),
    ("presumptive, retroactive", make_coverage(presumptive=True, period_start=date(2025, 5, 1))),
])
def test_authorization_covers(label: str, coverage: Coverage) -> None:
    assert codes_of(make_submission(), context(coverages=[coverage])) == [], label


@pytest.mark.parametrize(("label", "number", "refused"), [
    ("60 characters (the authorizations API takes 100)", "A" * 60, True),
    ("element separator", "LAC*2025*001", True),
    ("segment terminator", "LAC~1", True),
    ("outside the X12 character set", "LAC—1", True),
    ("50 characters of the X12 set", "LAC-2025/001 " + "9" * 37, False),
    ("no number (presumptive, REF*G1 left out)", None, False),
])
def test_an_authorization_number_the_837p_cannot_carry_refuses_the_encounter(label: str, number: str | None,
                                                                             refused: bool) -> None:
    result = check_encounter(make_submission(), context(coverages=[make_coverage(mcp_authorization_number=number)]))
    assert ("authorization_number_unusable" in [r.code for r in result.reasons]) is refused, label
    if refused:
        message = next(r.message for r in result.reasons if r.code == "authorization_number_unusable")
        assert "REF*G1" in message and "LAC" not in message and "AAAA" not in message


def test_a_date_range_needs_coverage_on_every_day() -> None:
    submission = make_submission(service_from=date(2025, 12, 30), service_to=date(2026, 1, 2), hcpcs="G9008")
    assert "no_authorization" in codes_of(submission, context(today=date(2026, 1, 5)))


# -------------------------------------------------------------------------------------------- eligibility

@pytest.mark.parametrize(("label", "facts", "reason"), [
    ("nothing on record", [], "eligibility_unknown"),
    ("lost before the date", [enrolled(end=date(2025, 5, 31)),
                              EligibilityFact(kind="not_enrolled", effective_from=date(2025, 6, 1), sequence=2)],
     "not_eligible"),
    ("enrolled with another MCP", [enrolled(mcp="lacare")], "enrolled_with_other_mcp"),
    ("plan changed before the date", [enrolled(end=date(2025, 5, 31)),
                                      enrolled(mcp="lacare", start=date(2025, 6, 1))], "enrolled_with_other_mcp"),
    ("excluded from ECM (hospice)", [enrolled(), EligibilityFact(kind="excluded", effective_from=date(2025, 5, 1),
                                                                 program="ecm")], "program_excluded"),
])
def test_member_must_be_eligible_on_the_date(label: str, facts: list[EligibilityFact], reason: str) -> None:
    assert reason in codes_of(make_submission(), context(eligibility=facts)), label


def test_a_date_range_needs_eligibility_on_every_day() -> None:
    # Enrolled on the first and last day, not in between.
    gap = [enrolled(end=date(2025, 6, 9)),
           EligibilityFact(kind="not_enrolled", effective_from=date(2025, 6, 10), effective_to=date(2025, 6, 20),
                           sequence=1),
           enrolled(start=date(2025, 6, 21))]
    span = make_submission(service_from=date(2025, 6, 1), service_to=date(2025, 6, 28))
    assert "not_eligible" in codes_of(span, context(eligibility=gap))
    other_mcp = [enrolled(end=date(2025, 6, 14)),
                 enrolled(mcp="lacare", start=date(2025, 6, 15), end=date(2025, 6, 16)),
                 enrolled(start=date(2025, 6, 17))]
    assert "enrolled_with_other_mcp" in codes_of(span, context(eligibility=other_mcp))
    assert codes_of(span, context()) == []


def test_eligibility_can_be_waived_per_mcp_profile() -> None:
    config = make_billing(healthnet={"require_eligibility": False})
    assert codes_of(make_submission(), context(eligibility=[], config=config)) == []


def test_exclusion_for_another_program_does_not_block() -> None:
    facts = [enrolled(), EligibilityFact(kind="excluded", effective_from=date(2025, 5, 1), program="chw")]
    assert codes_of(make_submission(), context(eligibility=facts)) == []


# ------------------------------------------------------------------------------- duplicates and overlap

@pytest.mark.parametrize(("label", "history", "duplicate"), [
    ("same service, date, provider", [prior()], True),
    ("another day", [prior(service_from=date(2025, 6, 3), service_to=date(2025, 6, 3))], False),
    ("another rendering provider", [prior(rendering_npi="1679576722")], False),
    ("another modifier set", [prior(modifiers=frozenset({"U1", "GQ"}))], False),
    ("another CBO", [prior(cbo_organization_id="org_cbo_b")], False),
])
def test_duplicate_encounters(label: str, history: list[PriorEncounter], duplicate: bool) -> None:
    assert ("duplicate_encounter" in codes_of(make_submission(), context(history=history))) is duplicate, label


@pytest.mark.parametrize(("label", "submission", "history", "coverages", "clash"), [
    ("CHW after ECM in the same month", make_submission(program="chw", hcpcs="98960", modifiers=()),
     [prior(service_from=date(2025, 6, 1))], [], True),
    ("ECM after CHW in the same month", make_submission(),
     [prior(program="chw", service_code="chw", hcpcs="98960", modifiers=frozenset(), service_from=date(2025, 6, 20))],
     None, True),
    ("CHW the month after ECM", make_submission(program="chw", hcpcs="98960", modifiers=(),
                                                service_from=date(2025, 7, 1), service_to=date(2025, 7, 1)),
     [prior(service_from=date(2025, 6, 1))], [], False),
    ("CHW while an ECM authorization covers the date",
     make_submission(program="chw", hcpcs="98960", modifiers=()), [], [make_coverage()], True),
])
def test_no_ecm_and_chw_in_the_same_period(label: str, submission: EncounterSubmission,
                                           history: list[PriorEncounter], coverages: list[Coverage] | None,
                                           clash: bool) -> None:
    ctx = context(history=history, coverages=coverages, today=date(2025, 7, 31))
    assert ("ecm_chw_same_period" in codes_of(submission, ctx)) is clash, label


# ------------------------------------------------------------------------------------------------ limits

def chw_history(units: int, day: date = date(2025, 3, 1)) -> list[PriorEncounter]:
    return [prior(encounter_id=f"E{i}", program="chw", service_code="chw", hcpcs="98960", modifiers=frozenset(),
                  units=Decimal("1"), service_from=day, service_to=day, components=("per_unit",),
                  expected_amount=Decimal("27.43")) for i in range(units)]


@pytest.mark.parametrize(("label", "used", "units", "care_plan", "mcp", "blocked", "flagged"), [
    ("11 used + 1 reaches 12: allowed", 11, 1, False, "healthnet", False, False),
    ("12 used + 1: care plan needed, blocked", 12, 1, False, "healthnet", True, False),
    ("10 used + 3 crosses 12", 10, 3, False, "healthnet", True, False),
    ("with a care plan on file", 12, 1, True, "healthnet", False, False),
    ("MCP flags instead of blocking", 12, 1, False, "lacare", False, True),
])
def test_chw_care_plan_threshold(label: str, used: int, units: int, care_plan: bool, mcp: str, blocked: bool,
                                 flagged: bool) -> None:
    submission = make_submission(program="chw", hcpcs="98960", modifiers=(), units=Decimal(units), mcp_code=mcp,
                                 care_plan_on_file=care_plan)
    result = check_encounter(submission, context(coverages=[], history=chw_history(used),
                                                 eligibility=[enrolled(mcp=mcp)]))
    assert ("chw_care_plan_required" in [r.code for r in result.reasons]) is blocked, label
    assert ("chw_care_plan_required" in [f.code for f in result.flags]) is flagged, label


@pytest.mark.parametrize(("label", "period", "late_day", "needed"), [
    ("calendar year, posted after later units", None, date(2025, 5, 10), True),
    ("rolling 12 months, posted after later units", "rolling_12_months", date(2025, 5, 10), True),
    ("rolling 12 months, more than a year before them", "rolling_12_months", date(2024, 6, 20), False),
    ("calendar year, the year before", None, date(2024, 12, 31), False),
])
def test_chw_threshold_counts_units_dated_after_a_late_encounter(label: str, period: str | None, late_day: date,
                                                                 needed: bool) -> None:
    # 12 units already recorded on 2025-06-20; an encounter dated earlier is posted afterwards.
    config = make_billing(healthnet={"chw_counting_period": period}) if period else CONFIG
    late = make_submission(program="chw", hcpcs="98960", modifiers=(), service_from=late_day, service_to=late_day)
    ctx = context(coverages=[], history=chw_history(12, day=date(2025, 6, 20)), config=config,
                  eligibility=[enrolled(start=date(2024, 1, 1))])
    assert ("chw_care_plan_required" in codes_of(late, ctx)) is needed, label


def test_chw_counting_period_is_configurable() -> None:
    last_year = chw_history(12, day=date(2024, 11, 1))
    submission = make_submission(program="chw", hcpcs="98960", modifiers=())
    calendar = context(coverages=[], history=last_year)
    assert "chw_care_plan_required" not in codes_of(submission, calendar)
    rolling = make_billing(healthnet={"chw_counting_period": "rolling_12_months"})
    assert "chw_care_plan_required" in codes_of(submission, context(coverages=[], history=last_year, config=rolling))
    assert chw_period_start(date(2025, 6, 2), "calendar_year") == date(2025, 1, 1)


def cs_history(service: str, amounts: list[str]) -> list[PriorEncounter]:
    return [prior(encounter_id=f"C{i}", program="cs", service_code=service, hcpcs="S5165", modifiers=frozenset({"U5"}),
                  service_from=date(2025, 2, 1 + i), service_to=date(2025, 2, 1 + i), components=("per_encounter",),
                  expected_amount=Decimal(a)) for i, a in enumerate(amounts)]


@pytest.mark.parametrize(("label", "service", "code", "modifiers", "used", "exceeded"), [
    ("asthma: 5,000 used + 2,500 = 7,500 cap", "asthma_remediation", "S5165", ("U5",), ["2500", "2500"], False),
    ("asthma: 7,500 used + 2,500", "asthma_remediation", "S5165", ("U5",), ["2500", "2500", "2500"], True),
    ("housing deposits: 3,000 used + 1,500", "housing_deposits", "H0044", ("U2",), ["1500", "1500"], False),
    ("housing deposits: 4,500 used + 1,500 > 5,000", "housing_deposits", "H0044", ("U2",), ["1500", "1500", "1500"],
     True),
])
def test_cs_lifetime_caps(label: str, service: str, code: str, modifiers: tuple[str, ...], used: list[str],
                          exceeded: bool) -> None:
    submission = make_submission(program="cs", cs_code=service, hcpcs=code, modifiers=modifiers)
    ctx = context(coverages=[make_coverage(program="cs", cs_code=service)], history=cs_history(service, used))
    assert ("lifetime_cap_exceeded" in codes_of(submission, ctx)) is exceeded, label


# ----------------------------------------------------------------------------------------------- filing

@pytest.mark.parametrize(("label", "mcp", "today", "reason"), [
    ("healthnet: 180 days is on time", "healthnet", date(2025, 11, 29), None),
    ("healthnet: 181 days is late", "healthnet", date(2025, 11, 30), "timely_filing_expired"),
    ("lacare: 91 days is late", "lacare", date(2025, 9, 1), "timely_filing_expired"),
    ("a future date", "healthnet", date(2025, 6, 1), "service_date_in_future"),
])
def test_timely_filing_per_mcp(label: str, mcp: str, today: date, reason: str | None) -> None:
    coverages = [make_coverage(mcp_code=mcp)]
    codes = codes_of(make_submission(mcp_code=mcp), context(coverages=coverages, eligibility=[enrolled(mcp=mcp)],
                                                            today=today))
    if reason is None:
        assert "timely_filing_expired" not in codes, label
    else:
        assert reason in codes, label


# ------------------------------------------------------------------------------------ MCP and pricing setup

def test_mcp_is_taken_from_the_authorization_when_not_given() -> None:
    result = check_encounter(make_submission(mcp_code=None), context())
    assert result.mcp_code == "healthnet" and result.reasons == []


@pytest.mark.parametrize(("label", "submission", "ctx", "reason"), [
    ("no MCP known", make_submission(mcp_code=None), context(coverages=[], eligibility=[]), "mcp_unknown"),
    ("MCP not billed by CalHub", make_submission(mcp_code="molina"), context(), "mcp_not_billed"),
    ("CBO bills but has no identity", make_submission(mcp_code="lacare", cbo_organization_id="org_cbo_z"),
     context(coverages=[make_coverage(mcp_code="lacare")], eligibility=[enrolled(mcp="lacare")]),
     "billing_provider_not_configured"),
    ("no fee schedule on the date", make_submission(service_from=date(2023, 12, 1), service_to=date(2023, 12, 1)),
     context(coverages=[make_coverage(period_start=date(2023, 1, 1))], today=date(2024, 1, 2)), "no_fee_schedule"),
    ("no rate for the service", make_submission(mcp_code="partnership", program="chw", hcpcs="98960", modifiers=()),
     context(coverages=[], eligibility=[enrolled(mcp="partnership")]), "no_rate"),
])
def test_billing_setup_rules(label: str, submission: EncounterSubmission, ctx: CheckContext, reason: str) -> None:
    assert reason in codes_of(submission, ctx), label


def test_every_failing_check_is_reported_at_once() -> None:
    submission = make_submission(modifiers=("U2",), service_from=date(2024, 1, 2), service_to=date(2024, 1, 2))
    codes = codes_of(submission, context(coverages=[], eligibility=[], today=date(2025, 6, 30)))
    assert {"timely_filing_expired", "modifiers_not_allowed", "no_authorization", "eligibility_unknown"} <= set(codes)


def test_reason_messages_carry_no_member_data() -> None:
    submission = make_submission(modifiers=("U2",))
    result = check_encounter(submission, context(coverages=[], eligibility=[]))
    text = " ".join(r.message for r in result.reasons)
    assert "Testperson" not in text and "9000" not in text
