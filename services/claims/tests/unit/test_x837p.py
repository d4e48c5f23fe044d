"""837P 005010X222A1: every generated file passes pyx12 with zero errors; CalHub's extra rules catch what pyx12
does not (NPI check digit, 9-digit billing ZIP, CLM02 = ΣSV102, GS08, REF*F8); a golden file pins the layout."""

from __future__ import annotations

import itertools
import re
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from claims.domain.configuration import BillingConfiguration
from claims.testkit import CBO_NPI, CHW_NPI, make_billing
from claims.x12.validation import claim_rules, claims_at, guide_issues, validate_837p
from claims.x12.x837p import (
    BatchHeader,
    BillingProvider,
    ClaimBuildError,
    Payer,
    PostalAddress,
    ProfessionalClaim,
    Receiver,
    RenderingProvider,
    ServiceLine,
    Submitter,
    Subscriber,
    build_837p,
    money,
)

from shared.x12.envelope import Party, parse_interchange

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "837p"
CONFIG = make_billing()
CREATED = datetime(2025, 3, 10, 9, 30, tzinfo=UTC)
# (code, modifiers) combinations from the DHCS table, billed on many lines below.
LINES = [("G9008", ("U1",)), ("G9008", ("U1", "GQ")), ("G9012", ("U2",)), ("G9012", ("U2", "GQ")),
         ("G9012", ("U8",)), ("G9012", ("U8", "GQ")), ("H0044", ("U2",)), ("T2040", ("U6",)), ("S5165", ("U5",)),
         ("98960", ()), ("98961", ()), ("T1016", ("U8", "GQ"))]


def provider_for(config: BillingConfiguration, mcp: str) -> BillingProvider:
    identity = config.hub if config.mcps[mcp].profile.billing_provider.value == "hub" else config.cbos["org_cbo_a"]
    a = identity.address
    return BillingProvider(identity.name, identity.npi, identity.tin, PostalAddress(a.line1, a.city, a.state, a.zip),
                           identity.taxonomy)


def header(mcp: str, icn: int = 1) -> BatchHeader:
    profile = CONFIG.mcps[mcp].profile
    s = CONFIG.submitter
    return BatchHeader(sender=Party(s.interchange.qualifier, s.interchange.id, s.interchange.application_code),
                       receiver_party=Party(profile.interchange.qualifier, profile.interchange.id,
                                            profile.interchange.application_code),
                       submitter=Submitter(s.name, s.id, s.contact_name, s.contact_phone),
                       receiver=Receiver(profile.receiver_name, profile.receiver_id), interchange_control_number=icn,
                       group_control_number=icn, created=CREATED, reference="BTEST")


def make_claim(n: int, mcp: str, *, lines: int = 1, frequency: str = "1", diagnoses: int = 1) -> ProfessionalClaim:
    profile = CONFIG.mcps[mcp].profile
    subscriber = Subscriber(f"9{n:07d}A", "Testperson", f"Peña{n}", date(1970 + n % 40, 1 + n % 12, 1 + n % 28),
                            "FMU"[n % 3], PostalAddress(f"{n} Test St", "Los Angeles", "CA", "90012" if n % 2 else
                                                        "900121234", "Apt 2" if n % 5 == 0 else None))
    dx = tuple(["Z5900", "Z5941", "Z600", "F319", "E119", "I10", "J45909", "Z5986", "Z5948", "Z634", "Z7189",
                "Z5982"][:diagnoses])
    service_lines = []
    for i in range(lines):
        code, modifiers = LINES[(n + i) % len(LINES)]
        start = date(2025, 3, 1) + timedelta(days=i % 28)
        service_lines.append(ServiceLine(
            procedure_code=code, modifiers=modifiers,
            charge=Decimal("0.00") if i % 7 == 6 else Decimal(f"{n % 5}75.50"),
            units=Decimal("1") if i % 3 else Decimal("2.5"), service_from=start,
            service_to=start + timedelta(days=2) if i % 4 == 3 else None,
            diagnosis_pointers=tuple(range(1, min(diagnoses, 1 + i % 4) + 1)),
            place_of_service="12" if i % 5 == 4 else None, control_number=f"E{n:06d}{i:03d}"))
    return ProfessionalClaim(
        claim_id=f"C{n:019d}", billing_provider=provider_for(CONFIG, mcp), subscriber=subscriber,
        payer=Payer(profile.payer_name, profile.payer_id), place_of_service="11" if n % 3 else "10",
        diagnosis_codes=dx, lines=tuple(service_lines), frequency_code=frequency,
        payer_claim_number=f"PCN{n:08d}" if frequency in ("7", "8") else None,
        prior_authorization=f"AUTH{n:05d}" if n % 4 else None,
        rendering_provider=RenderingProvider(CHW_NPI if n % 2 else CBO_NPI, "Worker", "Casey", "172V00000X")
        if n % 6 else RenderingProvider(CBO_NPI, "Harbor Community Services", None, None, organization=True))


