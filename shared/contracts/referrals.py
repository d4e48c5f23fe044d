"""Events of the referrals service (topic referrals.referral.v1)."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from pydantic import Field

from shared.contracts.base import EventData, Topic, event
from shared.contracts.values import MemberDemographics, ServiceRequested, Urgency

REFERRAL = Topic("referrals", "referral")


class ReferralStatus(StrEnum):
    """Closed-loop referral states; the RTF reports them monthly since 2025-07-01."""

    RECEIVED = "received"
    NEEDS_PLAN = "needs_plan"
    ROUTED = "routed"  # the MCP is decided; the authorization request is being opened
    REQUESTED = "requested"  # authorization requested from the MCP
    ACCEPTED = "accepted"
    DECLINED = "declined"
    IN_SERVICE = "in_service"
    CLOSED = "closed"
    WITHDRAWN = "withdrawn"


class RoutingBasis(StrEnum):
    """How the referral's MCP was decided."""

    REFERRAL = "referral"  # the plan named on the referral, checked against the county table
    ELIGIBILITY = "eligibility"  # the member's latest known plan


@event("referral.received", REFERRAL)
class ReferralReceived(EventData):
    """A referral was accepted for processing (validated, not a duplicate)."""

    referral_id: str
    member: MemberDemographics
    service: ServiceRequested
    urgency: Urgency
    referring_organization_id: str
    referring_npi: str | None = None
    cbo_organization_id: str | None = Field(default=None, description="The CBO to serve the member, if named.")
    county: str
    mcp_code: str | None = None
    received_at: datetime
    expedited_reason: str | None = None
    channel: str = Field(default="api", description="How the referral arrived: api or fhir.")


@event("referral.routed", REFERRAL)
class ReferralRouted(EventData):
    """The referral's MCP is decided; authorizations opens a request to that MCP."""

    referral_id: str
    member: MemberDemographics
    service: ServiceRequested
    urgency: Urgency
    expedited_reason: str | None = None
    mcp_code: str
    basis: RoutingBasis
    county: str
    referring_organization_id: str
    cbo_organization_id: str | None = None
    received_at: datetime
    referring_npi: str | None = None
    notes: str | None = Field(default=None, description="The referrer's notes for the MCP (may hold PHI).")
    consent_to_share: bool | None = Field(default=None, description="Member consented to sharing with the MCP.")


@event("referral.status_changed", REFERRAL)
class ReferralStatusChanged(EventData):
    """A referral moved through its closed loop; carries the RTF's closed-loop fields."""

    referral_id: str
    status: ReferralStatus
    previous_status: ReferralStatus | None = None
    changed_at: datetime
    reason: str | None = Field(default=None, description="Reason for referral loop closure, when closed.")
    mcp_code: str | None = None
    cbo_organization_id: str | None = None
    status_date: date | None = Field(default=None, description="RTF 'Date of Referral Status Update' "
                                     "(Pacific calendar date of changed_at).")
    closure_reason_code: str | None = Field(default=None, description="Coded reason for loop closure "
                                            "(e.g. authorization_denied, withdrawn_by_referrer).")
    referring_organization_id: str | None = None
    authorization_id: str | None = None
