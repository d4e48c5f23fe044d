"""Demo decisions for `calhub run --demo`: the MCPs answer the demo referrals' authorization requests, and one
request received weeks ago still waits past its deadline (so the ops console's overdue board has something).

Everything goes through the service layer the API and handlers use (`record_decision`, `open_request`), so the
events, history, timers and audit rows are the real ones. Idempotent: a request is decided only while it is still
open, and the overdue request is opened only when its member has none (synthetic members only).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from authorizations.domain.status import OPEN, DecisionKind
from authorizations.models import Authorization
from authorizations.repository import AuthorizationsUnitOfWork
from authorizations.service import DecisionInput, NewRequest, now_of, open_request, pacific_date, record_decision
from shared.auth import Caller, record_audit
from shared.contracts.authorizations import AuthorizationOrigin
from shared.contracts.values import MemberDemographics, Program, ServiceRequested, Urgency
from shared.identity import member_id_for
from shared.runtime import ServiceRuntime

log = logging.getLogger("calhub.authorizations.demo")

WAIT_SECONDS = 10.0  # how long to wait for the referrals' requests to arrive over the bus
POLL_SECONDS = 0.2

# The demo referrals (referrals/demo.py) and what their MCP decides.
APPROVED_CIN, APPROVED_MCP = "90000101A", "lacare"
APPROVED_NUMBER = "LAC-DEMO-0101"
APPROVED_RETRO_DAYS = 30  # the MCP approves from the start of outreach, so the demo CBO has dates to bill
DENIED_CIN, DENIED_MCP = "90000103C", "healthnet"
DENIED_REASON = "Member already receives equivalent services through another program (synthetic demo)."

# A request received before the demo started that its MCP never answered: overdue on the board.
OVERDUE_CIN, OVERDUE_MCP = "90000104D", "lacare"
OVERDUE_AGE_DAYS = 21
OVERDUE_MEMBER: dict[str, Any] = {
    "cin": OVERDUE_CIN, "last_name": "Demoperson", "first_name": "Luis", "birth_date": "1955-07-19", "sex": "M",
    "phone": "(213) 555-0104", "preferred_language": "en",
    "address": {"line1": "400 Sample Blvd", "city": "Los Angeles", "zip": "90015", "county": "Los Angeles"}}
_CORRELATIONS = uuid.UUID("2f0c9a7e-5d61-4c4b-9a57-2f7c3d1e9b40")  # namespace of the demo lineage ids


def _caller(org: dict[str, Any]) -> Caller:
    return Caller(organization_id=org["organization_id"], organization_kind=org["kind"],
                  organization_code=org["code"], key_id="demo-seed", scopes=frozenset({"authorizations:write"}))


def _uow(runtime: ServiceRuntime) -> AuthorizationsUnitOfWork:
    uow = runtime.uow()
    assert isinstance(uow, AuthorizationsUnitOfWork)
    return uow


async def _wait_request(runtime: ServiceRuntime, cin: str, mcp_code: str) -> str | None:
    """The id of the member's referral request with the MCP, once authorizations has it (bounded wait)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_SECONDS
    while True:
        async with _uow(runtime) as uow:
            found = [a.id for a in await uow.authorizations.for_member(member_id_for(cin), mcp_code=mcp_code)
                     if a.origin == AuthorizationOrigin.REFERRAL.value]
        if found:
            return found[0]
        if loop.time() >= deadline:
            return None
        await asyncio.sleep(POLL_SECONDS)


async def _decide(runtime: ServiceRuntime, auth_id: str, decision: DecisionInput, mcp: dict[str, Any]) -> bool:
    """Record the MCP's decision as its API call would, unless the request is no longer open."""
    caller = _caller(mcp)
    async with _uow(runtime) as uow:
        auth = await uow.authorizations.get(auth_id, for_update=True)
        if auth is None or auth.status not in {s.value for s in OPEN} or auth.mcp_code != mcp["code"]:
            return False
        await record_decision(uow, auth, decision, actor=caller.organization_id, parent=None)
        await record_audit(uow.session, uow.audit, action="authorization.decision_recorded",
                           resource_type="authorization", resource_id=auth.id, caller=caller,
                           detail={"decision": decision.kind.value, "demo": True})
        await uow.commit()
    return True


async def _open_overdue(runtime: ServiceRuntime, cbo: dict[str, Any] | None) -> bool:
    """Open the long-unanswered request unless the member has one; its escalation timer fires at once."""
    member_id = member_id_for(OVERDUE_CIN)
    async with _uow(runtime) as uow:
        if await uow.authorizations.for_member(member_id, mcp_code=OVERDUE_MCP):
            return False
        received = now_of(uow) - timedelta(days=OVERDUE_AGE_DAYS)
        auth: Authorization = await open_request(uow, NewRequest(
            member=MemberDemographics.model_validate(OVERDUE_MEMBER),
            service=ServiceRequested(program=Program.ECM, pof_codes=("3",)), urgency=Urgency.STANDARD,
            mcp_code=OVERDUE_MCP, origin=AuthorizationOrigin.REFERRAL, received_at=received,
            correlation_id=uuid.uuid5(_CORRELATIONS, f"overdue:{OVERDUE_CIN}"),
            cbo_organization_id=cbo["organization_id"] if cbo else None,
            referring_organization_id=cbo["organization_id"] if cbo else None), actor="demo-seed", parent=None)
        auth_id = auth.id
        await uow.commit()
    log.info("demo overdue request opened", extra={"authorization_id": auth_id})
    return True


async def seed(runtime: ServiceRuntime, organizations: Sequence[dict[str, Any]]) -> None:
    """Approve one demo referral, deny another, and leave one request overdue (idempotent)."""
    by_code = {org["code"]: org for org in organizations}
    approved = await _wait_request(runtime, APPROVED_CIN, APPROVED_MCP)
    if approved is not None and APPROVED_MCP in by_code:
        async with _uow(runtime) as uow:
            start = pacific_date(now_of(uow)) - timedelta(days=APPROVED_RETRO_DAYS)
        done = await _decide(runtime, approved, DecisionInput(
            kind=DecisionKind.APPROVED, mcp_authorization_number=APPROVED_NUMBER, period_start=start),
            by_code[APPROVED_MCP])
        log.info("demo approval", extra={"authorization_id": approved, "recorded": done})
    denied = await _wait_request(runtime, DENIED_CIN, DENIED_MCP)
    if denied is not None and DENIED_MCP in by_code:
        done = await _decide(runtime, denied, DecisionInput(kind=DecisionKind.DENIED, reason=DENIED_REASON),
                             by_code[DENIED_MCP])
        log.info("demo denial", extra={"authorization_id": denied, "recorded": done})
    if approved is None or denied is None:
        log.warning("demo referral requests did not arrive in time; their decisions are skipped",
                    extra={"approved_found": approved is not None, "denied_found": denied is not None})
    await _open_overdue(runtime, by_code.get("demo-cbo-valley"))
