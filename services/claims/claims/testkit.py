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
            "partnership": {"profile": _profile("partnership", claim_format="invoice", acceptance="999"),
                            "fee_schedules": [{"effective_from": "2024-01-01", "rates": [
                                {"program": "ecm", "basis": "pmpm", "amount": "350.00"},
                                {"program": "ecm", "service_code": "ecm_outreach", "basis": "outreach",
                                 "amount": "60.00"}]}]},
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


__all__ = ["Decimal", "apply_events", "authorization_events", "billing_data", "cin", "eligibility_event",
           "encounter_body", "make_billing", "member", "seed_member"]
