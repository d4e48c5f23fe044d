"""Decision time on the authorization projection: the newest approval of an authorization (approved, then
approved as modified) sets its period whatever order the two arrive in (docs/decisions/0125).

Revision ID: claims_0005
Revises: claims_0004
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from shared.migrations import schema

revision = "claims_0005"
down_revision = "claims_0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    s = schema()
    # Nullable, no backfill: a row projected before this revision holds the period of the approval it consumed
    # last, decision time unknown; the next approval it receives sets both (as before this revision).
    with op.batch_alter_table("authorization_coverage", schema=s) as coverage:
        coverage.add_column(sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    s = schema()
    with op.batch_alter_table("authorization_coverage", schema=s) as coverage:
        coverage.drop_column("decided_at")
