"""Synthetic builders for claims tests, demos and benchmarks (no real PHI: CINs 9000xxxxA, Testperson)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from claims import handlers
from claims.domain.configuration import BillingConfiguration, load_configuration
from claims.repository import ClaimsUnitOfWork
from shared.contracts.authorizations import AuthorizationApproved, AuthorizationRequested
from shared.contracts.eligibility import EligibilitySource, EligibilityVerified
from shared.contracts.values import MemberDemographics, Program, ServiceRequested, Urgency
from shared.envelope import Envelope, new_event
from shared.identity import member_id_for
from shared.runtime import ServiceRuntime

HUB_NPI = "1234567893"
CBO_NPI = "1245319599"
CHW_NPI = "1679576722"
HUB_ADDRESS = {"line1": "100 Capitol Mall", "city": "Sacramento", "state": "CA", "zip": "958141234"}


def _profile(payer: str, **overrides: Any) -> dict[str, Any]:
    profile: dict[str, Any] = {
        "claim_format": "837p", "billing_provider": "hub", "timely_filing_days": 180,
        "chw_threshold_action": "block", "payer_name": f"{payer} Plan", "payer_id": payer.upper()[:10],
        "receiver_name": f"{payer} EDI", "receiver_id": payer.upper()[:10],
        "interchange": {"qualifier": "ZZ", "id": payer.upper()[:15], "application_code": payer.upper()[:15]},
    }
    profile.update(overrides)
    return profile


def billing_data(*, cbo_id: str = "org_cbo_a", healthnet: dict[str, Any] | None = None,
                 lacare: dict[str, Any] | None = None) -> dict[str, Any]:
    """A billing configuration (as parsed YAML) with three MCPs: healthnet (837P, hub bills), lacare (837P,
    the CBO bills, CHW threshold flags) and partnership (invoice)."""
    return {
        "hub": {"name": "Golden State Care Hub", "npi": HUB_NPI, "tin": "941234567", "address": dict(HUB_ADDRESS),
                "taxonomy": "251S00000X"},
        "submitter": {"name": "Golden State Care Hub", "id": "GSCHUB01", "contact_name": "EDI Desk",
                      "contact_phone": "9165550100",
                      "interchange": {"qualifier": "ZZ", "id": "GSCHUB01", "application_code": "GSCHUB01"}},
        "cbos": {cbo_id: {"name": "Harbor Community Services", "npi": CBO_NPI, "tin": "951234567",
                          "address": {"line1": "2 Harbor Way", "city": "Long Beach", "zip": "908021234"}}},
        "mcps": {
            "healthnet": {"profile": _profile("healthnet", **(healthnet or {})), "fee_schedules": [
                {"effective_from": "2024-01-01", "effective_to": "2025-12-31", "rates": [
                    {"program": "ecm", "service_code": "ecm_clinical", "basis": "pmpm", "amount": "400.00"},
                    {"program": "ecm", "service_code": "ecm_non_clinical", "basis": "pmpm", "amount": "400.00"},
                    {"program": "ecm", "service_code": "ecm_outreach", "basis": "outreach", "amount": "75.00"},
                    {"program": "ecm", "basis": "one_time_engagement", "amount": "150.00"},
                    {"program": "cs", "basis": "per_unit", "amount": "35.00"},
                    {"program": "cs", "service_code": "housing_deposits", "basis": "per_encounter",
                     "amount": "1500.00"},
                    {"program": "cs", "service_code": "asthma_remediation", "basis": "per_encounter",
                     "amount": "2500.00"},
                    {"program": "chw", "basis": "per_unit", "amount": "27.43"}]},
                {"effective_from": "2026-01-01", "rates": [
                    {"program": "ecm", "basis": "pmpm", "amount": "425.00"},
                    {"program": "ecm", "service_code": "ecm_outreach", "basis": "outreach", "amount": "80.00"},
                    {"program": "chw", "basis": "per_unit", "amount": "28.00"},
                    {"program": "cs", "basis": "per_unit", "amount": "36.00"}]}]},
            "lacare": {"profile": _profile("lacare", billing_provider="cbo", timely_filing_days=90,
                                           chw_threshold_action="flag", **(lacare or {})),
                       "fee_schedules": [{"effective_from": "2024-01-01", "rates": [
                           {"program": "ecm", "basis": "per_encounter", "amount": "300.00"},
                           {"program": "ecm", "service_code": "ecm_outreach", "basis": "outreach", "amount": "50.00"},
                           {"program": "cs", "basis": "per_unit", "amount": "38.00"},
                           {"program": "chw", "hcpcs": "98960", "basis": "per_unit", "amount": "27.43"},
                           {"program": "chw", "hcpcs": "98961", "basis": "per_unit", "amount": "13.00"}]}]},
            "partnership": {"profile": _profile("partnership", claim_format="invoice", acceptance="999", hmo=True),
                            "fee_schedules": [{"effective_from": "2024-01-01", "rates": [
                                {"program": "ecm", "basis": "pmpm", "amount": "350.00"},
                                {"program": "ecm", "service_code": "ecm_outreach", "basis": "outreach",
                                 "amount": "60.00"}]}]},
        },
        # The hub's fee per CBO contract: org_cbo_a pays 10% until the contract changed on 2026-11-01, then 12%.
        "cbo_contracts": {
            cbo_id: {"fee_terms": [{"percent": "10", "effective_from": "2024-01-01", "effective_to": "2026-10-31"},
                                   {"percent": "12", "effective_from": "2026-11-01"}]},
            "org_cbo_b": {"fee_terms": [{"percent": "8", "effective_from": "2024-01-01"}]},
        },
    }


def make_billing(**kwargs: Any) -> BillingConfiguration:
    """The test billing configuration (see billing_data)."""
    return load_configuration(billing_data(**kwargs))


def cin(n: int) -> str:
    """A synthetic CIN: 9 followed by 7 digits and A."""
    return f"9{n:07d}A"


def member(n: int = 1) -> dict[str, Any]:
    """Synthetic member demographics for the API."""
    return {"cin": cin(n), "last_name": "Testperson", "first_name": f"Alex{n}", "birth_date": "1980-01-02",
            "sex": "F", "address": {"line1": f"{n} Test St", "city": "Los Angeles", "state": "CA", "zip": "90012"}}


def encounter_body(n: int = 1, **overrides: Any) -> dict[str, Any]:
    """A valid ECM encounter body (G9008 U1, in person)."""
    body: dict[str, Any] = {
        "member": member(n), "rendering_provider": {"npi": CBO_NPI, "last_name": "Worker", "first_name": "Casey"},
        "program": "ecm", "hcpcs": "G9008", "modifiers": ["U1"], "units": "1", "service_date": "2025-03-03",
        "place_of_service": "11", "diagnosis_codes": ["Z59.00"], "mcp_code": "healthnet",
    }
    body.update(overrides)
    return body


def authorization_events(n: int, *, mcp_code: str = "healthnet", program: str = "ecm", cs_code: str | None = None,
                         start: date = date(2025, 1, 1), end: date = date(2025, 12, 31),
                         authorization_id: str | None = None, number: str = "AUTH0001",
                         cbo_organization_id: str | None = None) -> list[Envelope[Any]]:
    """authorization.requested + authorization.approved for member n."""
    auth_id = authorization_id or f"auth_{n}_{program}_{cs_code or 'x'}_{mcp_code}"
    service = ServiceRequested(program=Program(program), cs_code=cs_code, pof_codes=("1a",) if program == "ecm" else ())
    now = datetime(2025, 1, 1, tzinfo=UTC)
    demographics = MemberDemographics(cin=cin(n), last_name="Testperson", first_name=f"Alex{n}",
                                      birth_date=date(1980, 1, 2))
    member_id = member_id_for(cin(n))
    requested = new_event(AuthorizationRequested(
        authorization_id=auth_id, member=demographics, mcp_code=mcp_code, cbo_organization_id=cbo_organization_id,
        service=service, urgency=Urgency.STANDARD, origin="referral", requested_at=now, decision_due=now,
        calendar="us-ca-state"), subject=auth_id, source="authorizations", member_id=member_id)
    approved = new_event(AuthorizationApproved(
        authorization_id=auth_id, mcp_code=mcp_code, cbo_organization_id=cbo_organization_id, service=service,
        decided_at=now, mcp_authorization_number=number, period_start=start, period_end=end),
        subject=auth_id, source="authorizations", member_id=member_id)
    return [requested, approved]


def eligibility_event(n: int, *, mcp_code: str = "healthnet", start: date = date(2024, 1, 1),
                      end: date | None = None) -> Envelope[Any]:
    """eligibility.verified for member n with an MCP from `start`."""
    return new_event(EligibilityVerified(cin=cin(n), mcp_code=mcp_code, source=EligibilitySource.X12_271,
                                         as_of=start, verified_at=datetime(2025, 1, 1, tzinfo=UTC),
                                         span_start=start, span_end=end),
                     subject=member_id_for(cin(n)), source="eligibility", member_id=member_id_for(cin(n)))


async def apply_events(runtime: ServiceRuntime, events: list[Envelope[Any]]) -> None:
    """Run the claims handlers for events in one committed unit of work (seeding projections in tests)."""
    async with runtime.uow() as uow:
        assert isinstance(uow, ClaimsUnitOfWork)
        for envelope in events:
            for handler in handlers.registry.handlers_for(envelope.type):
                await handler(envelope, uow)
        await uow.commit()


async def seed_member(runtime: ServiceRuntime, n: int, *, mcp_code: str = "healthnet", program: str = "ecm",
                      cs_code: str | None = None) -> None:
    """Eligibility plus an approved authorization for member n."""
    await apply_events(runtime, [eligibility_event(n, mcp_code=mcp_code),
                                 *authorization_events(n, mcp_code=mcp_code, program=program, cs_code=cs_code)])


async def seed_claim(runtime: ServiceRuntime, claim_id: str,
                     lines: list[tuple[str, str, tuple[str, ...], date, str]], *, n: int = 1,
                     mcp_code: str = "healthnet", cbo_organization_id: str = "org_cbo_a", status: str = "accepted",
                     payer_claim_number: str | None = None,
                     acknowledged_at: datetime | None = datetime(2026, 9, 20, 17, 0, tzinfo=UTC)) -> None:
    """A claim as the MCP has it (batched, submitted and accepted), with lines whose REF*6R ids are given:
    the remittance tests post part one's golden 835s (CLP01 CLM-1001...) against these."""
    from claims.models import Claim, ClaimLine

    now = datetime(2026, 9, 1, tzinfo=UTC)
    body = member(n)
    demographics = {k: body[k] for k in ("last_name", "first_name", "birth_date", "sex", "address")}
    total = sum((Decimal(charge) for *_, charge in lines), Decimal(0))
    first = min(day for _, _, _, day, _ in lines)
    last = max(day for _, _, _, day, _ in lines)
    async with runtime.uow() as uow:
        assert isinstance(uow, ClaimsUnitOfWork)
        uow.claims.add(Claim(
            id=claim_id, mcp_code=mcp_code, cbo_organization_id=cbo_organization_id, member_id=member_id_for(cin(n)),
            cin=cin(n), member=demographics, program="ecm", service_code="ecm_clinical", authorization_id=None,
            prior_authorization_number="AUTH0001", rendering_npi=CBO_NPI, rendering_last_name="Worker",
            rendering_first_name="Casey", billing_provider="hub", billing_npi=HUB_NPI, claim_format="837p",
            place_of_service="11", diagnosis_codes=["Z5900"], service_month=first.replace(day=1),
            service_from=first, service_to=last, frequency_code="1", replaces_claim_id=None,
            payer_claim_number=payer_claim_number, status=status, expected_amount=total, paid_amount=None,
            adjustment_amount=None, paid_on=None, rejection_reasons=[], batch_id="BSEED", transaction_set="0001",
            created_at=now, updated_at=now, submitted_at=now, acknowledged_at=acknowledged_at, version=1,
            settlement=None, received_on=None))
        for number, (line_id, hcpcs, modifiers, day, charge) in enumerate(lines, start=1):
            uow.claims.add_line(ClaimLine(
                claim_id=claim_id, line_number=number, encounter_id=line_id, hcpcs=hcpcs, modifiers=list(modifiers),
                units=Decimal(1), charge=Decimal(charge), service_from=day, service_to=day, place_of_service="11",
                diagnosis_pointers=[1], paid_amount=None, adjustment_amount=None))
        await uow.commit()


