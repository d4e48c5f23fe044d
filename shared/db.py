"""Database plumbing: one schema per service, engines for PostgreSQL (distributed) and SQLite (embedded).

On PostgreSQL each service's tables live in a schema named after the service. On SQLite each service gets
its own database file and the schema name is translated away, so the same models serve both.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import MetaData, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.ext.asyncio import AsyncSession as AsyncSession
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.util import await_only

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def service_metadata(schema: str) -> MetaData:
    """A MetaData for one service's schema, with the project's constraint naming convention."""
    return MetaData(schema=schema, naming_convention=NAMING_CONVENTION)


def declarative_base(schema: str) -> type[DeclarativeBase]:
    """A declarative base whose tables live in the service's schema."""

    class Base(DeclarativeBase):
        metadata = service_metadata(schema)

    return Base


def is_sqlite(url: str) -> bool:
    """True for SQLite URLs (embedded mode)."""
    return make_url(url).get_backend_name() == "sqlite"


def create_engine(url: str, *, schema: str | None, physical_schema: str | None = None, pool_size: int = 20,
                  echo: bool = False) -> AsyncEngine:
    """An async engine for a service. Built by the composition root, never at import time.

    `physical_schema` maps the models' schema to another one on PostgreSQL (isolated test schemas).
    """
    if is_sqlite(url):
        engine = create_async_engine(url, echo=echo, hide_parameters=True, connect_args={"timeout": 30})
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        event.listen(engine.sync_engine, "begin", _sqlite_begin_immediate)
        if schema is not None:
            engine = engine.execution_options(schema_translate_map={schema: None})
        return engine
    # No pool_pre_ping: with asyncpg it is BEGIN, a ping and ROLLBACK, three round trips before every
    # transaction. `_check_on_checkout` replaces a connection the server closed (asyncpg notices the closed
    # socket at once) and pings, once, only a connection that sat idle long enough to have been dropped silently.
    # No overflow: an overflow connection is closed as soon as the pool has `pool_size` idle ones, and under a
    # steady burst of requests that closed and reopened connections all the time (a new connection also
    # prepares every statement again). The cap is the same 20 as 10 + 10 overflow was; the pool opens
    # connections only as they are needed.
    engine = create_async_engine(url, echo=echo, hide_parameters=True, pool_size=pool_size, max_overflow=0)
    event.listen(engine.sync_engine.pool, "checkout", _check_on_checkout)
    event.listen(engine.sync_engine.pool, "checkin", _note_checkin)
    if schema is not None and physical_schema is not None and physical_schema != schema:
        engine = engine.execution_options(schema_translate_map={schema: physical_schema})
    return engine


PING_AFTER_IDLE_SECONDS = 5.0
_CHECKED_IN_AT = "calhub_checked_in_at"


def _note_checkin(_dbapi_connection: Any, record: Any) -> None:
    if record is not None:
        record.info[_CHECKED_IN_AT] = time.monotonic()


def _check_on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
    # Raising DisconnectionError makes the pool discard this connection and check out another (SQLAlchemy's
    # documented custom pessimistic ping).
    driver = dbapi_connection.driver_connection
    if driver is None or driver.is_closed():
        raise DisconnectionError("connection closed by the server")
    checked_in_at = record.info.get(_CHECKED_IN_AT)
    if checked_in_at is None or time.monotonic() - checked_in_at < PING_AFTER_IDLE_SECONDS:
        return  # new, or used moments ago: a dead socket would have shown as closed
    try:
        # A simple-protocol empty query: one round trip, no prepared statement, no transaction.
        await_only(driver.execute(";"))
    except Exception as exc:  # noqa: BLE001 - any failure means this connection cannot be trusted
        raise DisconnectionError("connection failed its ping") from exc


def _sqlite_begin_immediate(connection: Any) -> None:
    # Take the write lock up front: a deferred transaction that reads and then writes fails at once with
    # SQLITE_BUSY when another writer got in between, while BEGIN IMMEDIATE waits for busy_timeout.
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy's "begin" event issue BEGIN itself (see _sqlite_begin_immediate).
    dbapi_connection.isolation_level = None
    # WAL lets readers run beside the single writer; a busy timeout instead of "database is locked" failures.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded objects usable after commit (the edge owns the transaction)."""
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)

