"""Demo billing for `calhub run --demo`: the demo CBO records a few ECM encounters for the member L.A. Care
approved, one encounter is refused (billed before the MCP decided the request), and the hub's billing staff seal
L.A. Care's drafts into an 837P that the gateway delivers to L.A. Care's /outbound folder.

Claims checks every encounter against the authorization and eligibility it has learned from events. The demo
seeds run in service order and claims comes before eligibility, so the billing waits in a background part of the
claims runtime (bounded) until both facts have arrived, and then goes through the same service functions as
`POST /v1/encounters` and `POST /v1/claims/batches`. Idempotent: encounters carry fixed external ids (a repeat
returns the first), and the batch is sealed only while a demo claim is still a draft. Synthetic data only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from claims import service
from claims.repository import ClaimsUnitOfWork
from claims.schemas import EncounterIn
from shared.auth import Caller
from shared.identity import member_id_for
from shared.reference.calendar import PACIFIC
from shared.runtime import Background, ServiceRuntime

log = logging.getLogger("calhub.claims.demo")

WAIT_SECONDS = 90.0  # upper bound for the authorization and eligibility facts to arrive over the bus
POLL_SECONDS = 0.25
MCP_CODE = "lacare"
BILLED_CIN = "90000101A"  # approved by L.A. Care in authorizations/demo.py (period from 30 days ago)
UNDECIDED_CIN = "90000104D"  # request left overdue in authorizations/demo.py
SERVICE_DAYS_AGO = (21, 14, 7)  # the care manager's in-person visits
CARE_MANAGER = {"npi": "1245319599", "last_name": "Worker", "first_name": "Casey"}  # Harbor's synthetic NPI


@dataclass(frozen=True)
class DemoEncounter:
    """One encounter the demo CBO posts."""

    cbo_code: str
    body: dict[str, Any]


def _member(cin: str, first_name: str, birth_date: str, line1: str, city: str, zip_code: str) -> dict[str, Any]:
    return {"cin": cin, "last_name": "Testperson", "first_name": first_name, "birth_date": birth_date, "sex": "F",
            "address": {"line1": line1, "city": city, "state": "CA", "zip": zip_code}}


def demo_encounters(today: date) -> list[DemoEncounter]:
    """The demo encounters as of today (the external ids, not the dates, make them idempotent)."""
    ana = _member(BILLED_CIN, "Ana", "1968-04-12", "100 Example St", "Los Angeles", "90012")
    items = [DemoEncounter("demo-cbo-harbor", {
        "external_id": f"demo-ecm-visit-{n}", "member": ana, "rendering_provider": CARE_MANAGER, "program": "ecm",
        "hcpcs": "G9008", "modifiers": ["U1"], "units": "1", "service_date": (today - timedelta(days=days)),
        "place_of_service": "11", "diagnosis_codes": ["Z59.00"], "mcp_code": MCP_CODE})
        for n, days in enumerate(SERVICE_DAYS_AGO, start=1)]
    # Billed before L.A. Care decided the request (authorizations/demo.py leaves it overdue): refused with
    # no_authorization and kept with its reasons, so the CBO's rejection queue has an entry.
    luis = {"cin": UNDECIDED_CIN, "last_name": "Demoperson", "first_name": "Luis", "birth_date": "1955-07-19",
            "sex": "M", "address": {"line1": "400 Sample Blvd", "city": "Los Angeles", "state": "CA", "zip": "90015"}}
    items.append(DemoEncounter("demo-cbo-valley", {
        "external_id": "demo-ecm-visit-undecided", "member": luis,
        "rendering_provider": {"npi": "1679576722", "last_name": "Helper", "first_name": "Jordan"},
        "program": "ecm", "hcpcs": "G9008", "modifiers": ["U1"], "units": "1",
        "service_date": today - timedelta(days=3), "place_of_service": "12", "diagnosis_codes": ["Z59.00"],
        "mcp_code": MCP_CODE}))
    return items


def _caller(org: dict[str, Any], scope: str) -> Caller:
    return Caller(organization_id=org["organization_id"], organization_kind=org["kind"],
                  organization_code=org["code"], key_id="demo-seed", scopes=frozenset({scope}))


def _uow(runtime: ServiceRuntime) -> ClaimsUnitOfWork:
    uow = runtime.uow()
    assert isinstance(uow, ClaimsUnitOfWork)
    return uow


async def facts_ready(runtime: ServiceRuntime) -> bool:
    """True once claims knows (its own read paths) the billed member's approved authorization, and both
    members' enrollment: the refused encounter is then refused for the missing authorization alone."""
    async with _uow(runtime) as uow:
        coverages = await uow.coverages.for_member(member_id_for(BILLED_CIN))
        facts = [await uow.eligibility.for_member(member_id_for(cin)) for cin in (BILLED_CIN, UNDECIDED_CIN)]
    approved = any(c.mcp_code == MCP_CODE and c.status == "approved" for c in coverages)
    enrolled = all(any(f.kind == "enrolled" and f.mcp_code == MCP_CODE for f in known) for known in facts)
    return approved and enrolled


