"""Claims tables: encounters, claims and lines, claim history, batches, control numbers, acknowledgment files,
authorization and eligibility projections, audit trail.

Revision ID: claims_0002
Revises: claims_0001
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from shared.migrations import create_audit_table_v1, schema

revision = "claims_0002"
down_revision = "claims_0001"
branch_labels = None
depends_on = None

TABLES = ("audit_event", "eligibility_fact", "authorization_coverage", "acknowledgment_file", "control_number",
          "claim_batch", "claim_history", "claim_line", "claim", "encounter")


def upgrade() -> None:
    s = schema()
    tz = sa.DateTime(timezone=True)
    money = sa.Numeric(12, 2)
    big_id = sa.BigInteger().with_variant(sa.Integer, "sqlite")

    op.create_table(
        "encounter",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("external_id", sa.String(100), nullable=True),
        sa.Column("cbo_organization_id", sa.String(64), nullable=False),
        sa.Column("mcp_code", sa.String(50), nullable=True),
        sa.Column("member_id", sa.String(40), nullable=False),
        sa.Column("cin", sa.String(9), nullable=False),
        sa.Column("member", sa.JSON, nullable=False),
        sa.Column("program", sa.String(10), nullable=False),
        sa.Column("cs_code", sa.String(60), nullable=True),
        sa.Column("service_code", sa.String(60), nullable=True),
        sa.Column("hcpcs", sa.String(5), nullable=False),
        sa.Column("modifiers", sa.JSON, nullable=False),
        sa.Column("units", sa.Numeric(9, 2), nullable=False),
        sa.Column("service_from", sa.Date, nullable=False),
        sa.Column("service_to", sa.Date, nullable=False),
        sa.Column("place_of_service", sa.String(2), nullable=False),
        sa.Column("diagnosis_codes", sa.JSON, nullable=False),
        sa.Column("rendering_npi", sa.String(10), nullable=False),
        sa.Column("rendering_last_name", sa.String(60), nullable=True),
        sa.Column("rendering_first_name", sa.String(35), nullable=True),
        sa.Column("outreach_attempt", sa.Boolean, nullable=False),
        sa.Column("outreach_outcome", sa.String(20), nullable=True),
        sa.Column("prerequisites", sa.JSON, nullable=False),
        sa.Column("care_plan_on_file", sa.Boolean, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("reasons", sa.JSON, nullable=False),
        sa.Column("flags", sa.JSON, nullable=False),
        sa.Column("authorization_id", sa.String(64), nullable=True),
        sa.Column("prior_authorization_number", sa.String(50), nullable=True),
        sa.Column("expected_amount", money, nullable=True),
        sa.Column("pricing", sa.JSON, nullable=False),
        sa.Column("claim_id", sa.String(20), nullable=True),
        sa.Column("received_at", tz, nullable=False),
        sa.Column("submitted_by", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_encounter"),
        sa.UniqueConstraint("cbo_organization_id", "external_id", name="uq_encounter_cbo_organization_id_external_id"),
        schema=s,
    )
    op.create_index("ix_encounter_member_id_service_from", "encounter", ["member_id", "service_from"], schema=s)
    op.create_index("ix_encounter_cbo_organization_id_received_at", "encounter",
                    ["cbo_organization_id", "received_at"], schema=s)
    op.create_index("ix_encounter_claim_id", "encounter", ["claim_id"], schema=s)

    op.create_table(
        "claim",
        sa.Column("id", sa.String(20), nullable=False),
        sa.Column("mcp_code", sa.String(50), nullable=False),
        sa.Column("cbo_organization_id", sa.String(64), nullable=False),
        sa.Column("member_id", sa.String(40), nullable=False),
        sa.Column("cin", sa.String(9), nullable=False),
        sa.Column("member", sa.JSON, nullable=False),
        sa.Column("program", sa.String(10), nullable=False),
        sa.Column("service_code", sa.String(60), nullable=False),
        sa.Column("authorization_id", sa.String(64), nullable=True),
        sa.Column("prior_authorization_number", sa.String(50), nullable=True),
        sa.Column("rendering_npi", sa.String(10), nullable=False),
        sa.Column("rendering_last_name", sa.String(60), nullable=True),
        sa.Column("rendering_first_name", sa.String(35), nullable=True),
        sa.Column("billing_provider", sa.String(10), nullable=False),
        sa.Column("billing_npi", sa.String(10), nullable=False),
        sa.Column("claim_format", sa.String(10), nullable=False),
        sa.Column("place_of_service", sa.String(2), nullable=False),
        sa.Column("diagnosis_codes", sa.JSON, nullable=False),
        sa.Column("service_month", sa.Date, nullable=False),
        sa.Column("service_from", sa.Date, nullable=False),
        sa.Column("service_to", sa.Date, nullable=False),
        sa.Column("frequency_code", sa.String(1), nullable=False),
        sa.Column("replaces_claim_id", sa.String(20), nullable=True),
        sa.Column("payer_claim_number", sa.String(50), nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("expected_amount", money, nullable=False),
        sa.Column("paid_amount", money, nullable=True),
        sa.Column("adjustment_amount", money, nullable=True),
        sa.Column("paid_on", sa.Date, nullable=True),
        sa.Column("rejection_reasons", sa.JSON, nullable=False),
        sa.Column("batch_id", sa.String(20), nullable=True),
        sa.Column("transaction_set", sa.String(9), nullable=True),
        sa.Column("created_at", tz, nullable=False),
        sa.Column("updated_at", tz, nullable=False),
        sa.Column("submitted_at", tz, nullable=True),
        sa.Column("acknowledged_at", tz, nullable=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_claim"),
        schema=s,
    )
    op.create_index("ix_claim_mcp_code_status", "claim", ["mcp_code", "status"], schema=s)
    op.create_index("ix_claim_cbo_organization_id_status", "claim", ["cbo_organization_id", "status"], schema=s)
    op.create_index("ix_claim_member_id", "claim", ["member_id"], schema=s)
    op.create_index("ix_claim_batch_id", "claim", ["batch_id"], schema=s)
    op.create_index("ix_claim_created_at_id", "claim", ["created_at", "id"], schema=s)

    op.create_table(
        "claim_line",
        sa.Column("id", big_id, nullable=False, autoincrement=True),
        sa.Column("claim_id", sa.String(20), nullable=False),
        sa.Column("line_number", sa.Integer, nullable=False),
        sa.Column("encounter_id", sa.String(40), nullable=False),
        sa.Column("hcpcs", sa.String(5), nullable=False),
        sa.Column("modifiers", sa.JSON, nullable=False),
        sa.Column("units", sa.Numeric(9, 2), nullable=False),
        sa.Column("charge", money, nullable=False),
        sa.Column("service_from", sa.Date, nullable=False),
        sa.Column("service_to", sa.Date, nullable=False),
        sa.Column("place_of_service", sa.String(2), nullable=False),
        sa.Column("diagnosis_pointers", sa.JSON, nullable=False),
        sa.Column("paid_amount", money, nullable=True),
        sa.Column("adjustment_amount", money, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_claim_line"),
        sa.UniqueConstraint("claim_id", "line_number", name="uq_claim_line_claim_id_line_number"),
        schema=s,
    )
    op.create_index("ix_claim_line_encounter_id", "claim_line", ["encounter_id"], schema=s)

    op.create_table(
        "claim_history",
        sa.Column("id", sa.Uuid, nullable=False),
        sa.Column("claim_id", sa.String(20), nullable=False),
        sa.Column("occurred_at", tz, nullable=False),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("actor_key_id", sa.String(64), nullable=True),
        sa.Column("action", sa.String(50), nullable=False),
        sa.Column("from_status", sa.String(20), nullable=True),
        sa.Column("to_status", sa.String(20), nullable=True),
        sa.Column("detail", sa.JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_claim_history"),
        schema=s,
    )
    op.create_index("ix_claim_history_claim_id_occurred_at", "claim_history", ["claim_id", "occurred_at"],
                    schema=s)

    op.create_table(
        "claim_batch",
        sa.Column("id", sa.String(20), nullable=False),
        sa.Column("mcp_code", sa.String(50), nullable=False),
        sa.Column("file_kind", sa.String(10), nullable=False),
        sa.Column("interchange_control_number", sa.Integer, nullable=False),
        sa.Column("group_control_number", sa.Integer, nullable=False),
        sa.Column("transaction_sets", sa.Integer, nullable=False),
        sa.Column("claims", sa.Integer, nullable=False),
        sa.Column("total_amount", money, nullable=False),
        sa.Column("file_uri", sa.String(200), nullable=False),
        sa.Column("file_sha256", sa.String(64), nullable=False),
        sa.Column("file_size", big_id, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("acknowledgment_code", sa.String(2), nullable=True),
        sa.Column("trigger", sa.String(20), nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("created_at", tz, nullable=False),
        sa.Column("delivered_at", tz, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_claim_batch"),
        sa.UniqueConstraint("mcp_code", "interchange_control_number",
                            name="uq_claim_batch_mcp_code_interchange_control_number"),
        sa.UniqueConstraint("mcp_code", "group_control_number", name="uq_claim_batch_mcp_code_group_control_number"),
        schema=s,
    )
    op.create_index("ix_claim_batch_mcp_code_created_at", "claim_batch", ["mcp_code", "created_at"], schema=s)

    op.create_table(
        "control_number",
        sa.Column("mcp_code", sa.String(50), nullable=False),
        sa.Column("interchange", sa.Integer, nullable=False),
        sa.Column("group_number", sa.Integer, nullable=False),
        sa.Column("updated_at", tz, nullable=False),
        sa.PrimaryKeyConstraint("mcp_code", name="pk_control_number"),
        schema=s,
    )

    op.create_table(
        "acknowledgment_file",
        sa.Column("id", sa.Uuid, nullable=False),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("file_id", sa.String(64), nullable=False),
        sa.Column("mcp_code", sa.String(50), nullable=False),
        sa.Column("file_sha256", sa.String(64), nullable=False),
        sa.Column("received_at", tz, nullable=False),
        sa.Column("processed_at", tz, nullable=False),
        sa.Column("summary", sa.JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_acknowledgment_file"),
        sa.UniqueConstraint("kind", "file_sha256", name="uq_acknowledgment_file_kind_file_sha256"),
        schema=s,
    )

    op.create_table(
        "authorization_coverage",
        sa.Column("authorization_id", sa.String(64), nullable=False),
        sa.Column("member_id", sa.String(40), nullable=True),
        sa.Column("mcp_code", sa.String(50), nullable=False),
        sa.Column("cbo_organization_id", sa.String(64), nullable=True),
        sa.Column("program", sa.String(10), nullable=False),
        sa.Column("cs_code", sa.String(60), nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("period_start", sa.Date, nullable=True),
        sa.Column("period_end", sa.Date, nullable=True),
        sa.Column("ends_before", sa.Date, nullable=True),
        sa.Column("suspensions", sa.JSON, nullable=False),
        sa.Column("presumptive", sa.Boolean, nullable=False),
        sa.Column("mcp_authorization_number", sa.String(50), nullable=True),
        sa.Column("updated_at", tz, nullable=False),
        sa.PrimaryKeyConstraint("authorization_id", name="pk_authorization_coverage"),
        schema=s,
    )
    op.create_index("ix_authorization_coverage_member_id", "authorization_coverage", ["member_id"], schema=s)

    op.create_table(
        "eligibility_fact",
        sa.Column("id", big_id, nullable=False, autoincrement=True),
        sa.Column("event_id", sa.Uuid, nullable=False),
        sa.Column("member_id", sa.String(40), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("mcp_code", sa.String(50), nullable=True),
        sa.Column("program", sa.String(10), nullable=True),
        sa.Column("exclusion", sa.String(100), nullable=True),
        sa.Column("effective_from", sa.Date, nullable=False),
        sa.Column("effective_to", sa.Date, nullable=True),
        sa.Column("recorded_at", tz, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_eligibility_fact"),
        sa.UniqueConstraint("event_id", name="uq_eligibility_fact_event_id"),
        schema=s,
    )
    op.create_index("ix_eligibility_fact_member_id", "eligibility_fact", ["member_id"], schema=s)

    create_audit_table_v1()


def downgrade() -> None:
    s = schema()
    for table in TABLES:
        op.drop_table(table, schema=s)
