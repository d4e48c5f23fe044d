"""Each link of a referral's authorization chain keeps the MCP's latest decision and the authorization's end: a
denied reauthorization does not become the current authorization, so the end of the one it continued (even one
that ended before the denial arrived) still closes the loop (domain.succession).

Revision ID: referrals_0006
Revises: referrals_0005
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from shared.migrations import schema

revision = "referrals_0006"
down_revision = "referrals_0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    s = schema()
    # Nullable, no backfill: links made before this revision know no decision or end, as before.
    with op.batch_alter_table("referral_authorization", schema=s) as link:
        link.add_column(sa.Column("decision", sa.String(10), nullable=True))
        link.add_column(sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True))
        link.add_column(sa.Column("end_code", sa.String(60), nullable=True))
        link.add_column(sa.Column("end_reason", sa.Text, nullable=True))
        link.add_column(sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    s = schema()
    with op.batch_alter_table("referral_authorization", schema=s) as link:
        for column in ("ended_at", "end_reason", "end_code", "decided_at", "decision"):
            link.drop_column(column)
