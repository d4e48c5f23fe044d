"""Value types shared by several contracts: programs, urgency, member demographics, file references."""

from __future__ import annotations

from datetime import date
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class Program(StrEnum):
    """The CalAIM program a service belongs to."""

    ECM = "ecm"
    CS = "cs"
    CHW = "chw"


class Urgency(StrEnum):
    """Standard: 5 business days (never more than 14 calendar days); expedited: 72 hours (APL 21-011)."""

    STANDARD = "standard"
    EXPEDITED = "expedited"


class ServiceRequested(BaseModel):
    """What is asked for: ECM with Populations of Focus, one Community Support, or CHW."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    program: Program
    pof_codes: tuple[str, ...] = Field(default=(), description="ECM Populations of Focus, e.g. ('1a', '3').")
    cs_code: str | None = Field(default=None, description="Community Support code, e.g. recuperative_care.")
    after_acute_care: bool = Field(default=False, description="Medically tailored meals after acute care are "
                                   "always expedited.")


class Address(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    line1: str
    line2: str | None = None
    city: str
    state: str = "CA"
    zip: str
    county: str | None = None


class MemberDemographics(BaseModel):
    """The member details a consumer needs to talk to an MCP (837P subscriber loop, referral files, RTF).

    PHI: carried only in payloads of events whose consumers need it, never in keys, headers, logs or traces.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    cin: str = Field(pattern=r"^[0-9]{8}[A-Z]$")
    last_name: str
    first_name: str
    middle_name: str | None = None
    birth_date: date
    sex: str | None = Field(default=None, description="F, M, U or X as the MCP supplied it.")
    phone: str | None = None
    preferred_language: str | None = None
    address: Address | None = None
    mcp_member_id: str | None = None


class FileReference(BaseModel):
    """A claim check: large payloads stay in the owner's file store; events carry this reference."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    uri: str = Field(description="Where the bytes are, e.g. store://sha256/<hex>.")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=0)
    media_type: str = "application/octet-stream"
