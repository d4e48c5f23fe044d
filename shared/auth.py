"""Organizations, API keys and tenancy: who calls, with which scopes, which rows they see; the audit trail.

Organizations (the hub, its CBOs, the MCPs) and their API keys live in the `auth` schema. Each service keeps
its own append-only `audit_event` table in its own schema (`define_audit_table`) and writes to it, in the
request's transaction, on every read of PHI and every change to billing data (`record_audit`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal, NamedTuple, Protocol, Self, TypeVar, get_args
from uuid import UUID

from fastapi import Depends, FastAPI, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param
from sqlalchemy import (
    DDL,
    JSON,
    CheckConstraint,
    Column,
    ColumnElement,
    DateTime,
    ForeignKey,
    Index,
    MetaData,
    String,
    Table,
    Uuid,
    event,
    false,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from shared.db import create_engine, is_sqlite, service_metadata, session_factory
from shared.ids import uuid7
from shared.logs import Phi, is_phi_key, scrub
from shared.problems import Problem

AUTH_SCHEMA = "auth"
OrganizationKind = Literal["hub", "cbo", "mcp"]
ORGANIZATION_KINDS: tuple[str, ...] = get_args(OrganizationKind)

OPS_SCOPE = "ops"
ADMIN_SCOPE = "admin"
_SCOPE = re.compile(r"^(?:[a-z][a-z0-9_-]*:(?:read|write)|ops|admin)$")
_PLAINTEXT = re.compile(r"^chk_([0-9a-f]{32})_([0-9a-f]{64})$")


# ------------------------------------------------------------------------------------------------ audit

def define_audit_table(metadata: MetaData) -> Table:
    """Add the append-only `audit_event` table to a service's MetaData (call once per service).

    On PostgreSQL a trigger created with the table rejects UPDATE and DELETE; migrations run
    `audit_append_only_ddl(schema)` for the same effect.
    """
    table = Table(
        "audit_event",
        metadata,
        Column("id", Uuid, primary_key=True),  # UUIDv7: time-ordered
        Column("occurred_at", DateTime(timezone=True), nullable=False),
        Column("organization_id", String(64), nullable=True),  # None: a system action (CLI bootstrap)
        Column("actor_key_id", String(64), nullable=True),
        Column("action", String(100), nullable=False),
        Column("resource_type", String(100), nullable=False),
        Column("resource_id", String(200), nullable=False),
        Column("detail", JSON, nullable=False),
        Index(None, "resource_type", "resource_id"),
        Index(None, "organization_id", "occurred_at"),
    )
    for statement in _APPEND_ONLY_DDL:
        ddl = DDL(statement)  # type: ignore[no-untyped-call]
        event.listen(table, "after_create", ddl.execute_if(dialect="postgresql"))
    return table


_APPEND_ONLY_DDL = (
    "CREATE OR REPLACE FUNCTION %(schema)s.audit_event_append_only() RETURNS trigger LANGUAGE plpgsql AS "
    "$$ BEGIN RAISE EXCEPTION 'audit_event is append-only'; END $$",
    "CREATE TRIGGER audit_event_append_only BEFORE UPDATE OR DELETE ON %(fullname)s "
    "FOR EACH ROW EXECUTE FUNCTION %(schema)s.audit_event_append_only()",
)


def audit_append_only_ddl(schema: str) -> list[str]:
    """The PostgreSQL statements that make `<schema>.audit_event` append-only (for Alembic migrations)."""
    quoted = f'"{schema}"'
    return [s % {"schema": quoted, "fullname": f"{quoted}.audit_event"} for s in _APPEND_ONLY_DDL]


AuditValue = str | int | float | bool | Decimal | UUID | None


def _audit_detail(detail: Mapping[str, AuditValue | list[AuditValue]] | None) -> dict[str, Any]:
    clean: dict[str, Any] = {}
    for key, value in (detail or {}).items():
        if is_phi_key(key):
            raise ValueError(f"audit detail key {key!r} names member data; audit ids and codes only")
        if isinstance(value, list):
            clean[key] = [_audit_value(key, item) for item in value]
        else:
            clean[key] = _audit_value(key, value)
    return clean


def _audit_value(key: str, value: Any) -> Any:
    if isinstance(value, Phi):
        raise ValueError(f"audit detail {key!r} is marked PHI")
    if isinstance(value, Decimal | UUID):
        return str(value)
    if isinstance(value, str):
        if scrub(value) != value:
            raise ValueError(f"audit detail {key!r} looks like PHI (a CIN, date, phone, email...)")
        return value
    if value is None or isinstance(value, bool | int | float):
        return value
    raise ValueError(f"audit detail {key!r} must be a scalar id, code, count or amount")


async def record_audit(session: AsyncSession, table: Table, *, action: str, resource_type: str,
                       resource_id: str, caller: Caller | None = None,
                       detail: Mapping[str, AuditValue | list[AuditValue]] | None = None,
                       occurred_at: datetime | None = None) -> UUID:
    """Append an audit event in the session's transaction (the edge commits); returns its id.

    `caller` None records a system action. Raises ValueError if `detail` looks like it carries PHI: audit
    events reference records by id, they never copy member data.
    """
    values = audit_values(action=action, resource_type=resource_type, resource_id=resource_id, caller=caller,
                          detail=detail, occurred_at=occurred_at)
    await session.execute(insert(table).values(**values))
    event_id: UUID = values["id"]
    return event_id


def audit_values(*, action: str, resource_type: str, resource_id: str, caller: Caller | None = None,
                 detail: Mapping[str, AuditValue | list[AuditValue]] | None = None,
                 occurred_at: datetime | None = None) -> dict[str, Any]:
    """The `audit_event` row `record_audit` appends (a new id), for a caller that writes it in its own
    statement; raises ValueError if `detail` looks like it carries PHI."""
    return {
        "id": uuid7(),
        "occurred_at": occurred_at or datetime.now(UTC),
        "organization_id": caller.organization_id if caller else None,
        "actor_key_id": caller.key_id if caller else None,
        "action": action,
        "resource_type": resource_type,
        "resource_id": resource_id,
        "detail": _audit_detail(detail),
    }


# ------------------------------------------------------------------------------------------------ tables

metadata = service_metadata(AUTH_SCHEMA)

organization_table = Table(
    "organization",
    metadata,
    Column("id", String(64), primary_key=True),  # org_<uuid7 hex>
    Column("kind", String(8), nullable=False),
    Column("name", String(200), nullable=False),
    Column("code", String(50), nullable=True, unique=True),  # an MCP's plan code; CBOs may have one too
    Column("npi", String(10), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    CheckConstraint("kind IN ('hub', 'cbo', 'mcp')", name="kind"),
)

api_key_table = Table(
    "api_key",
    metadata,
    Column("id", String(32), primary_key=True),  # uuid7 hex; public, appears in the key and in audit events
    Column("organization_id", String(64), ForeignKey(organization_table.c.id), nullable=False, index=True),
    # SHA-256 hex of the secret half of the key. A fast hash is enough here: the secret is 256 random bits
    # from `secrets`, so an attacker holding the hash must still search 2^256 values; slow password hashes
    # (bcrypt, argon2) exist to stretch low-entropy human passwords and would only add latency per request.
    Column("hashed_secret", String(64), nullable=False),
    Column("scopes", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
    Column("last_used_at", DateTime(timezone=True), nullable=True),
)

audit_event_table = define_audit_table(metadata)


def create_auth_engine(url: str) -> AsyncEngine:
    """An engine for the auth tables (schema `auth` on PostgreSQL, translated away on SQLite)."""
    return create_engine(url, schema=AUTH_SCHEMA)


async def create_auth_schema(engine: AsyncEngine | str) -> None:
    """Create the auth schema and tables if missing, given an engine or a URL.

    Honours a schema_translate_map for `auth` (tests put the tables in a throwaway schema that way).
    """
    if isinstance(engine, str):
        owned = create_auth_engine(engine)
        try:
            await create_auth_schema(owned)
        finally:
            await owned.dispose()
        return
    translate = engine.get_execution_options().get("schema_translate_map") or {}
    if engine.dialect.name == "sqlite" and AUTH_SCHEMA not in translate:
        engine = engine.execution_options(schema_translate_map={**translate, AUTH_SCHEMA: None})
        translate = {AUTH_SCHEMA: None}
    async with engine.begin() as conn:
        schema = translate.get(AUTH_SCHEMA, AUTH_SCHEMA)
        if engine.dialect.name == "postgresql" and schema is not None:
            await conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        await conn.run_sync(metadata.create_all)


# ---------------------------------------------------------------------------------------------- callers

def service_scope(service: str, access: Literal["read", "write"]) -> str:
    """The scope name `<service>:<access>`, e.g. `claims:read`."""
    return validate_scope(f"{service}:{access}")


def validate_scope(scope: str) -> str:
    """Return the scope if well formed (`<service>:read|write`, `ops`, `admin`); raises ValueError."""
    if not _SCOPE.match(scope):
        raise ValueError(f"malformed scope {scope!r}; expected <service>:read|write, ops or admin")
    return scope


@dataclass(frozen=True)
class Organization:
    """An organization that holds API keys: the hub, a CBO or an MCP."""

    id: str
    kind: OrganizationKind
    name: str
    code: str | None
    npi: str | None
    created_at: datetime

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready fields (admin CLI and API)."""
        return {"id": self.id, "kind": self.kind, "name": self.name, "code": self.code, "npi": self.npi,
                "created_at": self.created_at.isoformat()}


