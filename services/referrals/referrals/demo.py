"""Demo referrals for `calhub run --demo`: a few synthetic referrals from the demo CBOs, through the same
service layer as the API, once (each under a fixed Idempotency-Key, so later starts change nothing)."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

from referrals import service
from referrals.domain.intake import check_referral
from referrals.repository import ReferralsUnitOfWork
from referrals.testkit import make_referral
from shared.auth import Caller
from shared.idempotency import idempotent, request_hash
from shared.runtime import ServiceRuntime

log = logging.getLogger("calhub.referrals.demo")


def demo_referrals(valley_id: str | None) -> list[tuple[str, str, dict[str, Any]]]:
    """(organization code, idempotency key, body) of each demo referral (synthetic members only)."""
    return [
        ("demo-cbo-harbor", "demo-referral-ecm", make_referral(cin="90000101A")),
        ("demo-cbo-harbor", "demo-referral-cs", make_referral(
            cin="90000102B", mcp_code=None, service={"program": "cs", "cs_code": "recuperative_care"},
            urgency="expedited", expedited_reason="Discharged today; no safe place to recover (synthetic).")),
        ("demo-cbo-valley", "demo-referral-chw", make_referral(
            cin="90000103C", mcp_code="healthnet", service={"program": "chw"},
            member={"cin": "90000103C", "last_name": "Testperson", "first_name": "Mei", "birth_date": "1990-02-03",
                    "address": {"line1": "300 Example Rd", "city": "Fresno", "zip": "93721", "county": "Fresno"}},
            cbo_organization_id=valley_id)),
    ]


async def seed(runtime: ServiceRuntime, organizations: Sequence[dict[str, Any]]) -> None:
    """Create the demo referrals unless they exist (idempotent: runs at every demo start)."""
    by_code = {org["code"]: org for org in organizations}
    valley = by_code.get("demo-cbo-valley")
    for code, key, body in demo_referrals(valley["organization_id"] if valley else None):
        org = by_code.get(code)
        if org is None:
            continue
        caller = Caller(organization_id=org["organization_id"], organization_kind=org["kind"],
                        organization_code=org["code"], key_id="demo-seed", scopes=frozenset({"referrals:write"}))
        uow = runtime.uow()
        assert isinstance(uow, ReferralsUnitOfWork)
        async with uow:
            async def produce(uow: ReferralsUnitOfWork = uow, body: dict[str, Any] = body,
                              caller: Caller = caller) -> tuple[int, Any]:
                now = service.clock_of(uow).now()
                draft, violations = check_referral(body, today=service.pacific_date(now))
                if draft is None:
                    raise ValueError(f"demo referral is invalid: {[v.rule for v in violations]}")
                try:
                    referral = await service.submit_referral(uow, draft, caller, channel="api", now=now)
                except service.DuplicateReferral as duplicate:
                    return 409, {"existing_referral_id": duplicate.existing.id}
                return 201, {"id": referral.id}

            fingerprint = request_hash("POST", "/v1/referrals", json.dumps(body).encode())
            result = await idempotent(uow.session, uow.tables, caller, key, fingerprint, produce)
            await uow.commit()
        log.info("demo referral seeded", extra={"replayed": result.replayed, "status_code": result.status_code})
