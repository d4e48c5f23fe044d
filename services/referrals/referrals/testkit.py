"""Synthetic referral payloads and event builders for tests and the demo (no real PHI)."""

from __future__ import annotations

import copy
from datetime import UTC, date, datetime
from typing import Any

from shared.contracts.authorizations import (
    AuthorizationApproved,
    AuthorizationClosed,
    AuthorizationDenied,
    AuthorizationExpired,
    AuthorizationOrigin,
    AuthorizationReauthRequested,
    AuthorizationRequested,
)
from shared.contracts.claims import EncounterRecorded
from shared.contracts.eligibility import EligibilityLost, EligibilitySource, EligibilityVerified
from shared.contracts.values import MemberDemographics, Program, ServiceRequested, Urgency
from shared.envelope import Envelope, new_event

VALID_NPI = "1234567893"
OTHER_VALID_NPI = "1245319599"


def make_referral(cin: str = "90000001A", **overrides: Any) -> dict[str, Any]:
    """A valid ECM referral body for a Los Angeles member naming L.A. Care; overrides replace top-level keys."""
    body: dict[str, Any] = {
        "member": {"cin": cin, "last_name": "Testperson", "first_name": "Ana", "birth_date": "1968-04-12",
                   "sex": "F", "phone": "(213) 555-0100", "preferred_language": "es",
                   "address": {"line1": "100 Example St", "city": "Los Angeles", "zip": "90012",
                               "county": "Los Angeles"}},
        "mcp_code": "lacare",
        "service": {"program": "ecm", "pof_codes": ["1a", "3"]},
        "urgency": "standard",
        "referring": {"npi": VALID_NPI, "name": "Harbor Community Services",
                      "contact": {"name": "Sam Coordinator", "phone": "213-555-0199"}},
        "notes": "Synthetic test referral.",
        "consent": {"share_with_mcp": True, "contact_member": True},
    }
    body.update(copy.deepcopy(overrides))
    return body


