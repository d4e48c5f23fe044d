"""271 reading: one golden fixture per scenario, their meaning, AAA reasons in plain words, refusals; and the
`calhub x12 validate|parse` tools on the fixture files."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from eligibility.domain.enrollment import Observation
from eligibility.domain.responses import interpret
from eligibility.x12 import codes
from eligibility.x12.loops import X279Invalid
from eligibility.x12.x270 import Entity, InquiryBatch, SubscriberInquiry, build_270
from eligibility.x12.x271 import SubscriberAnswer, read_271, validate_271
from x12sdk.io import X12ModelReader

from calhub.cli import main
from shared.reference.plans import plan_named
from shared.x12.envelope import EnvelopeSpec, Party, build_interchange

FIXTURES = Path(__file__).parents[1] / "fixtures"
VALID = ["271_active.x12", "271_inactive.x12", "271_excluded_program.x12", "271_plan_changed.x12",
         "271_rejected.x12"]
AS_OF, AT = date(2026, 3, 2), datetime(2026, 3, 2, 17, tzinfo=UTC)
ORIGINATOR = "9CALHUB000"  # TRN03 of the hub's 270s (the fixtures echo it)


def text(name: str) -> str:
    return (FIXTURES / name).read_text()


def plan_of(value: str) -> str | None:
    plan = plan_named(value)
    return plan.code if plan else None


def meaning(name: str) -> tuple[tuple[Observation, ...], object]:
    (subscriber,) = read_271(text(name)).subscribers()
    answer = interpret(subscriber, mcp_code="lacare", originator_id=ORIGINATOR, as_of=AS_OF, observed_at=AT,
                       plan_of=plan_of)
    return answer.observations, answer.rejected


@pytest.mark.parametrize("name", VALID)
def test_fixture_is_valid(name: str) -> None:
    assert validate_271(text(name)) == []


@pytest.mark.parametrize("name", ["271_active.x12", "271_inactive.x12", "271_excluded_program.x12",
                                  "271_plan_changed.x12"])
def test_fixture_reads_in_x12sdk_too(name: str) -> None:
    # An independent parser agrees the fixture is a 271. (271_rejected is left out: x12sdk 2.2 checks 2100C AAA03
    # against the 2100B code list, so it refuses 75 "subscriber not found", which X279A1 lists for 2100C.)
    with X12ModelReader(text(name)) as reader:
        assert len(list(reader.models())) == 1


def test_active() -> None:
    (observation,), rejected = meaning("271_active.x12")
    assert rejected is None
    assert (observation.active, observation.mcp_code, observation.span_start) == (True, "lacare", date(2025, 1, 1))


def test_inactive() -> None:
    (observation,), _ = meaning("271_inactive.x12")
    assert (observation.active, observation.mcp_code, observation.span_end) == (False, "lacare", date(2026, 2, 28))
    assert observation.reason == "inactive"


def test_other_coverage_marks_the_excluding_program() -> None:
    (observation,), _ = meaning("271_excluded_program.x12")
    assert observation.active and observation.mcp_code == "lacare"
    assert [(p.code, p.start) for p in observation.programs] == [("hospice", date(2026, 2, 15))]


def test_plan_changed_is_enrollment_with_the_other_mcp() -> None:
    (observation,), _ = meaning("271_plan_changed.x12")
    assert (observation.active, observation.mcp_code, observation.span_start) == (True, "healthnet",
                                                                                  date(2026, 3, 1))


def traced(*trns: str, benefits: tuple[str, ...] = ("EB*1*IND*30*MC",)) -> SubscriberAnswer:
    """A member answer carrying these TRN segments, then these benefit loop segments."""
    body = [["BHT", "0022", "11", "eb_test", "20260302", "0800"], ["HL", "1", "", "20", "1"],
            ["NM1", "PR", "2", "L.A. CARE", "", "", "", "", "PI", "LACARE"], ["HL", "2", "1", "21", "1"],
            ["NM1", "1P", "2", "HUB", "", "", "", "", "XX", "1234567893"], ["HL", "3", "2", "22", "0"],
            *(trn.split("*") for trn in trns), ["NM1", "IL", "1", "TESTPERSON", "ANA", "", "", "", "MI", "90000001A"],
            *(segment.split("*") for segment in benefits)]
    spec = EnvelopeSpec(sender=Party("ZZ", "LACARE", "LACARE"), receiver=Party("ZZ", "CALHUB", "CALHUB"),
                        interchange_control_number=7, group_control_number=7, functional_code="HB",
                        version="005010X279A1", created=AT)
    (subscriber,) = read_271(build_interchange(spec, [body])).subscribers()
    return subscriber


@pytest.mark.parametrize(("trns", "trace", "others"), [
    # The MCP's own trace first (TRN01=1 under its TRN03): never ours, whatever its position.
    (("TRN*1*PAYERTRACE77*9LACARE001", "TRN*2*chk_ours*9CALHUB000"), "chk_ours", ()),
    (("TRN*2*chk_ours*9CALHUB000", "TRN*1*PAYERTRACE77*9LACARE001"), "chk_ours", ()),
    # A clearinghouse's trace echoed under its own TRN03 is only a candidate; so is a TRN03 the MCP rewrote.
    (("TRN*2*CLEARING1*9CLEARING0", "TRN*2*chk_ours*9CALHUB000"), "chk_ours", ("CLEARING1",)),
    (("TRN*2*chk_ours*1999999999",), None, ("chk_ours",)),
    (("TRN*1*chk_ours*9CALHUB000",), None, ("chk_ours",)),  # our echo mislabelled as the MCP's own
    (("TRN*1*PAYERTRACE77*9LACARE001",), None, ()),  # nothing of ours: an exception for the caller
])
def test_answer_names_the_check_by_our_echoed_trace(trns: tuple[str, ...], trace: str | None,
                                                     others: tuple[str, ...]) -> None:
    answer = interpret(traced(*trns), mcp_code="lacare", originator_id=ORIGINATOR, as_of=AS_OF, observed_at=AT,
                       plan_of=plan_of)
    assert (answer.trace, answer.other_traces) == (trace, others)


@pytest.mark.parametrize(("benefits", "programs"), [
    (("EB*1*IND*30*MC", "MSG*NO HOSPICE"), []),
    (("EB*1*IND*30*MC", "MSG*MEMBER NOT ENROLLED IN PACE"), []),
    (("EB*1*IND*30*MC*NON-HOSPICE PLAN",), []),
    (("EB*1*IND*30*MC", "MSG*PACEMAKER SUPPLIES COVERED"), []),  # a word, not the PACE program
    (("EB*1*IND*30*MC", "MSG*HOSPICE ELECTED"), ["hospice"]),
    (("EB*1*IND*30*MC", "MSG*NO SHARE OF COST", "MSG*ENROLLED IN PACE"), ["pace"]),  # each MSG read alone
    (("EB*1*IND*30*MC*PACE",), ["pace"]),
    (("EB*1*IND*30*MC", "MSG*NOT ELIGIBLE - HOSPICE"), ["hospice"]),  # a denial of something else, then the stay
    (("EB*1*IND*30*MC", "MSG*NO SHARE OF COST, HOSPICE"), ["hospice"]),
    (("EB*1*IND*30*MC", "MSG*NO ACTIVE HOSPICE"), []),
    (("EB*1*IND*30*MC", "MSG*NOT CURRENTLY IN HOSPICE"), []),
    (("EB*1*IND*30*MC", "MSG*NO CURRENT HOSPICE ELECTION"), []),
])
def test_a_program_named_only_to_be_denied_flags_nothing(benefits: tuple[str, ...], programs: list[str]) -> None:
    answer = interpret(traced("TRN*2*chk_1*9CALHUB000", benefits=benefits), mcp_code="lacare",
                       originator_id=ORIGINATOR, as_of=AS_OF, observed_at=AT, plan_of=plan_of)
    (observation,) = answer.observations
    assert [p.code for p in observation.programs] == programs


def test_rejection_in_plain_words() -> None:
    observations, rejected = meaning("271_rejected.x12")
    assert observations == ()
    assert rejected is not None
    assert (rejected.reason_code, rejected.loop, rejected.follow_up, rejected.retry) == (
        "75", "2100C", "Correct the inquiry and send it again", False)
    assert "no member with this CIN" in rejected.reason


def test_every_loop_reject_code_has_a_plain_reason() -> None:
    for loop, allowed in codes.AAA03_BY_LOOP.items():
        for code in allowed:
            reason = codes.reject_reason(code)
            assert reason.description != "Unknown reject reason", (loop, code)
            assert reason.plain and not reason.plain.endswith(".")
    assert codes.reject_reason("42").retry and not codes.reject_reason("72").retry
    assert "reason code ZZ" in codes.reject_reason("ZZ").plain


def test_malformed_file_is_refused_with_every_finding() -> None:
    with pytest.raises(X279Invalid) as caught:
        read_271(text("271_malformed.x12"))
    rules = [(i.position, i.rule) for i in caught.value.issues]
    assert rules == [(16, "eb01_code"), (17, "dtp_qualifier"), (17, "dtp_date"), (18, "hl_parent")]
    assert "90000002A" not in str(caught.value)


def test_truncated_file_is_an_envelope_finding() -> None:
    issues = validate_271(text("271_active.x12").split("SE*")[0])
    assert [i.rule for i in issues] == ["envelope"]


def test_cli_validate_accepts_each_fixture(capsys: pytest.CaptureFixture[str]) -> None:
    for name in VALID:
        assert main(["x12", "validate", str(FIXTURES / name)]) == 0
        assert json.loads(capsys.readouterr().out) == {"valid": True, "errors": []}


def test_cli_validate_lists_errors_with_positions(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["x12", "validate", str(FIXTURES / "271_malformed.x12")]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["valid"] is False
    assert [(e["position"], e["segment"], e["rule"]) for e in report["errors"]] == [
        (16, "EB", "eb01_code"), (17, "DTP", "dtp_qualifier"), (17, "DTP", "dtp_date"), (18, "HL", "hl_parent")]


def test_cli_parse_271(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["x12", "parse", str(FIXTURES / "271_rejected.x12")]) == 0
    parsed = json.loads(capsys.readouterr().out)
    member = parsed["transactions"][0]["information_sources"][0]["receivers"][0]["members"][0]
    assert member["rejections"][0]["reason_code"] == "75"
    assert member["rejections"][0]["plain_reason"].startswith("The plan has no member")


def test_cli_parse_refuses_a_malformed_271(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["x12", "parse", str(FIXTURES / "271_malformed.x12")]) == 1
    error = json.loads(capsys.readouterr().out)["error"]
    assert error["position"] == 16 and error["segment"] == "EB" and "4 issue(s)" in error["message"]


def make_270() -> str:
    spec = EnvelopeSpec(sender=Party("ZZ", "CALHUB", "CALHUB"), receiver=Party("ZZ", "LACARE", "LACARE"),
                        interchange_control_number=42, group_control_number=42, functional_code="HS",
                        version="005010X279A1", created=AT)
    batch = InquiryBatch(reference="eb_cli", created=AT, source=Entity("L.A. Care", "PI", "LACARE"),
                         receiver=Entity("Hub", "XX", "1234567893"), originator_id="9CALHUB000",
                         subscribers=[SubscriberInquiry("chk_1", "90000001A", "Testperson", "Ana",
                                                        date(1980, 1, 2), date(2026, 3, 1))])
    return build_270(spec, batch, line_breaks=True)


def test_cli_validates_and_parses_a_270(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "inquiry.x12"
    valid_270 = make_270()
    path.write_text(valid_270)
    assert main(["x12", "validate", str(path)]) == 0
    capsys.readouterr()
    assert main(["x12", "parse", str(path)]) == 0
    parsed = json.loads(capsys.readouterr().out)
    assert parsed["transaction_set"] == "270" and parsed["interchange_control_number"] == "000000042"
    path.write_text(valid_270.replace("EQ*30", "EQ*ZZZ", 1))
    assert main(["x12", "validate", str(path)]) == 1
    assert json.loads(capsys.readouterr().out)["errors"][0]["rule"] == "service_type_code"
