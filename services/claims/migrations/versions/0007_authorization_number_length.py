"""The MCP authorization number on the authorization projection holds what the authorizations service takes (up
to 100 characters), so an approval with a number the 837P cannot carry is still projected, and the encounter
check refuses it by name (authorization_number_unusable) instead of the event failing (docs/decisions/0060).

Revision ID: claims_0007
Revises: claims_0006
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from shared.migrations import schema

revision = "claims_0007"
down_revision = "claims_0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    s = schema()
    with op.batch_alter_table("authorization_coverage", schema=s) as coverage:
        coverage.alter_column("mcp_authorization_number", type_=sa.String(100), existing_type=sa.String(50),
                              existing_nullable=True)


def downgrade() -> None:
    s = schema()
    # Refused (on PostgreSQL) while a number over 50 characters is kept: cutting it would bill a wrong number.
    with op.batch_alter_table("authorization_coverage", schema=s) as coverage:
        coverage.alter_column("mcp_authorization_number", type_=sa.String(50), existing_type=sa.String(100),
                              existing_nullable=True)
