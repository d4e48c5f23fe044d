"""Denial classification from the effective-dated CARC/RARC table."""

from __future__ import annotations

from datetime import date

import pytest
from claims.domain.denials import (
    AdjustmentKind,
    CodeTable,
    CodeTableError,
    DenialCategory,
    classify_denial,
    default_code_table,
)

ON = date(2026, 10, 15)
REQUIRED_CARCS = ["1", "2", "3", "4", "5", "6", "11", "16", "18", "22", "23", "27", "29", "31", "45", "50", "96",
                  "97", "109", "119", "181", "182", "183", "197", "204", "242", "252"]
REQUIRED_RARCS = ["N30", "N290", "M15", "MA130", "N362", "N522", "M62", "N4", "N54"]


def test_packaged_table_has_the_common_codes() -> None:
    table = default_code_table()
    assert [c for c in REQUIRED_CARCS if table.carc(c, ON) is None] == []
    assert [c for c in REQUIRED_RARCS if table.rarc(c, ON) is None] == []


@pytest.mark.parametrize(("cas", "remarks", "category", "deciding"), [
    ([("CO", "27")], [], DenialCategory.ELIGIBILITY, "CO-27"),
    ([("CO", "31")], [], DenialCategory.ELIGIBILITY, "CO-31"),
    ([("CO", "109")], [], DenialCategory.ELIGIBILITY, "CO-109"),
    ([("CO", "197")], [], DenialCategory.AUTHORIZATION, "CO-197"),
    ([("CO", "15")], ["M62"], DenialCategory.AUTHORIZATION, "CO-15"),
    ([("CO", "4")], [], DenialCategory.CODING, "CO-4"),
    ([("CO", "181")], [], DenialCategory.CODING, "CO-181"),
    ([("CO", "18")], [], DenialCategory.DUPLICATE, "CO-18"),
    ([("CO", "29")], [], DenialCategory.TIMELY_FILING, "CO-29"),
    # A generic CARC yields to its remark code.
    ([("CO", "16")], ["N290"], DenialCategory.MISSING_INFORMATION, "N290"),
    ([("CO", "16")], ["M62"], DenialCategory.AUTHORIZATION, "M62"),
    ([("CO", "16")], ["N30"], DenialCategory.ELIGIBILITY, "N30"),
    ([("CO", "252")], [], DenialCategory.MISSING_INFORMATION, "CO-252"),
    ([("CO", "A1")], ["N522"], DenialCategory.DUPLICATE, "N522"),
    ([("CO", "96")], ["N30"], DenialCategory.ELIGIBILITY, "N30"),
    # Precedence: a duplicate makes a coding fix moot; eligibility beats authorization.
    ([("CO", "4"), ("CO", "18")], [], DenialCategory.DUPLICATE, "CO-18"),
    ([("CO", "197"), ("CO", "27")], [], DenialCategory.ELIGIBILITY, "CO-27"),
    # The contractual write-off never decides while a denial code is present.
    ([("CO", "45"), ("CO", "197")], [], DenialCategory.AUTHORIZATION, "CO-197"),
    ([("PR", "204")], [], DenialCategory.ELIGIBILITY, "PR-204"),
])
def test_classification(cas: list[tuple[str, str]], remarks: list[str], category: DenialCategory,
                        deciding: str) -> None:
    reason = classify_denial(cas, remarks, ON)
    assert (reason.category, reason.deciding_code) == (category, deciding)
    assert reason.next_action and reason.unknown_codes == ()


def test_unknown_codes_are_listed_and_classify_as_other() -> None:
    reason = classify_denial([("CO", "Z9")], ["X999"], ON)
    assert reason.category is DenialCategory.OTHER
    assert reason.unknown_codes == ("CO-Z9", "X999") and "update" in reason.next_action
    none = classify_denial([], [], ON)
    assert none.category is DenialCategory.OTHER and "no reason code" in none.next_action


def test_adjustment_kinds_decide_denial_versus_write_off() -> None:
    table = default_code_table()
    assert table.adjustment_kind("45", ON) is AdjustmentKind.CONTRACTUAL
    assert table.adjustment_kind("96", ON) is AdjustmentKind.INFORMATIONAL
    assert table.adjustment_kind("2", ON) is AdjustmentKind.PATIENT_RESPONSIBILITY
    assert table.adjustment_kind("197", ON) is AdjustmentKind.DENIAL
    assert table.adjustment_kind("ZZZ", ON) is AdjustmentKind.DENIAL  # unknown: someone must look


CARC_HEADER = "code,kind,category,defer_to_remark,description,next_action,effective_from,effective_to,marker\n"
RARC_HEADER = "code,category,description,next_action,effective_from,effective_to,marker\n"


def test_codes_are_effective_dated() -> None:
    table = CodeTable.from_csv(
        CARC_HEADER + "77,denial,coding,no,Old meaning,Fix the code,,2026-06-30,practice\n"
        "77,denial,eligibility,no,New meaning,Check eligibility,2026-07-01,,practice\n",
        RARC_HEADER + "N9,missing_information,Gone,Add it,2020-01-01,2025-12-31,practice\n")
    assert classify_denial([("CO", "77")], [], date(2026, 6, 30), table).category is DenialCategory.CODING
    assert classify_denial([("CO", "77")], [], date(2026, 7, 1), table).category is DenialCategory.ELIGIBILITY
    assert classify_denial([("CO", "77")], ["N9"], date(2026, 7, 1), table).unknown_codes == ("N9",)


@pytest.mark.parametrize(("carc", "message"), [
    ("77,denial,coding,no,A,B,,,practice\n77,denial,coding,no,A,B,2026-01-01,,practice\n", "overlaps"),
    ("77,denial,nonsense,no,A,B,,,practice\n", "unknown category"),
    ("77,denial,coding,maybe,A,B,,,practice\n", "defer_to_remark"),
    ("77,denial,coding,no,A,,,,practice\n", "next_action"),
    ("77,denial,coding,no,A,B,2026-02-01,2026-01-01,practice\n", "before"),
    ("7 7,denial,coding,no,A,B,,,practice\n", "1-5 letters"),
])
def test_malformed_tables_are_refused_naming_the_line(carc: str, message: str) -> None:
    with pytest.raises(CodeTableError, match=message) as caught:
        CodeTable.from_csv(CARC_HEADER + carc, RARC_HEADER)
    assert "carc.csv line" in str(caught.value)
