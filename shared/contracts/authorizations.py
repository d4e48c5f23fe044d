"""Events of the authorizations service (topic authorizations.authorization.v1)."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from pydantic import Field

from shared.contracts.base import EventData, Topic, event
from shared.contracts.values import MemberDemographics, ServiceRequested, Urgency

AUTHORIZATION = Topic("authorizations", "authorization")


class AuthorizationOrigin(StrEnum):
    REFERRAL = "referral"
    REAUTHORIZATION = "reauthorization"
    MCP_ASSIGNMENT = "mcp_assignment"  # the MCP assigned the member without a referral
    PLAN_CHANGE = "plan_change"


@event("authorization.requested", AUTHORIZATION)
class AuthorizationRequested(EventData):
    """A request is open with the MCP and its decision clock runs."""

    authorization_id: str
    referral_id: str | None = None
    member: MemberDemographics
    mcp_code: str
    cbo_organization_id: str | None = None
    service: ServiceRequested
    urgency: Urgency
    origin: AuthorizationOrigin
    previous_authorization_id: str | None = None
    requested_at: datetime
    decision_due: datetime
    calendar: str = Field(description="The business-day calendar the deadline used.")
    deadline_basis: str | None = Field(
        default=None, description="Which rule set decision_due: standard_business_days, calendar_day_cap or "
        "expedited_hours.")
    expedited_by_rule: bool = Field(default=False, description="Expedited because the Community Support is "
                                    "always expedited, whatever the referral said.")


class _Decided(EventData):
    authorization_id: str
    referral_id: str | None = None
    mcp_code: str
    cbo_organization_id: str | None = None
    service: ServiceRequested
    decided_at: datetime


@event("authorization.approved", AUTHORIZATION)
class AuthorizationApproved(_Decided):
    """The MCP approved (or approved as modified) a period of service."""

    mcp_authorization_number: str | None = None
    period_start: date
    period_end: date
    modified: bool = False
    presumptive: bool = False
    origin: AuthorizationOrigin = AuthorizationOrigin.REFERRAL
    review_flags: tuple[str, ...] = Field(default=(), description="e.g. 'period_beyond_cap'.")
    assigned_provider_npi: str | None = Field(
        default=None, description="The ECM provider the MCP assigned (MIF), so the CBO can be notified.")
    previous_authorization_id: str | None = None
    # Added within major 1: approvals written before it carry none.
    member: MemberDemographics | None = Field(
        default=None, description="The member, on an MCP assignment only (origin mcp_assignment): no "
        "authorization.requested carried it, and the RTF must still report the member.")


@event("authorization.denied", AUTHORIZATION)
class AuthorizationDenied(_Decided):
    reason: str


@event("authorization.pended", AUTHORIZATION)
class AuthorizationPended(_Decided):
    """The MCP asked for more information; whether the clock stops depends on the rule."""

    reason: str
    clock_stopped: bool


@event("authorization.expiring", AUTHORIZATION)
class AuthorizationExpiring(EventData):
    authorization_id: str
    mcp_code: str
    cbo_organization_id: str | None = None
    period_end: date
    days_left: int


@event("authorization.reauth_requested", AUTHORIZATION)
class AuthorizationReauthRequested(EventData):
    authorization_id: str
    new_authorization_id: str
    mcp_code: str
    cbo_organization_id: str | None = None
    automatic: bool = Field(default=True, description="False when the care team asked for it by hand.")


@event("authorization.care_task_opened", AUTHORIZATION)
class AuthorizationCareTaskOpened(EventData):
    """An expiring authorization was not reauthorized automatically; the care team must act."""

    authorization_id: str
    task_id: str
    mcp_code: str
    cbo_organization_id: str | None = None
    reason: str = Field(description="not_eligible, not_engaged or eligibility_unknown")
    due_on: date = Field(description="The authorization's period end.")


@event("authorization.mif_exception_recorded", AUTHORIZATION)
class AuthorizationMifExceptionRecorded(EventData):
    """A Member Information File row could not be applied; it is kept for a person to resolve."""

    exception_id: str
    file_id: str
    row_number: int
    mcp_code: str
    reason: str
    authorization_id: str | None = None


@event("authorization.expired", AUTHORIZATION)
class AuthorizationExpired(EventData):
    authorization_id: str
    # Added within major 1 (decision 0127): events written before it carry none.
    referral_id: str | None = Field(default=None, description="The referral the authorization answers, so its loop "
                                    "closes even if the end arrives before the request linked them.")
    mcp_code: str
    cbo_organization_id: str | None = None
    period_end: date


@event("authorization.decision_overdue", AUTHORIZATION)
class AuthorizationDecisionOverdue(EventData):
    authorization_id: str
    mcp_code: str
    decision_due: datetime
    escalation: int = Field(ge=1, description="1 at the deadline, then one more per repeat.")


@event("authorization.suspended", AUTHORIZATION)
class AuthorizationSuspended(EventData):
    authorization_id: str
    mcp_code: str
    cbo_organization_id: str | None = None
    reason: str
    effective: date


@event("authorization.resumed", AUTHORIZATION)
class AuthorizationResumed(EventData):
    authorization_id: str
    mcp_code: str
    cbo_organization_id: str | None = None
    effective: date


@event("authorization.closed", AUTHORIZATION)
class AuthorizationClosed(EventData):
    """Ended before its period end (plan changed, member disenrolled, discontinued)."""

    authorization_id: str
    # Added within major 1 (decision 0127): events written before it carry none.
    referral_id: str | None = Field(default=None, description="The referral the authorization answers, so its loop "
                                    "closes even if the end arrives before the request linked them.")
    mcp_code: str
    cbo_organization_id: str | None = None
    reason: str
    effective: date
