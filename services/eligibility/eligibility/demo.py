"""Demo enrollment for `calhub run --demo`: the hub's eligibility desk enters the demo members' Medi-Cal managed
care enrollment by hand, through the same service function as `POST /v1/members/{cin}/enrollment`.

The facts flow on as eligibility.verified: referrals routes the demo Community Supports referral that waited for
a plan, claims can check encounters against enrollment, authorizations learns who is eligible. Idempotent: a
member whose enrollment CalHub already knows (from any source) is left alone. Synthetic members only.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from eligibility import models, service
from eligibility.domain.enrollment import Observation, Source
from eligibility.repository import EligibilityUnitOfWork
from shared.auth import Caller, record_audit
from shared.runtime import ServiceRuntime

log = logging.getLogger("calhub.eligibility.demo")

SPAN_MONTHS_BACK = 6  # coverage began on the first of the month this many months ago


@dataclass(frozen=True)
class DemoEnrollment:
    """One member's enrollment as the eligibility desk enters it."""

    cin: str
    mcp_code: str
    last_name: str
    first_name: str
    birth_date: date


# The demo referrals' members (referrals/demo.py), the overdue request's member (authorizations/demo.py).
DEMO_ENROLLMENTS = (
    DemoEnrollment("90000101A", "lacare", "Testperson", "Ana", date(1968, 4, 12)),
    DemoEnrollment("90000102B", "lacare", "Testperson", "Ana", date(1968, 4, 12)),
    DemoEnrollment("90000103C", "healthnet", "Testperson", "Mei", date(1990, 2, 3)),
    DemoEnrollment("90000104D", "lacare", "Demoperson", "Luis", date(1955, 7, 19)),
)


def span_start(today: date, months_back: int = SPAN_MONTHS_BACK) -> date:
    """The first day of the month `months_back` months before today's."""
    index = today.year * 12 + (today.month - 1) - months_back
    return date(index // 12, index % 12 + 1, 1)


async def seed(runtime: ServiceRuntime, organizations: Sequence[dict[str, Any]]) -> None:
    """Enter each demo member's enrollment unless an enrollment fact is already known (idempotent)."""
    hub = next((org for org in organizations if org["kind"] == "hub"), None)
    if hub is None:
        return
    caller = Caller(organization_id=hub["organization_id"], organization_kind="hub", organization_code=hub["code"],
                    key_id="demo-seed", scopes=frozenset({"eligibility:write"}))
    entered = 0
    for item in DEMO_ENROLLMENTS:
        if service.known_plan(item.mcp_code) is None:
            continue
        uow = runtime.uow()
        assert isinstance(uow, EligibilityUnitOfWork)
        async with uow:
            known = await uow.members.find_by_cin(item.cin)
            if known is not None:
                # Referrals and authorizations make a member known before any enrollment fact: only facts count.
                state = (await uow.members.load_states([known.member_id]))[known.member_id]
                if state.spans or state.source is not None:
                    continue
            today = uow.today()
            observation = Observation(True, item.mcp_code, today, Source.MANUAL, uow.now(),
                                      span_start=span_start(today))
            applied = await service.record_manual(uow, cin=item.cin, observation=observation, demographics={
                "last_name": item.last_name, "first_name": item.first_name, "birth_date": item.birth_date})
            await record_audit(uow.session, models.audit_event, action="member.enrollment.entered",
                               resource_type="member", resource_id=applied.member_id, caller=caller,
                               detail={"mcp_code": item.mcp_code, "active": True, "demo": True})
            await uow.commit()
            entered += 1
    log.info("demo enrollment seeded", extra={"entered": entered})