def batch(mcp: str, count: int, **kwargs: object) -> str:
    claims = [make_claim(n, mcp, lines=1 + n % 6, frequency="178"[n % 3], diagnoses=1 + n % 12)
              for n in range(1, count + 1)]
    return build_837p(header(mcp), claims, **kwargs).text  # type: ignore[arg-type]


@pytest.mark.parametrize("mcp", ["healthnet", "lacare"])
def test_generated_837p_passes_pyx12_with_zero_errors(mcp: str) -> None:
    text = batch(mcp, 60)
    assert guide_issues(text) == []
    assert claim_rules(text) == []


def test_many_claims_across_transaction_sets_validate() -> None:
    claims = [make_claim(n, "healthnet", lines=1 + n % 3, frequency="178"[n % 3], diagnoses=1 + n % 12)
              for n in range(1, 251)]
    built = build_837p(header("healthnet", 42), claims, max_claims_per_transaction=100)
    assert built.transaction_sets == 3
    assert set(built.transaction_of_claim.values()) == {"0001", "0002", "0003"}
    assert validate_837p(built.text) == []


def test_max_lines_and_diagnoses_validate() -> None:
    claim = make_claim(7, "healthnet", lines=50, diagnoses=12)
    assert validate_837p(build_837p(header("healthnet"), [claim]).text) == []


def test_envelope_and_key_segments() -> None:
    claim = make_claim(5, "healthnet", lines=2, frequency="7", diagnoses=3)
    interchange = parse_interchange(build_837p(header("healthnet", 9), [claim]).text)
    group = interchange.groups[0]
    assert group.version == "005010X222A1" and group.gs.get(6) == "9" and interchange.control_number == "000000009"
    segments = group.transactions[0].segments
    by_id = {s.id: s for s in segments}
    assert segments[0].elements == ("ST", "837", "0001", "005010X222A1")
    clm = by_id["CLM"]
    assert clm.get(1) == claim.claim_id and clm.get(5) == "11:B:7"
    assert Decimal(clm.get(2)) == sum(line.charge for line in claim.lines)
    refs = {s.get(1): s.get(2) for s in segments if s.id == "REF"}
    assert refs["F8"] == "PCN00000005" and refs["G1"] == "AUTH00005"
    subscriber = [s for s in segments if s.id == "NM1" and s.get(1) == "IL"][0]
    assert subscriber.get(8) == "MI" and subscriber.get(9) == "90000005A"
    assert "PEÑA" not in build_837p(header("healthnet"), [claim]).text  # folded to ASCII for the MCP's EDI system


def test_void_carries_ref_f8_and_frequency_8() -> None:
    text = build_837p(header("healthnet"), [make_claim(5, "healthnet", frequency="8")]).text
    assert "REF*F8*PCN00000005~" in text and ":B:8*" in text
    assert validate_837p(text) == []


def test_golden_file() -> None:
    claims = [make_claim(1, "healthnet", lines=3, diagnoses=2), make_claim(2, "healthnet", frequency="7")]
    text = build_837p(header("healthnet", 77), claims, line_breaks=True).text
    golden = FIXTURES / "golden_healthnet.x12"
    if not golden.exists():  # first run writes it; review the diff when the layout changes on purpose
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(text)
    assert text == golden.read_text()


# --------------------------------------------------------------------------- what pyx12 does not check

def _one() -> str:
    return build_837p(header("healthnet"), [make_claim(3, "healthnet", lines=2)]).text


@pytest.mark.parametrize(("label", "mutate", "rule"), [
    ("billing NPI check digit", lambda t: t.replace("XX*1234567893", "XX*1234567890"), "npi-check-digit"),
    ("rendering NPI check digit", lambda t: t.replace("XX*1679576722", "XX*1679576723"), "npi-check-digit"),
    ("5-digit billing ZIP", lambda t: t.replace("*958141234~", "*95814~"), "billing-zip-9"),
    ("CLM02 not the sum of SV102", lambda t: re.sub(r"(CLM\*C[0-9]+\*)[0-9.]+", r"\g<1>999", t), "clm02-sum"),
    ("GS08 written as X222A2", lambda t: t.replace("*X*005010X222A1~ST", "*X*005010X222A2~ST"), "gs08-version"),
])
def test_calhub_rules_catch_what_pyx12_misses(label: str, mutate: object, rule: str) -> None:
    text = _one()
    bad = mutate(text)  # type: ignore[operator]
    assert bad != text, label
    assert rule in {i.rule for i in claim_rules(bad)}, label
    assert claim_rules(text) == []


