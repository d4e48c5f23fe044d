"""Pins what the claims core produces for a broad synthetic input: every check verdict and price, and the exact
837P bytes. The hot paths (checks, pricing, 837P writer, CalHub's rules) are tuned for the 50,000-claim benchmark;
this keeps a faster version from changing a reason, a cent or a byte.

A digest mismatch means behaviour changed. If that was on purpose, look at what changed (print `_verdicts()` or
the file before and after), then update the digest here with the change that explains it.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from claims.domain.encounters import (
    CheckContext,
    CheckResult,
    Coverage,
    EligibilityFact,
    EncounterSubmission,
    PriorEncounter,
    check_encounter,
)
from claims.testkit import CBO_NPI, CHW_NPI, HUB_NPI, make_billing
from claims.x12.validation import claim_rules
from claims.x12.x837p import (
    BatchHeader,
    BillingProvider,
    Payer,
    PostalAddress,
    ProfessionalClaim,
    Receiver,
    RenderingProvider,
    ServiceLine,
    Submitter,
    Subscriber,
    build_837p,
)

from shared.x12.envelope import Party

# sha256 of each pinned output (see the module docstring before changing one).
PINS = {
    "verdicts": "c408b2802f1b04379f6cd3bbd75e8296d1309cfa6466057e826fc6afa96b0cba",
    "text": "00e4b77fc8b107fd193512d3d04d6f60eb22ba7ac7c75cdcdc4e031d8bad6a6e",
    "owners": "82e08e9a3fdc44e93e0a5162fbb3bf60e9be366247431b9303a5ea3e2687315a",
    "breaks": "db01175e2a4354e159aeb4af671494054d9f7b2e73531984be9bee5b3cf6aad6",
    "priced": "a510dce8402660015fee05a7e191684e163316cc0ae31ee9727e09ff1e02c5cd",
    "rules": "92a247fe3a7fb23938a2a7d04344253405862be56a017ff45650e770a8b97767",
}
CONFIG = make_billing()
TODAY = date(2026, 1, 20)
# (program, cs_code, hcpcs, modifiers, outreach): allowed combinations and near misses.
SERVICES = [
    ("ecm", None, "G9008", ("U1",), False), ("ecm", None, "G9008", ("GQ", "U1"), False),
    ("ecm", None, "G9012", ("U2",), False), ("ecm", None, "G9012", ("U8",), True),
    ("ecm", None, "G9012", ("U8", "GQ"), True), ("ecm", None, "G9012", ("U8",), False),
    ("ecm", None, "G9008", (), False), ("ecm", None, "G9008", ("U1", "U1"), False),
    ("ecm", None, "G9008", ("U1", "GQ", "U2", "U3", "U4"), False), ("ecm", None, "99999", ("U1",), False),
    ("cs", "housing_deposits", "H0044", ("U2",), False), ("cs", "housing_deposits", "T1016", ("U8",), True),
    ("cs", "housing_tenancy_sustaining", "T2040", ("U6",), False), ("cs", "asthma_remediation", "S5165", ("U5",),
                                                                     False),
    ("cs", "asthma_remediation", "S5165", ("U6",), False), ("cs", None, "T2040", ("U6",), False),
    ("cs", "no_such_support", "T2040", ("U6",), False), ("cs", "recuperative_care", "T2033", ("U6",), False),
    ("chw", None, "98960", (), False), ("chw", None, "98961", (), False), ("chw", None, "G0019", (), False),
    ("chw", None, "G0022", (), False), ("chw", None, "98960", ("U1",), False),
]
MCPS = ["healthnet", "healthnet", "lacare", "partnership", None, "molina"]
# The first five are recent enough to file on TODAY; the rest cross code, schedule and filing dates.
DAYS = [date(2025, 12, 31), date(2026, 1, 5), date(2025, 11, 3), date(2025, 9, 30), date(2025, 10, 31),
        date(2025, 6, 2), date(2025, 3, 31), date(2025, 4, 1), date(2026, 1, 20), date(2026, 2, 1),
        date(2024, 12, 30)]


def _coverage(rng: random.Random, n: int, program: str, cs_code: str | None, mcp: str) -> Coverage:
    start = rng.choice([date(2025, 1, 1), date(2025, 6, 1), date(2024, 1, 1), None])
    end = rng.choice([date(2025, 12, 31), date(2026, 6, 30), date(2025, 6, 15), None])
    kind = rng.randrange(8)
    return Coverage(
        authorization_id=f"auth{n}_{rng.randrange(3)}", mcp_code=rng.choice([mcp, mcp, "lacare"]),
        program=rng.choice([program, program, "ecm"]),
        cs_code=rng.choice([cs_code, cs_code, "housing_transition_navigation", None]),
        status=["approved", "approved", "approved", "denied", "requested", "suspended", "closed", "expired"][kind],
        period_start=start, period_end=end,
        ends_before=rng.choice([None, None, date(2025, 8, 1)]),
        suspensions=rng.choice([(), (), ((date(2025, 6, 1), date(2025, 6, 10)),), ((date(2026, 1, 1), None),)]),
        presumptive=rng.random() < 0.2, mcp_authorization_number=rng.choice([None, f"AUTH{n:06d}"]))


def _eligibility(rng: random.Random) -> list[EligibilityFact]:
    facts: list[EligibilityFact] = []
    for sequence in range(rng.randrange(4)):
        facts.append(EligibilityFact(
            kind=rng.choice(["enrolled", "enrolled", "not_enrolled", "excluded"]),
            effective_from=rng.choice([date(2024, 1, 1), date(2025, 6, 1), date(2025, 7, 1), date(2026, 1, 1)]),
            effective_to=rng.choice([None, None, date(2025, 6, 30), date(2026, 2, 28)]),
            mcp_code=rng.choice(["healthnet", "healthnet", "lacare", None]),
            program=rng.choice([None, "ecm", "chw"]), sequence=sequence))
    return facts


def _history(rng: random.Random, n: int, day: date) -> list[PriorEncounter]:
    prior: list[PriorEncounter] = []
    for index in range(rng.randrange(6)):
        program, cs_code, code, modifiers, outreach = rng.choice(SERVICES)
        when = day - timedelta(days=rng.choice([0, 0, 1, 20, 40, 200, 400]))
        prior.append(PriorEncounter(
            encounter_id=f"H{n}_{index}", cbo_organization_id=rng.choice(["org_cbo_a", "org_cbo_b"]),
            mcp_code=rng.choice(["healthnet", "lacare"]), program=program,
            service_code=rng.choice([cs_code or "ecm_clinical", "ecm_outreach", "housing_deposits", "chw",
                                     "asthma_remediation"]),
            hcpcs=code, modifiers=frozenset(modifiers), units=rng.choice([Decimal("1"), Decimal("4"), Decimal("11")]),
            service_from=when, service_to=when, rendering_npi=rng.choice([CBO_NPI, CHW_NPI]),
            outreach_attempt=outreach or rng.random() < 0.1,
            expected_amount=rng.choice([Decimal("0"), Decimal("75"), Decimal("1500"), Decimal("4000.50"),
                                        Decimal("6900")]),
            components=rng.choice([(), ("pmpm",), ("outreach",), ("outreach", "one_time_engagement"),
                                   ("per_unit",), ("per_encounter",)])))
    return prior


def _encounter(n: int) -> tuple[EncounterSubmission, CheckContext]:
    # Half the sweep is billable as sent (with realistic histories), half is drawn wide to hit every refusal.
    rng = random.Random(n)
    clean = n % 2 == 0
    program, cs_code, code, modifiers, outreach = rng.choice(SERVICES[:4] + SERVICES[10:13] + SERVICES[18:20]
                                                             if clean else SERVICES)
    day = rng.choice(DAYS[:5] if clean else DAYS)
    last = day + timedelta(days=rng.choice([0, 0, 0, 2] if clean else [0, 0, 0, 2, -1]))
    mcp = rng.choice(["healthnet", "lacare", None] if clean else MCPS)
    submission = EncounterSubmission(
        cbo_organization_id=rng.choice(["org_cbo_a", "org_cbo_a", "org_cbo_b"]), mcp_code=mcp, program=program,
        cs_code=cs_code, hcpcs=code, modifiers=modifiers,
        units=rng.choice([Decimal("1"), Decimal("2"), Decimal("2.5"), Decimal("13"), Decimal("0.333")]),
        service_from=day, service_to=last, rendering_npi=rng.choice([CBO_NPI, CHW_NPI]),
        outreach_attempt=outreach if clean or rng.random() < 0.9 else not outreach,
        outreach_outcome=rng.choice([None, "successful", "unsuccessful"]) if outreach or not clean else None,
        prerequisites=rng.choice([frozenset(), frozenset({"initiating_em_visit", "care_plan"}),
                                  frozenset({"care_plan"})]),
        care_plan_on_file=rng.random() < 0.3)
    plan = mcp or rng.choice(["healthnet", "lacare"])
    coverages = [_coverage(rng, n, program, cs_code, plan) for _ in range(rng.randrange(4))]
    eligibility = _eligibility(rng)
    if clean:
        coverages.append(Coverage(authorization_id=f"ok{n}", mcp_code=plan, program=program, cs_code=cs_code,
                                  status="approved", period_start=date(2024, 1, 1), period_end=date(2026, 12, 31),
                                  mcp_authorization_number=f"AUTH{n:07d}"))
        eligibility = [EligibilityFact(kind="enrolled", effective_from=date(2024, 1, 1), mcp_code=plan,
                                       sequence=9)]
    history = _history(rng, n, day)
    if clean:
        history = [p for p in history if p.program == program and rng.random() < 0.7]
        if outreach and n % 3 == 0:  # the month's outreach cap already used up
            history += [PriorEncounter(f"cap{n}_{k}", "org_cbo_b", plan, program, "ecm_outreach", code, frozenset(),
                                       Decimal("1"), day, day, CBO_NPI, True, Decimal("75"), ("outreach",))
                        for k in range(3)]
    context = CheckContext(configuration=CONFIG, coverages=coverages, eligibility=eligibility, history=history,
                           today=TODAY)
    return submission, context


def _verdict(result: CheckResult) -> str:
    price = result.price
    return repr((result.mcp_code, result.service_code,
                 result.authorization.authorization_id if result.authorization else None,
                 [(r.code, r.message) for r in result.reasons], [(f.code, f.message) for f in result.flags],
                 None if price is None else (str(price.amount), [(c.basis.value, str(c.amount), c.note)
                                                                 for c in price.components], price.flags)))


def _verdicts(count: int = 2000) -> list[str]:
    return [_verdict(check_encounter(*_encounter(n))) for n in range(count)]


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_check_and_price_verdicts_are_pinned() -> None:
    assert _digest("\n".join(_verdicts())) == PINS["verdicts"]


# ------------------------------------------------------------------------------------------------- 837P bytes

PROVIDERS = [
    BillingProvider("Golden State Care Hub", HUB_NPI, "941234567",
                    PostalAddress("100 Capitol Mall", "Sacramento", "CA", "958141234"), "251S00000X"),
    BillingProvider("Harbor Community Services", CBO_NPI, "951234567",
                    PostalAddress("2 Harbor Way", "Long Beach", "ca", "908021234", "Suite 5")),
]
NAMES = ["Testperson", "Peña", "O'Brien*Jr~", "  de la  Cruz ", "Ünal:Çelik^", "x" * 80, "Nguyễn", "smith-jones"]
DIAGNOSES = ["Z59.00", "z5941", "Z600", "F31.9", "E119", "I10", "J45909", "Z5986", "Z5948", "Z634", "Z7189", "Z5982"]
PROCEDURES = [("G9008", ("U1",)), ("G9008", ("U1", "GQ")), ("G9012", ("U8",)), ("H0044", ("U2",)), ("98960", ()),
              ("T1016", ("U8", "GQ")), ("S5165", ("U5", "U6", "GQ", "U1"))]
CHARGES = [Decimal("400"), Decimal("0"), Decimal("0.00"), Decimal("27.43"), Decimal("1500.5"), Decimal("12.35"),
           Decimal("54.86"), Decimal("1E+2"), Decimal("99999.99")]
UNITS = [Decimal("1"), Decimal("2"), Decimal("2.50"), Decimal("0.333"), Decimal("1E+1"), Decimal("12.0")]


def _claim(n: int) -> ProfessionalClaim:
    rng = random.Random(10_000 + n)
    lines = []
    diagnoses = tuple(rng.sample(DIAGNOSES, rng.randrange(1, 13)))
    for index in range(rng.choice([1, 1, 1, 2, 3, 7])):
        code, modifiers = rng.choice(PROCEDURES)
        start = date(2025, 6, 1) + timedelta(days=rng.randrange(60))
        lines.append(ServiceLine(
            procedure_code=code, modifiers=modifiers, charge=rng.choice(CHARGES), units=rng.choice(UNITS),
            service_from=start, service_to=rng.choice([None, start, start + timedelta(days=3)]),
            diagnosis_pointers=tuple(rng.sample(range(1, len(diagnoses) + 1), min(len(diagnoses),
                                                                                  rng.randrange(1, 5)))),
            place_of_service=rng.choice([None, None, "11", "12"]),
            control_number=rng.choice([None, f"E{n:07d}{index:02d}"])))
    frequency = rng.choice("1118")
    subscriber = Subscriber(
        f"9{n:07d}A", rng.choice(NAMES), rng.choice(NAMES), date(1950 + n % 60, 1 + n % 12, 1 + n % 28),
        rng.choice("FMUX"), PostalAddress(f"{n} Test St", rng.choice(["Los Angeles", "San José"]), "CA",
                                          rng.choice(["90012", "900121234"]), rng.choice([None, "Apt 2", "#4*"])),
        middle_name=rng.choice([None, None, "Q", "Ana María"]))
    rendering = rng.choice([
        None, RenderingProvider(CHW_NPI, "Worker", "Casey", "172V00000X"),
        RenderingProvider(CBO_NPI, "Harbor Community Services", None, None, organization=True),
        RenderingProvider(HUB_NPI, "Same As Billing", "Pat"), RenderingProvider(CHW_NPI, "Núñez", None, None)])
    return ProfessionalClaim(
        claim_id=f"C{(n * 7919) % 100_003:019d}", billing_provider=rng.choice(PROVIDERS), subscriber=subscriber,
        payer=Payer("Health Net Plan", "HEALTHNET"), place_of_service=rng.choice(["11", "12", "10"]),
        diagnosis_codes=diagnoses, lines=tuple(lines), frequency_code=frequency,
        payer_claim_number=f"PCN{n:08d}" if frequency in "78" else rng.choice([None, "PCNX"]),
        prior_authorization=rng.choice([None, f"AUTH{n:05d}"]), rendering_provider=rendering)


def _header(icn: int) -> BatchHeader:
    return BatchHeader(sender=Party("ZZ", "GSCHUB01", "GSCHUB01"), receiver_party=Party("ZZ", "HEALTHNET", "95567"),
                       submitter=Submitter("Golden State Care Hub", "GSCHUB01", "EDI Desk", "9165550100"),
                       receiver=Receiver("Health Net EDI", "95567"), interchange_control_number=icn,
                       group_control_number=icn, created=datetime(2025, 6, 30, 18, 5, tzinfo=UTC),
                       reference="BPIN0123456789012345678901234", usage="T")


def test_837p_bytes_are_pinned() -> None:
    claims = [_claim(n) for n in range(700)]
    built = build_837p(_header(123456789), claims, max_claims_per_transaction=97)
    assert built.transaction_sets == 8
    owners = "".join(f"{claim_id}={control};" for claim_id, control in sorted(built.transaction_of_claim.items()))
    assert (_digest(built.text), _digest(owners)) == (PINS["text"], PINS["owners"])
    with_breaks = build_837p(_header(5), claims[:40], line_breaks=True)
    assert _digest(with_breaks.text) == PINS["breaks"]


def test_priced_encounters_become_pinned_837p_bytes() -> None:
    # The benchmark's path end to end: checked and priced encounters billed as claims.
    provider = PROVIDERS[0]
    claims = []
    for n in range(3000):
        submission, context = _encounter(n)
        result = check_encounter(submission, context)
        if not result.accepted or result.price is None:
            continue
        claims.append(ProfessionalClaim(
            claim_id=f"C{n:019d}", billing_provider=provider,
            subscriber=Subscriber(f"9{n:07d}A", "Testperson", f"Alex{n}", date(1980, 1, 2), "F",
                                  PostalAddress(f"{n} Test St", "Los Angeles", "CA", "90012")),
            payer=Payer("Health Net Plan", "HEALTHNET"), place_of_service="11", diagnosis_codes=("Z5900",),
            lines=(ServiceLine(procedure_code=submission.hcpcs, modifiers=submission.modifiers,
                               charge=result.price.amount, units=submission.units,
                               service_from=submission.service_from, service_to=submission.service_to,
                               diagnosis_pointers=(1,), control_number=f"E{n:09d}"),),
            prior_authorization=result.authorization.mcp_authorization_number if result.authorization else None,
            rendering_provider=RenderingProvider(submission.rendering_npi, "Worker", "Casey")))
    assert len(claims) > 50
    assert _digest(build_837p(_header(42), claims).text) == PINS["priced"]


def test_calhub_rule_findings_are_pinned() -> None:
    text = build_837p(_header(7), [_claim(n) for n in range(60)], max_claims_per_transaction=25).text
    broken = (text.replace("XX*1234567893", "XX*1234567890", 3).replace("*958141234~", "*95814~", 2)
              .replace("SV1*HC:G9008:U1*400*", "SV1*HC:G9008:U1*401*", 2).replace("REF*F8*", "REF*ZZ*", 2)
              .replace("SV1*HC:98960*0*", "SV1*HC:98960*abc*", 1).replace("*X*005010X222A1~ST", "*X*005010X222A2~ST"))
    assert broken != text
    findings = [(i.position, i.segment, i.rule, i.message) for i in claim_rules(broken)]
    assert {f[2] for f in findings} >= {"npi-check-digit", "billing-zip-9", "clm02-sum", "gs08-version"}
    assert claim_rules(text) == []
    assert _digest(repr(findings)) == PINS["rules"]


def test_pinned_inputs_are_what_they_claim() -> None:
    # Guards the pins themselves: the sweep must stay wide (several verdict kinds) to mean anything.
    results = [check_encounter(*_encounter(n)) for n in range(2000)]
    codes = {r.code for result in results for r in result.reasons}
    assert {"no_authorization", "duplicate_encounter", "code_not_allowed", "timely_filing_expired",
            "ecm_chw_same_period", "lifetime_cap_exceeded", "not_eligible", "modifiers_not_allowed"} <= codes, codes
    assert sum(r.accepted for r in results) > 100
    assert replace(_claim(1)) == _claim(1)


def test_rules_read_a_file_in_chunks_exactly_as_one_split() -> None:
    # claim_rules splits a large file a megabyte at a time; the cuts must not move, merge or drop a segment.
    from claims.x12.validation import _segment_chunks

    rng = random.Random(7)
    for _ in range(3000):
        body = "".join(rng.choice("ab~\n") for _ in range(rng.randrange(1, 40)))
        pieces = [piece for chunk in _segment_chunks(body, "~", rng.randrange(1, 12)) for piece in chunk]
        whole = body.split("~")
        assert pieces == whole or pieces + [""] == whole, body
