"""Alembic per service, run programmatically on the service's own connection.

Each service keeps `migrations/` beside its package; its env.py calls `run_env()`. Migration scripts read the
target schema from `schema()` (None on SQLite, where every service has its own file), so one script serves
PostgreSQL and SQLite. The platform tables' first version is frozen here as `create_platform_tables_v1`.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command, context, op
from alembic.config import Config
from sqlalchemy.engine import Connection


def upgrade_to_head(connection: Connection, script_location: Path, schema: str) -> None:
    """Migrate one service's schema to head on an open (sync) connection; creates the schema if needed."""
    sqlite = connection.dialect.name == "sqlite"
    if not sqlite:
        connection.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    config = Config()
    config.set_main_option("script_location", str(script_location))
    config.attributes["connection"] = connection
    config.attributes["schema"] = None if sqlite else schema
    command.upgrade(config, "head")


def current_revision(connection: Connection, schema: str) -> str | None:
    """The revision a service's schema is at, or None before the first migration."""
    from alembic.runtime.migration import MigrationContext

    sqlite = connection.dialect.name == "sqlite"
    ctx = MigrationContext.configure(connection, opts={"version_table_schema": None if sqlite else schema})
    return ctx.get_current_revision()


def head_revision(script_location: Path) -> str | None:
    """The newest revision in a service's migrations folder."""
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(script_location))
    return ScriptDirectory.from_config(config).get_current_head()


def schema() -> str | None:
    """The schema the running migration targets (None on SQLite)."""
    value = context.config.attributes.get("schema")
    return value if isinstance(value, str) else None


def run_env() -> None:
    """Body of every service's migrations/env.py: migrate on the connection handed over by upgrade_to_head."""
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("run migrations with `calhub migrate SERVICE`, which supplies the connection")
    context.configure(connection=connection, target_metadata=None, version_table_schema=schema(),
                      render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


def create_platform_tables_v1() -> None:
    """Create outbox, inbox, timer, idempotency_record and lease as of platform version 1 (frozen)."""
    s = schema()
    big_int = sa.BigInteger().with_variant(sa.Integer, "sqlite")
    op.create_table(
        "outbox",
        sa.Column("seq", big_int, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.Uuid, nullable=False),
        sa.Column("topic", sa.String(200), nullable=False),
        sa.Column("key", sa.LargeBinary, nullable=True),
        sa.Column("value", sa.LargeBinary, nullable=False),
        sa.Column("headers", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_outbox"),
        sa.UniqueConstraint("event_id", name="uq_outbox_event_id"),
        schema=s,
    )
    op.create_table(
        "inbox",
        sa.Column("consumer_group", sa.String(100), nullable=False),
        sa.Column("event_id", sa.Uuid, nullable=False),
        sa.Column("event_type", sa.String(100), nullable=False),
        sa.Column("handled_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("consumer_group", "event_id", name="pk_inbox"),
        schema=s,
    )
    op.create_table(
        "timer",
        sa.Column("id", sa.Uuid, nullable=False),
        sa.Column("kind", sa.String(100), nullable=False),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("fired_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_timer"),
        schema=s,
    )
    op.create_index("ix_timer_status_due_at", "timer", ["status", "due_at"], schema=s)
    op.create_index("ix_timer_kind_subject", "timer", ["kind", "subject"], schema=s)
    op.create_table(
        "idempotency_record",
        sa.Column("organization_id", sa.String(64), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("status_code", sa.Integer, nullable=False),
        sa.Column("response_body", sa.LargeBinary, nullable=False),
        sa.Column("response_headers", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("organization_id", "key", name="pk_idempotency_record"),
        schema=s,
    )
    op.create_table(
        "lease",
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("holder", sa.String(100), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_lease"),
        schema=s,
    )


def create_audit_table_v1() -> None:
    """Create the service's append-only `audit_event` table as of audit version 1 (frozen); on PostgreSQL a
    trigger refuses UPDATE and DELETE (see shared.auth.define_audit_table)."""
    from shared.auth import audit_append_only_ddl

    s = schema()
    op.create_table(
        "audit_event",
        sa.Column("id", sa.Uuid, nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("organization_id", sa.String(64), nullable=True),
        sa.Column("actor_key_id", sa.String(64), nullable=True),
        sa.Column("action", sa.String(100), nullable=False),
        sa.Column("resource_type", sa.String(100), nullable=False),
        sa.Column("resource_id", sa.String(200), nullable=False),
        sa.Column("detail", sa.JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_event"),
        schema=s,
    )
    op.create_index("ix_audit_event_resource_type_resource_id", "audit_event", ["resource_type", "resource_id"],
                    schema=s)
    op.create_index("ix_audit_event_organization_id_occurred_at", "audit_event", ["organization_id", "occurred_at"],
                    schema=s)
    if s is not None:  # PostgreSQL: the audit trail is append-only
        for statement in audit_append_only_ddl(s):
            op.execute(statement)
