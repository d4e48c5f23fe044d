"""Tables of the ops service, all in its own schema `ops`.

The journal keeps envelope metadata (ids, types, times, codes) in `journal_entry`, which is indexed for
timelines, and the message itself (key, value, headers: these may hold PHI) in `journal_payload`, which is
never indexed beyond its primary key. Like the platform and webhook tables, no foreign keys: rows are written
only by this service, and the schema must copy and migrate alike on SQLite and PostgreSQL.
Projections of authorization, claim and file events feed the SLA boards.
"""

from __future__ import annotations

from sqlalchemy import JSON as JSONType
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    Numeric,
    String,
    Table,
    Text,
    Uuid,
)

from shared.auth import define_audit_table
from shared.db import declarative_base
from shared.platform_tables import define_platform_tables
from shared.webhooks import define_webhook_tables

SCHEMA = "ops"

Base = declarative_base(SCHEMA)
metadata = Base.metadata
platform = define_platform_tables(metadata)
audit_event = define_audit_table(metadata)
webhooks = define_webhook_tables(metadata)

TZ = DateTime(timezone=True)

journal_entry = Table(
    "journal_entry",
    metadata,
    Column("id", Uuid, primary_key=True),  # UUIDv7: time-ordered, the cursor of journal pages
    # SHA-256 of what makes a message unique (topic + event id, or a dead letter's origin): idempotency.
    Column("entry_key", String(64), nullable=False, unique=True),
    Column("topic", String(200), nullable=False),
    Column("log_partition", Integer, nullable=False),
    Column("log_offset", BigInteger, nullable=False),
    Column("dead_letter", Boolean, nullable=False),
    Column("event_id", Uuid, nullable=True),
    Column("event_type", String(100), nullable=True),
    Column("schema_version", Integer, nullable=True),
    Column("occurred_at", TZ, nullable=True),
    Column("journaled_at", TZ, nullable=False),
    Column("source", String(100), nullable=True),
    Column("subject", String(200), nullable=True),
    Column("member_id", String(64), nullable=True),
    Column("correlation_id", Uuid, nullable=True),
    Column("causation_id", Uuid, nullable=True),
    Column("traceparent", String(55), nullable=True),
    Column("trace_id", String(32), nullable=True),
    Column("mcp_code", String(50), nullable=True),
    Column("replayed_from", String(300), nullable=True),
    Index(None, "subject"),
    Index(None, "member_id"),
    Index(None, "correlation_id"),
    Index(None, "event_id"),
    Index(None, "trace_id"),
    Index(None, "event_type", "occurred_at"),
    Index(None, "topic", "journaled_at"),
    Index(None, "journaled_at"),
)

# The message as consumed. Deliberately without secondary indexes: it may hold PHI.
journal_payload = Table(
    "journal_payload",
    metadata,
    Column("entry_id", Uuid, primary_key=True),
    Column("message_key", LargeBinary, nullable=True),
    Column("value", LargeBinary, nullable=False),
    Column("headers", JSONType, nullable=False),
)

# Ids named in an event's data (referral_id, claim_id, ...): how a timeline finds events of other aggregates.
journal_reference = Table(
    "journal_reference",
    metadata,
    Column("entry_id", Uuid, primary_key=True),
    Column("name", String(60), primary_key=True),
    Column("value", String(200), nullable=False),
    Index(None, "value"),
)