@dataclass(frozen=True)
class Caller:
    """The authenticated organization behind a request and the scopes of its key."""

    organization_id: str
    organization_kind: OrganizationKind
    organization_code: str | None
    key_id: str
    scopes: frozenset[str]

    @property
    def is_hub(self) -> bool:
        """Hub callers are cross-tenant; CBO and MCP callers see only their own organization's rows."""
        return self.organization_kind == "hub"

    def has_scope(self, scope: str) -> bool:
        """True if the key grants the scope; `<service>:write` implies `<service>:read`, nothing else."""
        if scope in self.scopes:
            return True
        return scope.endswith(":read") and f"{scope.removesuffix(':read')}:write" in self.scopes


class IssuedKey(NamedTuple):
    """A new API key: its public id and the plaintext, shown once and never stored."""

    key_id: str
    plaintext: str


class Authenticator(Protocol):
    """What the FastAPI dependencies need: turn a presented key into a Caller, or None."""

    async def verify(self, plaintext: str) -> Caller | None:
        """The caller for a valid, unrevoked key; None otherwise."""
        ...

    async def key_active(self, key_id: str) -> bool:
        """Whether the key exists and is not revoked (sessions built on a key ask this; cached like verify)."""
        ...

    async def close(self) -> None:
        """Release connections (called when the app stops)."""
        ...


