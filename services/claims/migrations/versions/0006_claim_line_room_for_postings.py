"""Room on claim_line pages for the 835 posting's update (fillfactor 50, PostgreSQL only): the posted paid and
adjusted amounts then land on the same page as a heap-only tuple, without new entries in the three indexes
(docs/decisions/0110). Pages written before this revision fill as before until the table is rewritten.

Revision ID: claims_0006
Revises: claims_0005
Create Date: 2026-11-22
"""

from __future__ import annotations

from alembic import op

from shared.migrations import schema

revision = "claims_0006"
down_revision = "claims_0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    s = schema()
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f'ALTER TABLE "{s}".claim_line SET (fillfactor = 50)')


def downgrade() -> None:
    s = schema()
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f'ALTER TABLE "{s}".claim_line RESET (fillfactor)')
