"""Event handlers of the sftp-gateway service: files to deliver, and the projections RTF/OTF are built from."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sftp_gateway.domain.calendar import daily_run_at
from sftp_gateway.domain.profile import Profile
from sftp_gateway.domain.projection import authorization_changes
from sftp_gateway.ports import gateway_ports
from sftp_gateway.repository import SftpGatewayUnitOfWork, aware
from sftp_gateway.service import GatewayError, deliver
from shared.bus.message import PermanentError, RetryableError
from shared.bus.registry import HandlerRegistry
from shared.contracts.authorizations import (
    AuthorizationApproved,
    AuthorizationClosed,
    AuthorizationDenied,
    AuthorizationExpired,
    AuthorizationPended,
    AuthorizationRequested,
    AuthorizationResumed,
    AuthorizationSuspended,
)
from shared.contracts.claims import ClaimBatchCreated, EncounterRecorded
from shared.contracts.eligibility import EligibilityBatchCreated
from shared.contracts.gateway import FileKind
from shared.contracts.referrals import ReferralStatusChanged
from shared.contracts.values import MemberDemographics
from shared.envelope import Envelope
from shared.filestore import FileCorrupted, FileNotStored
from shared.identity import member_id_for
from shared.scheduler import schedule

log = logging.getLogger("calhub.sftp_gateway.handlers")

registry: HandlerRegistry[SftpGatewayUnitOfWork] = HandlerRegistry()

REFERRAL_FLUSH = "referral_file.flush"


def _profile(uow: SftpGatewayUnitOfWork, mcp_code: str) -> Profile:
    profile = gateway_ports(uow).profiles.get(mcp_code)
    if profile is None:
        # Retrying cannot help until someone adds the profile; the dead letter can be replayed after that.
        raise PermanentError("no SFTP profile for the MCP of this file")
    return profile


async def _deliver_batch(event: Envelope[Any], uow: SftpGatewayUnitOfWork, kind: FileKind, batch_id: str,
                         mcp_code: str, reference: Any) -> None:
    if await uow.files.outbound_for_source(kind.value, batch_id) is not None:
        return  # already delivered (a different event carrying the same batch)
    ports = gateway_ports(uow)
    profile = _profile(uow, mcp_code)
    try:
        content = ports.files.get(reference)
    except FileNotStored as exc:
        raise RetryableError("the batch file is not in the file store yet") from exc
    except FileCorrupted as exc:
        raise PermanentError("the batch file's bytes do not match its digest") from exc
    try:
        await deliver(uow, ports, profile, kind, content, source="event", source_id=batch_id, parent=event)
    except GatewayError as exc:
        raise RetryableError(exc.slug) from exc


@registry.handles(ClaimBatchCreated)
async def deliver_claim_batch(event: Envelope[ClaimBatchCreated], uow: SftpGatewayUnitOfWork) -> None:
    """Write an 837P (or invoice) file for the MCP."""
    data = event.data
    kind = FileKind.INVOICE if data.file_kind.lower() == "invoice" else FileKind.X12_837P
    await _deliver_batch(event, uow, kind, data.batch_id, data.mcp_code, data.file)


@registry.handles(EligibilityBatchCreated)
async def deliver_eligibility_batch(event: Envelope[EligibilityBatchCreated], uow: SftpGatewayUnitOfWork) -> None:
    """Write a 270 inquiry file for the MCP."""
    data = event.data
    await _deliver_batch(event, uow, FileKind.X12_270, data.batch_id, data.mcp_code, data.file)


@registry.handles(AuthorizationRequested)
async def record_authorization_request(event: Envelope[AuthorizationRequested], uow: SftpGatewayUnitOfWork) -> None:
    """Keep the request for RTF rows and, for MCPs that take referral files over SFTP, queue it for one."""
    data = event.data
    stored = await _record(uow, event, data.authorization_id, {
        "mcp_code": data.mcp_code, "cbo_organization_id": data.cbo_organization_id, "referral_id": data.referral_id,
        **_member_columns(data.member), "program": data.service.program.value,
        "pof_codes": list(data.service.pof_codes), "cs_code": data.service.cs_code, "urgency": data.urgency.value,
        "status": "requested", "requested_at": data.requested_at, "decision_due": data.decision_due})
    if stored != "requested":
        return  # decided before its request arrived (a replayed dead letter): the MCP is not asked again
    ports = gateway_ports(uow)
    profile = ports.profiles.get(data.mcp_code)
    if profile is None or profile.outbound.referral_channel != "sftp":
        return
    # Held, not merely seen: a flush already reading the queue would miss this request, which would then wait
    # for the next one (or the next day's batch) to be sent.
    now = ports.clock.now()
    if await uow.hold_pending_timer(REFERRAL_FLUSH, data.mcp_code, now=now):
        return
    due: datetime = now if profile.outbound.referral_batch == "immediate" else \
        daily_run_at(profile.outbound.referral_batch_hour, now)
    await schedule(uow.session, uow.tables, kind=REFERRAL_FLUSH, subject=data.mcp_code, due_at=due,
                   payload={"mcp_code": data.mcp_code})


def _member_columns(member: MemberDemographics) -> dict[str, Any]:
    """The projection's member columns (PHI: written to the database only, to fill the MCP's files)."""
    address = member.address
    return {"member_id": member_id_for(member.cin), "cin": member.cin, "last_name": member.last_name,
            "first_name": member.first_name, "middle_name": member.middle_name, "birth_date": member.birth_date,
            "sex": (member.sex or None) and member.sex[:1], "phone": member.phone,
            "address_line1": address.line1 if address else None,
            "address_line2": address.line2 if address else None, "city": address.city if address else None,
            "state": address.state if address else None, "zip": address.zip if address else None}


async def _record(uow: SftpGatewayUnitOfWork, event: Envelope[Any], authorization_id: str,
                  values: dict[str, Any]) -> str:
    """Fold one authorization event into the projection (sftp_gateway.domain.projection); returns the status
    the authorization stands at afterwards."""
    row = await uow.projections.authorization(authorization_id)
    stored = None if row is None else {**row._mapping, "updated_at": aware(row.updated_at),
                                       "decided_at": aware(row.decided_at), "requested_at": aware(row.requested_at)}
    changes = authorization_changes(stored, values, event.time)
    if stored is None:
        if values.get("cin") is None:
            # A decision or lifecycle event before the request (a replayed dead letter, or an end of an MCP
            # assignment before its approval): kept, so the request or approval that follows fills it in.
            log.info("authorization event before its request kept", extra={"authorization_id": authorization_id,
                                                                           "event_type": event.type})
        await uow.projections.add_authorization({"authorization_id": authorization_id,
                                                 "member_id": event.member_id, "pof_codes": [], **changes})
        return str(changes["status"])
    if changes:
        await uow.projections.update_authorization(authorization_id, **changes)
    return str(changes.get("status", stored["status"]))


async def _decided(uow: SftpGatewayUnitOfWork, event: Envelope[Any], **values: Any) -> None:
    data = event.data
    service = getattr(data, "service", None)
    known = {"mcp_code": data.mcp_code, "cbo_organization_id": getattr(data, "cbo_organization_id", None),
             "referral_id": getattr(data, "referral_id", None),
             "program": service.program.value if service is not None else None,
             "pof_codes": list(service.pof_codes) if service is not None else None,
             "cs_code": service.cs_code if service is not None else None}
    await _record(uow, event, data.authorization_id, {**known, **values})


@registry.handles(AuthorizationApproved)
async def record_approval(event: Envelope[AuthorizationApproved], uow: SftpGatewayUnitOfWork) -> None:
    """Approved period for RTF enrollment dates; an MCP assignment's approval also brings the member."""
    d = event.data
    # An MCP assignment (a MIF row with no referral) has no authorization.requested: its approval carries the
    # member, and the assignment itself is when the hub took the member on (the RTF reports from that month).
    # Approvals written before the field existed carry none; such a row stays unreported, as before.
    assigned = {**_member_columns(d.member), "requested_at": d.decided_at} if d.member is not None else {}
    await _decided(uow, event, status="approved", decided_at=d.decided_at, period_start=d.period_start,
                   period_end=d.period_end, mcp_authorization_number=d.mcp_authorization_number, **assigned)


