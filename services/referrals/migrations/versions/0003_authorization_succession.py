"""Succession of a referral's authorizations: each link records the authorization it continues, so the current
one is the newest of the chain whatever order their events arrive in (docs/decisions/0127).

Revision ID: referrals_0003
Revises: referrals_0002
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from shared.migrations import schema

revision = "referrals_0003"
down_revision = "referrals_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    s = schema()
    # Nullable, no backfill: links made before this revision name no predecessor, and of those the latest linked
    # counts as the newest (as the last linked did before).
    with op.batch_alter_table("referral_authorization", schema=s) as link:
        link.add_column(sa.Column("previous_authorization_id", sa.String(64), nullable=True))


def downgrade() -> None:
    s = schema()
    with op.batch_alter_table("referral_authorization", schema=s) as link:
        link.drop_column("previous_authorization_id")
