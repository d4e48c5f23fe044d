"""Tables every service owns in its own schema: outbox, inbox, timers, idempotency records, leases."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    Uuid,
)


@dataclass(frozen=True)
class PlatformTables:
    """The platform tables bound to one service's MetaData."""

    outbox: Table
    inbox: Table
    timer: Table
    idempotency_record: Table
    lease: Table


def define_platform_tables(metadata: MetaData) -> PlatformTables:
    """Add the platform tables to a service's MetaData (call once per service)."""
    outbox = Table(
        "outbox",
        metadata,
        # Autoincrement sequence gives the relay a publish order that matches commit order per transaction.
        Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
        Column("event_id", Uuid, nullable=False, unique=True),
        Column("topic", String(200), nullable=False),
        Column("key", LargeBinary, nullable=True),
        Column("value", LargeBinary, nullable=False),
        Column("headers", JSON, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
    )
    inbox = Table(
        "inbox",
        metadata,
        Column("consumer_group", String(100), primary_key=True),
        Column("event_id", Uuid, primary_key=True),
        Column("event_type", String(100), nullable=False),
        Column("handled_at", DateTime(timezone=True), nullable=False),
    )
    timer = Table(
        "timer",
        metadata,
        Column("id", Uuid, primary_key=True),
        Column("kind", String(100), nullable=False),
        Column("subject", String(200), nullable=False),
        Column("due_at", DateTime(timezone=True), nullable=False),
        Column("payload", JSON, nullable=False),
        Column("status", String(20), nullable=False),  # pending | fired | cancelled | failed
        Column("attempts", Integer, nullable=False, default=0),
        Column("last_error", Text, nullable=True),
        Column("fired_at", DateTime(timezone=True), nullable=True),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Index(None, "status", "due_at"),
        Index(None, "kind", "subject"),
    )
    idempotency_record = Table(
        "idempotency_record",
        metadata,
        Column("organization_id", String(64), primary_key=True),
        Column("key", String(255), primary_key=True),
        Column("request_hash", String(64), nullable=False),
        Column("status_code", Integer, nullable=False),
        Column("response_body", LargeBinary, nullable=False),
        Column("response_headers", JSON, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
    )
    lease = Table(
        "lease",
        metadata,
        Column("name", String(100), primary_key=True),
        Column("holder", String(100), nullable=False),
        Column("expires_at", DateTime(timezone=True), nullable=False),
    )
    return PlatformTables(outbox=outbox, inbox=inbox, timer=timer, idempotency_record=idempotency_record,
                          lease=lease)
