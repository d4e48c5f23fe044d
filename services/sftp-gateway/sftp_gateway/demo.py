"""Demo file for `calhub run --demo`: L.A. Care drops its monthly Member Information File, and it runs through the
gateway's real inbound pipeline (profile recognition, parsing, archive, member_information.received per row).

The file (L.A. Care's synthetic profile layout) has two rows:
- the member L.A. Care approved in authorizations/demo.py, with the same authorization number and period, so
  authorizations confirms it and eligibility records the MIF as a source of enrollment;
- a member L.A. Care assigned to a provider without a referral (MCP assignment), which authorizations turns into
  an approved authorization, or keeps as an exception when the provider is not one it knows.

Idempotent: the file is dropped only when L.A. Care has no inbound MIF yet. Synthetic members only.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any

from sqlalchemy import select

from sftp_gateway.domain.returns import AuthorizationView
from sftp_gateway.models import gateway_file
from sftp_gateway.ports import GatewayPorts
from sftp_gateway.repository import SftpGatewayUnitOfWork
from sftp_gateway.service import Arrival, IngestOutcome, ingest
from shared.reference.calendar import PACIFIC
from shared.runtime import ServiceRuntime

log = logging.getLogger("calhub.sftp_gateway.demo")

MCP_CODE = "lacare"
WAIT_SECONDS = 10.0  # how long to wait for the approval to reach the gateway's projection
POLL_SECONDS = 0.2
APPROVED_CIN = "90000101A"
APPROVED_NUMBER = "LAC-DEMO-0101"  # authorizations/demo.py
ASSIGNED_PROVIDER_NPI = "1245319599"  # Harbor Community Services (demo)
COLUMNS = ("CIN", "LAST_NAME", "FIRST_NAME", "DOB", "GENDER", "ADDRESS", "CITY", "STATE", "ZIP", "PHONE",
           "HOMELESS_FLAG", "POF_CODES", "ECM_STATUS", "AUTH_NUMBER", "AUTH_START", "AUTH_END", "PROVIDER_NPI",
           "ACUITY", "REPORT_PERIOD")
ASSIGNED_MEMBER: dict[str, str] = {
    "cin": "90000105E", "last_name": "Demoperson", "first_name": "Rosa", "birth_date": "19820911", "sex": "F",
    "line1": "500 Placeholder Ave", "city": "Long Beach", "zip": "90802", "phone": "5625550105"}


def _uow(runtime: ServiceRuntime) -> SftpGatewayUnitOfWork:
    uow = runtime.uow()
    assert isinstance(uow, SftpGatewayUnitOfWork)
    return uow


def mif_file(today: date, approved: AuthorizationView | None) -> tuple[str, bytes]:
    """The demo MIF (name, bytes) in L.A. Care's profile layout: pipe-delimited, YYYYMMDD dates."""
    period = f"{today:%Y%m}"
    rows: list[tuple[str, ...]] = []
    if approved is not None and approved.period_start and approved.period_end:
        m = approved.member
        rows.append((m.cin, m.last_name, m.first_name, f"{m.birth_date:%Y%m%d}", m.sex or "U",
                     m.address_line1 or "", m.city or "", m.state or "CA", m.zip or "",
                     "".join(ch for ch in (m.phone or "") if ch.isdigit()), "N", ",".join(approved.pof_codes),
                     "Authorized", approved.mcp_authorization_number or APPROVED_NUMBER,
                     f"{approved.period_start:%Y%m%d}", f"{approved.period_end:%Y%m%d}", ASSIGNED_PROVIDER_NPI,
                     "2", period))
    a = ASSIGNED_MEMBER
    start = today.replace(day=1)
    end = start.replace(year=start.year + 1) - timedelta(days=1)
    rows.append((a["cin"], a["last_name"], a["first_name"], a["birth_date"], a["sex"], a["line1"], a["city"], "CA",
                 a["zip"], a["phone"], "Y", "1a", "Authorized", "LAC-DEMO-0105", f"{start:%Y%m%d}", f"{end:%Y%m%d}",
                 ASSIGNED_PROVIDER_NPI, "3", period))
    lines = ["|".join(COLUMNS), *("|".join(r) for r in rows)]
    return f"LAC_MIF_{period}.txt", ("\n".join(lines) + "\n").encode()


async def _approved(runtime: ServiceRuntime) -> AuthorizationView | None:
    """The demo approval as the gateway's projection knows it, once it has arrived (bounded wait)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_SECONDS
    while True:
        async with _uow(runtime) as uow:
            views = await uow.projections.authorizations(MCP_CODE)
        found = [v for v in views if v.member.cin == APPROVED_CIN and v.status == "approved"
                 and v.mcp_authorization_number == APPROVED_NUMBER]
        if found:
            return found[0]
        if loop.time() >= deadline:
            return None
        await asyncio.sleep(POLL_SECONDS)


async def _has_mif(runtime: ServiceRuntime) -> bool:
    async with _uow(runtime) as uow:
        found = await uow.session.scalar(select(gateway_file.c.id).where(
            gateway_file.c.mcp_code == MCP_CODE, gateway_file.c.direction == "inbound",
            gateway_file.c.kind == "mif").limit(1))
    return found is not None


async def seed(runtime: ServiceRuntime, organizations: Sequence[dict[str, Any]]) -> IngestOutcome | None:
    """Drop the demo MIF through the inbound pipeline unless L.A. Care already sent one (idempotent)."""
    ports: GatewayPorts = runtime.ports["gateway"]
    if ports.profiles.get(MCP_CODE) is None or await _has_mif(runtime):
        return None
    approved = await _approved(runtime)
    if approved is None:
        log.warning("demo approval not seen by the gateway in time; the MIF carries the assignment row only")
    today = ports.clock.now().astimezone(PACIFIC).date()
    name, content = mif_file(today, approved)
    # The same call the SFTP server makes when L.A. Care's upload closes: the whole pipeline, source "sftp".
    outcome = await ingest(lambda: _uow(runtime), ports, Arrival(MCP_CODE, name, content, "sftp"))
    log.info("demo MIF dropped", extra={"file_id": outcome.file_id, "status": outcome.status,
                                        "rows": outcome.rows_accepted})
    return outcome
