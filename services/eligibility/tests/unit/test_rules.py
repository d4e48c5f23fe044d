"""The rule engine: may the member receive ECM / a CS / CHW on a date, and why not."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from eligibility.domain.enrollment import MemberState, ProgramFlag, Source, Span, Status
from eligibility.domain.rules import RULES, Program, Rule, RuleKind, ServicePeriod, evaluate, with_recheck_interval

from shared.reference.facts import Marker

ON = date(2026, 3, 2)
ENROLLED = MemberState(Status.ENROLLED, "lacare", spans=(Span("lacare", date(2025, 1, 1)),),
                       verified_at=datetime(2026, 3, 1, tzinfo=UTC))


def with_programs(*codes: str) -> MemberState:
    return MemberState(ENROLLED.status, ENROLLED.mcp_code, spans=ENROLLED.spans, verified_at=ENROLLED.verified_at,
                       programs=tuple(ProgramFlag(c, date(2026, 1, 1), None, Source.MANUAL) for c in codes))


@pytest.mark.parametrize(("state", "program", "services", "reasons"), [
    (ENROLLED, Program.ECM, (), []),
    (MemberState(), Program.ECM, (), ["not_enrolled"]),
    (MemberState(spans=(Span("lacare", date(2025, 1, 1), date(2026, 2, 28)),)), Program.CHW, (), ["not_enrolled"]),
    (with_programs("hospice"), Program.ECM, (), ["ecm_not_eligible"]),
    (with_programs("pace", "mssp"), Program.ECM, (), ["ecm_or_program", "ecm_not_eligible"]),
    (with_programs("ihss", "ccs"), Program.ECM, (), []),  # ECM and the program may run side by side
    (with_programs("hospice"), Program.CHW, (), []),  # the exclusion table is about ECM
    (ENROLLED, Program.CHW, (ServicePeriod(Program.ECM, date(2026, 1, 1), date(2026, 6, 30)),),
     ["chw_not_same_period"]),
    (ENROLLED, Program.ECM, (ServicePeriod(Program.CHW, date(2026, 3, 1), date(2026, 3, 31)),),
     ["ecm_not_same_period"]),
    (ENROLLED, Program.ECM, (ServicePeriod(Program.CHW, date(2026, 1, 1), date(2026, 2, 28)),), []),
    (with_programs("medi_cal_ffs"), Program.ECM, (), ["ecm_not_eligible"]),
])
def test_verdicts(state: MemberState, program: Program, services: tuple[ServicePeriod, ...],
                  reasons: list[str]) -> None:
    verdict = evaluate(state, program, ON, services=services)
    assert sorted(f.code for f in verdict.reasons) == sorted(reasons)
    assert verdict.allowed is (not reasons)


def test_pace_and_mssp_each_name_their_program() -> None:
    verdict = evaluate(with_programs("pace", "mssp"), Program.ECM, ON)
    assert {(f.program, f.code) for f in verdict.reasons} == {("pace", "ecm_not_eligible"),
                                                               ("mssp", "ecm_or_program")}
    assert all("PACE" in f.message or "MSSP" in f.message or "Multipurpose" in f.message for f in verdict.reasons)


def test_community_support_must_exist_and_needs_a_code() -> None:
    assert evaluate(ENROLLED, Program.CS, ON, cs_code="recuperative_care").allowed
    verdict = evaluate(ENROLLED, Program.CS, ON, cs_code="massage")
    assert [f.code for f in verdict.reasons] == ["unknown_community_support"]
    with pytest.raises(ValueError, match="cs_code"):
        evaluate(ENROLLED, Program.CS, ON)


def test_stale_verification_is_a_warning_not_a_denial() -> None:
    verdict = evaluate(ENROLLED, Program.ECM, ON, now=datetime(2026, 5, 1, tzinfo=UTC))
    assert verdict.allowed and [w.code for w in verdict.warnings] == ["verification_stale"]
    assert evaluate(ENROLLED, Program.ECM, ON, now=datetime(2026, 3, 20, tzinfo=UTC)).warnings == ()


def test_rules_are_effective_dated() -> None:
    ended = Rule("ecm_program_exclusions", RuleKind.PROGRAM_EXCLUSIONS, frozenset({Program.ECM}), Marker.PRACTICE,
                 "test", effective_to=date(2026, 1, 31))
    rules = [ended if r.code == "ecm_program_exclusions" else r for r in RULES]
    assert evaluate(with_programs("hospice"), Program.ECM, ON, rules=rules).allowed
    assert not evaluate(with_programs("hospice"), Program.ECM, date(2026, 1, 15), rules=rules).allowed


def test_recheck_interval_is_configurable() -> None:
    now = datetime(2026, 3, 20, tzinfo=UTC)
    assert evaluate(ENROLLED, Program.ECM, ON, now=now).warnings == ()
    strict = evaluate(ENROLLED, Program.ECM, ON, now=now, rules=with_recheck_interval(10))
    assert [w.code for w in strict.warnings] == ["verification_stale"]
