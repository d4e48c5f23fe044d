"""Programs that rule out ECM, exclude it, or may run beside it."""

from __future__ import annotations

from datetime import date

import pytest

from shared.reference.exclusions import EcmRelation, ecm_conflicts, ecm_relation, program_codes
from shared.reference.facts import Marker

ON = date(2026, 2, 2)


@pytest.mark.parametrize(
    ("programs", "reasons"),
    [
        (set(), []),
        ({"medi_cal_ffs"}, [("ecm_not_eligible", "medi_cal_ffs")]),
        ({"medi_medi_snp"}, [("ecm_not_eligible", "medi_medi_snp")]),
        ({"hospice"}, [("ecm_not_eligible", "hospice")]),
        ({"pace"}, [("ecm_not_eligible", "pace")]),
        ({"palliative_care"}, [("ecm_not_eligible", "palliative_care")]),
        ({"mssp"}, [("ecm_or_program", "mssp")]),
        ({"assisted_living_waiver"}, [("ecm_or_program", "assisted_living_waiver")]),
        ({"chw"}, [("ecm_not_same_period", "chw")]),
        ({"ihss", "ccs", "regional_center", "cbas"}, []),
        ({"ihss", "hospice", "chw"}, [("ecm_not_same_period", "chw"), ("ecm_not_eligible", "hospice")]),
    ],
)
def test_ecm_conflicts(programs: set[str], reasons: list[tuple[str, str]]) -> None:
    assert [(r.code, r.program) for r in ecm_conflicts(programs, on=ON)] == reasons


def test_palliative_care_exclusion_is_unconfirmed() -> None:
    [reason] = ecm_conflicts({"palliative_care"}, on=ON)
    assert reason.marker is Marker.UNCONFIRMED
    [reason] = ecm_conflicts({"hospice"}, on=ON)
    assert reason.marker is Marker.PRACTICE


def test_unknown_program_code_raises() -> None:
    with pytest.raises(ValueError, match="unknown program codes"):
        ecm_conflicts({"hospice", "hopsice"}, on=ON)


def test_relations_cover_the_four_lists() -> None:
    counts = {relation: 0 for relation in EcmRelation}
    for code in program_codes():
        relation = ecm_relation(code, ON)
        assert relation is not None
        counts[relation] += 1
    assert counts == {
        EcmRelation.NOT_ELIGIBLE: 5,
        EcmRelation.ECM_OR_PROGRAM: 8,
        EcmRelation.ECM_AND_PROGRAM: 16,
        EcmRelation.NOT_SAME_PERIOD: 1,
    }


def test_program_codes_are_snake_case() -> None:
    for code in program_codes():
        assert code.isidentifier() and code == code.lower(), code