def test_clm02_is_the_sum_of_the_sv102_amounts_as_written_even_with_sub_cent_charges() -> None:
    claim = make_claim(3, "healthnet", lines=3)
    odd = tuple(replace(line, charge=Decimal(amount)) for line, amount in zip(claim.lines, ("12.345", "0.005",
                                                                                            "10.004"), strict=True))
    text = build_837p(header("healthnet"), [replace(claim, lines=odd)]).text
    sv102 = [Decimal(seg.split("*")[2]) for seg in text.split("~") if seg.startswith("SV1*")]
    clm02 = Decimal(next(seg for seg in text.split("~") if seg.startswith("CLM*")).split("*")[2])
    assert sv102 == [Decimal("12.35"), Decimal("0.01"), Decimal("10")]  # half up, as prices are rounded
    assert clm02 == sum(sv102) and claim_rules(text) == []


def test_replacement_without_ref_f8_is_caught() -> None:
    text = build_837p(header("healthnet"), [make_claim(5, "healthnet", frequency="7")]).text
    kept = [seg for seg in text.split("~")[:-1] if not seg.startswith("REF*F8")]
    count = int(next(s for s in kept if s.startswith("SE*")).split("*")[1])
    bad = "".join((f"SE*{count - 1}*0001" if seg.startswith("SE*") else seg) + "~" for seg in kept)
    assert "ref-f8-required" in {i.rule for i in claim_rules(bad)}


def test_pyx12_finds_guide_errors_without_quoting_values() -> None:
    bad = re.sub(r"DMG\*D8\*[0-9]{8}", "DMG*D8*19731301", _one())
    issues = guide_issues(bad)
    assert issues and any(i.rule == "ik403-8" for i in issues)
    assert all("19731301" not in i.message and "9000000" not in i.message for i in issues)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"lines": 51}, "at most 50"),
    ({"diagnoses": 0}, "1 to 12"),
])
def test_structural_limits_raise(kwargs: dict[str, int], message: str) -> None:
    claim = make_claim(1, "healthnet", **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ClaimBuildError, match=message):
        build_837p(header("healthnet"), [claim])


def test_replacement_needs_the_payer_claim_number() -> None:
    claim = make_claim(2, "healthnet", frequency="1")
    from dataclasses import replace

    with pytest.raises(ClaimBuildError, match="REF\\*F8"):
        build_837p(header("healthnet"), [replace(claim, frequency_code="7")])


@pytest.mark.parametrize(("value", "text"), [("125.00", "125"), ("12.50", "12.5"), ("0", "0"), ("0.10", "0.1"),
                                             ("1234.567", "1234.57")])
def test_money_format(value: str, text: str) -> None:
    assert money(Decimal(value)) == text


def test_claims_are_grouped_under_their_billing_provider() -> None:
    claims = list(itertools.chain([make_claim(n, "healthnet") for n in (1, 2)],
                                  [make_claim(n, "lacare") for n in (3,)]))
    text = build_837p(header("healthnet"), claims).text
    assert text.count("HL*1**20*1~") == 1 and text.count("*20*1~") == 2
    assert validate_837p(text) == []


# ------------------------------------------------------------------------ values the 837P cannot carry

@pytest.mark.parametrize(("label", "change", "message"), [
    ("authorization number over 50 characters", {"prior_authorization": "A" * 51},
     r"REF\*G1 prior authorization number must be 1 to 50 characters"),
    ("element separator in the authorization number", {"prior_authorization": "LAC*2025*001"},
     r"REF\*G1 prior authorization number must use the X12 basic or extended character set"),
    ("segment terminator in the authorization number", {"prior_authorization": "LAC~1"}, r"REF\*G1"),
    ("component separator", {"prior_authorization": "LAC:1"}, r"REF\*G1"),
    ("repetition separator", {"prior_authorization": "LAC^1"}, r"REF\*G1"),
    ("character outside the X12 set", {"prior_authorization": "AUTÑ1"}, r"REF\*G1"),
    ("terminator in the payer claim number of a replacement", {"frequency_code": "7", "payer_claim_number": "PCN~1"},
     r"REF\*F8 payer claim number must use"),
])
def test_a_reference_the_837p_cannot_carry_is_refused_naming_element_and_rule(label: str, change: dict[str, str],
                                                                              message: str) -> None:
    claim = replace(make_claim(1, "healthnet"), **change)  # type: ignore[arg-type]
    with pytest.raises(ClaimBuildError, match=message) as raised:
        build_837p(header("healthnet"), [make_claim(2, "healthnet"), claim])
    assert "LAC" not in str(raised.value) and "PCN" not in str(raised.value), label  # the rule, never the value


