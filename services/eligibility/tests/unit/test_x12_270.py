"""270 generation: zero rule violations, an independent parser (x12sdk) reads it back, and the checks catch
each kind of mistake."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from eligibility.x12.x270 import (
    Entity,
    InquiryBatch,
    SubscriberInquiry,
    build_270,
    clean,
    parse_270,
    transaction_sets,
    validate_270,
)
from x12sdk.io import X12ModelReader

from shared.x12.envelope import EnvelopeSpec, Party

CREATED = datetime(2026, 3, 2, 9, 5, tzinfo=UTC)
SPEC = EnvelopeSpec(sender=Party("ZZ", "CALHUB", "CALHUB"), receiver=Party("ZZ", "LACARE", "LACARE"),
                    interchange_control_number=42, group_control_number=42, functional_code="HS",
                    version="005010X279A1", created=CREATED)


def make_batch(count: int = 3, per_transaction: int = 99) -> InquiryBatch:
    return InquiryBatch(
        reference="eb_test", created=CREATED, source=Entity("L.A. Care Health Plan", "PI", "LACARE"),
        receiver=Entity("Golden State Care Hub", "XX", "1234567893"), originator_id="9CALHUB000",
        subscribers=[SubscriberInquiry(trace=f"chk_{i:04d}", cin=f"9{i:07d}A", last_name="Testperson",
                                       first_name="Peña", birth_date=date(1980, 1, 2), gender="F",
                                       service_date=date(2026, 3, 1)) for i in range(1, count + 1)],
        max_per_transaction=per_transaction)


def test_generated_270_breaks_no_rule_and_reads_back() -> None:
    text = build_270(SPEC, make_batch(250), line_breaks=True)
    assert validate_270(text) == []
    parsed = parse_270(text)
    assert len(parsed["transactions"]) == 3  # 99 + 99 + 52 members
    members = [m for t in parsed["transactions"] for s in t["information_sources"] for r in s["receivers"]
               for m in r["members"]]
    assert [m["traces"][0] for m in members] == [f"chk_{i:04d}" for i in range(1, 251)]
    assert members[0]["first_name"] == "PENA" and members[0]["service_types"] == ["30"]


def test_each_transaction_set_has_its_own_reference_its_first_check() -> None:
    parsed = parse_270(build_270(SPEC, make_batch(250)))
    references = [t["reference"] for t in parsed["transactions"]]
    assert references == ["chk_0001", "chk_0100", "chk_0199"]  # 99 + 99 + 52 members
    assert [reference for reference, _ in transaction_sets(make_batch(250))] == references  # the same every time


def test_generated_270_round_trips_through_x12sdk() -> None:
    text = build_270(SPEC, make_batch(5))
    with X12ModelReader(text) as reader:
        models = list(reader.models())
    assert len(models) == 1
    subscribers = models[0].loop_2000a[0].loop_2000b[0].loop_2000c
    assert [s.loop_2100c.nm1_segment.identification_code for s in subscribers] == [
        f"9{i:07d}A" for i in range(1, 6)]
    assert [s.trn_segment[0].reference_identification_1 for s in subscribers] == [
        f"chk_{i:04d}" for i in range(1, 6)]
    assert subscribers[0].loop_2100c.loop_2110c[0].eq_segment.service_type_code == ["30"]


def test_delimiters_in_names_never_reach_the_file() -> None:
    assert clean("O'Brien*Smith~Jr:^") == "O'BRIEN SMITH JR"


def test_refuses_an_empty_batch_or_a_wrong_envelope() -> None:
    with pytest.raises(ValueError, match="at least one member"):
        build_270(SPEC, make_batch(0))
    with pytest.raises(ValueError, match="GS01 HS"):
        build_270(EnvelopeSpec(SPEC.sender, SPEC.receiver, 1, 1, "HC", "005010X222A1", CREATED), make_batch(1))


VALID = build_270(SPEC, make_batch(2), line_breaks=True)


@pytest.mark.parametrize(("old", "new", "rule"), [
    ("NM1*IL*1*TESTPERSON*PENA****MI*90000001A", "NM1*IL*1*TESTPERSON*PENA****MI*9000001A", "cin_format"),
    ("NM1*IL*1*TESTPERSON*PENA****MI*90000001A", "NM1*IL*1*TESTPERSON*PENA", "member_id_required"),
    ("NM1*1P*2*GOLDEN STATE CARE HUB*****XX*1234567893", "NM1*1P*2*GOLDEN STATE CARE HUB*****XX*1234567890",
     "npi_check_digit"),
    ("NM1*PR*2*L.A. CARE HEALTH PLAN*****PI*LACARE", "NM1*ZZ*2*L.A. CARE HEALTH PLAN*****PI*LACARE", "nm1_entity"),
    ("BHT*0022*13*", "BHT*0022*11*", "bht_purpose"),
    ("DMG*D8*19800102*F", "DMG*D8*19801302*F", "dmg_birth_date"),
    ("DTP*291*D8*20260301", "DTP*472*D8*20260301", "dtp_qualifier"),
    ("HL*2*1*21*1", "HL*2*1*22*1", "hl_parent_level"),
    ("HL*3*2*22*0", "HL*3*2*22*1", "hl_child_code"),
    ("TRN*1*chk_0001*9CALHUB000", "TRN*2*chk_0001*9CALHUB000", "trn_type"),
    ("EQ*30", "EQ*ZZZ", "service_type_code"),
])
def test_each_broken_rule_is_reported_with_its_position(old: str, new: str, rule: str) -> None:
    broken = VALID.replace(old, new, 1)
    assert broken != VALID
    issues = validate_270(broken)
    assert rule in {i.rule for i in issues}
    issue = next(i for i in issues if i.rule == rule)
    assert issue.position > 0 and issue.segment
    assert "90000001A" not in issue.message and "TESTPERSON" not in issue.message  # no PHI in findings


def test_missing_eq_is_reported() -> None:
    broken = VALID.replace("EQ*30~\nHL*4", "HL*4", 1).replace("SE*19*", "SE*18*")
    assert "loop_2110c_required" in {i.rule for i in validate_270(broken)}


def test_broken_envelope_is_one_finding() -> None:
    issues = validate_270(VALID.replace("SE*19*0001", "SE*7*0001"))
    assert [(i.segment, i.rule) for i in issues] == [("SE", "envelope")]
