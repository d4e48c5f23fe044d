"""Event handlers and timer handlers of the eligibility service, and their registries."""

from __future__ import annotations

from eligibility import service
from eligibility.domain.schedule import PACIFIC
from eligibility.repository import EligibilityUnitOfWork
from shared.bus.registry import HandlerRegistry
from shared.contracts.authorizations import (
    AuthorizationApproved,
    AuthorizationClosed,
    AuthorizationDenied,
    AuthorizationExpired,
    AuthorizationRequested,
)
from shared.contracts.gateway import FileKind, FileReceived, MemberInformationReceived
from shared.contracts.referrals import ReferralReceived
from shared.envelope import Envelope
from shared.scheduler import DueTimer, TimerHandlerRegistry, schedule

registry: HandlerRegistry[EligibilityUnitOfWork] = HandlerRegistry()
timers: TimerHandlerRegistry[EligibilityUnitOfWork] = TimerHandlerRegistry()


@registry.handles(MemberInformationReceived)
async def record_mif_enrollment(event: Envelope[MemberInformationReceived], uow: EligibilityUnitOfWork) -> None:
    """A MIF row: the MCP counts the member as enrolled with it for the reporting period."""
    await service.apply_mif_row(uow, event)


@registry.handles(FileReceived)
async def apply_271_file(event: Envelope[FileReceived], uow: EligibilityUnitOfWork) -> None:
    """A 271 from an MCP: apply every answer in it, or refuse it whole with the reasons."""
    if event.data.kind is FileKind.X12_271:
        await service.apply_response(uow, event)


@registry.handles(ReferralReceived)
async def answer_which_plan(event: Envelope[ReferralReceived], uow: EligibilityUnitOfWork) -> None:
    """Referrals routes on eligibility.verified: answer now if the plan is known, else ask the MCP(s)."""
    await service.answer_referral(uow, event)


@registry.handles(AuthorizationRequested)
async def track_requested(event: Envelope[AuthorizationRequested], uow: EligibilityUnitOfWork) -> None:
    """Learn the member's demographics and the pending authorization."""
    await service.track_authorization(uow, event, "requested")


@registry.handles(AuthorizationApproved)
async def track_approved(event: Envelope[AuthorizationApproved], uow: EligibilityUnitOfWork) -> None:
    """An approved period makes the member part of the MCP's monthly re-check."""
    await service.track_authorization(uow, event, "active")


@registry.handles(AuthorizationDenied)
async def track_denied(event: Envelope[AuthorizationDenied], uow: EligibilityUnitOfWork) -> None:
    """A denied request is not served: no re-checks."""
    await service.track_authorization(uow, event, "denied")


@registry.handles(AuthorizationExpired)
async def track_expired(event: Envelope[AuthorizationExpired], uow: EligibilityUnitOfWork) -> None:
    """An expired authorization leaves the monthly re-check."""
    await service.track_authorization(uow, event, "expired")


@registry.handles(AuthorizationClosed)
async def track_closed(event: Envelope[AuthorizationClosed], uow: EligibilityUnitOfWork) -> None:
    """A closed authorization leaves the monthly re-check."""
    await service.track_authorization(uow, event, "closed")


@timers.handles(service.MONTHLY_TIMER)
async def send_monthly_batch(due: DueTimer, uow: EligibilityUnitOfWork) -> None:
    """The MCP's monthly 270 (once per MCP and period), then the next month's timer."""
    mcp_code = due.subject
    await service.run_monthly_batch(uow, mcp_code, due.due_at)
    next_run = service.monthly_schedule(uow, mcp_code).next_run(due.due_at)
    # `replace` cancels any other pending monthly timer of the MCP: one schedule per MCP, whatever happened.
    await schedule(uow.session, uow.tables, kind=service.MONTHLY_TIMER, subject=mcp_code, due_at=next_run,
                   payload={"period_of_previous": due.due_at.astimezone(PACIFIC).strftime("%Y-%m")}, replace=True)


@timers.handles(service.FLUSH_TIMER)
async def send_queued_checks(due: DueTimer, uow: EligibilityUnitOfWork) -> None:
    """The queued real-time checks of an MCP go out in one 270."""
    await service.flush_checks(uow, due.subject, str(due.id))