def test_references_up_to_50_characters_of_the_x12_set_validate() -> None:
    claims = [replace(make_claim(1, "healthnet"), prior_authorization="A" * 50),
              replace(make_claim(2, "healthnet"), prior_authorization="LAC-2025/001 (a)"),
              replace(make_claim(3, "healthnet", frequency="7"), payer_claim_number="pcn#42")]
    text = build_837p(header("healthnet"), claims).text
    assert "REF*G1*" + "A" * 50 + "~" in text and "REF*F8*pcn#42~" in text
    assert validate_837p(text) == []


def test_validation_issues_are_traced_to_the_claim_whose_loops_hold_them() -> None:
    claims = [make_claim(n, "healthnet", lines=2) for n in range(1, 5)]
    text = build_837p(header("healthnet"), claims, max_claims_per_transaction=2).text
    # Break claim 3 (second transaction set): a bad birth date (pyx12) and a bad rendering NPI (CalHub's rules).
    segments = text.split("~")
    start = segments.index(next(s for s in segments if s.startswith("NM1*IL") and "90000003A" in s))
    segments[start + 3] = "DMG*D8*19731301*M"
    rendering = next(n for n in range(start, len(segments)) if segments[n].startswith("NM1*82"))
    segments[rendering] = segments[rendering].replace("XX*1679576722", "XX*1679576723")
    bad = "~".join(segments)
    issues = validate_837p(bad)
    assert {i.rule for i in issues} >= {"ik403-8", "npi-check-digit"}
    owners = claims_at(bad, [i.file_position for i in issues])
    assert set(owners.values()) == {claims[2].claim_id} and len(owners) == len({i.file_position for i in issues})
    # An issue outside every claim (the billing provider's NPI) belongs to none.
    header_bad = text.replace("NM1*85*2*GOLDEN STATE CARE HUB*****XX*1234567893", "NM1*85*2*GOLDEN STATE CARE HUB"
                              "*****XX*1234567890", 1)
    outside = validate_837p(header_bad)
    assert outside and claims_at(header_bad, [i.file_position for i in outside]) == {}


def test_an_issue_in_the_payer_loop_is_the_configurations_not_each_claims() -> None:
    # 2010BB (NM1*PR) sits in every claim's loops but is written from the MCP's billing profile: a payer id
    # set wrong there must fail the batch as configuration, not reject every claim.
    claims = [make_claim(n, "healthnet") for n in (1, 2, 3)]
    mis_set = [replace(c, payer=Payer(c.payer.name, "X")) for c in claims]
    text = build_837p(header("healthnet"), mis_set).text
    issues = validate_837p(text)
    assert issues and {i.segment for i in issues} == {"NM1"}
    assert claims_at(text, [i.file_position for i in issues]) == {}


@pytest.mark.parametrize(("label", "change", "element"), [
    ("subscriber last name in Chinese script", {"last_name": "王"}, "NM1*IL subscriber last name"),
    ("subscriber first name in Cyrillic", {"first_name": "Иван"}, "NM1*IL subscriber first name"),
    ("letter with no ASCII base (ø)", {"last_name": "Søren"}, "NM1*IL subscriber last name"),
    ("only delimiters", {"last_name": "*~"}, "NM1*IL subscriber last name"),
])
def test_a_name_the_837p_cannot_write_is_refused_naming_the_element(label: str, change: dict[str, str],
                                                                    element: str) -> None:
    # Before, 王 became an empty NM103 and the validator failed the whole batch ("last name missing").
    claim = make_claim(1, "healthnet")
    bad = replace(claim, subscriber=replace(claim.subscriber, **change))
    with pytest.raises(ClaimBuildError, match=re.escape(element)) as raised:
        build_837p(header("healthnet"), [make_claim(2, "healthnet"), bad])
    assert not any(value in str(raised.value) for value in change.values()), label


def test_typographic_quotes_and_dashes_are_written_as_ascii_not_refused() -> None:
    # Phones type O’Brien and Mary‐Kate; the 837P writes O'BRIEN (apostrophe and hyphen are in X12's basic set).
    claim = make_claim(1, "healthnet")
    typed = replace(claim, subscriber=replace(claim.subscriber, last_name="O\u2019Brien", first_name="Mary\u2010Kate"))
    text = build_837p(header("healthnet"), [typed]).text
    assert "NM1*IL*1*O'BRIEN*MARY-KATE****MI*90000001A~" in text and validate_837p(text) == []


def test_accented_latin_names_are_folded_as_documented() -> None:
    claim = make_claim(1, "healthnet")
    folded = replace(claim, subscriber=replace(claim.subscriber, last_name="Nguyễn", first_name="José",
                                               middle_name="Ana María"))
    text = build_837p(header("healthnet"), [folded]).text
    assert "NM1*IL*1*NGUYEN*JOSE*ANA MARIA***MI*90000001A~" in text and validate_837p(text) == []
