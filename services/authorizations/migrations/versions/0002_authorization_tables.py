"""Authorization requests and authorizations, their history, member eligibility and engagement, MIF row
outcomes, care-team tasks and the audit trail.

Revision ID: authorizations_0002
Revises: authorizations_0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from shared.migrations import create_audit_table_v1, schema

revision = "authorizations_0002"
down_revision = "authorizations_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    s = schema()
    tz = sa.DateTime(timezone=True)
    op.create_table(
        "authorization",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("referral_id", sa.String(64), nullable=True),
        sa.Column("correlation_id", sa.Uuid, nullable=False),
        sa.Column("member_id", sa.String(40), nullable=False),
        sa.Column("member", sa.JSON, nullable=False),
        sa.Column("mcp_code", sa.String(50), nullable=False),
        sa.Column("cbo_organization_id", sa.String(64), nullable=True),
        sa.Column("referring_organization_id", sa.String(64), nullable=True),
        sa.Column("program", sa.String(10), nullable=False),
        sa.Column("service_key", sa.String(60), nullable=False),
        sa.Column("service", sa.JSON, nullable=False),
        sa.Column("urgency", sa.String(20), nullable=False),
        sa.Column("requested_urgency", sa.String(20), nullable=False),
        sa.Column("expedited_reason", sa.String(200), nullable=True),
        sa.Column("origin", sa.String(30), nullable=False),
        sa.Column("previous_authorization_id", sa.String(40), nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("requested_at", tz, nullable=False),
        sa.Column("decision_due", tz, nullable=True),
        sa.Column("original_decision_due", tz, nullable=True),
        sa.Column("calendar", sa.String(100), nullable=False),
        sa.Column("deadline_basis", sa.String(40), nullable=False),
        sa.Column("expedited_by_rule", sa.Boolean, nullable=False),
        sa.Column("clock_stopped", sa.Boolean, nullable=False),
        sa.Column("decided_at", tz, nullable=True),
        sa.Column("decision", sa.String(30), nullable=True),
        sa.Column("decided_within_deadline", sa.Boolean, nullable=True),
        sa.Column("mcp_authorization_number", sa.String(100), nullable=True),
        sa.Column("period_start", sa.Date, nullable=True),
        sa.Column("period_end", sa.Date, nullable=True),
        sa.Column("presumptive", sa.Boolean, nullable=False),
        sa.Column("review_flags", sa.JSON, nullable=False),
        sa.Column("assigned_provider_npi", sa.String(10), nullable=True),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("suspended_from", sa.String(20), nullable=True),
        sa.Column("expiring_due_on", sa.Date, nullable=True),
        sa.Column("expiry_due_on", sa.Date, nullable=True),
        sa.Column("expiring_raised_at", tz, nullable=True),
        sa.Column("reauthorization", sa.String(30), nullable=True),
        sa.Column("created_at", tz, nullable=False),
        sa.Column("updated_at", tz, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_authorization"),
        schema=s,
    )
    for columns in (["referral_id"], ["member_id"], ["cbo_organization_id"], ["previous_authorization_id"],
                    ["mcp_code", "status"], ["expiring_due_on"], ["expiry_due_on"], ["status", "decision_due"],
                    ["reauthorization"]):
        op.create_index(f"ix_authorization_{'_'.join(columns)}", "authorization", columns, schema=s)

    op.create_table(
        "authorization_history",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), nullable=False, autoincrement=True),
        sa.Column("authorization_id", sa.String(40), nullable=False),
        sa.Column("occurred_at", tz, nullable=False),
        sa.Column("action", sa.String(50), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("actor", sa.String(120), nullable=False),
        sa.Column("detail", sa.JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_authorization_history"),
        schema=s,
    )
    op.create_index("ix_authorization_history_authorization_id", "authorization_history", ["authorization_id"],
                    schema=s)

    op.create_table(
        "member_eligibility",
        sa.Column("member_id", sa.String(40), nullable=False),
        sa.Column("eligible", sa.Boolean, nullable=False),
        sa.Column("mcp_code", sa.String(50), nullable=True),
        sa.Column("as_of", sa.Date, nullable=False),
        sa.Column("updated_at", tz, nullable=False),
        sa.PrimaryKeyConstraint("member_id", name="pk_member_eligibility"),
        schema=s,
    )
    op.create_table(
        "member_engagement",
        sa.Column("member_id", sa.String(40), nullable=False),
        sa.Column("program", sa.String(10), nullable=False),
        sa.Column("last_encounter_on", sa.Date, nullable=False),
        sa.Column("updated_at", tz, nullable=False),
        sa.PrimaryKeyConstraint("member_id", "program", name="pk_member_engagement"),
        schema=s,
    )
    op.create_table(
        "mif_row_outcome",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("file_id", sa.String(100), nullable=False),
        sa.Column("row_number", sa.Integer, nullable=False),
        sa.Column("mcp_code", sa.String(50), nullable=False),
        sa.Column("member_id", sa.String(40), nullable=False),
        sa.Column("outcome", sa.String(30), nullable=False),
        sa.Column("reason", sa.String(50), nullable=True),
        sa.Column("authorization_id", sa.String(40), nullable=True),
        sa.Column("ecm_status", sa.String(50), nullable=True),
        sa.Column("mcp_authorization_id", sa.String(100), nullable=True),
        sa.Column("resolved_at", tz, nullable=True),
        sa.Column("resolved_by", sa.String(64), nullable=True),
        sa.Column("resolution", sa.Text, nullable=True),
        sa.Column("created_at", tz, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_mif_row_outcome"),
        sa.UniqueConstraint("file_id", "row_number", name="uq_mif_row_outcome_file_id_row_number"),
        schema=s,
    )
    op.create_index("ix_mif_row_outcome_member_id", "mif_row_outcome", ["member_id"], schema=s)
    op.create_index("ix_mif_row_outcome_outcome_resolved_at", "mif_row_outcome", ["outcome", "resolved_at"],
                    schema=s)

    op.create_table(
        "care_team_task",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("authorization_id", sa.String(40), nullable=False),
        sa.Column("member_id", sa.String(40), nullable=False),
        sa.Column("mcp_code", sa.String(50), nullable=False),
        sa.Column("cbo_organization_id", sa.String(64), nullable=True),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("reason", sa.String(40), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("due_on", sa.Date, nullable=False),
        sa.Column("created_at", tz, nullable=False),
        sa.Column("completed_at", tz, nullable=True),
        sa.Column("completed_by", sa.String(64), nullable=True),
        sa.Column("outcome", sa.String(40), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_care_team_task"),
        schema=s,
    )
    op.create_index("ix_care_team_task_authorization_id", "care_team_task", ["authorization_id"], schema=s)
    op.create_index("ix_care_team_task_status_cbo_organization_id", "care_team_task",
                    ["status", "cbo_organization_id"], schema=s)

    create_audit_table_v1()


def downgrade() -> None:
    s = schema()
    for table in ("audit_event", "care_team_task", "mif_row_outcome", "member_engagement", "member_eligibility",
                  "authorization_history", "authorization"):
        op.drop_table(table, schema=s)
