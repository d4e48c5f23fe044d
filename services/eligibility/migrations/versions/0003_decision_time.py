"""Decision time on the served authorizations: the newest approval of an authorization (approved, then approved
as modified) sets the period the monthly re-check and the ECM/CHW rule use, whatever order the two arrive in
(docs/decisions/0125).

Revision ID: eligibility_0003
Revises: eligibility_0002
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from shared.migrations import schema

revision = "eligibility_0003"
down_revision = "eligibility_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    s = schema()
    # Nullable, no backfill: a row projected before this revision keeps the period it consumed last until its
    # next approval sets both (as before this revision).
    with op.batch_alter_table("served_authorization", schema=s) as served:
        served.add_column(sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    s = schema()
    with op.batch_alter_table("served_authorization", schema=s) as served:
        served.drop_column("decided_at")
