"""999 and 277CA fixtures (accepted, accepted with errors, rejected, partial): valid per pyx12, parsed right."""

from __future__ import annotations

from pathlib import Path

import pytest
from claims.x12.validation import guide_issues
from claims.x12.x277ca import ClaimAcknowledgmentError, parse_277ca
from claims.x12.x999 import AcknowledgmentError, parse_999

from shared.x12.segments import X12SyntaxError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def fixture(kind: str, name: str) -> str:
    return (FIXTURES / kind / f"{name}.x12").read_text()


@pytest.mark.parametrize(("kind", "name"), [("999", n) for n in ("accepted", "accepted_with_errors", "rejected",
                                                                  "partial", "group_rejected")]
                         + [("277ca", n) for n in ("accepted", "rejected", "partial")])
def test_fixtures_are_valid_per_the_implementation_guides(kind: str, name: str) -> None:
    assert guide_issues(fixture(kind, name)) == []


@pytest.mark.parametrize(("name", "group_code", "sets"), [
    ("accepted", "A", [("0001", "A", True)]),
    ("accepted_with_errors", "E", [("0001", "E", True)]),
    ("rejected", "R", [("0001", "R", False)]),
    ("partial", "P", [("0001", "A", True), ("0002", "R", False)]),
    ("group_rejected", "R", []),  # AK1 + AK9 R with no AK2: the whole group, no set named
])
def test_999_codes(name: str, group_code: str, sets: list[tuple[str, str, bool]]) -> None:
    (ack,) = parse_999(fixture("999", name))
    assert ack.functional_code == "HC" and ack.group_control_number == "7"
    assert ack.code == group_code
    assert [(s.control_number, s.code, s.accepted) for s in ack.sets] == sets


def test_999_reasons_name_segment_loop_and_element_without_values() -> None:
    (ack,) = parse_999(fixture("999", "rejected"))
    reasons = ack.sets[0].reasons()
    assert reasons[0] == "999 IK5 R: rejected"
    assert "IK5 5: one or more segments in error" in reasons
    assert "NM1 at segment 17 (loop 2010): segment has data element errors; element 9: required data element missing" \
        in reasons


@pytest.mark.parametrize(("name", "rejected"), [("accepted", False), ("partial", False), ("rejected", True),
                                              ("group_rejected", True)])
def test_999_group_rejection_and_its_reasons(name: str, rejected: bool) -> None:
    (ack,) = parse_999(fixture("999", name))
    assert ack.rejected is rejected
    if name == "group_rejected":
        assert ack.reasons() == ["999 AK9 R: rejected", "AK9 5: number of included transaction sets does not match "
                                 "actual count"]
    for code in ("M", "W", "X"):  # the other AK901 rejections
        assert parse_999(fixture("999", "group_rejected").replace("AK9*R*", f"AK9*{code}*"))[0].rejected


@pytest.mark.parametrize(("text", "error"), [
    (fixture("999", "accepted").replace("AK9*A*1*1*1", "AK9*Q*1*1*1"), AcknowledgmentError),
    (fixture("999", "accepted").replace("GS*FA", "GS*HC"), AcknowledgmentError),
    (fixture("999", "accepted").replace("SE*6", "SE*7"), X12SyntaxError),
])
def test_999_malformed(text: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        parse_999(text)


@pytest.mark.parametrize(("name", "outcomes"), [
    ("accepted", {"C0000000000000000001": ("accepted", "PCN0000001"),
                  "C0000000000000000002": ("accepted", "PCN0000002")}),
    ("rejected", {"C0000000000000000001": ("rejected", None)}),
    ("partial", {"C0000000000000000001": ("accepted", "PCN0000001"), "C0000000000000000002": ("rejected", None),
                 "C0000000000000000003": ("rejected", None)}),
])
def test_277ca_outcomes(name: str, outcomes: dict[str, tuple[str, str | None]]) -> None:
    parsed = parse_277ca(fixture("277ca", name))
    assert {c.claim_id: (c.outcome, c.payer_claim_number) for c in parsed.claims} == outcomes


def test_277ca_reasons_describe_category_status_and_entity() -> None:
    (claim,) = parse_277ca(fixture("277ca", "rejected")).claims
    assert claim.reasons() == ["277CA A7:562:85 acknowledgement: rejected for invalid information - entity's "
                               "National Provider Identifier (NPI) (billing provider)"]


def test_277ca_as_dict_carries_no_member_data() -> None:
    data = str(parse_277ca(fixture("277ca", "partial")).as_dict())
    assert "TESTPERSON" not in data and "9000000" not in data


def test_277ca_without_claim_status_is_refused() -> None:
    text = fixture("277ca", "rejected")
    lines = text.splitlines()
    kept = [line for line in lines if not line.startswith("STC*A7")]
    kept = [f"SE*{int(line.split('*')[1]) - 1}*0001~" if line.startswith("SE*") else line for line in kept]
    with pytest.raises(ClaimAcknowledgmentError):
        parse_277ca("\n".join(kept) + "\n")