def _aware(moment: datetime) -> datetime:
    # SQLite hands timezone-aware columns back naive; they were written in UTC.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _organization(row: Any) -> Organization:
    return Organization(id=row.id, kind=row.kind, name=row.name, code=row.code, npi=row.npi,
                        created_at=_aware(row.created_at))


def _sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


log = logging.getLogger("calhub.auth")

# PostgreSQL NOTIFY channel: a revoked key's id, sent with the revocation's commit.
REVOCATION_CHANNEL = "calhub_api_key_revoked"


class StaticAuthenticator:
    """Known keys mapped to callers, without a database: for unit tests and the embedded demo."""

    def __init__(self, keys: Mapping[str, Caller]) -> None:
        self._callers = {_sha256(key): caller for key, caller in keys.items()}

    async def verify(self, plaintext: str) -> Caller | None:
        """The caller registered for this key, or None."""
        return self._callers.get(_sha256(plaintext))

    async def key_active(self, key_id: str) -> bool:
        """Whether a registered key has this id."""
        return any(caller.key_id == key_id for caller in self._callers.values())

    async def close(self) -> None:
        """Nothing to release."""


class _VerifiedCache:
    """Successful verifications for a few seconds, keyed by the SHA-256 of the whole key; LRU-bounded."""

    def __init__(self, ttl: float, size: int, clock: Callable[[], float]) -> None:
        self.ttl = ttl
        self.size = size
        self.clock = clock
        self._entries: OrderedDict[str, tuple[float, Caller]] = OrderedDict()

    def get(self, digest: str) -> Caller | None:
        entry = self._entries.get(digest)
        if entry is None:
            return None
        expires, caller = entry
        if expires <= self.clock():
            del self._entries[digest]
            return None
        self._entries.move_to_end(digest)
        return caller

    def put(self, digest: str, caller: Caller) -> None:
        if self.ttl <= 0 or self.size <= 0:
            return
        self._entries[digest] = (self.clock() + self.ttl, caller)
        self._entries.move_to_end(digest)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def evict_key(self, key_id: str) -> None:
        for digest in [d for d, (_, c) in self._entries.items() if c.key_id == key_id]:
            del self._entries[digest]

    def clear(self) -> None:
        self._entries.clear()


