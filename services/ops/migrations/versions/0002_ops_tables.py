"""Ops tables: the event journal (entries, payloads, references), dead letters, SLA projections, consumer
positions, alert rules / states / history, the audit trail and the webhook tables of alert deliveries.

Revision ID: ops_0002
Revises: ops_0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from shared.migrations import create_audit_table_v1, schema
from shared.webhooks import create_webhook_tables_v1

revision = "ops_0002"
down_revision = "ops_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    s = schema()
    tz = sa.DateTime(timezone=True)
    big_int = sa.BigInteger()

    op.create_table(
        "journal_entry",
        sa.Column("id", sa.Uuid, nullable=False),
        sa.Column("entry_key", sa.String(64), nullable=False),
        sa.Column("topic", sa.String(200), nullable=False),
        sa.Column("log_partition", sa.Integer, nullable=False),
        sa.Column("log_offset", big_int, nullable=False),
        sa.Column("dead_letter", sa.Boolean, nullable=False),
        sa.Column("event_id", sa.Uuid, nullable=True),
        sa.Column("event_type", sa.String(100), nullable=True),
        sa.Column("schema_version", sa.Integer, nullable=True),
        sa.Column("occurred_at", tz, nullable=True),
        sa.Column("journaled_at", tz, nullable=False),
        sa.Column("source", sa.String(100), nullable=True),
        sa.Column("subject", sa.String(200), nullable=True),
        sa.Column("member_id", sa.String(64), nullable=True),
        sa.Column("correlation_id", sa.Uuid, nullable=True),
        sa.Column("causation_id", sa.Uuid, nullable=True),
        sa.Column("traceparent", sa.String(55), nullable=True),
        sa.Column("trace_id", sa.String(32), nullable=True),
        sa.Column("mcp_code", sa.String(50), nullable=True),
        sa.Column("replayed_from", sa.String(300), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_journal_entry"),
        sa.UniqueConstraint("entry_key", name="uq_journal_entry_entry_key"),
        schema=s,
    )
    for columns in (["subject"], ["member_id"], ["correlation_id"], ["event_id"], ["trace_id"],
                    ["event_type", "occurred_at"], ["topic", "journaled_at"], ["journaled_at"]):
        op.create_index(f"ix_journal_entry_{'_'.join(columns)}", "journal_entry", columns, schema=s)

    op.create_table(
        "journal_payload",
        sa.Column("entry_id", sa.Uuid, nullable=False),
        sa.Column("message_key", sa.LargeBinary, nullable=True),
        sa.Column("value", sa.LargeBinary, nullable=False),
        sa.Column("headers", sa.JSON, nullable=False),
        sa.PrimaryKeyConstraint("entry_id", name="pk_journal_payload"),
        schema=s,
    )
    op.create_table(
        "journal_reference",
        sa.Column("entry_id", sa.Uuid, nullable=False),
        sa.Column("name", sa.String(60), nullable=False),
        sa.Column("value", sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint("entry_id", "name", name="pk_journal_reference"),
        schema=s,
    )
    op.create_index("ix_journal_reference_value", "journal_reference", ["value"], schema=s)

    op.create_table(
        "dead_letter",
        sa.Column("id", sa.Uuid, nullable=False),
        sa.Column("entry_id", sa.Uuid, nullable=False),
        sa.Column("dlq_topic", sa.String(200), nullable=False),
        sa.Column("position", sa.String(300), nullable=False),
        sa.Column("original_topic", sa.String(200), nullable=False),
        sa.Column("original_partition", sa.Integer, nullable=True),
        sa.Column("original_offset", big_int, nullable=True),
        sa.Column("consumer_group", sa.String(100), nullable=False),
        sa.Column("error_type", sa.String(200), nullable=False),
        sa.Column("error", sa.Text, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("event_id", sa.Uuid, nullable=True),
        sa.Column("event_type", sa.String(100), nullable=True),
        sa.Column("subject", sa.String(200), nullable=True),
        sa.Column("dead_lettered_at", tz, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("replay_count", sa.Integer, nullable=False),
        sa.Column("last_replayed_at", tz, nullable=True),
        sa.Column("resolved_at", tz, nullable=True),
        sa.Column("resolved_by", sa.String(64), nullable=True),
        sa.Column("discard_reason", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_dead_letter"),
        sa.UniqueConstraint("entry_id", name="uq_dead_letter_entry_id"),
        schema=s,
    )
    op.create_index("ix_dead_letter_status_dead_lettered_at", "dead_letter", ["status", "dead_lettered_at"],
                    schema=s)
    op.create_index("ix_dead_letter_event_id", "dead_letter", ["event_id"], schema=s)

    op.create_table(
        "authorization_sla",
        sa.Column("authorization_id", sa.String(100), nullable=False),
        sa.Column("mcp_code", sa.String(50), nullable=True),
        sa.Column("referral_id", sa.String(100), nullable=True),
        sa.Column("cbo_organization_id", sa.String(64), nullable=True),
        sa.Column("urgency", sa.String(20), nullable=True),
        sa.Column("requested_at", tz, nullable=True),
        sa.Column("decision_due", tz, nullable=True),
        sa.Column("decided_at", tz, nullable=True),
        sa.Column("decision", sa.String(20), nullable=True),
        sa.Column("clock_stopped", sa.Boolean, nullable=False),
        sa.Column("period_start", sa.Date, nullable=True),
        sa.Column("period_end", sa.Date, nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("status_at", tz, nullable=False),
        sa.Column("escalations", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("authorization_id", name="pk_authorization_sla"),
        schema=s,
    )
    op.create_index("ix_authorization_sla_status_decision_due", "authorization_sla", ["status", "decision_due"],
                    schema=s)
    op.create_index("ix_authorization_sla_status_period_end", "authorization_sla", ["status", "period_end"],
                    schema=s)

    op.create_table(
        "claim_sla",
        sa.Column("claim_id", sa.String(100), nullable=False),
        sa.Column("mcp_code", sa.String(50), nullable=True),
        sa.Column("cbo_organization_id", sa.String(64), nullable=True),
        sa.Column("submitted_at", tz, nullable=True),
        sa.Column("paid_on", sa.Date, nullable=True),
        sa.Column("paid_amount", sa.Numeric(12, 2), nullable=True),
        sa.Column("denied_at", tz, nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("status_at", tz, nullable=False),
        sa.PrimaryKeyConstraint("claim_id", name="pk_claim_sla"),
        schema=s,
    )
    op.create_index("ix_claim_sla_status_submitted_at", "claim_sla", ["status", "submitted_at"], schema=s)

    op.create_table(
        "file_expectation",
        sa.Column("mcp_code", sa.String(50), nullable=False),
        sa.Column("kind", sa.String(30), nullable=False),
        sa.Column("last_received_at", tz, nullable=True),
        sa.Column("last_late_at", tz, nullable=True),
        sa.Column("expected_by", tz, nullable=True),
        sa.PrimaryKeyConstraint("mcp_code", "kind", name="pk_file_expectation"),
        schema=s,
    )
    op.create_table(
        "consumer_position",
        sa.Column("consumer_group", sa.String(100), nullable=False),
        sa.Column("topic", sa.String(200), nullable=False),
        sa.Column("committed_total", big_int, nullable=False),
        sa.Column("end_total", big_int, nullable=False),
        sa.Column("lag", big_int, nullable=False),
        sa.Column("last_progress_at", tz, nullable=False),
        sa.Column("sampled_at", tz, nullable=False),
        sa.PrimaryKeyConstraint("consumer_group", "topic", name="pk_consumer_position"),
        schema=s,
    )
    op.create_table(
        "alert_rule",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("metric", sa.String(50), nullable=False),
        sa.Column("comparator", sa.String(10), nullable=False),
        sa.Column("threshold", sa.Numeric(14, 4), nullable=False),
        sa.Column("scope", sa.String(200), nullable=True),
        sa.Column("for_minutes", sa.Integer, nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("created_at", tz, nullable=False),
        sa.Column("created_by", sa.String(64), nullable=True),
        sa.Column("disabled_at", tz, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_alert_rule"),
        schema=s,
    )
    op.create_table(
        "alert_state",
        sa.Column("rule_id", sa.String(40), nullable=False),
        sa.Column("key", sa.String(300), nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("since", tz, nullable=False),
        sa.Column("value", sa.Numeric(14, 4), nullable=True),
        sa.PrimaryKeyConstraint("rule_id", "key", name="pk_alert_state"),
        schema=s,
    )
    op.create_table(
        "alert_event",
        sa.Column("id", sa.Uuid, nullable=False),
        sa.Column("rule_id", sa.String(40), nullable=False),
        sa.Column("key", sa.String(300), nullable=False),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("value", sa.Numeric(14, 4), nullable=True),
        sa.Column("threshold", sa.Numeric(14, 4), nullable=False),
        sa.Column("occurred_at", tz, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_alert_event"),
        schema=s,
    )
    op.create_index("ix_alert_event_occurred_at", "alert_event", ["occurred_at"], schema=s)
    op.create_index("ix_alert_event_rule_id_key", "alert_event", ["rule_id", "key"], schema=s)

    create_audit_table_v1()

    create_webhook_tables_v1(s)


def downgrade() -> None:
    s = schema()
    for table in ("webhook_attempt", "webhook_delivery", "webhook_subscription", "audit_event", "alert_event",
                  "alert_state", "alert_rule", "consumer_position", "file_expectation", "claim_sla",
                  "authorization_sla", "dead_letter", "journal_reference", "journal_payload", "journal_entry"):
        op.drop_table(table, schema=s)
