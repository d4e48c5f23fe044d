"""Platform tables of the referrals service: outbox, inbox, timer, idempotency_record, lease.

Revision ID: referrals_0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

from shared.migrations import create_platform_tables_v1

revision = "referrals_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_platform_tables_v1()


def downgrade() -> None:
    raise NotImplementedError("the platform tables are never dropped by a migration")