class AuthStore:
    """Organizations and API keys in the `auth` schema; verifies presented keys with a short cache.

    Successful verifications are cached for `cache_ttl` seconds (default 30) per process, so a hot API does
    not query the database per request. A revocation evicts the key at once in the revoking process and, on
    PostgreSQL, in every process that runs `listen_for_revocations` (a NOTIFY sent with the revocation's
    commit). A process that is not listening (SQLite, or its listening connection is down and reconnecting)
    honours a revocation within `cache_ttl` seconds.
    """

    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, cache_ttl: float = 30.0,
                 cache_size: int = 10_000, touch_interval: timedelta = timedelta(minutes=5),
                 clock: Callable[[], float] = time.monotonic, engine: AsyncEngine | None = None) -> None:
        self._sessions = sessions
        self._cache = _VerifiedCache(cache_ttl, cache_size, clock)
        self._looking_up: dict[str, asyncio.Future[Caller | None]] = {}  # digest -> the lookup in flight
        self._revocations = 0  # revocations seen: a lookup that overlapped one does not cache what it read
        self._listener: asyncio.Task[None] | None = None
        self._listener_pid: int | None = None  # the LISTENing backend while revocations reach this process
        # key id -> (expires, active): the same TTL as verifications, so a session notices a revocation as
        # soon as a request with the key itself would.
        self._active: dict[str, tuple[float, bool]] = {}
        self._clock = clock
        self._touch_interval = touch_interval
        self._engine = engine  # owned (disposed by close) when the store built it

    @classmethod
    def from_url(cls, url: str, *, cache_ttl: float = 30.0) -> AuthStore:
        """A store with its own engine on the auth database (`close()` disposes it)."""
        engine = create_auth_engine(url)
        return cls(session_factory(engine), cache_ttl=cache_ttl, engine=engine)

    @property
    def engine(self) -> AsyncEngine | None:
        """The engine this store built (`from_url`), else None."""
        return self._engine

    async def close(self) -> None:
        """Stop listening for revocations and any lookup in flight; dispose the engine if this store created it."""
        for task in [self._listener, *self._looking_up.values()]:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._listener = None
        if self._engine is not None:
            await self._engine.dispose()

    def listen_for_revocations(self, engine: AsyncEngine) -> None:
        """PostgreSQL: evict a key from this process's caches as soon as any process revokes it (LISTEN on one
        connection of `engine`, in a background task that reconnects; `close()` stops it). Nothing on SQLite."""
        if self._listener is None and engine.dialect.name == "postgresql":
            self._listener = asyncio.create_task(self._listen(engine), name="api-key-revocations")

    async def _listen(self, engine: AsyncEngine) -> None:
        delay = 0.5
        while True:
            try:
                await self._listen_on_one_connection(engine)
                delay = 0.5  # it was up: reconnect after a short pause
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the database is away: the cache TTL still bounds the window
                delay = min(delay * 2, 30.0)
                log.warning("listening for API key revocations failed; retrying",
                            extra={"error_type": type(exc).__name__, "retry_in_s": delay})
            await asyncio.sleep(delay)

    async def _listen_on_one_connection(self, engine: AsyncEngine) -> None:
        # Returns when the connection is lost; raises when it cannot be opened.
        raw = await engine.raw_connection()
        try:
            driver = raw.driver_connection
            assert driver is not None
            lost = asyncio.Event()
            driver.add_termination_listener(lambda _: lost.set())
            await driver.add_listener(REVOCATION_CHANNEL, self._revoked_elsewhere)
            # Whatever was revoked while nobody listened is forgotten: the next use looks it up again.
            self.clear_cache()
            self._listener_pid = driver.get_server_pid()
            await lost.wait()
            log.warning("listening connection for API key revocations lost; reconnecting")
        finally:
            self._listener_pid = None
            raw.invalidate()  # a LISTENing connection never goes back to the pool

    @property
    def listening(self) -> bool:
        """Whether revocations by other processes reach this one now (`listen_for_revocations`)."""
        return self._listener_pid is not None

    @property
    def listener_pid(self) -> int | None:
        """The PostgreSQL backend that LISTENs for this process while `listening` (its row in
        pg_stat_activity), else None."""
        return self._listener_pid

    def _revoked_elsewhere(self, connection: object, pid: int, channel: str, key_id: str) -> None:
        self._forget_key(key_id)

    def _forget_key(self, key_id: str) -> None:
        self._revocations += 1
        self._looking_up.clear()  # a request from now on must not join a lookup that read the key before
        self._cache.evict_key(key_id)
        self._active.pop(key_id, None)

    async def create_organization(self, kind: OrganizationKind, name: str, code: str | None = None,
                                  npi: str | None = None, *, actor: Caller | None = None) -> Organization:
        """Register an organization; raises ValueError for an unknown kind, a bad NPI or a taken code."""
        if kind not in ORGANIZATION_KINDS:
            raise ValueError(f"organization kind must be one of {ORGANIZATION_KINDS}")
        if kind == "mcp" and not code:
            raise ValueError("an MCP needs its plan code: MCP callers are scoped by it")
        if npi is not None and not re.fullmatch(r"[0-9]{10}", npi):
            raise ValueError("an NPI is 10 digits")
        org = Organization(id=f"org_{uuid7().hex}", kind=kind, name=name, code=code, npi=npi,
                           created_at=datetime.now(UTC))
        async with self._sessions() as session, session.begin():
            try:
                await session.execute(insert(organization_table).values(
                    id=org.id, kind=org.kind, name=org.name, code=org.code, npi=org.npi,
                    created_at=org.created_at))
                await session.flush()
            except IntegrityError as exc:
                raise ValueError("organization code already in use") from exc
            await record_audit(session, audit_event_table, action="organization.created",
                               resource_type="organization", resource_id=org.id, caller=actor,
                               detail={"kind": kind, "code": code})
        return org

    async def get_organization(self, organization_id: str) -> Organization | None:
        """The organization with this id, or None."""
        async with self._sessions() as session:
            row = (await session.execute(
                select(organization_table).where(organization_table.c.id == organization_id))).first()
        return _organization(row) if row is not None else None

    async def list_organizations(self) -> list[Organization]:
        """Every organization, oldest first."""
        async with self._sessions() as session:
            rows = (await session.execute(
                select(organization_table).order_by(organization_table.c.created_at, organization_table.c.id)
            )).all()
        return [_organization(row) for row in rows]

    async def create_api_key(self, organization_id: str, scopes: Iterable[str], *,
                             actor: Caller | None = None) -> IssuedKey:
        """Issue a key `chk_<key id>_<secret>` for an organization; raises LookupError / ValueError."""
        granted = sorted({validate_scope(s) for s in scopes})
        key_id = uuid7().hex
        secret = secrets.token_hex(32)  # 256 bits
        async with self._sessions() as session, session.begin():
            exists = (await session.execute(
                select(organization_table.c.id).where(organization_table.c.id == organization_id))).first()
            if exists is None:
                raise LookupError("no such organization")
            await session.execute(insert(api_key_table).values(
                id=key_id, organization_id=organization_id, hashed_secret=_sha256(secret), scopes=granted,
                created_at=datetime.now(UTC), revoked_at=None, last_used_at=None))
            await record_audit(session, audit_event_table, action="api_key.created", resource_type="api_key",
                               resource_id=key_id, caller=actor,
                               detail={"organization_id": organization_id, "scopes": list(granted)})
        return IssuedKey(key_id=key_id, plaintext=f"chk_{key_id}_{secret}")

    async def revoke_key(self, key_id: str, *, actor: Caller | None = None) -> bool:
        """Revoke a key; False if unknown or already revoked. This process forgets it at once; on PostgreSQL a
        NOTIFY tells every listening process (`listen_for_revocations`) with the commit; others notice within
        the cache TTL."""
        async with self._sessions() as session, session.begin():
            result = await session.execute(
                update(api_key_table)
                .where(api_key_table.c.id == key_id, api_key_table.c.revoked_at.is_(None))
                .values(revoked_at=datetime.now(UTC)))
            revoked = bool(getattr(result, "rowcount", 0))
            if revoked:
                await record_audit(session, audit_event_table, action="api_key.revoked",
                                   resource_type="api_key", resource_id=key_id, caller=actor)
                if session.get_bind().dialect.name == "postgresql":
                    # Delivered with the commit to every process listening (`listen_for_revocations`).
                    await session.execute(select(func.pg_notify(REVOCATION_CHANNEL, key_id)))
        self._forget_key(key_id)
        return revoked

    async def key_active(self, key_id: str) -> bool:
        """Whether the key exists and is not revoked; answers are cached for the verification TTL."""
        now = self._clock()
        cached = self._active.get(key_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        revocations = self._revocations
        async with self._sessions() as session:
            revoked_at = (await session.execute(
                select(api_key_table.c.revoked_at).where(api_key_table.c.id == key_id))).first()
        active = revoked_at is not None and revoked_at[0] is None
        if self._cache.ttl > 0 and revocations == self._revocations:  # else it may have read a revoked key
            if len(self._active) >= self._cache.size:
                self._active.clear()  # bounded; a refill costs one query per key
            self._active[key_id] = (now + self._cache.ttl, active)
        return active

    async def verify(self, plaintext: str) -> Caller | None:
        """The caller for a valid, unrevoked key; None for anything else (compared in constant time)."""
        match = _PLAINTEXT.match(plaintext)
        if match is None:
            return None  # not one of our keys: no database round trip
        digest = _sha256(plaintext)
        cached = self._cache.get(digest)
        if cached is not None:
            return cached
        # One lookup per key at a time: when a busy key's cache entry expires, every request that arrives
        # before the lookup answers waits for that one lookup. Each running its own would make the lookups
        # slower, let more requests miss meanwhile, and stall the whole process.
        lookup = self._looking_up.get(digest)
        if lookup is None:
            key_id, secret = match.groups()
            lookup = asyncio.ensure_future(self._look_up(digest, key_id, secret))
            self._looking_up[digest] = lookup
            lookup.add_done_callback(lambda done: self._looked_up(digest, done))
        # Shielded: a waiter that is cancelled (its client went away) does not cancel the others' lookup.
        return await asyncio.shield(lookup)

    def _looked_up(self, digest: str, lookup: asyncio.Future[Caller | None]) -> None:
        if self._looking_up.get(digest) is lookup:  # not a newer lookup started after a revocation
            del self._looking_up[digest]
        if not lookup.cancelled():
            lookup.exception()  # retrieved: its waiters got it, or all of them were cancelled meanwhile

    async def _look_up(self, digest: str, key_id: str, secret: str) -> Caller | None:
        revocations = self._revocations
        async with self._sessions() as session, session.begin():
            row = (await session.execute(
                select(api_key_table.c.hashed_secret, api_key_table.c.scopes, api_key_table.c.revoked_at,
                       api_key_table.c.last_used_at, organization_table.c.id.label("organization_id"),
                       organization_table.c.kind, organization_table.c.code)
                .join(organization_table, organization_table.c.id == api_key_table.c.organization_id)
                .where(api_key_table.c.id == key_id))).first()
            if row is None or row.revoked_at is not None:
                return None
            if not hmac.compare_digest(_sha256(secret), row.hashed_secret):
                return None
            now = datetime.now(UTC)
            if row.last_used_at is None or now - _aware(row.last_used_at) >= self._touch_interval:
                # Throttled: at most one write per key per interval, not one per request.
                await session.execute(update(api_key_table).where(api_key_table.c.id == key_id)
                                      .values(last_used_at=now))
        caller = Caller(organization_id=row.organization_id, organization_kind=row.kind,
                        organization_code=row.code, key_id=key_id, scopes=frozenset(row.scopes))
        if revocations == self._revocations:  # else it may have read the key just before its revocation
            self._cache.put(digest, caller)
        return caller

    def clear_cache(self) -> None:
        """Forget cached verifications (tests; after a bulk revocation)."""
        self._revocations += 1
        self._looking_up.clear()
        self._cache.clear()
        self._active.clear()


class DatabaseAuthenticator:
    """The production Authenticator: an AuthStore on the auth database, built on first use.

    Nothing connects at construction. On SQLite (embedded mode) the auth tables are created on first use so
    that `calhub run` works on an empty data directory; on PostgreSQL they come from `calhub migrate`.
    """

    def __init__(self, url: str, *, cache_ttl: float = 30.0) -> None:
        self.url = url
        self.cache_ttl = cache_ttl
        self._store: AuthStore | None = None
        self._lock = asyncio.Lock()

    async def store(self) -> AuthStore:
        """The underlying AuthStore (created, and on SQLite its tables, on first call; on PostgreSQL it starts
        listening for revocations then)."""
        if self._store is None:
            async with self._lock:
                if self._store is None:
                    if is_sqlite(self.url):
                        await create_auth_schema(self.url)
                    store = AuthStore.from_url(self.url, cache_ttl=self.cache_ttl)
                    if store.engine is not None:
                        store.listen_for_revocations(store.engine)
                    self._store = store
        return self._store

    async def verify(self, plaintext: str) -> Caller | None:
        """The caller for a valid, unrevoked key; None otherwise."""
        return await (await self.store()).verify(plaintext)

    async def key_active(self, key_id: str) -> bool:
        """Whether the key exists and is not revoked."""
        return await (await self.store()).key_active(key_id)

    async def close(self) -> None:
        """Stop the store's listener and dispose its engine, if one was built."""
        if self._store is not None:
            await self._store.close()
            self._store = None


# ------------------------------------------------------------------------------------------- tenancy

_S = TypeVar("_S", bound="_Filterable")


class _Filterable(Protocol):
    def where(self, *whereclause: Any) -> Self: ...


@dataclass(frozen=True)
class TenantScope:
    """Which rows a caller sees: the hub all, a CBO those of its organization id, an MCP those of its code."""

    caller: Caller

    def condition(self, *, cbo_column: ColumnElement[Any] | None = None,
                  mcp_column: ColumnElement[Any] | None = None) -> ColumnElement[bool] | None:
        """The WHERE condition for this caller (None: no restriction). Unscoped columns mean no rows."""
        caller = self.caller
        if caller.is_hub:
            return None
        if caller.organization_kind == "cbo":
            return cbo_column == caller.organization_id if cbo_column is not None else false()
        if mcp_column is None or caller.organization_code is None:
            return false()
        return mcp_column == caller.organization_code

    def filter(self, statement: _S, *, cbo_column: ColumnElement[Any] | None = None,
               mcp_column: ColumnElement[Any] | None = None) -> _S:
        """Restrict a select (or update/delete) to the caller's rows; a resource without the caller's kind
        of column (e.g. no mcp_column for an MCP caller) yields no rows rather than all of them."""
        condition = self.condition(cbo_column=cbo_column, mcp_column=mcp_column)
        return statement if condition is None else statement.where(condition)

    def allows(self, *, cbo_id: str | None = None, mcp_code: str | None = None) -> bool:
        """True if a loaded row owned by this CBO id / MCP code is visible to the caller."""
        caller = self.caller
        if caller.is_hub:
            return True
        if caller.organization_kind == "cbo":
            return cbo_id is not None and cbo_id == caller.organization_id
        return mcp_code is not None and mcp_code == caller.organization_code

    def require(self, *, cbo_id: str | None = None, mcp_code: str | None = None,
                resource: str = "resource") -> None:
        """Raise a 404 problem if the caller may not see the row (404, not 403: existence is not revealed)."""
        if not self.allows(cbo_id=cbo_id, mcp_code=mcp_code):
            slug = re.sub(r"[^a-z0-9]+", "-", resource.lower()).strip("-") or "resource"
            raise Problem(404, f"{slug}-not-found", f"{resource.capitalize()} not found")


# ------------------------------------------------------------------------------------ FastAPI dependencies

_REALM = 'Bearer realm="calhub"'
_bearer = HTTPBearer(auto_error=False, scheme_name="bearer",
                     description="`Authorization: Bearer chk_...` with the organization's API key.")
_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, scheme_name="apiKey",
                               description="The organization's API key, as an alternative to Bearer.")


