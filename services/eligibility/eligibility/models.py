"""Tables of the eligibility service, all in its own schema `eligibility`.

The member registry (member, cin_alias, enrollment_span, program_flag), the projection of authorizations that
decides who is re-checked, checks and the jobs that asked for them, 270 batches with their per-partner control
numbers, the 271 files applied, and the audit trail.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    String,
    Table,
    Text,
    Uuid,
)

from shared.auth import define_audit_table
from shared.db import declarative_base
from shared.platform_tables import define_platform_tables

SCHEMA = "eligibility"

Base = declarative_base(SCHEMA)
platform = define_platform_tables(Base.metadata)
metadata = Base.metadata

member = Table(
    "member",
    metadata,
    Column("member_id", String(32), primary_key=True),  # shared.identity.member_id_for(cin)
    Column("cin", String(9), nullable=False, unique=True),
    Column("last_name", String(100), nullable=True),
    Column("first_name", String(100), nullable=True),
    Column("middle_name", String(100), nullable=True),
    Column("birth_date", Date, nullable=True),
    Column("gender", String(1), nullable=True),
    Column("mcp_member_id", String(80), nullable=True),
    # The concluded status (what was last announced) — change detection compares against it.
    Column("status", String(16), nullable=False),
    Column("mcp_code", String(50), nullable=True),
    Column("status_effective", Date, nullable=True),
    Column("as_of", Date, nullable=True),
    Column("source", String(16), nullable=True),
    Column("verified_at", DateTime(timezone=True), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index(None, "mcp_code", "status"),
)

cin_alias = Table(
    "cin_alias",
    metadata,
    # A merged record's older CIN, pointing at the member it now belongs to (CALAIM.md identifiers).
    Column("cin", String(9), primary_key=True),
    Column("member_id", String(32), nullable=False, index=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

enrollment_span = Table(
    "enrollment_span",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("member_id", String(32), nullable=False, index=True),
    Column("mcp_code", String(50), nullable=False),
    Column("start_date", Date, nullable=False),
    Column("end_date", Date, nullable=True),
    Column("source", String(16), nullable=False),
)

program_flag = Table(
    "program_flag",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("member_id", String(32), nullable=False, index=True),
    Column("program_code", String(50), nullable=False),
    Column("start_date", Date, nullable=False),
    Column("end_date", Date, nullable=True),
    Column("source", String(16), nullable=False),
)

served_authorization = Table(
    "served_authorization",
    metadata,
    # Projection of authorizations.* events: who has an open authorization with which MCP, for which program.
    Column("authorization_id", String(64), primary_key=True),
    Column("member_id", String(32), nullable=True, index=True),
    Column("mcp_code", String(50), nullable=False),
    Column("program", String(8), nullable=False),
    Column("cbo_organization_id", String(64), nullable=True),
    Column("period_start", Date, nullable=True),
    Column("period_end", Date, nullable=True),
    # When the approval whose period is kept was decided (migration 0003): the newest decision's period stands.
    Column("decided_at", DateTime(timezone=True), nullable=True),
    Column("status", String(16), nullable=False),  # requested | active | expired | closed
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index(None, "mcp_code", "status"),
)

eligibility_check = Table(
    "eligibility_check",
    metadata,
    Column("check_id", String(40), primary_key=True),  # also TRN02 of the 270 and the 271
    Column("member_id", String(32), nullable=False, index=True),
    Column("mcp_code", String(50), nullable=False),
    Column("reason", String(16), nullable=False),  # monthly | referral | job
    Column("status", String(16), nullable=False),  # queued | sent | answered | rejected | failed
    Column("service_date", Date, nullable=False),
    Column("referral_id", String(64), nullable=True),
    Column("job_id", String(40), nullable=True, index=True),
    Column("batch_id", String(40), nullable=True, index=True),
    # BHT03 of the 270 transaction set the check went out in (x270.transaction_sets); None before revision 0004.
    Column("set_reference", String(50), nullable=True, index=True),
    Column("requested_at", DateTime(timezone=True), nullable=False),
    Column("sent_at", DateTime(timezone=True), nullable=True),
    Column("answered_at", DateTime(timezone=True), nullable=True),
    Column("result", String(16), nullable=True),  # enrolled | not_enrolled | rejected
    Column("result_mcp_code", String(50), nullable=True),
    Column("reject_reason_code", String(4), nullable=True),
    Column("detail", Text, nullable=True),  # plain reason (no PHI)
    Index(None, "mcp_code", "status"),
)

check_job = Table(
    "check_job",
    metadata,
    Column("job_id", String(40), primary_key=True),
    Column("organization_id", String(64), nullable=False, index=True),
    Column("total", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

check_job_item = Table(
    "check_job_item",
    metadata,
    Column("job_id", String(40), primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("member_id", String(32), nullable=True),
    Column("check_id", String(40), nullable=True),
    Column("status", String(16), nullable=False),  # pending | completed | failed
    Column("detail", Text, nullable=True),
)

eligibility_batch = Table(
    "eligibility_batch",
    metadata,
    Column("batch_id", String(40), primary_key=True),
    Column("batch_key", String(200), nullable=False, unique=True),  # one batch per MCP and period
    Column("mcp_code", String(50), nullable=False, index=True),
    Column("kind", String(16), nullable=False),  # monthly | realtime | manual
    Column("period", String(7), nullable=True),
    Column("members", Integer, nullable=False),
    Column("skipped", Integer, nullable=False),
    Column("interchange_control_number", String(9), nullable=False),
    Column("file_uri", String(200), nullable=False),
    Column("file_sha256", String(64), nullable=False),
    Column("file_size", BigInteger, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

control_number = Table(
    "control_number",
    metadata,
    # ISA13 must be unique per trading partner (FILES.md envelopes): a counter per MCP.
    Column("partner", String(50), primary_key=True),
    Column("last_value", BigInteger, nullable=False),
)

response_file = Table(
    "response_file",
    metadata,
    Column("file_id", String(64), primary_key=True),
    Column("sha256", String(64), nullable=False, unique=True),
    Column("mcp_code", String(50), nullable=False),
    Column("status", String(16), nullable=False),  # processed | refused
    Column("subscribers", Integer, nullable=False),
    Column("errors", JSON, nullable=False),  # positions and rules only, never element values
    Column("processed_at", DateTime(timezone=True), nullable=False),
)

audit_event = define_audit_table(metadata)