def remittance_paying(claims_837p: str, *, trace_number: str, paid_on: date, received_on: date,
                      payer: str = "HEALTHNET") -> str:
    """A well-formed 835 that pays in full every claim of an 837P (CLP01 = CLM01, SVC per SV1 with its REF*6R),
    as an MCP would send it back: what end-to-end tests drop where the gateway picks files up."""
    from shared.x12.envelope import EnvelopeSpec, Party, build_interchange, parse_interchange

    interchange = parse_interchange(claims_837p)
    component = interchange.delimiters.component
    body: list[list[str]] = []
    total = Decimal(0)
    service: list[list[str]] = []
    patient = ["NM1", "QC", "1", "", "", "", "", "", "MI", ""]
    for group in interchange.groups:
        for transaction in group.transactions:
            for seg in transaction.segments:
                if seg.id == "NM1" and seg.get(1) == "IL":  # the subscriber (CIN) of the claims that follow
                    patient = ["NM1", "QC", "1", seg.get(3), seg.get(4), "", "", "", "MI", seg.get(9)]
                elif seg.id == "CLM":
                    service = []
                    body += [["CLP", seg.get(1), "1", seg.get(2), seg.get(2), "", "MC", f"PCN{seg.get(1)}", "11",
                              "1"], list(patient), ["DTM", "050", f"{received_on:%Y%m%d}"]]
                    total += Decimal(seg.get(2))
                elif seg.id == "SV1":
                    procedure = seg.get(1).split(component)
                    service = [["SVC", ":".join(procedure), seg.get(2), seg.get(2), "", seg.get(4) or "1"]]
                    body += service
                elif seg.id == "DTP" and seg.get(1) == "472" and service:
                    body.append(["DTM", "472", seg.get(3).split("-")[0]])
                elif seg.id == "REF" and seg.get(1) == "6R" and service:
                    body.append(["REF", "6R", seg.get(2)])
    header = [["BPR", "I", str(total), "C", "ACH", "CCP", "01", "999999992", "DA", "123456", "1123456789", "", "01",
               "999988880", "DA", "98765", f"{paid_on:%Y%m%d}"],
              ["TRN", "1", trace_number, "1123456789"], ["DTM", "405", f"{paid_on:%Y%m%d}"],
              ["N1", "PR", f"{payer} PLAN"], ["N3", "1 PLAN WAY"], ["N4", "SACRAMENTO", "CA", "95814"],
              ["PER", "BL", "PROVIDER SERVICES", "TE", "9165550100"],
              ["N1", "PE", "GOLDEN STATE CARE HUB", "XX", HUB_NPI], ["LX", "1"]]
    spec = EnvelopeSpec(sender=Party("ZZ", payer, payer), receiver=Party("ZZ", "GSCHUB01", "GSCHUB01"),
                        interchange_control_number=int(paid_on.strftime("%y%m%d")), group_control_number=1,
                        functional_code="HP", version="005010X221A1",
                        created=datetime(paid_on.year, paid_on.month, paid_on.day, 9, 30))
    return build_interchange(spec, [header + body], st03=False)


__all__ = ["Decimal", "apply_events", "authorization_events", "billing_data", "cin", "eligibility_event",
           "encounter_body", "make_billing", "member", "remittance_paying", "seed_claim", "seed_member"]