def install_authenticator(app: FastAPI, authenticator: Authenticator) -> None:
    """Make `authenticate` verify this app's keys with the authenticator (`app.state.authenticator`)."""
    app.state.authenticator = authenticator


async def authenticate(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    api_key: Annotated[str | None, Depends(_api_key_header)],
) -> Caller:
    """FastAPI dependency: the Caller of the request's API key; 401 problem if missing, unknown or revoked."""
    presented = bearer.credentials.strip() if bearer is not None else (api_key or "").strip()
    return await _verified_caller(request, presented)


async def _verified_caller(request: Request, presented: str) -> Caller:
    if not presented:
        raise Problem(401, "unauthenticated", "Authentication required",
                      "Send the organization's API key as `Authorization: Bearer <key>` or `X-API-Key`.",
                      headers={"WWW-Authenticate": _REALM})
    authenticator: Authenticator | None = getattr(request.app.state, "authenticator", None)
    if authenticator is None:
        raise RuntimeError("no authenticator installed on this app; call install_authenticator(app, ...)")
    caller = await authenticator.verify(presented)
    if caller is None:
        # The key is never echoed or logged, not even a prefix.
        raise Problem(401, "invalid-api-key", "Invalid API key", "The API key is unknown or revoked.",
                      headers={"WWW-Authenticate": _REALM + ', error="invalid_token"'})
    request.state.caller = caller
    return caller


