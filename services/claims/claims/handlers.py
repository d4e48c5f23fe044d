"""Event handlers of the claims service and its registry.

Consumed: authorization.* (coverage by date), eligibility.* (eligible on a date), file.received of kinds
999/277ca (acknowledgments) and 835 (remittances), bytes read from the file store, file.delivered for our
batches (submitted).
"""

from __future__ import annotations

import logging

from claims import service
from claims.repository import ClaimsUnitOfWork
from claims.x12.x277ca import ClaimAcknowledgmentError
from claims.x12.x999 import AcknowledgmentError
from shared.bus.message import PermanentError, RetryableError
from shared.bus.registry import HandlerRegistry
from shared.contracts.authorizations import (
    AuthorizationApproved,
    AuthorizationClosed,
    AuthorizationDenied,
    AuthorizationExpired,
    AuthorizationRequested,
    AuthorizationResumed,
    AuthorizationSuspended,
)
from shared.contracts.eligibility import (
    EligibilityExcluded,
    EligibilityLost,
    EligibilityPlanChanged,
    EligibilityRegained,
    EligibilityVerified,
)
from shared.contracts.gateway import FileDelivered, FileKind, FileReceived
from shared.envelope import Envelope
from shared.filestore import FileCorrupted, FileNotStored
from shared.x12.segments import X12SyntaxError

log = logging.getLogger("calhub.claims.handlers")

registry: HandlerRegistry[ClaimsUnitOfWork] = HandlerRegistry()

ACKNOWLEDGMENT_KINDS = frozenset({FileKind.X12_999, FileKind.X12_277CA})
OUTBOUND_KINDS = frozenset({FileKind.X12_837P, FileKind.INVOICE})


@registry.handles(AuthorizationRequested, AuthorizationApproved, AuthorizationDenied, AuthorizationSuspended,
                  AuthorizationResumed, AuthorizationExpired, AuthorizationClosed)
async def track_authorization(event: Envelope[AuthorizationApproved], uow: ClaimsUnitOfWork) -> None:
    """Keep which member, service and dates each authorization covers."""
    await service.project_authorization(uow, event)


@registry.handles(EligibilityVerified, EligibilityLost, EligibilityRegained, EligibilityPlanChanged,
                  EligibilityExcluded)
async def track_eligibility(event: Envelope[EligibilityVerified], uow: ClaimsUnitOfWork) -> None:
    """Keep whether a member is enrolled (with which MCP) or excluded from a program, by date."""
    await service.project_eligibility(uow, event)


@registry.handles(FileReceived)
async def take_acknowledgment(event: Envelope[FileReceived], uow: ClaimsUnitOfWork) -> None:
    """Apply a 999 or 277CA the gateway received: claims accepted or rejected with the reasons."""
    if event.data.kind not in ACKNOWLEDGMENT_KINDS:
        return
    try:
        content = service.file_store(uow).get(event.data.file)
    except FileNotStored as exc:
        # The shared volume may lag the gateway's write: retry, then dead-letter for ops.
        raise RetryableError("acknowledgment file not in the file store yet") from exc
    except FileCorrupted as exc:
        raise PermanentError("acknowledgment file does not match its SHA-256") from exc
    try:
        summary = await service.take_acknowledgment(uow, event, content.decode("ascii", errors="replace"))
    except (X12SyntaxError, AcknowledgmentError, ClaimAcknowledgmentError) as exc:
        # A malformed acknowledgment can never be applied as is: dead-letter it with the rule it broke.
        raise PermanentError(f"unreadable {event.data.kind.value}: {exc}") from exc
    log.info("acknowledgment applied", extra={"file_id": event.data.file_id, "mcp_code": event.data.mcp_code,
                                              "event_type": event.data.kind.value,
                                              "count": int(summary.get("claims", summary.get("groups", 0)))})


@registry.handles(FileReceived)
async def take_remittance(event: Envelope[FileReceived], uow: ClaimsUnitOfWork) -> None:
    """Post an 835 the gateway received (SFTP) exactly as POST /v1/remittances would."""
    data = event.data
    if data.kind is not FileKind.X12_835:
        return
    try:
        content = service.file_store(uow).get(data.file)
    except FileNotStored as exc:
        raise RetryableError("remittance file not in the file store yet") from exc
    except FileCorrupted as exc:
        raise PermanentError("remittance file does not match its SHA-256") from exc
    try:
        intake = await service.take_remittance(
            uow, content, mcp_code=data.mcp_code, source="sftp", actor=service.Actor(system="sftp-gateway"),
            received_at=data.received_at, gateway_file_id=data.file_id, file_uri=data.file.uri, parent=event)
    except service.RemittanceUnreadable as exc:
        # A malformed 835 can never be posted as is: dead-letter it with the rule it broke (no values).
        raise PermanentError(f"unreadable 835: {exc.detail}") from exc
    log.info("remittance file taken", extra={"file_id": data.file_id, "mcp_code": data.mcp_code,
                                             "status": intake.status, "count": len(intake.remittances)})


@registry.handles(FileDelivered)
async def mark_submitted(event: Envelope[FileDelivered], uow: ClaimsUnitOfWork) -> None:
    """A batch's file reached the MCP: its claims are submitted."""
    if event.data.kind not in OUTBOUND_KINDS:
        return
    await service.mark_delivered(uow, event)
