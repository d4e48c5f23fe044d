"""X12 envelopes: separators from ISA, control numbers and counts, clear errors with positions."""

from __future__ import annotations

from datetime import datetime

import pytest

from shared.x12.envelope import (
    EnvelopeSpec,
    Party,
    build_interchange,
    build_interchange_rendered,
    parse_interchange,
)
from shared.x12.segments import Delimiters, X12SyntaxError, detect_delimiters

SPEC = EnvelopeSpec(sender=Party("ZZ", "CALHUBHUB", "CALHUB"), receiver=Party("ZZ", "MCPTEST", "MCPTEST"),
                    interchange_control_number=42, group_control_number=7, functional_code="HS",
                    version="005010X279A1", created=datetime(2026, 12, 31, 23, 59))
BODY = [["BHT", "0022", "13", "B1", "20261231", "2359"], ["HL", "1", "", "20", "1"]]


def test_isa_is_fixed_width_and_round_trips() -> None:
    text = build_interchange(SPEC, [BODY, BODY])
    assert len(text.split("~")[0]) + 1 == 106
    interchange = parse_interchange(text)
    assert interchange.control_number == "000000042"
    assert interchange.sender_id == "CALHUBHUB"
    group = interchange.groups[0]
    assert group.version == "005010X279A1" and group.functional_code == "HS"
    assert [t.control_number for t in group.transactions] == ["0001", "0002"]
    assert all(t.code == "270" for t in group.transactions)


def test_declared_separators_are_honoured() -> None:
    d = Delimiters(element="|", repetition="!", component=">", segment="\n")
    text = build_interchange(SPEC, [BODY], d)
    assert detect_delimiters(text) == d
    assert parse_interchange(text).groups[0].transactions[0].segments[1].get(1) == "0022"


def test_trailing_empty_elements_are_dropped() -> None:
    text = build_interchange(SPEC, [[["REF", "G1", "AUTH1", "", ""]]])
    assert "REF*G1*AUTH1~" in text


@pytest.mark.parametrize(("mutate", "rule"), [
    (lambda t: t.replace("SE*4*0001", "SE*5*0001"), "SE01"),
    (lambda t: t.replace("SE*4*0001", "SE*4*0002"), "SE02"),
    (lambda t: t.replace("GE*1*7", "GE*1*8"), "GE02"),
    (lambda t: t.replace("IEA*1*000000042", "IEA*1*000000043"), "IEA02"),
    (lambda t: t.replace("IEA*1*000000042~", ""), "without IEA"),
    (lambda t: t[5:], "must start with an ISA"),
    (lambda t: t.replace("SE*4*0001~", ""), "inside a transaction set"),
])
def test_broken_envelopes_are_refused_with_the_rule(mutate, rule: str) -> None:  # type: ignore[no-untyped-def]
    text = mutate(build_interchange(SPEC, [BODY]))
    with pytest.raises(X12SyntaxError) as caught:
        parse_interchange(text)
    assert rule in caught.value.message


def test_control_number_range_is_enforced() -> None:
    with pytest.raises(ValueError, match="ISA13"):
        build_interchange(EnvelopeSpec(**{**SPEC.__dict__, "interchange_control_number": 1_000_000_000}), [BODY])


@pytest.mark.parametrize("line_breaks", [False, True])
def test_rendered_segments_make_the_same_interchange(line_breaks: bool) -> None:
    bodies = [BODY, [["REF", "G1", "AUTH1", "", ""], ["NM1", "IL", "1", "", "", "", "", "", "MI", "9"]], []]
    rendered = [["*".join(elements) for elements in body] for body in bodies]
    expected = build_interchange(SPEC, bodies, line_breaks=line_breaks, first_st=3)
    assert build_interchange_rendered(SPEC, iter(rendered), line_breaks=line_breaks, first_st=3) == expected
    assert "REF*G1*AUTH1~" in expected


def test_rendered_segments_with_declared_separators() -> None:
    d = Delimiters(element="|", repetition="!", component=">", segment="\n")
    bodies = [[["REF", "G1", "AUTH1", ""], ["HL", "1", "", "20", "1"]]]
    rendered = [["|".join(elements) for elements in body] for body in bodies]
    for line_breaks in (False, True):
        assert (build_interchange_rendered(SPEC, rendered, d, line_breaks=line_breaks)
                == build_interchange(SPEC, bodies, d, line_breaks=line_breaks))


def test_rendered_segment_with_a_terminator_is_refused() -> None:
    with pytest.raises(ValueError, match="terminator"):
        build_interchange_rendered(SPEC, [["BHT*0022*13*B1~HL*1"]])
