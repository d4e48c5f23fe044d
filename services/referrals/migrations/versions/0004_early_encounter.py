"""Encounters recorded before their authorization was linked to a referral: kept until the link, which then
moves the referral to in_service (an encounter and the request that links its authorization travel on
different topics, so either may arrive first).

Revision ID: referrals_0004
Revises: referrals_0003
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from shared.migrations import schema

revision = "referrals_0004"
down_revision = "referrals_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    s = schema()
    op.create_table(
        "early_encounter",
        sa.Column("authorization_id", sa.String(64), nullable=False),
        sa.Column("encounter_id", sa.String(64), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event_id", sa.Uuid, nullable=False),
        sa.PrimaryKeyConstraint("authorization_id", name="pk_early_encounter"),
        schema=s,
    )


def downgrade() -> None:
    op.drop_table("early_encounter", schema=schema())
