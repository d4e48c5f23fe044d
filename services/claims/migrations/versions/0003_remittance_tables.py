"""Remittances: 835 files and payments (TRN02 trace, BPR amount), claim and line payment postings with CAS
group and CARC/RARC, provider-level (PLB) adjustments, the exception queue, the denials work queue, CBO payouts;
claim settlement and receipt date.

Revision ID: claims_0003
Revises: claims_0002
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from shared.migrations import schema

revision = "claims_0003"
down_revision = "claims_0002"
branch_labels = None
depends_on = None

TABLES = ("payout", "denial", "remittance_exception", "provider_adjustment", "line_payment", "claim_payment",
          "remittance", "remittance_file")


def upgrade() -> None:
    s = schema()
    tz = sa.DateTime(timezone=True)
    money = sa.Numeric(12, 2)
    big_id = sa.BigInteger().with_variant(sa.Integer, "sqlite")

    with op.batch_alter_table("claim", schema=s) as claim:
        claim.add_column(sa.Column("settlement", sa.String(20), nullable=True))
        claim.add_column(sa.Column("received_on", sa.Date, nullable=True))

    op.create_table(
        "remittance_file",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("mcp_code", sa.String(50), nullable=False),
        sa.Column("source", sa.String(10), nullable=False),
        sa.Column("gateway_file_id", sa.String(64), nullable=True),
        sa.Column("file_sha256", sa.String(64), nullable=False),
        sa.Column("file_uri", sa.String(200), nullable=True),
        sa.Column("size", big_id, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("interchange_control_number", sa.String(9), nullable=False),
        sa.Column("transaction_sets", sa.Integer, nullable=False),
        sa.Column("claim_payments", sa.Integer, nullable=False),
        sa.Column("duplicate_of", sa.String(40), nullable=True),
        sa.Column("detail", sa.JSON, nullable=False),
        sa.Column("received_at", tz, nullable=False),
        sa.Column("processed_at", tz, nullable=False),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_remittance_file"),
        schema=s,
    )
    op.create_index("ix_remittance_file_mcp_code_received_at", "remittance_file", ["mcp_code", "received_at"], schema=s)
    op.create_index("ix_remittance_file_file_sha256", "remittance_file", ["file_sha256"], schema=s)

    op.create_table(
        "remittance",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("file_id", sa.String(40), nullable=False),
        sa.Column("mcp_code", sa.String(50), nullable=False),
        sa.Column("control_number", sa.String(9), nullable=False),
        sa.Column("trace_number", sa.String(50), nullable=False),
        sa.Column("payer_id", sa.String(50), nullable=False),
        sa.Column("payment_amount", money, nullable=False),
        sa.Column("payment_method", sa.String(3), nullable=False),
        sa.Column("payment_date", sa.Date, nullable=False),
        sa.Column("key_digest", sa.String(64), nullable=False),
        sa.Column("claims_posted", sa.Integer, nullable=False),
        sa.Column("exceptions", sa.Integer, nullable=False),
        sa.Column("posted_amount", money, nullable=False),
        sa.Column("exception_amount", money, nullable=False),
        sa.Column("provider_adjustment_amount", money, nullable=False),
        sa.Column("warnings", sa.JSON, nullable=False),
        sa.Column("posted_at", tz, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_remittance"),
        sa.UniqueConstraint("key_digest", name="uq_remittance_key_digest"),
        schema=s,
    )
    op.create_index("ix_remittance_trace_number", "remittance", ["trace_number"], schema=s)
    op.create_index("ix_remittance_file_id", "remittance", ["file_id"], schema=s)
    op.create_index("ix_remittance_mcp_code_payment_date", "remittance", ["mcp_code", "payment_date"], schema=s)

    op.create_table(
        "claim_payment",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("remittance_id", sa.String(40), nullable=False),
        sa.Column("claim_id", sa.String(20), nullable=False),
        sa.Column("mcp_code", sa.String(50), nullable=False),
        sa.Column("cbo_organization_id", sa.String(64), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(12), nullable=False),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column("status_code", sa.String(2), nullable=False),
        sa.Column("charge", money, nullable=False),
        sa.Column("paid", money, nullable=False),
        sa.Column("adjustment_total", money, nullable=False),
        sa.Column("patient_responsibility", money, nullable=False),
        sa.Column("payer_claim_number", sa.String(50), nullable=False),
        sa.Column("adjustments", sa.JSON, nullable=False),
        sa.Column("remarks", sa.JSON, nullable=False),
        sa.Column("denial", sa.JSON, nullable=True),
        sa.Column("reverses_payment_id", sa.String(40), nullable=True),
        sa.Column("reversed_by", sa.String(40), nullable=True),
        sa.Column("line_ids", sa.JSON, nullable=False),
        sa.Column("paid_line_ids", sa.JSON, nullable=False),
        sa.Column("received_on", sa.Date, nullable=True),
        sa.Column("paid_on", sa.Date, nullable=False),
        sa.Column("trace_number", sa.String(50), nullable=False),
        sa.Column("payout_id", sa.String(40), nullable=True),
        sa.Column("posted_at", tz, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_claim_payment"),
        schema=s,
    )
    op.create_index("ix_claim_payment_remittance_id", "claim_payment", ["remittance_id"], schema=s)
    op.create_index("ix_claim_payment_payer_claim_number", "claim_payment", ["payer_claim_number"], schema=s)
    op.create_index("ix_claim_payment_claim_id", "claim_payment", ["claim_id"], schema=s)
    op.create_index("ix_claim_payment_cbo_organization_id_paid_on", "claim_payment", 
                    ["cbo_organization_id", "paid_on"], schema=s)

    op.create_table(
        "line_payment",
        sa.Column("id", big_id, nullable=False, autoincrement=True),
        sa.Column("claim_payment_id", sa.String(40), nullable=False),
        sa.Column("claim_id", sa.String(20), nullable=False),
        sa.Column("line_id", sa.String(50), nullable=True),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("procedure", sa.String(60), nullable=False),
        sa.Column("charge", money, nullable=False),
        sa.Column("paid", money, nullable=False),
        sa.Column("allowed", money, nullable=True),
        sa.Column("units_paid", sa.Numeric(9, 2), nullable=True),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column("adjustments", sa.JSON, nullable=False),
        sa.Column("remarks", sa.JSON, nullable=False),
        sa.Column("denial", sa.JSON, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_line_payment"),
        schema=s,
    )
    op.create_index("ix_line_payment_claim_payment_id", "line_payment", ["claim_payment_id"], schema=s)

    op.create_table(
        "provider_adjustment",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("remittance_id", sa.String(40), nullable=False),
        sa.Column("mcp_code", sa.String(50), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("provider_id", sa.String(50), nullable=False),
        sa.Column("fiscal_period_date", sa.Date, nullable=False),
        sa.Column("reason", sa.String(2), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("reference", sa.String(50), nullable=False),
        sa.Column("amount", money, nullable=False),
        sa.Column("claim_id", sa.String(20), nullable=True),
        sa.Column("cbo_organization_id", sa.String(64), nullable=True),
        sa.Column("paid_on", sa.Date, nullable=False),
        sa.Column("trace_number", sa.String(50), nullable=False),
        sa.Column("payout_id", sa.String(40), nullable=True),
        sa.Column("posted_at", tz, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_provider_adjustment"),
        schema=s,
    )
    op.create_index("ix_provider_adjustment_claim_id", "provider_adjustment", ["claim_id"], schema=s)
    op.create_index("ix_provider_adjustment_remittance_id", "provider_adjustment", ["remittance_id"], schema=s)
    op.create_index("ix_provider_adjustment_cbo_organization_id_paid_on", "provider_adjustment", 
                    ["cbo_organization_id", "paid_on"], schema=s)

    op.create_table(
        "remittance_exception",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("remittance_id", sa.String(40), nullable=False),
        sa.Column("mcp_code", sa.String(50), nullable=False),
        sa.Column("reason", sa.String(30), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("amount", money, nullable=False),
        sa.Column("patient_control_number", sa.String(50), nullable=False),
        sa.Column("payer_claim_number", sa.String(50), nullable=False),
        sa.Column("status_code", sa.String(2), nullable=False),
        sa.Column("charge", money, nullable=True),
        sa.Column("patient", sa.JSON, nullable=True),
        sa.Column("service_from", sa.Date, nullable=True),
        sa.Column("service_to", sa.Date, nullable=True),
        sa.Column("procedures", sa.JSON, nullable=False),
        sa.Column("claim_id", sa.String(20), nullable=True),
        sa.Column("provider_adjustment_id", sa.String(40), nullable=True),
        sa.Column("detail", sa.JSON, nullable=False),
        sa.Column("trace_number", sa.String(50), nullable=False),
        sa.Column("payment_date", sa.Date, nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("resolution", sa.String(30), nullable=True),
        sa.Column("resolution_note", sa.String(500), nullable=True),
        sa.Column("resolved_claim_id", sa.String(20), nullable=True),
        sa.Column("resolved_by", sa.String(64), nullable=True),
        sa.Column("resolved_at", tz, nullable=True),
        sa.Column("created_at", tz, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_remittance_exception"),
        schema=s,
    )
    op.create_index("ix_remittance_exception_remittance_id", "remittance_exception", ["remittance_id"], schema=s)
    op.create_index("ix_remittance_exception_status_mcp_code", "remittance_exception", ["status", "mcp_code"], schema=s)

    op.create_table(
        "denial",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("claim_id", sa.String(20), nullable=False),
        sa.Column("claim_payment_id", sa.String(40), nullable=False),
        sa.Column("remittance_id", sa.String(40), nullable=False),
        sa.Column("mcp_code", sa.String(50), nullable=False),
        sa.Column("cbo_organization_id", sa.String(64), nullable=False),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column("category", sa.String(30), nullable=False),
        sa.Column("next_action", sa.String(500), nullable=False),
        sa.Column("deciding_code", sa.String(20), nullable=False),
        sa.Column("codes", sa.JSON, nullable=False),
        sa.Column("unknown_codes", sa.JSON, nullable=False),
        sa.Column("denied_amount", money, nullable=False),
        sa.Column("payer_claim_number", sa.String(50), nullable=False),
        sa.Column("paid_on", sa.Date, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("resolution", sa.String(30), nullable=True),
        sa.Column("resolution_note", sa.String(500), nullable=True),
        sa.Column("follow_up_claim_id", sa.String(20), nullable=True),
        sa.Column("resolved_by", sa.String(64), nullable=True),
        sa.Column("resolved_at", tz, nullable=True),
        sa.Column("created_at", tz, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_denial"),
        schema=s,
    )
    op.create_index("ix_denial_mcp_code_status", "denial", ["mcp_code", "status"], schema=s)
    op.create_index("ix_denial_created_at_id", "denial", ["created_at", "id"], schema=s)
    op.create_index("ix_denial_cbo_organization_id_status", "denial", ["cbo_organization_id", "status"], schema=s)
    op.create_index("ix_denial_claim_id", "denial", ["claim_id"], schema=s)

    op.create_table(
        "payout",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("cbo_organization_id", sa.String(64), nullable=False),
        sa.Column("period_start", sa.Date, nullable=False),
        sa.Column("period_end", sa.Date, nullable=False),
        sa.Column("balance_forward", money, nullable=False),
        sa.Column("collected", money, nullable=False),
        sa.Column("hub_fee", money, nullable=False),
        sa.Column("recoupments", money, nullable=False),
        sa.Column("payable", money, nullable=False),
        sa.Column("payout_amount", money, nullable=False),
        sa.Column("carry_forward", money, nullable=False),
        sa.Column("statement", sa.JSON, nullable=False),
        sa.Column("generated_by", sa.String(100), nullable=False),
        sa.Column("generated_at", tz, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_payout"),
        sa.UniqueConstraint("cbo_organization_id", "period_start", name="uq_payout_cbo_organization_id_period_start"),
        schema=s,
    )
    op.create_index("ix_payout_cbo_organization_id_period_end", "payout", 
                    ["cbo_organization_id", "period_end"], schema=s)


def downgrade() -> None:
    s = schema()
    for table in TABLES:
        op.drop_table(table, schema=s)
    with op.batch_alter_table("claim", schema=s) as claim:
        claim.drop_column("received_on")
        claim.drop_column("settlement")
