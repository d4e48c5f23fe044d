"""The 270 transaction set each check went out in (its BHT03, echoed by the 271), so a rejection of one set
rejects that set's checks only, not the whole batch's (docs/decisions/0050).

Revision ID: eligibility_0004
Revises: eligibility_0003
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from shared.migrations import schema

revision = "eligibility_0004"
down_revision = "eligibility_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    s = schema()
    # Nullable, no backfill: a check sent before this revision went out in a 270 whose sets all carried the batch
    # id as BHT03; a rejection of one of them still rejects the batch's outstanding checks, as before.
    with op.batch_alter_table("eligibility_check", schema=s) as check:
        check.add_column(sa.Column("set_reference", sa.String(50), nullable=True))
    op.create_index("ix_eligibility_check_set_reference", "eligibility_check", ["set_reference"], schema=s)


def downgrade() -> None:
    s = schema()
    op.drop_index("ix_eligibility_check_set_reference", "eligibility_check", schema=s)
    with op.batch_alter_table("eligibility_check", schema=s) as check:
        check.drop_column("set_reference")
