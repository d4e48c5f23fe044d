"""Member registry, authorization projection, checks and jobs, 270 batches, 271 files, audit trail.

Revision ID: eligibility_0002
Revises: eligibility_0001
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from shared.migrations import create_audit_table_v1, schema

revision = "eligibility_0002"
down_revision = "eligibility_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    s = schema()
    op.create_table(
        "member",
        sa.Column("member_id", sa.String(32), nullable=False),
        sa.Column("cin", sa.String(9), nullable=False),
        sa.Column("last_name", sa.String(100), nullable=True),
        sa.Column("first_name", sa.String(100), nullable=True),
        sa.Column("middle_name", sa.String(100), nullable=True),
        sa.Column("birth_date", sa.Date, nullable=True),
        sa.Column("gender", sa.String(1), nullable=True),
        sa.Column("mcp_member_id", sa.String(80), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("mcp_code", sa.String(50), nullable=True),
        sa.Column("status_effective", sa.Date, nullable=True),
        sa.Column("as_of", sa.Date, nullable=True),
        sa.Column("source", sa.String(16), nullable=True),
        sa.Column("verified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("member_id", name="pk_member"),
        sa.UniqueConstraint("cin", name="uq_member_cin"),
        schema=s,
    )
    op.create_index("ix_member_mcp_code_status", "member", ["mcp_code", "status"], schema=s)
    op.create_table(
        "cin_alias",
        sa.Column("cin", sa.String(9), nullable=False),
        sa.Column("member_id", sa.String(32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("cin", name="pk_cin_alias"),
        schema=s,
    )
    op.create_index("ix_cin_alias_member_id", "cin_alias", ["member_id"], schema=s)
    for table, code_column in (("enrollment_span", "mcp_code"), ("program_flag", "program_code")):
        op.create_table(
            table,
            sa.Column("id", sa.Uuid, nullable=False),
            sa.Column("member_id", sa.String(32), nullable=False),
            sa.Column(code_column, sa.String(50), nullable=False),
            sa.Column("start_date", sa.Date, nullable=False),
            sa.Column("end_date", sa.Date, nullable=True),
            sa.Column("source", sa.String(16), nullable=False),
            sa.PrimaryKeyConstraint("id", name=f"pk_{table}"),
            schema=s,
        )
        op.create_index(f"ix_{table}_member_id", table, ["member_id"], schema=s)
    op.create_table(
        "served_authorization",
        sa.Column("authorization_id", sa.String(64), nullable=False),
        sa.Column("member_id", sa.String(32), nullable=True),
        sa.Column("mcp_code", sa.String(50), nullable=False),
        sa.Column("program", sa.String(8), nullable=False),
        sa.Column("cbo_organization_id", sa.String(64), nullable=True),
        sa.Column("period_start", sa.Date, nullable=True),
        sa.Column("period_end", sa.Date, nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("authorization_id", name="pk_served_authorization"),
        schema=s,
    )
    op.create_index("ix_served_authorization_member_id", "served_authorization", ["member_id"], schema=s)
    op.create_index("ix_served_authorization_mcp_code_status", "served_authorization", ["mcp_code", "status"], schema=s)
    op.create_table(
        "eligibility_check",
        sa.Column("check_id", sa.String(40), nullable=False),
        sa.Column("member_id", sa.String(32), nullable=False),
        sa.Column("mcp_code", sa.String(50), nullable=False),
        sa.Column("reason", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("service_date", sa.Date, nullable=False),
        sa.Column("referral_id", sa.String(64), nullable=True),
        sa.Column("job_id", sa.String(40), nullable=True),
        sa.Column("batch_id", sa.String(40), nullable=True),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("result", sa.String(16), nullable=True),
        sa.Column("result_mcp_code", sa.String(50), nullable=True),
        sa.Column("reject_reason_code", sa.String(4), nullable=True),
        sa.Column("detail", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("check_id", name="pk_eligibility_check"),
        schema=s,
    )
    op.create_index("ix_eligibility_check_member_id", "eligibility_check", ["member_id"], schema=s)
    op.create_index("ix_eligibility_check_job_id", "eligibility_check", ["job_id"], schema=s)
    op.create_index("ix_eligibility_check_batch_id", "eligibility_check", ["batch_id"], schema=s)
    op.create_index("ix_eligibility_check_mcp_code_status", "eligibility_check", ["mcp_code", "status"], schema=s)
    op.create_table(
        "check_job",
        sa.Column("job_id", sa.String(40), nullable=False),
        sa.Column("organization_id", sa.String(64), nullable=False),
        sa.Column("total", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("job_id", name="pk_check_job"),
        schema=s,
    )
    op.create_index("ix_check_job_organization_id", "check_job", ["organization_id"], schema=s)
    op.create_table(
        "check_job_item",
        sa.Column("job_id", sa.String(40), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("member_id", sa.String(32), nullable=True),
        sa.Column("check_id", sa.String(40), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("detail", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("job_id", "position", name="pk_check_job_item"),
        schema=s,
    )
    op.create_table(
        "eligibility_batch",
        sa.Column("batch_id", sa.String(40), nullable=False),
        sa.Column("batch_key", sa.String(200), nullable=False),
        sa.Column("mcp_code", sa.String(50), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("period", sa.String(7), nullable=True),
        sa.Column("members", sa.Integer, nullable=False),
        sa.Column("skipped", sa.Integer, nullable=False),
        sa.Column("interchange_control_number", sa.String(9), nullable=False),
        sa.Column("file_uri", sa.String(200), nullable=False),
        sa.Column("file_sha256", sa.String(64), nullable=False),
        sa.Column("file_size", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("batch_id", name="pk_eligibility_batch"),
        sa.UniqueConstraint("batch_key", name="uq_eligibility_batch_batch_key"),
        schema=s,
    )
    op.create_index("ix_eligibility_batch_mcp_code", "eligibility_batch", ["mcp_code"], schema=s)
    op.create_table(
        "control_number",
        sa.Column("partner", sa.String(50), nullable=False),
        sa.Column("last_value", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("partner", name="pk_control_number"),
        schema=s,
    )
    op.create_table(
        "response_file",
        sa.Column("file_id", sa.String(64), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("mcp_code", sa.String(50), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("subscribers", sa.Integer, nullable=False),
        sa.Column("errors", sa.JSON, nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("file_id", name="pk_response_file"),
        sa.UniqueConstraint("sha256", name="uq_response_file_sha256"),
        schema=s,
    )
    create_audit_table_v1()


def downgrade() -> None:
    s = schema()
    for table in ("audit_event", "response_file", "control_number", "eligibility_batch", "check_job_item",
                  "check_job", "eligibility_check", "served_authorization", "program_flag", "enrollment_span",
                  "cin_alias", "member"):
        op.drop_table(table, schema=s)
