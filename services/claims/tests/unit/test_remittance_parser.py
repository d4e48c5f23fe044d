"""835 parser: golden fixtures (each well-formed 5010 per pyx12's X221A1 map), values, and refused input."""

from __future__ import annotations

import io
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from claims.x12.x835 import Adjustment, Procedure, X835Error, parse_835

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "835"
ALL = sorted(p.name for p in FIXTURES.glob("*.x12"))


def read(name: str) -> str:
    return (FIXTURES / name).read_text()


def pyx12_accepts(text: str) -> bool:
    import pyx12.params
    import pyx12.x12n_document

    errors = io.StringIO()
    return bool(pyx12.x12n_document.x12n_document(pyx12.params.ParamsBase(), io.StringIO(text), None, None,
                                                  fd_json=errors))


def test_the_fixture_set_is_complete() -> None:
    assert len(ALL) == 18


@pytest.mark.parametrize("name", ALL)
def test_fixture_is_well_formed_5010_835(name: str) -> None:
    assert pyx12_accepts(read(name)), name
    assert parse_835(read(name)).remittances


def test_pyx12_check_can_fail() -> None:
    # Guard against a validation that cannot fail: CR is not a 5010 CAS group code.
    broken = read("partial_co45.x12").replace("CAS*CO*45*50~", "CAS*CR*45*50~", 1)
    assert not pyx12_accepts(broken)


def test_full_payment_values() -> None:
    parsed = parse_835(read("full_payment.x12"))
    assert (parsed.interchange_control_number, parsed.sender_id, parsed.receiver_id) == ("000000101", "TESTPLAN",
                                                                                        "CALHUBHUB")
    remittance = parsed.remittances[0]
    assert remittance.total_paid == Decimal("350") and remittance.credit_debit == "C"
    assert remittance.payment_method == "ACH" and remittance.payment_date == date(2026, 10, 15)
    assert (remittance.trace_number, remittance.originator_id) == ("EFT0001", "1123456789")
    assert remittance.payer.name == "TESTPLAN HEALTH" and remittance.payer.references == (("2U", "TESTPLAN01"),)
    assert (remittance.payee.id_qualifier, remittance.payee.id) == ("XX", "1234567893")
    claim = remittance.claims[0]
    assert (claim.patient_control_number, claim.status, claim.payer_claim_number) == ("CLM-1001", "1", "PCN1001")
    assert (claim.charge, claim.paid, claim.filing_indicator) == (Decimal(350), Decimal(350), "MC")
    assert claim.received_on == date(2026, 9, 20)
    assert claim.patient is not None and claim.patient.id == "90000001A"
    service = claim.services[0]
    assert service.procedure == Procedure("HC", "G9008", ("U1",))
    assert service.line_control_number == "CLM-1001-1" and service.allowed == Decimal(350)
    assert service.service_from == service.service_to == date(2026, 9, 15)


def test_adjustments_remarks_and_plb() -> None:
    partial = parse_835(read("partial_co45.x12")).remittances[0].claims[0]
    assert [s.adjustments for s in partial.services] == [(Adjustment("CO", "45", Decimal(50)),)] * 2
    denied = parse_835(read("denial_rarc.x12")).remittances[0]
    assert denied.handling_code == "H" and denied.total_paid == 0
    assert denied.claims[0].services[0].adjustments == (Adjustment("CO", "16", Decimal(300)),)
    assert denied.claims[1].adjustments == (Adjustment("CO", "27", Decimal(350)),)
    assert denied.claims[1].statement_from == denied.claims[1].statement_to == date(2026, 9, 14)
    assert denied.claims[0].remarks == ("N290",)
    plb = parse_835(read("plb_recoupment_interest.x12")).remittances[0].provider_adjustments
    assert [(a.reason, a.reference, a.amount) for a in plb] == [("WO", "PCN1002", Decimal(100)),
                                                                ("L6", "CLM-1007", Decimal("-4.38"))]
    assert plb[0].fiscal_period_date == date(2026, 12, 31)


