"""Kept encounters are dropped once older than their authorization can be (`EARLY_ENCOUNTER_KEPT_FOR`): an index
on the time they were recorded, so that delete reads only what it drops.

Revision ID: referrals_0005
Revises: referrals_0004
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

from shared.migrations import schema

revision = "referrals_0005"
down_revision = "referrals_0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_early_encounter_recorded_at", "early_encounter", ["recorded_at"], schema=schema())


def downgrade() -> None:
    op.drop_index("ix_early_encounter_recorded_at", table_name="early_encounter", schema=schema())
