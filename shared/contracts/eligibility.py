"""Events of the eligibility service (topics eligibility.eligibility.v1 and eligibility.eligibility_batch.v1)."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from pydantic import Field

from shared.contracts.base import EventData, Topic, event
from shared.contracts.values import FileReference

ELIGIBILITY = Topic("eligibility", "eligibility")
ELIGIBILITY_BATCH = Topic("eligibility", "eligibility_batch")


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
    """A program flag makes the member ineligible for a program (e.g. hospice: no ECM)."""

    program: str = Field(description="ecm, cs or chw")
    exclusion: str = Field(description="The excluding program or status, e.g. hospice.")
    effective: date
    reason: str


@event("eligibility_batch.created", ELIGIBILITY_BATCH)
class EligibilityBatchCreated(EventData):
    """A 270 inquiry file is ready for an MCP; the gateway delivers it."""

    batch_id: str
    mcp_code: str
    members: int
    file: FileReference
    file_kind: str = "270"
    created_at: datetime
