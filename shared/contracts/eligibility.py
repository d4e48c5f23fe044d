"""Events of the eligibility service (topics eligibility.eligibility.v1, eligibility.eligibility_batch.v1 and
eligibility.eligibility_response.v1)."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from pydantic import Field

from shared.contracts.base import EventData, Topic, event
from shared.contracts.values import FileReference

ELIGIBILITY = Topic("eligibility", "eligibility")
ELIGIBILITY_BATCH = Topic("eligibility", "eligibility_batch")
ELIGIBILITY_RESPONSE = Topic("eligibility", "eligibility_response")


class EligibilitySource(StrEnum):
    MIF = "mif"  # a Member Information File row
    X12_271 = "271"
    MANUAL = "manual"


class _MemberEligibility(EventData):
    cin: str = Field(pattern=r"^[0-9]{8}[A-Z]$")
    mcp_code: str | None
    source: EligibilitySource
    as_of: date
    verified_at: datetime


@event("eligibility.verified", ELIGIBILITY)
class EligibilityVerified(_MemberEligibility):
    """The member is enrolled with `mcp_code` on `as_of` (no change from what was known, or first seen)."""

    span_start: date | None = None
    span_end: date | None = None
    referral_id: str | None = Field(default=None, description="Set when this answers a referral's 'which plan' "
                                    "question (referral.received); referrals routes on it.")
    first_seen: bool = Field(default=False, description="True the first time CalHub learns the member's plan.")


@event("eligibility.lost", ELIGIBILITY)
class EligibilityLost(_MemberEligibility):
    """The member is no longer enrolled (with any MCP CalHub serves) from `effective`."""

    effective: date
    reason: str


@event("eligibility.regained", ELIGIBILITY)
class EligibilityRegained(_MemberEligibility):
    effective: date


@event("eligibility.plan_changed", ELIGIBILITY)
class EligibilityPlanChanged(_MemberEligibility):
    previous_mcp_code: str
    effective: date


@event("eligibility.excluded", ELIGIBILITY)
class EligibilityExcluded(_MemberEligibility):
    """A program flag makes the member ineligible for a program (e.g. hospice: no ECM) from `effective` through
    `effective_to`. A program stay already over on `as_of` is never announced."""

    program: str = Field(description="ecm, cs or chw")
    exclusion: str = Field(description="The excluding program or status, e.g. hospice.")
    effective: date
    reason: str
    effective_to: date | None = Field(default=None, description="The excluding program's last day (inclusive); "
                                      "None: no end known yet. Added within major 1 (docs/decisions/0050): an "
                                      "event written before it reads as None.")


@event("eligibility_batch.created", ELIGIBILITY_BATCH)
class EligibilityBatchCreated(EventData):
    """A 270 inquiry file is ready for an MCP; the gateway delivers it."""

    batch_id: str
    mcp_code: str
    members: int
    file: FileReference
    file_kind: str = "270"
    created_at: datetime
    period: str | None = Field(default=None, description="YYYY-MM of a monthly re-check batch; None for a "
                               "batch of real-time checks.")
    batch_key: str | None = Field(default=None, description="Idempotency key: one batch per MCP and period.")
    interchange_control_number: str | None = None


@event("eligibility.check_rejected", ELIGIBILITY)
class EligibilityCheckRejected(EventData):
    """The MCP answered a 270 inquiry with an AAA rejection: no eligibility fact was learned."""

    check_id: str | None = Field(default=None, description="The CalHub check (TRN02) the answer belongs to.")
    cin: str | None = Field(default=None, pattern=r"^[0-9]{8}[A-Z]$")
    mcp_code: str | None
    loop: str = Field(description="Where the rejection sits: 2100A (the MCP), 2100B (the hub), 2100C (the "
                      "member) or 2110C (the inquiry).")
    reject_reason_code: str = Field(description="AAA03, e.g. 72 (invalid member id).")
    reason: str = Field(description="The plain-language reason for the ops and billing staff.")
    follow_up_code: str | None = Field(default=None, description="AAA04, e.g. C (correct and resubmit).")
    follow_up: str | None = None
    retry: bool = Field(default=False, description="True when CalHub will ask again by itself.")
    rejected_at: datetime
    referral_id: str | None = None


@event("eligibility_response.processed", ELIGIBILITY_RESPONSE)
class EligibilityResponseProcessed(EventData):
    """A 271 file was read and applied in full."""

    file_id: str
    mcp_code: str
    subscribers: int
    verified: int
    changed: int
    rejected: int
    processed_at: datetime
    unmatched: int = Field(default=0, description="Member answers whose trace named no check CalHub sent to this "
                           "MCP about that member: applied to the member, attached to no check, listed by position "
                           "on the response record. Added within major 1 (docs/decisions/0050).")


@event("eligibility_response.refused", ELIGIBILITY_RESPONSE)
class EligibilityResponseRefused(EventData):
    """A 271 file could not be applied; nothing in it was applied. `reason` names segment positions and rules,
    never element values."""

    file_id: str
    mcp_code: str
    reason: str
    errors: int
    refused_at: datetime
