"""Canonical records of the tabular CalAIM files (../shared/domain/FILES.md) and the type of each field.

A per-MCP layout maps the MCP's columns onto these fields; parsing checks each value against its field type
and writing renders it back in the MCP's formats. Field names here are CalHub's, not any MCP's.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from shared.contracts.gateway import FileKind


class FieldType(StrEnum):
    TEXT = "text"
    DATE = "date"
    FLAG = "flag"  # Y/N
    CIN = "cin"
    NPI = "npi"
    LIST = "list"  # several codes in one cell (POFs)
    POF = "pof"  # a list of Population of Focus codes, checked against the reference list
    PERIOD = "period"  # reporting period, YYYY-MM
    INTEGER = "integer"
    ZIP = "zip"


@dataclass(frozen=True)
class Record:
    """A canonical record: its fields with types, and which of them every row must have."""

    kind: FileKind
    fields: dict[str, FieldType]
    required: frozenset[str]


T = FieldType

_ADDRESS = {"address_line1": T.TEXT, "address_line2": T.TEXT, "city": T.TEXT, "state": T.TEXT, "zip": T.ZIP}

MIF = Record(
    kind=FileKind.MIF,
    fields={
        "mcp_id": T.TEXT, "mcp_name": T.TEXT, "cin": T.CIN, "mcp_member_id": T.TEXT,
        "last_name": T.TEXT, "first_name": T.TEXT, "middle_name": T.TEXT, "birth_date": T.DATE, "sex": T.TEXT,
        "preferred_language": T.TEXT, **_ADDRESS,
        "mailing_address_line1": T.TEXT, "mailing_city": T.TEXT, "mailing_state": T.TEXT, "mailing_zip": T.ZIP,
        "phone": T.TEXT, "email": T.TEXT, "homeless": T.FLAG, "pof_codes": T.POF, "ecm_status": T.TEXT,
        "mcp_authorization_id": T.TEXT, "authorization_start": T.DATE, "authorization_end": T.DATE,
        "assigned_provider_npi": T.NPI, "assigned_provider_tin": T.TEXT, "assigned_provider_name": T.TEXT,
        "pcp_name": T.TEXT, "pcp_npi": T.NPI, "acuity_tier": T.TEXT, "file_production_date": T.DATE,
        "reporting_period": T.PERIOD,
    },
    required=frozenset({"cin", "last_name", "first_name", "birth_date"}),
)

REFERRAL = Record(
    kind=FileKind.REFERRAL,
    fields={
        "referral_id": T.TEXT, "referral_date": T.DATE, "referring_entity_name": T.TEXT,
        "referring_entity_type": T.TEXT, "referring_npi": T.NPI, "referring_phone": T.TEXT,
        "cin": T.CIN, "mcp_member_id": T.TEXT, "last_name": T.TEXT, "first_name": T.TEXT, "middle_name": T.TEXT,
        "birth_date": T.DATE, "sex": T.TEXT, **_ADDRESS, "phone": T.TEXT, "homeless": T.FLAG,
        "pof_codes": T.POF, "reason": T.TEXT, "requested_service": T.TEXT, "consent": T.FLAG,
        "urgency": T.TEXT, "decision_due": T.DATE,
    },
    required=frozenset({"cin", "last_name", "first_name", "birth_date"}),
)

RTF = Record(
    kind=FileKind.RTF,
    fields={
        "mcp_id": T.TEXT, "mcp_name": T.TEXT, "cin": T.CIN, "last_name": T.TEXT, "first_name": T.TEXT,
        "new_address_indicator": T.FLAG, "homeless": T.FLAG, **_ADDRESS, "new_phone_indicator": T.FLAG,
        "phone": T.TEXT, "pof_indicator": T.FLAG, "pof_codes": T.POF, "ecm_status": T.TEXT,
        "acuity_level": T.TEXT, "enrollment_start": T.DATE, "enrollment_end": T.DATE,
        "care_plan_revision_date": T.DATE, "care_conference_date": T.DATE, "assessment_started_date": T.DATE,
        "assessment_completed_date": T.DATE, "latest_encounter_date": T.DATE, "lead_care_manager_name": T.TEXT,
        "lead_care_manager_phone": T.TEXT, "lead_care_manager_email": T.TEXT, "discontinuation_date": T.DATE,
        "discontinuation_reason_code": T.TEXT, "discontinuation_reason": T.TEXT,
        "in_person_contacts": T.INTEGER, "telephonic_contacts": T.INTEGER, "file_production_date": T.DATE,
        "reporting_period": T.PERIOD, "provider_name": T.TEXT, "provider_npi": T.NPI, "provider_tin": T.TEXT,
        "provider_phone": T.TEXT,
        # Closed-loop referral fields, since 2025-07-01 [rule].
        "referral_status": T.TEXT, "referral_status_date": T.DATE, "referral_closure_reason": T.TEXT,
        # An MCP's acknowledgment of an RTF row comes back with these.
        "record_status": T.TEXT, "error_code": T.TEXT, "error_description": T.TEXT,
    },
    required=frozenset({"cin"}),
)

OTF = Record(
    kind=FileKind.OTF,
    fields={
        "mcp_id": T.TEXT, "mcp_name": T.TEXT, "provider_name": T.TEXT, "provider_npi": T.NPI,
        "provider_tin": T.TEXT, "last_name": T.TEXT, "first_name": T.TEXT, "cin": T.CIN,
        "provider_type": T.TEXT, "outreach_date": T.DATE, "outreach_method": T.TEXT,
        "outreach_successful": T.FLAG, "outreach_minutes": T.INTEGER, "reporting_period": T.PERIOD,
        "record_status": T.TEXT, "error_code": T.TEXT, "error_description": T.TEXT,
    },
    required=frozenset({"cin"}),
)

RECORDS: dict[FileKind, Record] = {r.kind: r for r in (MIF, REFERRAL, RTF, OTF)}

# The coded values the gateway itself writes on outbound files, by kind and canonical field: a profile that
# maps one of these fields (value_maps) must map every value, or the MCP would receive CalHub's own word.
RTF_ECM_STATUSES = frozenset({"pending", "enrolled", "denied", "discontinued", "expired", "suspended"})
OUTREACH_METHODS = frozenset({"in_person", "phone"})
WRITTEN_CODES: dict[FileKind, dict[str, frozenset[str]]] = {
    FileKind.RTF: {"ecm_status": RTF_ECM_STATUSES},
    FileKind.OTF: {"outreach_method": OUTREACH_METHODS},
}
