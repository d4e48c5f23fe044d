"""Tables of the sftp-gateway service, all in its own schema `sftp_gateway`.

`gateway_file` is the ledger of every file in and out; `file_problem` keeps the reasons a file or row was
quarantined; `received_content` makes "the same bytes are never processed twice" a primary key. The
`*_record` tables are the gateway's own projections of other services' events, used to write RTF, OTF and
referral files. Member columns there are PHI: they are read only to write the MCP's files.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    Numeric,
    String,
    Table,
)

from shared.auth import define_audit_table
from shared.db import declarative_base
from shared.platform_tables import define_platform_tables

SCHEMA = "sftp_gateway"

Base = declarative_base(SCHEMA)
platform = define_platform_tables(Base.metadata)
audit_event = define_audit_table(Base.metadata)
metadata = Base.metadata

gateway_file = Table(
    "gateway_file",
    metadata,
    Column("id", String(40), primary_key=True),  # fil_<uuid7 hex>: time-ordered, the API's cursor
    Column("mcp_code", String(50), nullable=False),
    Column("direction", String(10), nullable=False),  # inbound | outbound
    Column("kind", String(20), nullable=True),  # None until recognized
    Column("status", String(30), nullable=False),
    Column("name", String(255), nullable=False),
    Column("source", String(20), nullable=False),  # sftp | remote | generated | event | reprocess
    Column("source_id", String(100), nullable=True),  # claim batch id, inbound file id of an error report...
    Column("size", BigInteger().with_variant(Integer, "sqlite"), nullable=False),
    Column("sha256", String(64), nullable=False),  # of the bytes as they travelled (encrypted or not)
    Column("content_sha256", String(64), nullable=True),  # of the plaintext, when it differs
    Column("encrypted", Boolean, nullable=False),
    Column("reporting_period", String(7), nullable=True),
    Column("rows_total", Integer, nullable=True),
    Column("rows_accepted", Integer, nullable=True),
    Column("rows_rejected", Integer, nullable=True),
    Column("reason", String(60), nullable=True),  # quarantine rule, e.g. missing_columns
    Column("duplicate_of", String(40), nullable=True),
    Column("path", String(500), nullable=True),  # outbound: where it was written, relative to the jail
    Column("push_status", String(20), nullable=True),  # client mode: pending | pushed | failed
    Column("push_attempts", Integer, nullable=False),
    Column("pushed_at", DateTime(timezone=True), nullable=True),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("processed_at", DateTime(timezone=True), nullable=True),
    Column("retain_until", DateTime(timezone=True), nullable=True),
    Index(None, "mcp_code", "direction", "received_at"),
    Index(None, "mcp_code", "kind", "reporting_period"),
    Index(None, "source_id"),
    Index(None, "push_status"),
)

file_problem = Table(
    "file_problem",
    metadata,
    Column("file_id", String(40), primary_key=True),
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("row_number", Integer, nullable=True),  # None: the whole file
    Column("column_name", String(100), nullable=True),
    Column("field", String(60), nullable=True),
    Column("rule", String(40), nullable=False),
    Column("message", String(300), nullable=False),
)

received_content = Table(
    "received_content",
    metadata,
    Column("mcp_code", String(50), primary_key=True),
    Column("sha256", String(64), primary_key=True),
    Column("file_id", String(40), nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
)

# A decision that arrives before its request (a replayed dead letter) is kept with the member and request columns
# empty until the request fills them (migration 0003); an MCP assignment has no request: its approval fills them.
authorization_record = Table(
    "authorization_record",
    metadata,
    Column("authorization_id", String(64), primary_key=True),
    Column("mcp_code", String(50), nullable=False),
    Column("cbo_organization_id", String(64), nullable=True),
    Column("referral_id", String(64), nullable=True),
    Column("member_id", String(40), nullable=True),
    Column("cin", String(9), nullable=True),
    Column("last_name", String(100), nullable=True),
    Column("first_name", String(100), nullable=True),
    Column("middle_name", String(100), nullable=True),
    Column("birth_date", Date, nullable=True),
    Column("sex", String(1), nullable=True),
    Column("phone", String(30), nullable=True),
    Column("address_line1", String(200), nullable=True),
    Column("address_line2", String(200), nullable=True),
    Column("city", String(100), nullable=True),
    Column("state", String(2), nullable=True),
    Column("zip", String(10), nullable=True),
    Column("program", String(10), nullable=True),
    Column("pof_codes", JSON, nullable=False),
    Column("cs_code", String(60), nullable=True),
    Column("urgency", String(20), nullable=True),
    Column("status", String(20), nullable=False),
    Column("requested_at", DateTime(timezone=True), nullable=True),
    Column("decision_due", DateTime(timezone=True), nullable=True),
    Column("decided_at", DateTime(timezone=True), nullable=True),
    Column("period_start", Date, nullable=True),
    Column("period_end", Date, nullable=True),
    Column("ended_on", Date, nullable=True),
    Column("end_reason", String(200), nullable=True),
    Column("mcp_authorization_number", String(60), nullable=True),
    Column("referral_file_id", String(40), nullable=True),  # the referral file that carried the request
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index(None, "mcp_code", "status"),
    Index(None, "referral_id"),
)

referral_record = Table(
    "referral_record",
    metadata,
    Column("referral_id", String(64), primary_key=True),
    Column("mcp_code", String(50), nullable=True),
    Column("cbo_organization_id", String(64), nullable=True),
    Column("status", String(20), nullable=False),
    Column("previous_status", String(20), nullable=True),
    Column("changed_at", DateTime(timezone=True), nullable=False),
    Column("closure_reason", String(500), nullable=True),
)

encounter_record = Table(
    "encounter_record",
    metadata,
    Column("encounter_id", String(64), primary_key=True),
    Column("mcp_code", String(50), nullable=False),
    Column("cbo_organization_id", String(64), nullable=False),
    Column("authorization_id", String(64), nullable=True),
    Column("program", String(10), nullable=False),
    Column("service_date", Date, nullable=False),
    Column("hcpcs", String(5), nullable=False),
    Column("modifiers", JSON, nullable=False),
    Column("units", Numeric(10, 2), nullable=False),
    Column("outreach_attempt", Boolean, nullable=False),
    Index(None, "mcp_code", "service_date"),
    Index(None, "authorization_id"),
)

# The newest homelessness flag an MCP gave for a member (MIF or referral file rows), for the RTF (migration 0004).
# `reporting_period` orders the facts: an older MIF processed late does not overwrite a newer one.
member_homelessness = Table(
    "member_homelessness",
    metadata,
    Column("mcp_code", String(50), primary_key=True),
    Column("cin", String(9), primary_key=True),
    Column("homeless", Boolean, nullable=False),
    Column("reporting_period", String(7), nullable=False),
    Column("observed_at", DateTime(timezone=True), nullable=False),
    Column("file_id", String(40), nullable=False),
)

remote_status = Table(
    "remote_status",
    metadata,
    Column("mcp_code", String(50), primary_key=True),
    Column("last_attempt_at", DateTime(timezone=True), nullable=True),
    Column("last_success_at", DateTime(timezone=True), nullable=True),
    Column("consecutive_failures", Integer, nullable=False),
    Column("last_error_type", String(100), nullable=True),
    Column("files_fetched", Integer, nullable=False),
    Column("files_pushed", Integer, nullable=False),
)
