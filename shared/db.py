"""Database plumbing: one schema per service, engines for PostgreSQL (distributed) and SQLite (embedded).

On PostgreSQL each service's tables live in a schema named after the service. On SQLite each service gets
its own database file and the schema name is translated away, so the same models serve both.
"""

from __future__ import annotations

import functools
import hashlib
import re
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import asyncpg
from sqlalchemy import JSON, MetaData, Table, event, text
from sqlalchemy.dialects.postgresql.base import PGDialect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.ext.asyncio import AsyncSession as AsyncSession
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.orm.instrumentation import manager_of_class
from sqlalchemy.types import TypeEngine
from sqlalchemy.util import await_only, greenlet_spawn

from shared.json_encoding import to_json_text

_Mapped = TypeVar("_Mapped")

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

    `physical_schema` maps the models' schema to another one on PostgreSQL (isolated test schemas). JSON
    columns are written by `to_json_text` on both databases, as the hand-written hot statements write them, so
    a value is stored the same way (or refused the same way) whichever path writes it.
    """
    if is_sqlite(url):
        engine = create_async_engine(url, echo=echo, hide_parameters=True, connect_args={"timeout": 30},
                                     json_serializer=to_json_text)
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
    engine = create_async_engine(url, echo=echo, hide_parameters=True, pool_size=pool_size, max_overflow=0,
                                 json_serializer=to_json_text)
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


def new_transient(model: type[_Mapped], **values: Any) -> _Mapped:
    """A new, transient object of a mapped class holding `values` (every column, by attribute name).

    Made the way the ORM makes an object it loads (the class manager's `new_instance`, values in its
    `__dict__`) instead of by the declarative constructor, whose attribute events per column cost more than
    everything else the ORM does for a hot request's new row. Later changes to the object are tracked as
    usual; added to a session it is inserted like any new object."""
    manager = manager_of_class(model)
    unknown = values.keys() - _attribute_names(manager)
    if unknown:  # what the constructor would refuse, so a misspelt column is not silently kept
        raise TypeError(f"{model.__name__} has no attribute(s) {', '.join(sorted(unknown))}")
    instance: _Mapped = manager.new_instance()
    instance.__dict__.update(values)
    return instance


@functools.cache
def _attribute_names(manager: Any) -> frozenset[str]:
    return frozenset(manager.mapper.attrs.keys())


# ------------------------------------------------------------------------------- hand-written statements

@dataclass
class Binds:
    """Positional parameters (`$1`, `$2`, ...) of one hand-written PostgreSQL statement, in order.

    `binds(value, "uuid[]")` records the value and answers its placeholder with that cast; the SQL text depends
    only on the order of the calls, so the driver's prepared-statement cache recognises it.
    """

    values: list[Any] = field(default_factory=list)

    def __call__(self, value: Any, cast: str | None = None) -> str:
        self.values.append(value)
        return f"${len(self.values)}::{cast}" if cast else f"${len(self.values)}"


@dataclass(frozen=True)
class DriverConnection:
    """The asyncpg connection under a session, for a statement too hot for the ORM, and the physical names of
    the tables there (a service's schema may be renamed by `schema_translate_map`, e.g. in tests)."""

    driver: Any
    schemas: Mapping[str | None, str | None]

    def name_of(self, table: Table) -> str:
        """The table's quoted, schema-qualified name on this connection."""
        schema = self.schemas.get(table.schema, table.schema)
        return f'"{schema}"."{table.name}"' if schema else f'"{table.name}"'


async def advisory_xact_lock(session: AsyncSession, name: str) -> None:
    """Serialize transactions that work on the same `name` (a member, an authorization) across processes, until
    the session's transaction ends. PostgreSQL: a transaction-scoped advisory lock keyed by a hash of `name`;
    SQLite: nothing to do, BEGIN IMMEDIATE already serializes writers."""
    if session.get_bind().dialect.name == "postgresql":
        key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
        await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


async def read_one_snapshot(session: AsyncSession) -> None:
    """Make the session's next transaction read one snapshot of the database (call before its first statement),
    so a view assembled from several queries (a row and its timeline) never mixes what two commits wrote.
    PostgreSQL: REPEATABLE READ for that transaction (the pool resets the level when the connection returns);
    SQLite: a transaction already reads one snapshot."""
    if session.get_bind().dialect.name == "postgresql":
        await session.connection(execution_options={"isolation_level": "REPEATABLE READ"})


async def driver_connection(session: AsyncSession) -> DriverConnection:
    """The session's PostgreSQL connection at driver level. A statement sent on it runs in the session's
    transaction if one was begun (the session commits or rolls it back) and is its own transaction if not."""
    connection = await session.connection()
    options = connection.sync_connection.get_execution_options() if connection.sync_connection else {}
    raw = await connection.get_raw_connection()
    return DriverConnection(driver=raw.driver_connection, schemas=options.get("schema_translate_map") or {})


@asynccontextmanager
async def pooled_driver_connection(engine: AsyncEngine) -> AsyncIterator[DriverConnection]:
    """A PostgreSQL connection of the engine's pool at driver level, with no session or transaction around it:
    for a statement that is its own transaction. It goes back to the pool when the block ends.

    The session's machinery (its transaction, the Connection around the pooled one) costs more than the one
    statement it would carry; the pool's checkout check still runs. A block cancelled or timed out (maybe
    mid-statement), or ended by a broken connection, discards the connection, so the next request never
    inherits a command still in flight; any other error (the server's answer to the statement, or the
    caller's own) gives it back as it was."""
    raw = await engine.raw_connection()
    intact = False
    try:
        yield DriverConnection(driver=raw.driver_connection,
                               schemas=engine.get_execution_options().get("schema_translate_map") or {})
        intact = True
    except Exception as exc:
        intact = not isinstance(exc, _CONNECTION_LOST)
        raise
    finally:
        if intact:
            await greenlet_spawn(raw.close)
        else:
            raw.invalidate()  # closes the socket without a round trip, then gives the slot back to the pool


# Errors after which a driver connection may be mid-command or gone (CancelledError is not an Exception).
_CONNECTION_LOST = (TimeoutError, OSError, asyncpg.InterfaceError, asyncpg.PostgresConnectionError)


_TYPMOD = re.compile(r"\([0-9, ]*\)")
_POSTGRESQL = PGDialect()  # type: ignore[no-untyped-call]


@functools.cache
def _cast(column_type: TypeEngine[Any]) -> str:
    # Cast to the type without its length: an explicit cast to varchar(n) would silently truncate, while the
    # INSERT's own assignment to the column refuses an over-long value, as any other insert does.
    return _TYPMOD.sub("", column_type.compile(dialect=_POSTGRESQL))


@dataclass(frozen=True)
class _InsertShape:
    sql: str
    json_positions: tuple[int, ...]  # asyncpg takes JSON as text (SQLAlchemy registers a text codec for it)


@functools.lru_cache(maxsize=256)
def _insert_shape(table: Table, qualified_name: str, names: tuple[str, ...], many: bool, first_parameter: int,
                  source: str | None, suffix: str) -> _InsertShape:
    # Identifiers come from the Table (`table.c` refuses any other name); every value is a parameter. The text
    # depends only on these arguments, so it is built once per shape (not per request) and stays byte-identical
    # for the driver's prepared-statement cache.
    columns = [table.c[name] for name in names]
    quoted = ", ".join(f'"{name}"' for name in names)
    into = f"INSERT INTO {qualified_name} ({quoted})"
    json_positions = tuple(n for n, c in enumerate(columns) if isinstance(c.type, JSON))
    placeholders = [f"${first_parameter + n}::{_cast(c.type)}{'[]' if many else ''}"
                    for n, c in enumerate(columns, start=1)]
    if not many:  # scalars: an array per column costs the driver several times as much to encode
        sql = f"{into} SELECT {', '.join(placeholders)}{f' FROM {source}' if source else ''}{suffix}"  # noqa: S608
        return _InsertShape(sql, json_positions)
    selected = ", ".join(f'r."{name}"' for name in names)
    sql = (f"{into} SELECT {selected} FROM {f'{source}, ' if source else ''}unnest({', '.join(placeholders)}) "  # noqa: S608
           f"WITH ORDINALITY AS r({quoted}, ordinal) ORDER BY r.ordinal{suffix}")
    return _InsertShape(sql, json_positions)


def insert_rows_sql(connection: DriverConnection, table: Table, rows: Sequence[Mapping[str, Any]], binds: Binds,
                    *, source: str | None = None, suffix: str = "") -> str:
    """PostgreSQL: an INSERT of `rows` (same keys, the table's column names): one parameter per column, an
    array of the rows' values when there are several.

    With `source` (the name of an earlier CTE of the same statement) the rows are inserted once per row it
    yields, that is not at all when it is empty: the dependent writes of a guarded insert. Rows go in in the
    order given (an outbox `seq` follows it). `suffix` is appended (`ON CONFLICT ...`, `RETURNING ...`).
    """
    names = tuple(rows[0])
    many = len(rows) > 1
    shape = _insert_shape(table, connection.name_of(table), names, many, len(binds.values), source, suffix)
    if many:  # one array per column
        arrays = [[row[name] for row in rows] for name in names]
        for position in shape.json_positions:
            arrays[position] = [None if v is None else to_json_text(v) for v in arrays[position]]
        binds.values.extend(arrays)
    else:
        row = rows[0]
        values = [row[name] for name in names]
        for position in shape.json_positions:
            if values[position] is not None:
                values[position] = to_json_text(values[position])
        binds.values.extend(values)
    return shape.sql
