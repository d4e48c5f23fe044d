"""A decision before its request: the authorization projection keeps a decision (or a suspension, an end) that
arrives before the request it answers (a replayed dead letter), so its member and request columns may be empty
until the request fills them (docs/decisions/0125-projections-converge-whatever-the-order.md).

Revision ID: sftp_gateway_0003
Revises: sftp_gateway_0002
Create Date: 2026-11-24
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

from shared.migrations import schema

revision = "sftp_gateway_0003"
down_revision = "sftp_gateway_0002"
branch_labels = None
depends_on = None

_FILLED_BY_THE_REQUEST: tuple[tuple[str, Any], ...] = (
    ("member_id", sa.String(40)), ("cin", sa.String(9)), ("last_name", sa.String(100)),
    ("first_name", sa.String(100)), ("birth_date", sa.Date()), ("program", sa.String(10)),
    ("requested_at", sa.DateTime(timezone=True)),
)


def upgrade() -> None:
    with op.batch_alter_table("authorization_record", schema=schema()) as table:
        for name, kind in _FILLED_BY_THE_REQUEST:
            table.alter_column(name, existing_type=kind, nullable=True)


def downgrade() -> None:
    s = schema()
    # Rows kept for a request that never came cannot satisfy the old constraint: they go with it.
    table_name = f'"{s}".authorization_record' if s else "authorization_record"
    op.execute(sa.text(f"DELETE FROM {table_name} WHERE cin IS NULL"))  # noqa: S608 - our own schema name
    with op.batch_alter_table("authorization_record", schema=s) as table:
        for name, kind in _FILLED_BY_THE_REQUEST:
            table.alter_column(name, existing_type=kind, nullable=False)