AuthenticatedCaller = Annotated[Caller, Depends(authenticate)]


def _with_scopes(caller: Caller, required: tuple[str, ...]) -> Caller:
    missing = [s for s in required if not caller.has_scope(s)]
    if missing:
        raise Problem(403, "insufficient-scope", "Insufficient scope",
                      f"This operation needs the scope(s): {', '.join(missing)}.",
                      headers={"WWW-Authenticate": f'{_REALM}, error="insufficient_scope", '
                                                   f'scope="{" ".join(required)}"'},
                      missing_scopes=missing)
    return caller


def require_scopes(*scopes: str) -> Callable[..., Any]:
    """FastAPI dependency factory: the Caller if its key has every scope, else a 403 naming the missing."""
    required = tuple(validate_scope(s) for s in scopes)

    async def dependency(caller: AuthenticatedCaller) -> Caller:
        return _with_scopes(caller, required)

    return dependency


def caller_requiring(*scopes: str) -> Callable[[Request], Awaitable[Caller]]:
    """What `Depends(require_scopes(...))` gives, as a plain function of the request, for a route too hot for
    FastAPI's dependency resolution (four nodes per request for the key, its two schemes and the scopes; a
    twentieth of a referral's intake). Same headers, checks and problems. The route documents its security
    with `API_KEY_SECURITY` in `openapi_extra`."""
    required = tuple(validate_scope(s) for s in scopes)

    async def caller_of(request: Request) -> Caller:
        presented = ""
        scheme, credentials = get_authorization_scheme_param(request.headers.get("Authorization"))
        if scheme.lower() == "bearer" and credentials:  # as HTTPBearer reads it
            presented = credentials.strip()
        else:
            presented = (request.headers.get(_api_key_header.model.name) or "").strip()
        return _with_scopes(await _verified_caller(request, presented), required)

    return caller_of


# The OpenAPI security requirement a route gets from `authenticate`: either scheme.
API_KEY_SECURITY: list[dict[str, list[str]]] = [{_bearer.scheme_name: []}, {_api_key_header.scheme_name: []}]


async def tenant_scope(caller: AuthenticatedCaller) -> TenantScope:
    """FastAPI dependency: the row filter of the authenticated caller."""
    return TenantScope(caller)


Tenant = Annotated[TenantScope, Depends(tenant_scope)]