dead_letter = Table(
    "dead_letter",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("entry_id", Uuid, nullable=False, unique=True),
    Column("dlq_topic", String(200), nullable=False),
    Column("position", String(300), nullable=False),  # <dlq topic>/<partition>/<offset>, as replays cite it
    Column("original_topic", String(200), nullable=False),
    Column("original_partition", Integer, nullable=True),
    Column("original_offset", BigInteger, nullable=True),
    Column("consumer_group", String(100), nullable=False),
    Column("error_type", String(200), nullable=False),
    Column("error", Text, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("event_id", Uuid, nullable=True),
    Column("event_type", String(100), nullable=True),
    Column("subject", String(200), nullable=True),
    Column("dead_lettered_at", TZ, nullable=False),
    Column("status", String(20), nullable=False),  # pending | replayed | discarded
    Column("replay_count", Integer, nullable=False),
    Column("last_replayed_at", TZ, nullable=True),
    Column("resolved_at", TZ, nullable=True),
    Column("resolved_by", String(64), nullable=True),  # API key id
    Column("discard_reason", Text, nullable=True),
    Index(None, "status", "dead_lettered_at"),
    Index(None, "event_id"),
)

authorization_sla = Table(
    "authorization_sla",
    metadata,
    Column("authorization_id", String(100), primary_key=True),
    Column("mcp_code", String(50), nullable=True),
    Column("referral_id", String(100), nullable=True),
    Column("cbo_organization_id", String(64), nullable=True),
    Column("urgency", String(20), nullable=True),
    Column("requested_at", TZ, nullable=True),
    Column("decision_due", TZ, nullable=True),
    Column("decided_at", TZ, nullable=True),
    Column("decision", String(20), nullable=True),
    Column("clock_stopped", Boolean, nullable=False),
    Column("period_start", Date, nullable=True),
    Column("period_end", Date, nullable=True),
    Column("status", String(20), nullable=False),
    Column("status_at", TZ, nullable=False),
    Column("escalations", Integer, nullable=False),
    Index(None, "status", "decision_due"),
    Index(None, "status", "period_end"),
)

claim_sla = Table(
    "claim_sla",
    metadata,
    Column("claim_id", String(100), primary_key=True),
    Column("mcp_code", String(50), nullable=True),
    Column("cbo_organization_id", String(64), nullable=True),
    Column("submitted_at", TZ, nullable=True),
    Column("paid_on", Date, nullable=True),
    Column("paid_amount", Numeric(12, 2), nullable=True),
    Column("denied_at", TZ, nullable=True),
    Column("status", String(20), nullable=False),
    Column("status_at", TZ, nullable=False),
    Index(None, "status", "submitted_at"),
)

file_expectation = Table(
    "file_expectation",
    metadata,
    Column("mcp_code", String(50), primary_key=True),
    Column("kind", String(30), primary_key=True),
    Column("last_received_at", TZ, nullable=True),
    Column("last_late_at", TZ, nullable=True),
    Column("expected_by", TZ, nullable=True),
)

consumer_position = Table(
    "consumer_position",
    metadata,
    Column("consumer_group", String(100), primary_key=True),
    Column("topic", String(200), primary_key=True),
    Column("committed_total", BigInteger, nullable=False),
    Column("end_total", BigInteger, nullable=False),
    Column("lag", BigInteger, nullable=False),
    Column("last_progress_at", TZ, nullable=False),
    Column("sampled_at", TZ, nullable=False),
)

alert_rule = Table(
    "alert_rule",
    metadata,
    Column("id", String(40), primary_key=True),  # alr_<uuid7 hex>
    Column("name", String(100), nullable=False),
    Column("metric", String(50), nullable=False),
    Column("comparator", String(10), nullable=False),
    Column("threshold", Numeric(14, 4), nullable=False),
    Column("scope", String(200), nullable=True),  # only this MCP code / group / service; None: every key
    Column("for_minutes", Integer, nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("created_at", TZ, nullable=False),
    Column("created_by", String(64), nullable=True),
    Column("disabled_at", TZ, nullable=True),
)

alert_state = Table(
    "alert_state",
    metadata,
    Column("rule_id", String(40), primary_key=True),
    Column("key", String(300), primary_key=True),
    Column("status", String(10), nullable=False),  # pending | firing
    Column("since", TZ, nullable=False),
    Column("value", Numeric(14, 4), nullable=True),
)

alert_event = Table(
    "alert_event",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("rule_id", String(40), nullable=False),
    Column("key", String(300), nullable=False),
    Column("kind", String(10), nullable=False),  # firing | resolved
    Column("value", Numeric(14, 4), nullable=True),
    Column("threshold", Numeric(14, 4), nullable=False),
    Column("occurred_at", TZ, nullable=False),
    Index(None, "occurred_at"),
    Index(None, "rule_id", "key"),
)