@registry.handles(AuthorizationDenied)
async def record_denial(event: Envelope[AuthorizationDenied], uow: SftpGatewayUnitOfWork) -> None:
    """Denied: reported as such on the RTF."""
    d = event.data
    await _decided(uow, event, status="denied", decided_at=d.decided_at, end_reason=d.reason[:200])


@registry.handles(AuthorizationPended)
async def record_pend(event: Envelope[AuthorizationPended], uow: SftpGatewayUnitOfWork) -> None:
    """Pended: still pending on the RTF."""
    await _decided(uow, event, status="pended")


@registry.handles(AuthorizationSuspended)
async def record_suspension(event: Envelope[AuthorizationSuspended], uow: SftpGatewayUnitOfWork) -> None:
    """Suspended."""
    await _decided(uow, event, status="suspended")


@registry.handles(AuthorizationResumed)
async def record_resumption(event: Envelope[AuthorizationResumed], uow: SftpGatewayUnitOfWork) -> None:
    """Resumed: back to approved."""
    await _decided(uow, event, status="approved")


@registry.handles(AuthorizationClosed)
async def record_closure(event: Envelope[AuthorizationClosed], uow: SftpGatewayUnitOfWork) -> None:
    """Closed early: the RTF's discontinuation date and reason."""
    d = event.data
    await _decided(uow, event, status="closed", ended_on=d.effective, end_reason=d.reason[:200])


@registry.handles(AuthorizationExpired)
async def record_expiry(event: Envelope[AuthorizationExpired], uow: SftpGatewayUnitOfWork) -> None:
    """Expired at its period end."""
    d = event.data
    await _decided(uow, event, status="expired", ended_on=d.period_end)


@registry.handles(ReferralStatusChanged)
async def record_referral_status(event: Envelope[ReferralStatusChanged], uow: SftpGatewayUnitOfWork) -> None:
    """Closed-loop referral fields for the RTF: keep the latest status (events can arrive out of order)."""
    d = event.data
    current = await uow.projections.referral(d.referral_id)
    if current is not None:
        stored = aware(current.changed_at)
        if stored is not None and stored > d.changed_at:
            return
    await uow.projections.save_referral({
        "referral_id": d.referral_id, "mcp_code": d.mcp_code, "cbo_organization_id": d.cbo_organization_id,
        "status": d.status.value, "previous_status": d.previous_status.value if d.previous_status else None,
        "changed_at": d.changed_at, "closure_reason": (d.reason or None) and d.reason[:500]})


@registry.handles(EncounterRecorded)
async def record_encounter(event: Envelope[EncounterRecorded], uow: SftpGatewayUnitOfWork) -> None:
    """Encounters feed RTF contact counts and latest encounter, and OTF outreach attempts."""
    d = event.data
    await uow.projections.add_encounter({
        "encounter_id": d.encounter_id, "mcp_code": d.mcp_code, "cbo_organization_id": d.cbo_organization_id,
        "authorization_id": d.authorization_id, "program": d.program.value, "service_date": d.service_date,
        "hcpcs": d.hcpcs, "modifiers": list(d.modifiers), "units": d.units, "outreach_attempt": d.outreach_attempt})