def test_reversal_amounts_are_negative() -> None:
    claims = parse_835(read("reversal_correction.x12")).remittances[0].claims
    assert [(c.status, c.paid) for c in claims] == [("22", Decimal(-350)), ("1", Decimal(300)), ("1", Decimal(200))]


def test_single_line_file_and_other_delimiters_parse_alike() -> None:
    text = read("partial_co45.x12")
    flat = text.replace("\n", "")
    other = flat.replace("*", "|").replace("~", "\n").replace(":", ">").replace("^", "!")
    assert parse_835(flat) == parse_835(text) == parse_835(other)


def test_patient_is_not_in_repr() -> None:
    claim = parse_835(read("full_payment.x12")).remittances[0].claims[0]
    assert "90000001A" not in repr(claim) and "TESTPERSON" not in repr(claim)


@pytest.mark.parametrize(("mutate", "segment", "element"), [
    (lambda t: t.replace("CLP*CLM-1002*1*500*400", "CLP*CLM-1002*9*500*400"), "CLP", "CLP02"),
    (lambda t: t.replace("CLP*CLM-1002*1*500*400", "CLP*CLM-1002*1*500*4E2"), "CLP", "CLP04"),
    (lambda t: t.replace("CLP*CLM-1002*1*500*400", "CLP*CLM-1002*1*500*NaN"), "CLP", "CLP04"),
    (lambda t: t.replace("CLP*CLM-1002*1*500*400", "CLP*CLM-1002*1*500*4_00"), "CLP", "CLP04"),
    (lambda t: t.replace("CLP*CLM-1002*1*500*400*0*MC*PCN1002", "CLP*CLM-1002*1*500*400*0*MC*"), "CLP", "CLP07"),
    (lambda t: t.replace("CAS*CO*45*50", "CAS*CR*45*50", 1), "CAS", "CAS01"),
    (lambda t: t.replace("CAS*CO*45*50", "CAS*CO*45", 1), "CAS", "CAS03"),
    (lambda t: t.replace("DTM*472*20260910", "DTM*472*20260931"), "DTM", "DTM02"),
    (lambda t: t.replace("BPR*I*400*C", "BPR*I*400*X"), "BPR", "BPR03"),
    (lambda t: t.replace("BPR*I*400*C", "BPR*I*-400*C"), "BPR", "BPR02"),
    (lambda t: t.replace("SE*26*0001", "SE*25*0001"), "SE", "SE01"),
    (lambda t: t.replace("SE*26*0001", "SE*26*0002"), "SE", "SE02"),
    (lambda t: t.replace("GS*HP", "GS*HC"), "GS", "GS01"),
    (lambda t: t.replace("LX*1~\n", ""), "CLP", None),
    (lambda t: t.replace("REF*6R*CLM-1002-1~", "CLM*X*1~"), "CLM", None),
    (lambda t: t.replace("IEA*1*000000102", "IEA*1*000000103"), "IEA", "IEA02"),
])
def test_bad_input_names_segment_and_element(mutate, segment: str, element: str | None) -> None:
    text = read("partial_co45.x12")
    broken = mutate(text)
    assert broken != text
    with pytest.raises(X835Error) as caught:
        parse_835(broken)
    assert caught.value.segment_id == segment
    assert caught.value.element == element
    assert caught.value.position > 0


def test_errors_never_quote_values() -> None:
    broken = read("full_payment.x12").replace("DTM*472*20260915", "DTM*472*90000001A")
    with pytest.raises(X835Error) as caught:
        parse_835(broken)
    assert "90000001A" not in str(caught.value) and "90000001A" not in str(caught.value.as_dict())


def test_not_an_interchange() -> None:
    with pytest.raises(ValueError, match="must start with an ISA"):
        parse_835("CLP*1*1*1*1**MC*1~")
