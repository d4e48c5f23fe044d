"""Referrals, their timeline and authorization links, the member-plan projection, audit and webhook tables.

Revision ID: referrals_0002
Revises: referrals_0001
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from shared.migrations import create_audit_table_v1, schema
from shared.webhooks import create_webhook_tables_v1

revision = "referrals_0002"
down_revision = "referrals_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    s = schema()
    tz = sa.DateTime(timezone=True)
    op.create_table(
        "referral",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("member_id", sa.String(40), nullable=False),
        sa.Column("member", sa.JSON, nullable=False),
        sa.Column("program", sa.String(8), nullable=False),
        sa.Column("service", sa.JSON, nullable=False),
        sa.Column("urgency", sa.String(16), nullable=False),
        sa.Column("expedited_reason", sa.Text, nullable=True),
        sa.Column("county", sa.String(40), nullable=False),
        sa.Column("requested_mcp_code", sa.String(40), nullable=True),
        sa.Column("mcp_code", sa.String(40), nullable=True),
        sa.Column("routing_basis", sa.String(20), nullable=True),
        sa.Column("referring_organization_id", sa.String(64), nullable=False),
        sa.Column("referring_npi", sa.String(10), nullable=False),
        sa.Column("referring", sa.JSON, nullable=False),
        sa.Column("cbo_organization_id", sa.String(64), nullable=True),
        sa.Column("notes", sa.Text, nullable=True),
        sa.Column("consent", sa.JSON, nullable=False),
        sa.Column("external_identifiers", sa.JSON, nullable=False),
        sa.Column("channel", sa.String(10), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("status_reason", sa.Text, nullable=True),
        sa.Column("closure_reason_code", sa.String(60), nullable=True),
        sa.Column("status_changed_at", tz, nullable=False),
        sa.Column("authorization_id", sa.String(64), nullable=True),
        sa.Column("open_key", sa.String(120), nullable=True),
        sa.Column("correlation_id", sa.Uuid, nullable=False),
        sa.Column("created_at", tz, nullable=False),
        sa.Column("updated_at", tz, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_referral"),
        sa.UniqueConstraint("open_key", name="uq_referral_open_key"),
        schema=s,
    )
    for column in ("member_id", "mcp_code", "referring_organization_id", "cbo_organization_id", "status",
                   "created_at"):
        op.create_index(f"ix_referral_{column}", "referral", [column], schema=s)

    op.create_table(
        "referral_timeline",
        sa.Column("id", sa.Uuid, nullable=False),
        sa.Column("referral_id", sa.String(40), nullable=False),
        sa.Column("occurred_at", tz, nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("status", sa.String(20), nullable=True),
        sa.Column("previous_status", sa.String(20), nullable=True),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("detail", sa.JSON, nullable=False),
        sa.Column("event_id", sa.Uuid, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_referral_timeline"),
        schema=s,
    )
    op.create_index("ix_referral_timeline_referral_id_occurred_at", "referral_timeline",
                    ["referral_id", "occurred_at"], schema=s)

    op.create_table(
        "referral_authorization",
        sa.Column("authorization_id", sa.String(64), nullable=False),
        sa.Column("referral_id", sa.String(40), nullable=False),
        sa.Column("linked_at", tz, nullable=False),
        sa.PrimaryKeyConstraint("authorization_id", name="pk_referral_authorization"),
        schema=s,
    )
    op.create_index("ix_referral_authorization_referral_id", "referral_authorization", ["referral_id"], schema=s)

    op.create_table(
        "member_plan",
        sa.Column("member_id", sa.String(40), nullable=False),
        sa.Column("mcp_code", sa.String(40), nullable=True),
        sa.Column("as_of", sa.Date, nullable=False),
        sa.Column("verified_at", tz, nullable=False),
        sa.Column("source_event_type", sa.String(60), nullable=False),
        sa.Column("updated_at", tz, nullable=False),
        sa.PrimaryKeyConstraint("member_id", name="pk_member_plan"),
        schema=s,
    )

    create_audit_table_v1()

    create_webhook_tables_v1(s)


def downgrade() -> None:
    raise NotImplementedError("referral data is never dropped by a migration")
