"""Lineage: the correlation id of the authorization an encounter bills against, kept on the authorization
projection and on the claim, so encounter.recorded and claim.* continue the referral's lineage (one correlation
id from REST call to CBO payout).

Revision ID: claims_0004
Revises: claims_0003
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from shared.migrations import schema

revision = "claims_0004"
down_revision = "claims_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    s = schema()
    # Nullable: rows written before this revision (and CHW claims' coverage-less history) have no known lineage.
    with op.batch_alter_table("authorization_coverage", schema=s) as coverage:
        coverage.add_column(sa.Column("correlation_id", sa.Uuid, nullable=True))
    with op.batch_alter_table("claim", schema=s) as claim:
        claim.add_column(sa.Column("correlation_id", sa.Uuid, nullable=True))


def downgrade() -> None:
    s = schema()
    with op.batch_alter_table("claim", schema=s) as claim:
        claim.drop_column("correlation_id")
    with op.batch_alter_table("authorization_coverage", schema=s) as coverage:
        coverage.drop_column("correlation_id")
