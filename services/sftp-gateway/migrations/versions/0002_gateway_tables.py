"""Gateway tables: file ledger, file problems, received content, event projections, remote status, audit.

Revision ID: sftp_gateway_0002
Revises: sftp_gateway_0001
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from shared.migrations import create_audit_table_v1, schema

revision = "sftp_gateway_0002"
down_revision = "sftp_gateway_0001"
branch_labels = None
depends_on = None


def _big() -> sa.types.TypeEngine[int]:
    return sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    s = schema()
    op.create_table(
        "gateway_file",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("mcp_code", sa.String(50), nullable=False),
        sa.Column("direction", sa.String(10), nullable=False),
        sa.Column("kind", sa.String(20), nullable=True),
        sa.Column("status", sa.String(30), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("source_id", sa.String(100), nullable=True),
        sa.Column("size", _big(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("content_sha256", sa.String(64), nullable=True),
        sa.Column("encrypted", sa.Boolean, nullable=False),
        sa.Column("reporting_period", sa.String(7), nullable=True),
        sa.Column("rows_total", sa.Integer, nullable=True),
        sa.Column("rows_accepted", sa.Integer, nullable=True),
        sa.Column("rows_rejected", sa.Integer, nullable=True),
        sa.Column("reason", sa.String(60), nullable=True),
        sa.Column("duplicate_of", sa.String(40), nullable=True),
        sa.Column("path", sa.String(500), nullable=True),
        sa.Column("push_status", sa.String(20), nullable=True),
        sa.Column("push_attempts", sa.Integer, nullable=False),
        sa.Column("pushed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("retain_until", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_gateway_file"),
        schema=s,
    )
    op.create_index("ix_gateway_file_mcp_code_direction_received_at", "gateway_file",
                    ["mcp_code", "direction", "received_at"], schema=s)
    op.create_index("ix_gateway_file_mcp_code_kind_reporting_period", "gateway_file",
                    ["mcp_code", "kind", "reporting_period"], schema=s)
    op.create_index("ix_gateway_file_source_id", "gateway_file", ["source_id"], schema=s)
    op.create_index("ix_gateway_file_push_status", "gateway_file", ["push_status"], schema=s)

    op.create_table(
        "file_problem",
        sa.Column("file_id", sa.String(40), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False, autoincrement=False),
        sa.Column("row_number", sa.Integer, nullable=True),
        sa.Column("column_name", sa.String(100), nullable=True),
        sa.Column("field", sa.String(60), nullable=True),
        sa.Column("rule", sa.String(40), nullable=False),
        sa.Column("message", sa.String(300), nullable=False),
        sa.PrimaryKeyConstraint("file_id", "seq", name="pk_file_problem"),
        schema=s,
    )
    op.create_table(
        "received_content",
        sa.Column("mcp_code", sa.String(50), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("file_id", sa.String(40), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("mcp_code", "sha256", name="pk_received_content"),
        schema=s,
    )
    op.create_table(
        "authorization_record",
        sa.Column("authorization_id", sa.String(64), nullable=False),
        sa.Column("mcp_code", sa.String(50), nullable=False),
        sa.Column("cbo_organization_id", sa.String(64), nullable=True),
        sa.Column("referral_id", sa.String(64), nullable=True),
        sa.Column("member_id", sa.String(40), nullable=False),
        sa.Column("cin", sa.String(9), nullable=False),
        sa.Column("last_name", sa.String(100), nullable=False),
        sa.Column("first_name", sa.String(100), nullable=False),
        sa.Column("middle_name", sa.String(100), nullable=True),
        sa.Column("birth_date", sa.Date, nullable=False),
        sa.Column("sex", sa.String(1), nullable=True),
        sa.Column("phone", sa.String(30), nullable=True),
        sa.Column("address_line1", sa.String(200), nullable=True),
        sa.Column("address_line2", sa.String(200), nullable=True),
        sa.Column("city", sa.String(100), nullable=True),
        sa.Column("state", sa.String(2), nullable=True),
        sa.Column("zip", sa.String(10), nullable=True),
        sa.Column("program", sa.String(10), nullable=False),
        sa.Column("pof_codes", sa.JSON, nullable=False),
        sa.Column("cs_code", sa.String(60), nullable=True),
        sa.Column("urgency", sa.String(20), nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decision_due", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("period_start", sa.Date, nullable=True),
        sa.Column("period_end", sa.Date, nullable=True),
        sa.Column("ended_on", sa.Date, nullable=True),
        sa.Column("end_reason", sa.String(200), nullable=True),
        sa.Column("mcp_authorization_number", sa.String(60), nullable=True),
        sa.Column("referral_file_id", sa.String(40), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("authorization_id", name="pk_authorization_record"),
        schema=s,
    )
    op.create_index("ix_authorization_record_mcp_code_status", "authorization_record", ["mcp_code", "status"],
                    schema=s)
    op.create_index("ix_authorization_record_referral_id", "authorization_record", ["referral_id"], schema=s)
    op.create_table(
        "referral_record",
        sa.Column("referral_id", sa.String(64), nullable=False),
        sa.Column("mcp_code", sa.String(50), nullable=True),
        sa.Column("cbo_organization_id", sa.String(64), nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("previous_status", sa.String(20), nullable=True),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closure_reason", sa.String(500), nullable=True),
        sa.PrimaryKeyConstraint("referral_id", name="pk_referral_record"),
        schema=s,
    )
    op.create_table(
        "encounter_record",
        sa.Column("encounter_id", sa.String(64), nullable=False),
        sa.Column("mcp_code", sa.String(50), nullable=False),
        sa.Column("cbo_organization_id", sa.String(64), nullable=False),
        sa.Column("authorization_id", sa.String(64), nullable=True),
        sa.Column("program", sa.String(10), nullable=False),
        sa.Column("service_date", sa.Date, nullable=False),
        sa.Column("hcpcs", sa.String(5), nullable=False),
        sa.Column("modifiers", sa.JSON, nullable=False),
        sa.Column("units", sa.Numeric(10, 2), nullable=False),
        sa.Column("outreach_attempt", sa.Boolean, nullable=False),
        sa.PrimaryKeyConstraint("encounter_id", name="pk_encounter_record"),
        schema=s,
    )
    op.create_index("ix_encounter_record_mcp_code_service_date", "encounter_record", ["mcp_code", "service_date"],
                    schema=s)
    op.create_index("ix_encounter_record_authorization_id", "encounter_record", ["authorization_id"], schema=s)
    op.create_table(
        "remote_status",
        sa.Column("mcp_code", sa.String(50), nullable=False),
        sa.Column("last_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_success_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("consecutive_failures", sa.Integer, nullable=False),
        sa.Column("last_error_type", sa.String(100), nullable=True),
        sa.Column("files_fetched", sa.Integer, nullable=False),
        sa.Column("files_pushed", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("mcp_code", name="pk_remote_status"),
        schema=s,
    )
    create_audit_table_v1()


def downgrade() -> None:
    raise NotImplementedError("gateway tables hold the file ledger and are never dropped by a migration")
