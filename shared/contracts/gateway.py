"""Events of the sftp-gateway service: files in and out, and the rows of tabular CalAIM files."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from pydantic import Field

from shared.contracts.base import EventData, Topic, event
from shared.contracts.values import FileReference, MemberDemographics

FILE = Topic("sftp-gateway", "file")
MEMBER_INFORMATION = Topic("sftp-gateway", "member_information")
MEMBER_REFERRAL = Topic("sftp-gateway", "member_referral")
REMOTE = Topic("sftp-gateway", "remote")


class FileKind(StrEnum):
    MIF = "mif"
    RTF = "rtf"
    OTF = "otf"
    REFERRAL = "referral"
    X12_835 = "835"
    X12_999 = "999"
    X12_277CA = "277ca"
    X12_271 = "271"
    X12_270 = "270"
    X12_837P = "837p"
    INVOICE = "invoice"
    ERROR_REPORT = "error_report"
    OTHER = "other"


@event("file.received", FILE)
class FileReceived(EventData):
    """An inbound file was stored and recognized; X12 files are handed to their owners by reference."""

    file_id: str
    mcp_code: str
    kind: FileKind
    file: FileReference
    received_at: datetime
    rows: int | None = None
    rows_rejected: int | None = None


@event("file.quarantined", FILE)
class FileQuarantined(EventData):
    file_id: str
    mcp_code: str
    kind: FileKind | None
    reason: str
    quarantined_at: datetime


@event("file.delivered", FILE)
class FileDelivered(EventData):
    """An outbound file reached the MCP's outbound folder or remote server."""

    file_id: str
    mcp_code: str
    kind: FileKind
    source_id: str | None = Field(default=None, description="e.g. the claim batch id")
    delivered_at: datetime


@event("file.late", FILE)
class FileLate(EventData):
    mcp_code: str
    kind: FileKind
    expected_by: datetime


@event("file.duplicate", FILE)
class FileDuplicate(EventData):
    file_id: str
    mcp_code: str
    original_file_id: str


@event("file.out_of_order", FILE)
class FileOutOfOrder(EventData):
    file_id: str
    mcp_code: str
    kind: FileKind
    reporting_period: str | None = None


@event("member_information.received", MEMBER_INFORMATION)
class MemberInformationReceived(EventData):
    """One row of an MCP's Member Information File, in the canonical layout."""

    file_id: str
    row_number: int
    mcp_code: str
    member: MemberDemographics
    homeless: bool | None = None
    pof_codes: tuple[str, ...] = ()
    ecm_status: str | None = Field(default=None, description="MCP-defined benefit status, mapped by profile.")
    mcp_authorization_id: str | None = None
    authorization_start: date | None = None
    authorization_end: date | None = None
    assigned_provider_npi: str | None = None
    assigned_provider_name: str | None = None
    acuity_tier: str | None = None
    reporting_period: str | None = None
    extra: dict[str, str] = Field(default_factory=dict, description="Columns the profile does not map.")


@event("member_referral.received", MEMBER_REFERRAL)
class MemberReferralReceived(EventData):
    """One row of a Potential ECM Member Referral File an MCP sent, in the canonical layout."""

    file_id: str
    row_number: int
    mcp_code: str
    member: MemberDemographics
    referral_id: str | None = Field(default=None, description="The MCP's referral id, when it sends one.")
    referral_date: date | None = None
    referring_entity_name: str | None = None
    referring_entity_type: str | None = None
    referring_npi: str | None = None
    homeless: bool | None = None
    pof_codes: tuple[str, ...] = ()
    requested_service: str | None = Field(default=None, description="ECM or a Community Support code.")
    consent: bool | None = None
    extra: dict[str, str] = Field(default_factory=dict, description="Columns the profile does not map.")


@event("remote.poll_failed", REMOTE)
class RemotePollFailed(EventData):
    """Client mode: polling (or pushing to) an MCP's own SFTP server failed after its retries."""

    mcp_code: str
    failed_at: datetime
    consecutive_failures: int = Field(ge=1)
    error_type: str = Field(description="The error class only (e.g. HostKeyNotVerifiable); never a message.")
    last_success_at: datetime | None = None


@event("remote.poll_recovered", REMOTE)
class RemotePollRecovered(EventData):
    """Client mode: an MCP's server answered again after failed polls."""

    mcp_code: str
    recovered_at: datetime
    failures: int = Field(ge=1, description="How many polls had failed in a row.")