def with_path(body: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of `body` with the dotted `path` set to `value` (value `...` deletes the key)."""
    result = copy.deepcopy(body)
    target = result
    *parents, last = path.split(".")
    for part in parents:
        target = target[part]
    if value is ...:
        target.pop(last, None)
    else:
        target[last] = value
    return result


def make_service_request(cin: str = "90000004D", **overrides: Any) -> dict[str, Any]:
    """A Gravity-style R4 ServiceRequest with a contained Patient and requester Organization."""
    request: dict[str, Any] = {
        "resourceType": "ServiceRequest",
        "contained": [
            {"resourceType": "Patient", "id": "p1",
             "identifier": [{"system": "https://calhub.dev/fhir/NamingSystem/medi-cal-cin", "value": cin}],
             "name": [{"family": "Testperson", "given": ["Rosa", "Maria"]}], "birthDate": "1975-09-30",
             "gender": "female", "telecom": [{"system": "phone", "value": "559-555-0100"}],
             "communication": [{"language": {"coding": [{"system": "urn:ietf:bcp:47", "code": "es"}]},
                                "preferred": True}],
             "address": [{"use": "home", "line": ["200 Example Ave"], "city": "Fresno", "state": "CA",
                          "postalCode": "93721", "district": "Fresno"}]},
            {"resourceType": "Organization", "id": "o1", "name": "Valley Care Partners",
             "identifier": [{"system": "http://hl7.org/fhir/sid/us-npi", "value": VALID_NPI}],
             "contact": [{"name": {"text": "Sam Coordinator"},
                          "telecom": [{"system": "phone", "value": "5595550100"}]}]},
        ],
        "identifier": [{"system": "urn:example:ehr", "value": "SR-1001"}],
        "status": "active", "intent": "order", "priority": "routine",
        "code": {"coding": [{"system": "https://calhub.dev/fhir/CodeSystem/calaim-program", "code": "ecm"}]},
        "reasonCode": [{"coding": [{"system": "https://calhub.dev/fhir/CodeSystem/ecm-population-of-focus",
                                    "code": "2"}]}],
        "subject": {"reference": "#p1"}, "requester": {"reference": "#o1"},
        "note": [{"text": "Synthetic FHIR referral."}],
    }
    request.update(copy.deepcopy(overrides))
    return request


def member(cin: str = "90000001A") -> MemberDemographics:
    """Synthetic member demographics for events."""
    return MemberDemographics(cin=cin, last_name="Testperson", first_name="Ana", birth_date=date(1968, 4, 12))


NOW = datetime(2026, 11, 20, 17, 0, tzinfo=UTC)
ECM = ServiceRequested(program=Program.ECM, pof_codes=("1a",))


def requested(referral_id: str | None, authorization_id: str, mcp_code: str = "lacare", *,
              previous_authorization_id: str | None = None) -> Envelope[Any]:
    """authorization.requested for a referral (a reauthorization when it names the previous authorization)."""
    origin = AuthorizationOrigin.REAUTHORIZATION if previous_authorization_id else AuthorizationOrigin.REFERRAL
    return new_event(AuthorizationRequested(
        authorization_id=authorization_id, referral_id=referral_id, member=member(), mcp_code=mcp_code,
        service=ECM, urgency=Urgency.STANDARD, origin=origin, requested_at=NOW, decision_due=NOW,
        calendar="us-ca-state", previous_authorization_id=previous_authorization_id),
        subject=authorization_id, source="authorizations")


def approved(referral_id: str | None, authorization_id: str, *,
             previous_authorization_id: str | None = None, decided_at: datetime = NOW) -> Envelope[Any]:
    """authorization.approved."""
    return new_event(AuthorizationApproved(
        authorization_id=authorization_id, referral_id=referral_id, mcp_code="lacare", service=ECM,
        decided_at=decided_at, period_start=NOW.date(), period_end=date(2027, 11, 19),
        previous_authorization_id=previous_authorization_id), subject=authorization_id, source="authorizations")


def denied(referral_id: str | None, authorization_id: str, reason: str = "not in a Population of Focus", *,
           decided_at: datetime = NOW) -> Envelope[Any]:
    """authorization.denied."""
    return new_event(AuthorizationDenied(
        authorization_id=authorization_id, referral_id=referral_id, mcp_code="lacare", service=ECM,
        decided_at=decided_at, reason=reason), subject=authorization_id, source="authorizations")


def reauthorized(authorization_id: str, new_authorization_id: str) -> Envelope[Any]:
    """authorization.reauth_requested."""
    return new_event(AuthorizationReauthRequested(
        authorization_id=authorization_id, new_authorization_id=new_authorization_id, mcp_code="lacare"),
        subject=authorization_id, source="authorizations")


def expired(authorization_id: str, referral_id: str | None = None) -> Envelope[Any]:
    """authorization.expired (naming its referral, as the authorizations service does since decision 0127)."""
    return new_event(AuthorizationExpired(authorization_id=authorization_id, referral_id=referral_id,
                                          mcp_code="lacare", period_end=date(2027, 11, 19)),
                     subject=authorization_id, source="authorizations")


def closed(authorization_id: str, reason: str = "member disenrolled", referral_id: str | None = None,
           ) -> Envelope[Any]:
    """authorization.closed (naming its referral, as the authorizations service does since decision 0127)."""
    return new_event(AuthorizationClosed(authorization_id=authorization_id, referral_id=referral_id,
                                         mcp_code="lacare", reason=reason, effective=NOW.date()),
                     subject=authorization_id, source="authorizations")


def encounter(authorization_id: str | None, encounter_id: str = "enc_1") -> Envelope[Any]:
    """encounter.recorded."""
    from decimal import Decimal

    return new_event(EncounterRecorded(
        encounter_id=encounter_id, cbo_organization_id="org_cbo_a", mcp_code="lacare",
        authorization_id=authorization_id, program=Program.ECM, service_date=NOW.date(), hcpcs="G9012",
        modifiers=("U2",), units=Decimal("1")), subject=encounter_id, source="claims")


def verified(cin: str, mcp_code: str | None, as_of: date = date(2026, 11, 1)) -> Envelope[Any]:
    """eligibility.verified."""
    return new_event(EligibilityVerified(cin=cin, mcp_code=mcp_code, source=EligibilitySource.X12_271,
                                         as_of=as_of, verified_at=NOW), subject=f"elig_{cin[-4:]}",
                     source="eligibility")


def lost(cin: str, mcp_code: str, *, as_of: date, effective: date) -> Envelope[Any]:
    """eligibility.lost: learnt on `as_of`, in effect from `effective` (earlier when retroactive)."""
    return new_event(EligibilityLost(cin=cin, mcp_code=mcp_code, source=EligibilitySource.X12_271, as_of=as_of,
                                     verified_at=datetime.combine(as_of, NOW.timetz()), effective=effective,
                                     reason="coverage inactive"),
                     subject=f"elig_{cin[-4:]}", source="eligibility")


# ------------------------------------------------------------------------------------------ harness


def callers() -> dict[str, Any]:
    """Bearer tokens → synthetic callers: the hub, two CBOs, two MCPs, a reader and a key without scopes."""
    from shared.testing.app import make_caller

    rw = ("referrals:read", "referrals:write")
    return {
        "hub": make_caller("hub", "org_hub", scopes=rw),
        "cbo_a": make_caller("cbo", "org_cbo_a", scopes=rw),
        "cbo_b": make_caller("cbo", "org_cbo_b", scopes=rw),
        "mcp_lacare": make_caller("mcp", "org_mcp_lacare", code="lacare", scopes=("referrals:read",)),
        "mcp_healthnet": make_caller("mcp", "org_mcp_healthnet", code="healthnet", scopes=("referrals:read",)),
        "reader": make_caller("cbo", "org_cbo_a", scopes=("referrals:read",)),
        "noscope": make_caller("cbo", "org_cbo_a", scopes=("claims:read",)),
    }


async def publish(bus: Any, *events: Envelope[Any]) -> None:
    """Put events on the bus as their producers would (encoded, keyed by subject)."""
    from shared.bus.message import encode

    await bus.publish([encode(e) for e in events])



async def deliver(h: Any, *events: Envelope[Any]) -> None:
    """Publish each event and wait until the referrals consumer handled it (its inbox row): exactly this order."""
    from sqlalchemy import func, select

    from shared.testing.polling import eventually

    runtime = h.runtimes["referrals"]
    inbox = runtime.definition.tables.inbox
    for event in events:
        await publish(h.bus, event)

        async def handled(event_id: Any = event.id) -> bool:
            async with runtime.sessions() as session:
                return bool(await session.scalar(select(func.count()).select_from(inbox)
                                                 .where(inbox.c.event_id == event_id)))

        await eventually(handled, within=10.0, interval=0.02)
