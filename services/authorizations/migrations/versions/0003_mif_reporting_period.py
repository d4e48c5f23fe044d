"""The reporting period of each Member Information File row taken, so a late file of an older period cannot
undo what a newer one decided (docs/decisions/0126-late-member-information-files.md).

Revision ID: authorizations_0003
Revises: authorizations_0002
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from shared.migrations import schema

revision = "authorizations_0003"
down_revision = "authorizations_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable: rows taken before this revision, and layouts without a reporting period, have none.
    with op.batch_alter_table("mif_row_outcome", schema=schema()) as table:
        table.add_column(sa.Column("reporting_period", sa.String(7), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("mif_row_outcome", schema=schema()) as table:
        table.drop_column("reporting_period")