async def bill(runtime: ServiceRuntime, organizations: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Post the demo encounters and seal L.A. Care's drafts into an 837P; returns what was done."""
    by_code = {org["code"]: org for org in organizations}
    hub = next((org for org in organizations if org["kind"] == "hub"), None)
    recorded = existing = 0
    demo_claims: set[str] = set()
    async with _uow(runtime) as uow:
        today = service.clock(uow).now().astimezone(PACIFIC).date()
    for item in demo_encounters(today):
        org = by_code.get(item.cbo_code)
        if org is None:
            continue
        caller = _caller(org, "claims:write")
        async with _uow(runtime) as uow:
            outcome = await service.record_encounter(uow, EncounterIn.model_validate(item.body),
                                                     cbo_organization_id=org["organization_id"],
                                                     actor=service.Actor(caller=caller))
            await uow.commit()
        existing += outcome.existing
        recorded += not outcome.existing
        if outcome.encounter.claim_id:
            demo_claims.add(outcome.encounter.claim_id)
    batch_id = None
    if hub is not None and demo_claims:
        settings = runtime.settings
        async with _uow(runtime) as uow:
            drafts = [c for c in [await uow.claims.get(i) for i in sorted(demo_claims)]
                      if c is not None and c.status == "draft"]
            if drafts:
                result = await service.create_batch(
                    uow, MCP_CODE, actor=service.Actor(caller=_caller(hub, "claims:write")), trigger="on_demand",
                    validate=bool(getattr(settings, "validate_batches", True)),
                    max_claims=int(getattr(settings, "max_claims_per_batch", 50_000)))
                batch_id = result.batch.id if result is not None and result.batch is not None else None
                await uow.commit()
    return {"recorded": recorded, "existing": existing, "claims": len(demo_claims), "batch_id": batch_id}


class DemoBilling(Background):
    """Waits for the facts billing needs, then bills once; stopped with the claims runtime."""

    def __init__(self, runtime: ServiceRuntime, organizations: Sequence[dict[str, Any]]) -> None:
        self.runtime = runtime
        self.organizations = list(organizations)
        self.status = "waiting"
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Run in a task: the demo start-up goes on to seed eligibility, which this waits for."""
        self._task = asyncio.create_task(self._run(), name="claims-demo-billing")

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT_SECONDS
        try:
            while not await facts_ready(self.runtime):
                if loop.time() >= deadline:
                    self.status = "skipped: authorization or eligibility facts did not arrive"
                    log.warning("demo billing skipped: facts did not arrive in time")
                    return
                await asyncio.sleep(POLL_SECONDS)
            done = await bill(self.runtime, self.organizations)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a demo seed must not take the service down; it says why
            self.status = f"failed: {type(exc).__name__}"
            # The type only: a validation error's text would carry the demo member's details.
            log.error("demo billing failed", extra={"error_type": type(exc).__name__})
            return
        self.status = "done"
        log.info("demo billing seeded", extra=done)

    async def stop(self) -> None:
        """Cancel a billing still waiting."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._task = None

    async def ready(self) -> dict[str, Any]:
        """The demo billing's progress (it never makes the service unready)."""
        return {"demo_billing": self.status}


async def seed(runtime: ServiceRuntime, organizations: Sequence[dict[str, Any]]) -> None:
    """Start the demo billing as a background part of the claims runtime (it stops with it)."""
    if any(isinstance(part, DemoBilling) for part in runtime.background):
        return
    part = DemoBilling(runtime, organizations)
    await part.start()
    runtime.background.append(part)
