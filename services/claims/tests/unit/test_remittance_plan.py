"""835 reconciliation plans, one golden fixture per scenario: balance, duplicates, matching, postings."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from claims.domain.denials import DenialCategory
from claims.domain.remittance import (
    ClaimLine,
    ClaimOutcome,
    ClaimRecord,
    ExceptionReason,
    FilePlan,
    FileStatus,
    LineOutcome,
    PostingKind,
    PriorPosting,
    ProviderAdjustmentKind,
    RemittanceStatus,
    SettlementState,
    balance,
    claim_references,
    file_sha256,
    plan_remittance_file,
    planned_posting_id,
    remittance_key,
)
from claims.x12.x835 import parse_835

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "835"
MCP = "testplan"
D = Decimal


def make_claim(claim_id: str, *lines: tuple[str, str, tuple[str, ...], date, str], mcp: str = MCP,
               cbo: str = "cbo_a", postings: tuple[PriorPosting, ...] = (),
               payer_numbers: tuple[str, ...] = ()) -> ClaimRecord:
    built = tuple(ClaimLine(line_id, code, mods, day, D(charge)) for line_id, code, mods, day, charge in lines)
    return ClaimRecord(claim_id, mcp, cbo, f"mbr_{claim_id}", sum((line.charge for line in built), D(0)), built,
                       payer_numbers, postings)


CLAIMS = {c.claim_id: c for c in [
    make_claim("CLM-1001", ("CLM-1001-1", "G9008", ("U1",), date(2026, 9, 15), "350")),
    make_claim("CLM-1002", ("CLM-1002-1", "G9012", ("U2",), date(2026, 9, 10), "250"),
               ("CLM-1002-2", "G9012", ("U2",), date(2026, 9, 17), "250"), cbo="cbo_b"),
    make_claim("CLM-1003", ("CLM-1003-1", "T1016", ("U8",), date(2026, 9, 12), "300")),
    make_claim("CLM-1004", ("CLM-1004-1", "G9008", ("U1",), date(2026, 9, 14), "350")),
    make_claim("CLM-1005", ("CLM-1005-1", "H0043", ("U6",), date(2026, 10, 1), "200")),
    make_claim("CLM-1006", ("CLM-1006-1", "G9012", ("U8",), date(2026, 9, 13), "100")),
    make_claim("CLM-1007", ("CLM-1007-1", "G9008", ("U1",), date(2026, 8, 25), "350")),
    make_claim("CLM-1008", ("CLM-1008-1", "G9008", ("U1",), date(2026, 9, 1), "350")),
    make_claim("CLM-1009", ("CLM-1009-1", "G9008", ("U1",), date(2026, 10, 1), "350")),
    make_claim("CLM-1010", ("CLM-1010-1", "T2041", ("U6",), date(2026, 10, 2), "200"),
               ("CLM-1010-2", "T2041", ("U6",), date(2026, 10, 9), "200")),
    make_claim("CLM-1011", ("CLM-1011-1", "G9008", ("U1",), date(2026, 10, 3), "350")),
    make_claim("CLM-1012", ("CLM-1012-1", "G9008", ("U1",), date(2026, 10, 4), "350")),
]}


def plan(name: str, claims: dict[str, ClaimRecord] | None = None, **kwargs: object) -> FilePlan:
    data = (FIXTURES / name).read_bytes()
    parsed = parse_835(data.decode())
    return plan_remittance_file(parsed, CLAIMS if claims is None else claims, sha256=file_sha256(data),
                                mcp_code=MCP, **kwargs)  # type: ignore[arg-type]


def without(text: str, segment: str) -> str:
    """The interchange without one segment, SE01 recounted."""
    assert segment in text
    text = text.replace(segment, "", 1)
    head, _, rest = text.partition("\nSE*")
    count, _, tail = rest.partition("*")
    return f"{head}\nSE*{int(count) - 1}*{tail}"


def every_dollar_lands(file_plan: FilePlan) -> None:
    """Posted CLP04 + CLP04 in exceptions − ΣPLB = BPR02: nothing lost, nothing counted twice."""
    for remittance in file_plan.remittances:
        plb = sum((a.amount for a in remittance.provider_adjustments), D(0))
        assert remittance.posted_amount + remittance.exception_amount - plb == remittance.payment_amount


def test_full_payment_posts_paid() -> None:
    result = plan("full_payment.x12")
    assert result.status is FileStatus.ACCEPTED
    remittance = result.remittances[0]
    assert remittance.status is RemittanceStatus.POST and remittance.balance.balanced
    (posting,) = remittance.postings
    assert (posting.claim_id, posting.kind, posting.outcome) == ("CLM-1001", PostingKind.PAYMENT, ClaimOutcome.PAID)
    assert posting.paid == D(350) and posting.denial is None and posting.payer_claim_number == "PCN1001"
    assert [line.line_id for line in posting.lines] == ["CLM-1001-1"]
    assert remittance.settlements[0].state is SettlementState.PAID
    assert (remittance.trace_number, remittance.payment_amount) == ("EFT0001", D(350))
    every_dollar_lands(result)


def test_partial_payment_with_co45_is_paid_with_a_contractual_write_off() -> None:
    remittance = plan("partial_co45.x12").remittances[0]
    (posting,) = remittance.postings
    assert posting.outcome is ClaimOutcome.PAID and posting.denial is None
    assert (posting.charge, posting.paid, posting.adjustment_total) == (D(500), D(400), D(100))
    assert posting.cbo_organization_id == "cbo_b" and posting.patient_responsibility == 0
    assert all(line.outcome is LineOutcome.PAID for line in posting.lines)


def test_denials_carry_category_and_next_action_from_rarc() -> None:
    remittance = plan("denial_rarc.x12").remittances[0]
    missing, ineligible = remittance.postings
    assert missing.outcome is ClaimOutcome.DENIED and missing.denial is not None
    # CO-16 is generic: the remark N290 (rendering NPI) decides.
    assert missing.denial.category is DenialCategory.MISSING_INFORMATION
    assert missing.denial.deciding_code == "N290" and "NM1*82" in missing.denial.next_action
    assert ineligible.denial is not None and ineligible.denial.category is DenialCategory.ELIGIBILITY
    assert [line.outcome for line in missing.lines] == [LineOutcome.DENIED]
    assert missing.lines[0].denial is not None and missing.lines[0].denial.deciding_code == "N290"
    assert ineligible.lines == () and ineligible.denial.deciding_code == "CO-27"
    assert ineligible.denial.codes == ("CO-27", "N30")
    assert [s.state for s in remittance.settlements] == [SettlementState.DENIED, SettlementState.DENIED]
    every_dollar_lands(plan("denial_rarc.x12"))


def test_a_denied_claim_denies_lines_the_payer_did_not_repeat_in_svc() -> None:
    # CLM-1003 as billed with a second line; the 835 (CLP02 = 4) lists only the first in an SVC loop.
    claims = {**CLAIMS, "CLM-1003": make_claim(
        "CLM-1003", ("CLM-1003-1", "T1016", ("U8",), date(2026, 9, 12), "300"),
        ("CLM-1003-2", "T1016", ("U8",), date(2026, 9, 19), "300"))}
    remittance = plan("denial_rarc.x12", claims).remittances[0]
    denied = remittance.postings[0]
    assert denied.line_ids == ("CLM-1003-1", "CLM-1003-2") and denied.paid_line_ids == ()
    assert remittance.settlements[0].state is SettlementState.DENIED  # not "pending": the claim is denied
    assert remittance.settlements[0].lines_pending == ()


def test_zero_pay_co96_reporting_line_is_not_a_denial() -> None:
    (posting,) = plan("zero_pay_reporting.x12").remittances[0].postings
    assert posting.paid == 0
    assert posting.outcome is ClaimOutcome.REPORTING_ONLY and posting.denial is None
    assert posting.lines[0].outcome is LineOutcome.REPORTING_ONLY


def test_the_same_zero_pay_with_clp02_4_is_a_denial() -> None:
    text = (FIXTURES / "zero_pay_reporting.x12").read_text().replace("CLP*CLM-1006*1*", "CLP*CLM-1006*4*")
    result = plan_remittance_file(parse_835(text), CLAIMS, sha256="0" * 64, mcp_code=MCP)
    (posting,) = result.remittances[0].postings
    assert posting.outcome is ClaimOutcome.DENIED and posting.denial is not None


PAID_BEFORE = PriorPosting("post-1", "PCN1001", PostingKind.PAYMENT, ClaimOutcome.PAID, D(350),
                           ("CLM-1001-1",), ("CLM-1001-1",))


def test_reversal_undoes_the_prior_posting_and_the_correction_posts_on_top() -> None:
    claims = {**CLAIMS, "CLM-1001": make_claim("CLM-1001", ("CLM-1001-1", "G9008", ("U1",), date(2026, 9, 15),
                                                            "350"), postings=(PAID_BEFORE,))}
    result = plan("reversal_correction.x12", claims)
    remittance = result.remittances[0]
    reversal, correction, other = remittance.postings
    assert (reversal.kind, reversal.outcome, reversal.paid) == (PostingKind.REVERSAL, ClaimOutcome.REVERSED, D(-350))
    assert reversal.reverses_posting_id == "post-1"
    assert (correction.kind, correction.paid, correction.payer_claim_number) == (PostingKind.CORRECTION, D(300),
                                                                                 "PCN1001C")
    assert other.kind is PostingKind.PAYMENT
    settlement = {s.claim_id: s for s in remittance.settlements}["CLM-1001"]
    assert settlement.paid_total == D(300) and settlement.state is SettlementState.PAID
    assert remittance.exceptions == ()
    every_dollar_lands(result)


def paid_in_parts(*parts: tuple[str, str, str]) -> dict[str, ClaimRecord]:
    """CLM-1002 with prior payments (posting id, amount, line) all under payer claim number PCN1002."""
    postings = tuple(PriorPosting(posting_id, "PCN1002", PostingKind.PAYMENT, ClaimOutcome.PAID, D(amount),
                                  (line,), (line,)) for posting_id, amount, line in parts)
    return {**CLAIMS, "CLM-1002": CLAIMS["CLM-1002"]._replace(postings=postings)}


def test_a_whole_claim_reversal_undoes_every_posting_of_a_claim_paid_in_parts() -> None:
    claims = paid_in_parts(("pay-1", "250", "CLM-1002-1"), ("pay-2", "250", "CLM-1002-2"))
    result = plan("split_reversal_correction.x12", claims)
    remittance = result.remittances[0]
    reversal, correction, _ = remittance.postings
    assert (reversal.kind, reversal.paid, reversal.reverses_posting_ids) == (
        PostingKind.REVERSAL, D(-500), ("pay-1", "pay-2"))
    assert (correction.kind, correction.paid) == (PostingKind.CORRECTION, D(400))
    settlement = {s.claim_id: s for s in remittance.settlements}["CLM-1002"]
    assert (settlement.state, settlement.paid_total) == (SettlementState.PAID, D(400))
    assert remittance.exceptions == ()
    every_dollar_lands(result)


def test_a_reversal_two_sets_of_postings_add_up_to_goes_to_exceptions_as_ambiguous() -> None:
    claims = paid_in_parts(("pay-1", "100", "CLM-1002-1"), ("pay-2", "400", "CLM-1002-2"),
                           ("pay-3", "200", "CLM-1002-1"), ("pay-4", "300", "CLM-1002-2"))
    result = plan("split_reversal_correction.x12", claims)
    remittance = result.remittances[0]
    assert [p.claim_id for p in remittance.postings] == ["CLM-1005"]
    ambiguous, duplicate = remittance.exceptions
    assert (ambiguous.reason, ambiguous.amount) == (ExceptionReason.REVERSAL_AMBIGUOUS, D(-500))
    assert ambiguous.detail["candidates"] == "pay-1+pay-2 | pay-3+pay-4"
    # Nothing was reversed, so the correction pays lines active postings paid.
    assert duplicate.reason is ExceptionReason.DUPLICATE_PAYMENT
    every_dollar_lands(result)


def test_a_reversal_no_posting_or_sum_of_postings_matches_goes_to_exceptions() -> None:
    # Only one 250 part on file: -500 undoes neither it nor any set of postings (it used to undo the 250).
    result = plan("split_reversal_correction.x12", paid_in_parts(("pay-1", "250", "CLM-1002-1")))
    remittance = result.remittances[0]
    (exception,) = remittance.exceptions
    assert (exception.reason, exception.amount) == (ExceptionReason.REVERSAL_WITHOUT_ORIGINAL, D(-500))
    assert all(p.kind is not PostingKind.REVERSAL for p in remittance.postings)
    every_dollar_lands(result)


def test_of_two_equal_postings_a_reversal_undoes_the_one_that_paid_its_line() -> None:
    # The reversal names only CLM-1002-2 (-250); both prior postings paid 250.
    text = (FIXTURES / "split_reversal_correction.x12").read_text()
    for segment in ("SVC*HC:G9012:U2*-250*-250**-1~\n", "DTM*472*20260910~\n", "REF*6R*CLM-1002-1~\n"):
        text = without(text, segment)  # the first of each: the reversal's line 1
    text = text.replace("CLP*CLM-1002*22*-500*-500", "CLP*CLM-1002*22*-250*-250")
    text = text.replace("BPR*I*100*", "BPR*I*350*")
    claims = paid_in_parts(("pay-1", "250", "CLM-1002-1"), ("pay-2", "250", "CLM-1002-2"))
    remittance = plan_remittance_file(parse_835(text), claims, sha256="4" * 64, mcp_code=MCP).remittances[0]
    assert remittance.postings[0].reverses_posting_ids == ("pay-2",)


def test_reversal_without_an_original_goes_to_exceptions() -> None:
    remittance = plan("reversal_correction.x12").remittances[0]
    (exception,) = remittance.exceptions
    assert exception.reason is ExceptionReason.REVERSAL_WITHOUT_ORIGINAL and exception.amount == D(-350)
    every_dollar_lands(plan("reversal_correction.x12"))


def test_plb_recoupment_and_interest_are_recorded_against_provider_and_claims() -> None:
    claims = {**CLAIMS, "CLM-1002": make_claim("CLM-1002", cbo="cbo_b", payer_numbers=("PCN1002",))}
    result = plan("plb_recoupment_interest.x12", claims)
    remittance = result.remittances[0]
    recoupment, interest = remittance.provider_adjustments
    assert (recoupment.kind, recoupment.amount, recoupment.claim_id, recoupment.cbo_organization_id) == (
        ProviderAdjustmentKind.RECOUPMENT, D(100), "CLM-1002", "cbo_b")
    assert (interest.kind, interest.amount, interest.claim_id) == (ProviderAdjustmentKind.INTEREST, D("-4.38"),
                                                                   "CLM-1007")
    assert recoupment.provider_id == "1234567893" and recoupment.fiscal_period_date == date(2026, 12, 31)
    assert remittance.balance.as_dict()["provider_adjustments"] == "95.62"
    assert remittance.exceptions == ()
    every_dollar_lands(result)


def test_a_recoupment_naming_no_claim_of_ours_is_an_exception() -> None:
    remittance = plan("plb_recoupment_interest.x12").remittances[0]
    (exception,) = remittance.exceptions
    assert exception.reason is ExceptionReason.UNATTRIBUTED_ADJUSTMENT
    assert (exception.patient_control_number, exception.amount) == ("PCN1002", D(100))


@pytest.mark.parametrize("owner", ["CLM-1002", "CLM-1007"], ids=["by_payer_claim_number", "by_claim_id"])
def test_a_plb_naming_a_claim_of_another_mcp_is_an_exception_not_that_cbos(owner: str) -> None:
    # WO:PCN1002 names CLM-1002 by its payer claim number, L6:CLM-1007 names CLM-1007 by our id.
    claims = {**CLAIMS, "CLM-1002": make_claim("CLM-1002", cbo="cbo_b", payer_numbers=("PCN1002",))}
    claims[owner] = make_claim(owner, mcp="othermcp", cbo="cbo_z", payer_numbers=("PCN1002",))
    remittance = plan("plb_recoupment_interest.x12", claims).remittances[0]
    named = {a.reason: a for a in remittance.provider_adjustments}["WO" if owner == "CLM-1002" else "L6"]
    assert (named.claim_id, named.cbo_organization_id) == (None, None)
    unattributed = [e for e in remittance.exceptions if e.reason is ExceptionReason.UNATTRIBUTED_ADJUSTMENT]
    assert [(e.patient_control_number, e.amount) for e in unattributed] == [(named.reference, named.amount)]
    every_dollar_lands(plan("plb_recoupment_interest.x12", claims))


def test_a_payer_claim_number_another_mcp_also_uses_names_the_paying_mcps_claim() -> None:
    theirs = make_claim("CLM-9001", ("CLM-9001-1", "G9008", ("U1",), date(2026, 9, 15), "350"), mcp="othermcp",
                        cbo="cbo_z", payer_numbers=("PCN1002",))
    claims = {"CLM-9001": theirs, **CLAIMS, "CLM-1002": make_claim("CLM-1002", cbo="cbo_b",
                                                                    payer_numbers=("PCN1002",))}
    recoupment, _ = plan("plb_recoupment_interest.x12", claims).remittances[0].provider_adjustments
    assert (recoupment.claim_id, recoupment.cbo_organization_id) == ("CLM-1002", "cbo_b")


def test_two_claims_for_one_member_post_separately() -> None:
    remittance = plan("two_claims_one_member.x12").remittances[0]
    assert [(p.claim_id, p.paid) for p in remittance.postings] == [("CLM-1008", D(350)), ("CLM-1009", D(350))]
    assert {s.state for s in remittance.settlements} == {SettlementState.PAID}


def test_claim_split_across_two_835s() -> None:
    first = plan("split_claim_part1.x12").remittances[0]
    assert first.settlements[0].state is SettlementState.PARTIALLY_PAID
    assert first.settlements[0].lines_pending == ("CLM-1010-2",)
    posted = first.postings[0]
    prior = PriorPosting("post-a", posted.payer_claim_number, posted.kind, posted.outcome, posted.paid,
                         ("CLM-1010-1",), ("CLM-1010-1",))
    claims = {**CLAIMS, "CLM-1010": make_claim("CLM-1010", ("CLM-1010-1", "T2041", ("U6",), date(2026, 10, 2), "200"),
                                               ("CLM-1010-2", "T2041", ("U6",), date(2026, 10, 9), "200"),
                                               postings=(prior,))}
    second = plan("split_claim_part2.x12", claims).remittances[0]
    settlement = second.settlements[0]
    assert second.postings[0].kind is PostingKind.PAYMENT
    assert (settlement.state, settlement.paid_total, settlement.lines_pending) == (SettlementState.PAID, D(380), ())


def test_paying_lines_already_paid_is_a_duplicate_payment_exception() -> None:
    claims = {**CLAIMS, "CLM-1001": make_claim("CLM-1001", ("CLM-1001-1", "G9008", ("U1",), date(2026, 9, 15),
                                                            "350"), postings=(PAID_BEFORE,))}
    remittance = plan("full_payment.x12", claims).remittances[0]
    assert remittance.postings == ()
    assert remittance.exceptions[0].reason is ExceptionReason.DUPLICATE_PAYMENT


def test_the_same_claim_paid_twice_in_one_set_posts_once_and_queues_the_duplicate() -> None:
    result = plan("duplicate_in_one_set.x12")
    remittance = result.remittances[0]
    (posting,) = remittance.postings
    assert (posting.claim_id, posting.paid) == ("CLM-1001", D(350))
    (exception,) = remittance.exceptions
    assert (exception.reason, exception.amount, exception.claim_id) == (
        ExceptionReason.DUPLICATE_PAYMENT, D(350), "CLM-1001")
    assert [(s.state, s.paid_total) for s in remittance.settlements] == [(SettlementState.PAID, D(350))]
    every_dollar_lands(result)


def test_the_same_payment_in_two_sets_of_one_file_is_a_duplicate_payment() -> None:
    result = plan("duplicate_across_sets.x12")
    first, second = result.remittances
    assert [p.paid for p in first.postings] == [D(350)] and first.exceptions == ()
    assert second.postings == () and second.settlements == ()
    assert [(e.reason, e.amount) for e in second.exceptions] == [(ExceptionReason.DUPLICATE_PAYMENT, D(350))]
    every_dollar_lands(result)


def test_a_claim_split_across_two_sets_of_one_file_is_paid_once_both_lines_are() -> None:
    first, second = plan("split_claim_across_sets.x12").remittances
    assert first.settlements[0].state is SettlementState.PARTIALLY_PAID
    settlement = second.settlements[0]
    assert (settlement.state, settlement.paid_total, settlement.lines_pending) == (SettlementState.PAID, D(380), ())


def test_a_reversal_in_a_later_set_undoes_the_payment_of_an_earlier_set() -> None:
    result = plan("reversal_across_sets.x12")
    first, second = result.remittances
    (payment,) = first.postings
    reversal, correction, _ = second.postings
    assert reversal.kind is PostingKind.REVERSAL
    assert reversal.reverses_posting_id == planned_posting_id(payment.position)
    assert (correction.kind, correction.paid) == (PostingKind.CORRECTION, D(300))
    assert second.exceptions == ()
    settlement = {s.claim_id: s for s in second.settlements}["CLM-1001"]
    assert (settlement.state, settlement.paid_total) == (SettlementState.PAID, D(300))
    every_dollar_lands(result)


def test_the_callers_claims_are_not_changed_by_a_file_of_several_sets() -> None:
    claims = dict(CLAIMS)
    plan("reversal_across_sets.x12", claims)
    assert claims == CLAIMS and claims["CLM-1001"].postings == ()


def test_unbalanced_file_is_refused_whole_with_the_figures() -> None:
    result = plan("unbalanced.x12")
    assert result.status is FileStatus.REFUSED_UNBALANCED
    remittance = result.remittances[0]
    assert remittance.status is RemittanceStatus.REFUSED and remittance.postings == ()
    assert result.refusal == [{"control_number": "0001", "trace_number": "EFT0010", "payment_amount": "400",
                               "claims_paid": "350", "provider_adjustments": "0", "expected_payment": "350",
                               "difference": "50", "balanced": False}]


def test_unknown_clp01_goes_to_exceptions_with_what_resolves_it() -> None:
    result = plan("unknown_clp01.x12")
    remittance = result.remittances[0]
    assert [p.claim_id for p in remittance.postings] == ["CLM-1012"]
    (exception,) = remittance.exceptions
    assert exception.reason is ExceptionReason.UNKNOWN_CLAIM
    assert (exception.patient_control_number, exception.payer_claim_number, exception.amount) == (
        "XYZ-77", "PCN9977", D(200))
    assert (exception.service_from, exception.service_to, exception.procedures) == (
        date(2026, 10, 1), date(2026, 10, 1), ("H0043:U6",))
    assert exception.patient is not None and exception.patient.id == "90000013A"
    every_dollar_lands(result)


def test_duplicate_file_is_recognized_by_bytes_and_by_payment_key() -> None:
    data = (FIXTURES / "full_payment.x12").read_bytes()
    first = plan("full_payment.x12")
    assert plan("full_payment.x12", seen_files={first.sha256}).status is FileStatus.DUPLICATE
    # The same payment re-sent in a new envelope has other bytes but the same TRN02 + payer + amount + date.
    key = first.remittances[0].key
    resent = plan("full_payment_reenveloped.x12", seen_keys={key.digest})
    assert file_sha256((FIXTURES / "full_payment_reenveloped.x12").read_bytes()) != file_sha256(data)
    assert resent.status is FileStatus.DUPLICATE and resent.remittances[0].postings == ()


def test_a_claim_of_another_mcp_is_an_exception() -> None:
    claims = {**CLAIMS, "CLM-1001": make_claim("CLM-1001", mcp="othermcp")}
    (exception,) = plan("full_payment.x12", claims).remittances[0].exceptions
    assert exception.reason is ExceptionReason.PAYER_MISMATCH and exception.detail["claim_mcp"] == "othermcp"


def test_unbalanced_claim_goes_to_exceptions_not_posted() -> None:
    text = (FIXTURES / "partial_co45.x12").read_text().replace("CAS*CO*45*50~", "CAS*CO*45*40~", 1)
    remittance = plan_remittance_file(parse_835(text), CLAIMS, sha256="1" * 64, mcp_code=MCP).remittances[0]
    assert remittance.postings == ()
    assert remittance.exceptions[0].reason is ExceptionReason.CLAIM_UNBALANCED
    assert remittance.exceptions[0].detail["rule"] == "SVC02 - CAS must equal SVC03"


def test_line_matching_falls_back_to_code_date_and_charge() -> None:
    text = without((FIXTURES / "partial_co45.x12").read_text(), "REF*6R*CLM-1002-2~\n")
    remittance = plan_remittance_file(parse_835(text), CLAIMS, sha256="2" * 64, mcp_code=MCP).remittances[0]
    assert [line.line_id for line in remittance.postings[0].lines] == ["CLM-1002-1", "CLM-1002-2"]
    assert remittance.warnings == ()


def test_unmatched_service_line_is_a_warning_without_phi() -> None:
    text = without((FIXTURES / "full_payment.x12").read_text(), "REF*6R*CLM-1001-1~\n").replace(
        "DTM*472*20260915", "DTM*472*20260916")
    remittance = plan_remittance_file(parse_835(text), CLAIMS, sha256="3" * 64, mcp_code=MCP).remittances[0]
    assert remittance.postings[0].lines[0].line_id is None
    assert remittance.warnings and "90000001A" not in remittance.warnings[0]


def test_debit_payment_balances_negative() -> None:
    text = (FIXTURES / "full_payment.x12").read_text().replace("BPR*I*350*C", "BPR*I*350*D")
    figures = balance(parse_835(text).remittances[0])
    assert (figures.payment_amount, figures.difference) == (D(-350), D(-700))


def test_key_normalizes_amounts_and_references_cover_plb() -> None:
    parsed = parse_835((FIXTURES / "plb_recoupment_interest.x12").read_text())
    assert remittance_key(parsed.remittances[0]).value == "EFT0006|1123456789|254.38|2026-11-02"
    assert claim_references(parsed) == {"CLM-1007", "PCN1002"}


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("*.x12") if p.name != "unbalanced.x12"))
def test_every_balanced_fixture_accounts_for_every_dollar(name: str) -> None:
    every_dollar_lands(plan(name))
