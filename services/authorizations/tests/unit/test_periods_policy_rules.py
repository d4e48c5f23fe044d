"""Authorized periods and caps, the per-MCP policy's validation, presumptive authorization, reauthorization."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from authorizations.domain.periods import (
    PERIOD_BEYOND_CAP,
    Period,
    PeriodError,
    add_months,
    authorized_period,
    expiring_on,
)
from authorizations.domain.policy import AuthorizationPolicy, McpTerms, MifDecision
from authorizations.domain.presumptive import PresumptiveBasis, presumptive_basis, presumptive_period
from authorizations.domain.reauthorization import (
    Eligibility,
    ReauthOutcome,
    TaskReason,
    decide_reauthorization,
)
from authorizations.policy_file import PolicyFileError, load_policy

from shared.contracts.values import Program, ServiceRequested
from shared.reference.services import DurationCap

PERIODS = [
    # (service, kind, start, end given, expected end, flags)
    ("ecm", "initial", date(2026, 3, 5), None, date(2027, 3, 4), ()),
    ("ecm", "reauthorization", date(2027, 3, 5), None, date(2027, 9, 4), ()),
    ("ecm", "reauthorization", date(2026, 8, 31), None, date(2027, 2, 27), ()),  # clamped month end
    ("ecm", "initial", date(2028, 2, 29), None, date(2029, 2, 27), ()),
    ("recuperative_care", "initial", date(2026, 3, 1), None, date(2026, 5, 29), ()),  # 90 days
    ("recuperative_care", "initial", date(2026, 3, 1), date(2026, 5, 29), date(2026, 5, 29), ()),
    ("recuperative_care", "initial", date(2026, 3, 1), date(2026, 6, 15), date(2026, 6, 15), (PERIOD_BEYOND_CAP,)),
    ("sobering_centers", "initial", date(2026, 3, 1), None, date(2026, 3, 2), ()),  # 24 hours can cross midnight
    ("sobering_centers", "initial", date(2026, 3, 1), date(2026, 3, 3), date(2026, 3, 3), (PERIOD_BEYOND_CAP,)),
    ("housing_deposits", "initial", date(2026, 3, 1), date(2026, 9, 30), date(2026, 9, 30), ()),
]


@pytest.mark.parametrize(("key", "kind", "start", "end", "expected", "flags"), PERIODS)
def test_authorized_period_by_rule_and_cap(key: str, kind: str, start: date, end: date | None, expected: date,
                                           flags: tuple[str, ...]) -> None:
    period = authorized_period(key, kind, start, end, default_start=date(2000, 1, 1))  # type: ignore[arg-type]
    assert (period.start, period.end, period.flags) == (start, expected, flags)


def test_a_period_beyond_the_cap_is_flagged_not_trimmed() -> None:
    period = authorized_period("recuperative_care", "initial", date(2026, 3, 1), date(2026, 12, 31),
                               default_start=date(2026, 3, 1))
    assert period.end == date(2026, 12, 31) and period.flags == (PERIOD_BEYOND_CAP,)


def test_a_configurable_cap_can_be_replaced_per_mcp() -> None:
    caps = {"short_term_post_hospitalization_housing": DurationCap(amount=3, unit="months", marker="practice",
                                                                   configurable=True, source="lacare contract")}
    period = authorized_period("short_term_post_hospitalization_housing", "initial", date(2026, 1, 15), None,
                               default_start=date(2026, 1, 15), caps=caps)
    assert period.end == date(2026, 4, 14)


@pytest.mark.parametrize(("key", "start", "end", "rule"), [
    ("housing_deposits", date(2026, 3, 1), None, "required"),
    ("chw", date(2026, 3, 1), None, "required"),
    ("ecm", date(2026, 3, 1), date(2026, 2, 1), "not_before_start"),
])
def test_unusable_periods_name_field_and_rule(key: str, start: date, end: date | None, rule: str) -> None:
    with pytest.raises(PeriodError) as caught:
        authorized_period(key, "initial", start, end, default_start=start)
    assert (caught.value.field, caught.value.rule) == ("period_end", rule)


def test_month_arithmetic_and_expiring_date() -> None:
    assert add_months(date(2026, 1, 31), 1) == date(2026, 2, 28)
    assert add_months(date(2026, 12, 15), 1) == date(2027, 1, 15)
    assert expiring_on(date(2027, 3, 4), 30, date(2026, 3, 5)) == date(2027, 2, 2)
    assert expiring_on(date(2026, 3, 2), 30, date(2026, 3, 1)) == date(2026, 3, 1)  # never before the start


@pytest.mark.parametrize(("terms", "message"), [
    ({"standard_business_days": 6}, "may not exceed the rule"),
    ({"standard_max_calendar_days": 15}, "may not exceed the rule"),
    ({"expedited_hours": 96}, "may not exceed the rule"),
    ({"expiring_lead_days": {"not_a_service": 10}}, "unknown service key"),
    ({"expiring_lead_days": {"ecm": 0}}, "at least 1"),
    ({"duration_caps": {"recuperative_care": {"amount": 120, "unit": "days", "marker": "practice",
                                              "configurable": True, "source": "x"}}}, "not configurable"),
    ({"calendar": "nope"}, "unknown calendar"),
    ({"surprise": 1}, "Extra inputs"),
])
def test_invalid_mcp_terms_are_refused(terms: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AuthorizationPolicy.model_validate({"mcps": {"lacare": [terms]}})


def test_overlapping_effective_periods_and_bad_provider_npis_are_refused() -> None:
    with pytest.raises(ValueError, match="overlap"):
        AuthorizationPolicy(mcps={"lacare": (McpTerms(effective_from=date(2026, 1, 1)),
                                             McpTerms(effective_from=date(2026, 6, 1)))})
    with pytest.raises(ValueError, match="providers"):
        AuthorizationPolicy(providers={"1234567890": "org_x"})


def test_policy_file_is_read_and_errors_name_file_and_field(tmp_path: Path) -> None:
    good = tmp_path / "policy.yaml"
    good.write_text("""
