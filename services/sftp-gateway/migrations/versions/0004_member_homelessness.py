"""Member homelessness: the newest homelessness flag an MCP sent for a member in its MIF or referral files, so the
RTF reports it instead of leaving the column empty (docs/decisions/0082-outbound-and-return-files.md).

Revision ID: sftp_gateway_0004
Revises: sftp_gateway_0003
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from shared.migrations import schema

revision = "sftp_gateway_0004"
down_revision = "sftp_gateway_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "member_homelessness",
        sa.Column("mcp_code", sa.String(50), nullable=False),
        sa.Column("cin", sa.String(9), nullable=False),
        sa.Column("homeless", sa.Boolean, nullable=False),
        sa.Column("reporting_period", sa.String(7), nullable=False),
        sa.Column("observed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("file_id", sa.String(40), nullable=False),
        sa.PrimaryKeyConstraint("mcp_code", "cin", name="pk_member_homelessness"),
        schema=schema(),
    )


def downgrade() -> None:
    op.drop_table("member_homelessness", schema=schema())
