"""Benchmark: check and price 50,000 encounters into claims, generate one 837P batch, validate it.

Stage 1 (the ≤ 10 s budget on 2 cores): every encounter runs the full pure check (code table by date,
authorization, eligibility, duplicates, ECM/CHW overlap, CHW threshold, caps, timely filing) and is priced from
the MCP's fee schedule (PMPM, per unit, outreach cap, engagement) against a member history, then becomes an 837P
claim; the 837P interchange (5,000 claims per transaction set) is built and CalHub's own rules (NPI check digits,
9-digit billing ZIP, CLM02 = ΣSV102, GS08) run over it. Stage 2, timed separately: pyx12 4.0 validates the whole
file against 005010X222A1. Prints one JSON object (claims/s, wall and CPU seconds per stage, peak RSS); CPU seconds
are the fair number on a shared machine.

    python bench/claims.py [--claims 50000] [--skip-guide]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path and its name would hide the service package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from claims.domain.encounters import (  # noqa: E402
    CheckContext,
    Coverage,
    EligibilityFact,
    EncounterSubmission,
    PriorEncounter,
    check_encounter,
)
from claims.testkit import CBO_NPI, CHW_NPI, make_billing  # noqa: E402
from claims.x12.validation import claim_rules, guide_issues  # noqa: E402
from claims.x12.x837p import (  # noqa: E402
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

from shared.x12.envelope import Party  # noqa: E402

TODAY = date(2025, 6, 30)
# (program, cs_code, code, modifiers, outreach) in the proportions a hub bills
SERVICES = [("ecm", None, "G9008", ("U1",), False), ("ecm", None, "G9012", ("U2", "GQ"), False),
            ("ecm", None, "G9012", ("U8",), True), ("cs", "housing_tenancy_sustaining", "T2040", ("U6",), False),
            ("cs", "housing_deposits", "H0044", ("U2",), False), ("chw", None, "98960", (), False)]


def _peak_rss_mb() -> float:
    # ru_maxrss is KiB on Linux.
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--claims", type=int, default=50_000)
    parser.add_argument("--skip-guide", action="store_true", help="skip the pyx12 stage")
    args = parser.parse_args()
    config = make_billing()
    hub = config.hub
    provider = BillingProvider(hub.name, hub.npi, hub.tin, PostalAddress(hub.address.line1, hub.address.city,
                                                                         hub.address.state, hub.address.zip),
                               hub.taxonomy)
    profile = config.mcps["healthnet"].profile
    payer = Payer(profile.payer_name, profile.payer_id)
    eligibility = [EligibilityFact(kind="enrolled", effective_from=date(2024, 1, 1), mcp_code="healthnet")]
    rss_before = _peak_rss_mb()

    started = time.perf_counter()
    cpu_started = time.process_time()
    claims: list[ProfessionalClaim] = []
    rejected = 0
    total = Decimal("0")
    for n in range(args.claims):
        program, cs_code, code, modifiers, outreach = SERVICES[n % len(SERVICES)]
        day = date(2025, 6, 1) + timedelta(days=n % 28)
        # Built with the constructor, as the service builds it from a request body (dataclasses.replace adds
        # several µs per encounter that the service never pays).
        submission = EncounterSubmission(
            cbo_organization_id="org_cbo_a", mcp_code="healthnet", program=program, cs_code=cs_code, hcpcs=code,
            modifiers=modifiers, units=Decimal("2") if program != "ecm" else Decimal("1"), service_from=day,
            service_to=day, rendering_npi=CBO_NPI, outreach_attempt=outreach,
            outreach_outcome="successful" if outreach and n % 4 == 0 else None)
        coverage = [Coverage(authorization_id=f"a{n}", mcp_code="healthnet", program=program, cs_code=cs_code,
                             status="approved", period_start=date(2025, 1, 1), period_end=date(2025, 12, 31),
                             mcp_authorization_number=f"AUTH{n:07d}")] if program != "chw" else []
        # A realistic member history: an earlier encounter of the same service this month (PMPM already billed
        # for half the members) and one last month.
        history = [PriorEncounter(encounter_id=f"H{n}", cbo_organization_id="org_cbo_a", mcp_code="healthnet",
                                  program=program, service_code="x", hcpcs=code, modifiers=frozenset(modifiers),
                                  units=Decimal("1"), service_from=day - timedelta(days=31),
                                  service_to=day - timedelta(days=31), rendering_npi=CBO_NPI,
                                  outreach_attempt=outreach, expected_amount=Decimal("100"),
                                  components=("pmpm",) if n % 2 else ())]
        result = check_encounter(submission, CheckContext(configuration=config, coverages=coverage,
                                                          eligibility=eligibility, history=history, today=TODAY))
        if not result.accepted or result.price is None:
            rejected += 1
            continue
        total += result.price.amount
        subscriber = Subscriber(f"9{n:07d}A", "Testperson", f"Alex{n}", date(1960 + n % 50, 1 + n % 12, 1 + n % 28),
                                "FM"[n % 2], PostalAddress(f"{n} Test St", "Los Angeles", "CA", "90012"))
        claims.append(ProfessionalClaim(
            claim_id=f"C{n:019d}", billing_provider=provider, subscriber=subscriber, payer=payer,
            place_of_service="11", diagnosis_codes=("Z5900", "Z5941"),
            lines=(ServiceLine(procedure_code=code, modifiers=modifiers, charge=result.price.amount,
                               units=submission.units, service_from=day, diagnosis_pointers=(1, 2),
                               control_number=f"E{n:09d}"),),
            prior_authorization=coverage[0].mcp_authorization_number if coverage else None,
            rendering_provider=RenderingProvider(CHW_NPI, "Worker", "Casey", "172V00000X")))
    priced = time.perf_counter()
    header = BatchHeader(sender=Party("ZZ", "GSCHUB01", "GSCHUB01"), receiver_party=Party("ZZ", "HEALTHNET", "95567"),
                         submitter=Submitter("Golden State Care Hub", "GSCHUB01", "EDI Desk", "9165550100"),
                         receiver=Receiver("Health Net EDI", "95567"), interchange_control_number=1,
                         group_control_number=1, created=datetime(2025, 6, 30, 18, tzinfo=UTC), reference="BBENCH")
    built = build_837p(header, claims)
    generated = time.perf_counter()
    own_issues = claim_rules(built.text)
    checked = time.perf_counter()
    cpu_checked = time.process_time()
    rss_generate = _peak_rss_mb()

    guide_seconds = guide_cpu_seconds = None
    guide_errors = None
    if not args.skip_guide:
        guide_started = time.perf_counter()
        guide_cpu = time.process_time()
        guide_errors = len(guide_issues(built.text))
        guide_seconds = round(time.perf_counter() - guide_started, 2)
        guide_cpu_seconds = round(time.process_time() - guide_cpu, 2)

    budget = checked - started
    print(json.dumps({
        "benchmark": "claims: check + price + 837P generation + CalHub rules, then pyx12 validation",
        "claims": len(claims), "rejected": rejected, "expected_total": str(total),
        "transaction_sets": built.transaction_sets, "file_bytes": len(built.text),
        "seconds_check_and_price": round(priced - started, 2),
        "seconds_generate_837p": round(generated - priced, 2),
        "seconds_calhub_rules": round(checked - generated, 2),
        "seconds_total_budgeted": round(budget, 2), "cpu_seconds_total_budgeted": round(cpu_checked - cpu_started, 2),
        "budget_seconds": 10,
        "claims_per_second": round(len(claims) / budget) if budget else None,
        "calhub_rule_issues": len(own_issues),
        "seconds_pyx12_validation": guide_seconds, "cpu_seconds_pyx12_validation": guide_cpu_seconds,
        "pyx12_errors": guide_errors,
        "pyx12_claims_per_second": round(len(claims) / guide_seconds) if guide_seconds else None,
        "peak_rss_mb_before": rss_before, "peak_rss_mb_after_generation": rss_generate,
        "peak_rss_mb_after_validation": _peak_rss_mb(), "cpus": os.cpu_count(),
    }))


if __name__ == "__main__":
    main()
