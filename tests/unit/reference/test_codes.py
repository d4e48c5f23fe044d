"""Effective-dated billing codes per service."""

from __future__ import annotations

from datetime import date

import pytest

from shared.reference.codes import (
    CODE_NOT_ACTIVE,
    CODE_NOT_ALLOWED,
    MODIFIER_REPEATED,
    MODIFIERS_NOT_ALLOWED,
    TOO_MANY_MODIFIERS,
    allowed_codes,
    check_code,
    service_codes,
)
from shared.reference.services import community_supports

BEFORE_G0019 = date(2025, 3, 31)
G0019_START = date(2025, 4, 1)
IN_2026 = date(2026, 2, 2)


@pytest.mark.parametrize(
    ("service", "hcpcs", "modifiers", "on", "reason"),
    [
        ("ecm_clinical", "G9008", ["U1"], IN_2026, None),
        ("ecm_clinical", "G9008", ["GQ", "U1"], IN_2026, None),  # order does not matter
        ("ecm_clinical", "g9008", [" u1 "], IN_2026, None),  # case and spaces do not matter
        ("ecm_clinical", "G9008", ["U2"], IN_2026, MODIFIERS_NOT_ALLOWED),
        ("ecm_clinical", "G9008", [], IN_2026, MODIFIERS_NOT_ALLOWED),
        ("ecm_clinical", "G9012", ["U1"], IN_2026, CODE_NOT_ALLOWED),
        ("ecm_non_clinical", "G9012", ["U2", "GQ"], IN_2026, None),
        ("ecm_outreach", "G9012", ["U8"], IN_2026, None),
        ("ecm_outreach", "G9012", ["U2"], IN_2026, MODIFIERS_NOT_ALLOWED),
        ("recuperative_care", "T2033", ["U6"], IN_2026, None),
        ("recuperative_care", "T2033", ["U6", "GQ"], IN_2026, MODIFIERS_NOT_ALLOWED),
        ("housing_deposits", "H0044", ["U2"], IN_2026, None),
        ("short_term_post_hospitalization_housing", "H0044", ["U3"], IN_2026, None),
        ("short_term_post_hospitalization_housing", "H0044", ["U2"], IN_2026, MODIFIERS_NOT_ALLOWED),
        ("nursing_facility_transition_diversion", "T2038", ["U4"], IN_2026, None),
        ("nursing_facility_transition_diversion", "H2022", ["U5"], IN_2026, None),
        ("nursing_facility_transition_diversion", "T2038", ["U5"], IN_2026, MODIFIERS_NOT_ALLOWED),
        ("community_transition_services", "T2038", ["U5"], IN_2026, None),
        ("asthma_remediation", "S5165", ["U5"], IN_2026, None),
        ("environmental_accessibility_adaptations", "S5165", ["U5"], IN_2026, MODIFIERS_NOT_ALLOWED),
        ("sobering_centers", "H0014", ["U6"], IN_2026, None),
        ("housing_outreach", "T1016", ["U8", "GQ"], IN_2026, None),
        ("chw", "98960", [], IN_2026, None),
        ("chw", "98962", [], BEFORE_G0019, None),
        ("chw", "98961", ["U1"], IN_2026, MODIFIERS_NOT_ALLOWED),
        ("chw", "G0019", [], BEFORE_G0019, CODE_NOT_ACTIVE),
        ("chw", "G0022", [], BEFORE_G0019, CODE_NOT_ACTIVE),
        ("chw", "G0019", [], G0019_START, None),
        ("chw", "G0022", [], G0019_START, None),
        ("chw", "G9008", ["U1"], IN_2026, CODE_NOT_ALLOWED),
        ("transitional_rent", "H0044", ["U6"], IN_2026, CODE_NOT_ALLOWED),
        ("ecm_clinical", "G9008", ["U1", "U1"], IN_2026, MODIFIER_REPEATED),
        ("ecm_clinical", "G9008", ["U1", "GQ", "95", "25", "59"], IN_2026, TOO_MANY_MODIFIERS),
    ],
)
def test_check_code(service: str, hcpcs: str, modifiers: list[str], on: date, reason: str | None) -> None:
    assert check_code(service, hcpcs, modifiers, on) == reason


def test_g0019_and_g0022_are_allowed_only_from_april_2025() -> None:
    assert {rule.hcpcs for rule in allowed_codes("chw", BEFORE_G0019)} == {"98960", "98961", "98962"}
    assert {rule.hcpcs for rule in allowed_codes("chw", G0019_START)} == {
        "98960",
        "98961",
        "98962",
        "G0019",
        "G0022",
    }


def test_g0019_and_g0022_need_an_initiating_visit_and_a_care_plan() -> None:
    by_code = {rule.hcpcs: rule for rule in allowed_codes("chw", IN_2026)}
    for code in ("G0019", "G0022"):
        assert by_code[code].prerequisites == {"initiating_em_visit", "care_plan"}
    assert by_code["G0022"].add_on_to == "G0019"
    assert by_code["98960"].prerequisites == frozenset()


def test_every_community_support_but_transitional_rent_has_codes() -> None:
    without_codes = [cs.code for cs in community_supports() if not allowed_codes(cs.code, IN_2026)]
    assert without_codes == ["transitional_rent"]


def test_ecm_codes_allow_in_person_and_telehealth_modifier_sets() -> None:
    sets = {(rule.hcpcs, rule.modifiers) for rule in allowed_codes("ecm_clinical", IN_2026)}
    assert sets == {("G9008", frozenset({"U1"})), ("G9008", frozenset({"U1", "GQ"}))}


def test_unknown_service_code_raises() -> None:
    assert "chw" in service_codes()
    with pytest.raises(ValueError, match="unknown service code"):
        check_code("massage", "97124", [], IN_2026)
    with pytest.raises(ValueError, match="unknown service code"):
        allowed_codes("massage", IN_2026)