calendars:
  - name: lacare-2026
    extra_closed_days: [2026-12-24]
expiring_lead_days: {default: 45, ecm: 60}
providers: {"1234567893": org_cbo_harbor}
mif_statuses: {accepted: approved}
mcps:
  lacare:
    - effective_from: 2026-01-01
      calendar: lacare-2026
      trusted_providers: [org_cbo_harbor]
""")
    policy = load_policy(good)
    terms = policy.terms_for("lacare", date(2026, 3, 2))
    assert terms.calendar.calendar_name == "lacare-2026"
    assert terms.lead_days("ecm") == 60 and terms.lead_days("housing_deposits") == 45
    assert policy.mif_decision("Accepted") is MifDecision.APPROVED
    assert policy.terms_for("lacare", date(2025, 12, 31)).calendar.calendar_name == "us-ca-state"
    bad = tmp_path / "bad.json"
    bad.write_text('{"mcps": {"lacare": [{"standard_business_days": 9}]}}')
    with pytest.raises(PolicyFileError, match=r"bad\.json.*mcps\.lacare\.0"):
        load_policy(bad)
    with pytest.raises(PolicyFileError, match="cannot read"):
        load_policy(tmp_path / "missing.yaml")
    assert load_policy(None) == AuthorizationPolicy()


def test_presumptive_for_justice_involved_always_and_for_trusted_providers() -> None:
    justice = ServiceRequested(program=Program.ECM, pof_codes=("3", "4"))
    other = ServiceRequested(program=Program.ECM, pof_codes=("1a",))
    assert presumptive_basis(justice, None, frozenset(), {"4"}) is PresumptiveBasis.JUSTICE_INVOLVED
    assert presumptive_basis(other, "org_a", frozenset({"org_a"}), {"4"}) is PresumptiveBasis.TRUSTED_PROVIDER
    assert presumptive_basis(other, "org_b", frozenset({"org_a"}), {"4"}) is None


@pytest.mark.parametrize(("key", "end"), [
    ("ecm", date(2027, 3, 1)),
    ("recuperative_care", date(2026, 5, 30)),  # its 90-day cap
    ("chw", None),  # no period by rule: the MCP decides with one
    ("housing_transition_navigation", None),
])
def test_a_presumptive_period_runs_from_receipt_only_where_a_rule_gives_its_end(key: str, end: date | None) -> None:
    expected = Period(date(2026, 3, 2), end) if end else None
    assert presumptive_period(key, date(2026, 3, 2), {}) == expected


REAUTH = [
    # (eligibility, last encounter, unknown eligible, reauthorizable, outcome, reason)
    (Eligibility(True, "lacare"), date(2026, 2, 1), True, True, ReauthOutcome.REQUESTED, None),
    (Eligibility(True, "lacare"), date(2026, 1, 1), True, True, ReauthOutcome.REQUESTED, None),  # day 60
    (Eligibility(True, "lacare"), date(2025, 12, 31), True, True, ReauthOutcome.TASK, TaskReason.NOT_ENGAGED),
    (Eligibility(True, "lacare"), None, True, True, ReauthOutcome.TASK, TaskReason.NOT_ENGAGED),
    (Eligibility(False, None), date(2026, 2, 1), True, True, ReauthOutcome.TASK, TaskReason.NOT_ELIGIBLE),
    (Eligibility(True, "healthnet"), date(2026, 2, 1), True, True, ReauthOutcome.TASK, TaskReason.NOT_ELIGIBLE),
    (None, date(2026, 2, 1), True, True, ReauthOutcome.REQUESTED, None),
    (None, date(2026, 2, 1), False, True, ReauthOutcome.TASK, TaskReason.ELIGIBILITY_UNKNOWN),
    (Eligibility(True, "lacare"), date(2026, 2, 1), True, False, ReauthOutcome.TASK, TaskReason.NOT_REAUTHORIZABLE),
]


@pytest.mark.parametrize(("eligibility", "last", "unknown_ok", "reauthorizable", "outcome", "reason"), REAUTH)
def test_reauthorization_needs_eligibility_and_engagement(eligibility: Eligibility | None, last: date | None,
                                                          unknown_ok: bool, reauthorizable: bool,
                                                          outcome: ReauthOutcome, reason: TaskReason | None) -> None:
    decision = decide_reauthorization(mcp_code="lacare", eligibility=eligibility, last_encounter=last,
                                      today=date(2026, 3, 2), engagement_window_days=60,
                                      unknown_is_eligible=unknown_ok, reauthorizable=reauthorizable)
    assert (decision.outcome, decision.reason) == (outcome, reason)
