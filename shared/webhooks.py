"""Outgoing webhooks any service can emit: subscriptions, signed deliveries with retries, a log and re-send.

A service adds the tables to its own MetaData (`define_webhook_tables`), calls `enqueue_webhook(...)` in the
same transaction as the state change it reports (so a rolled-back change never notifies anyone), runs a
`WebhookBackground` part that delivers due rows, and mounts `webhook_router(...)` for organizations to manage
their subscriptions and read the delivery log.

Each attempt is an HTTP POST of the stored body with headers
`CalHub-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>`, `CalHub-Event-Id`,
`CalHub-Event-Type` and `CalHub-Delivery-Id`. Any 2xx is success; anything else (or no answer) is retried with
exponential backoff until `max_attempts`, then the delivery is `failed` and can be re-sent. Delivery is
at-least-once: a process that dies between the POST and recording the result sends again after the claim
expires, so receivers deduplicate on `CalHub-Event-Id`. Bodies carry ids and codes, never PHI.
"""

# No `from __future__ import annotations`: the routes below annotate with closure-local dependencies,
# which FastAPI must resolve when the function is defined.

import asyncio
import hashlib
import hmac
import json
import logging
import re
import secrets
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Protocol
from urllib.parse import urlsplit
from uuid import UUID

import httpx
from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    ColumnElement,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    Update,
    Uuid,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.auth import Caller, require_scopes
from shared.db import Binds, DriverConnection
from shared.ids import uuid7
from shared.polling import PollingLoop
from shared.problems import FieldError, Problem, problem_responses, validation_problem
from shared.runtime import Background, ServiceRuntime

log = logging.getLogger("calhub.webhooks")

SIGNATURE_HEADER = "CalHub-Signature"
EVENT_ID_HEADER = "CalHub-Event-Id"
EVENT_TYPE_HEADER = "CalHub-Event-Type"
DELIVERY_ID_HEADER = "CalHub-Delivery-Id"
USER_AGENT = "CalHub-Webhooks/1"
SIGNATURE_TOLERANCE_SECONDS = 300  # receivers should refuse older timestamps (replay protection)
MAX_URL_LENGTH = 2000
MAX_SUBSCRIPTIONS_PER_ORGANIZATION = 20
# ASCII digits only (str.isdigit() also accepts '²', which int() refuses), and few enough for int() (which
# refuses more than 4300): unix seconds have 10.
_TIMESTAMP = re.compile(r"[0-9]{1,15}")


class DeliveryStatus(StrEnum):
    """Values of `webhook_delivery.status`."""

    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


# ------------------------------------------------------------------------------------------ signatures

def signature_header(secret: str, timestamp: int, body: bytes) -> str:
    """The `CalHub-Signature` value for a body sent at `timestamp` (unix seconds)."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify_signature(secret: str, header: str, body: bytes, *, now: float | None = None,
                     tolerance: int = SIGNATURE_TOLERANCE_SECONDS) -> bool:
    """True when `header` signs `body` with `secret` and its timestamp is within `tolerance` seconds of now.

    For receivers (and tests): compares in constant time and accepts any of several `v1=` values (sent
    while a secret is being rotated). A malformed header is False, never an exception.
    """
    timestamp: int | None = None
    candidates: list[bytes] = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t" and _TIMESTAMP.fullmatch(value):
            timestamp = int(value)
        elif name == "v1":
            # Bytes: compare_digest raises on str with non-ASCII characters.
            candidates.append(value.encode(errors="replace"))
    if timestamp is None or not candidates:
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    expected = signature_header(secret, timestamp, body).split("v1=", 1)[1].encode()
    return any(hmac.compare_digest(expected, candidate) for candidate in candidates)


def new_secret() -> str:
    """A fresh signing secret (256 random bits)."""
    return "whsec_" + secrets.token_hex(32)


# ---------------------------------------------------------------------------------------------- tables

@dataclass(frozen=True)
class WebhookTables:
    """The webhook tables bound to one service's MetaData."""

    subscription: Table
    delivery: Table
    attempt: Table


def define_webhook_tables(metadata: MetaData) -> WebhookTables:
    """Add `webhook_subscription`, `webhook_delivery` and `webhook_attempt` to a service's MetaData (once)."""
    subscription = Table(
        "webhook_subscription",
        metadata,
        Column("id", String(40), primary_key=True),  # whs_<uuid7 hex>
        Column("organization_id", String(64), nullable=False, index=True),
        # Kind and code as the caller had them at registration: an MCP's deliveries follow its plan code.
        Column("organization_kind", String(8), nullable=False),
        Column("organization_code", String(50), nullable=True),
        Column("url", String(MAX_URL_LENGTH), nullable=False),
        # The HMAC key must be readable to sign; it is never returned after creation nor logged.
        Column("secret", String(100), nullable=False),
        Column("event_types", JSON, nullable=False),
        Column("description", String(200), nullable=True),
        Column("active", Boolean, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("disabled_at", DateTime(timezone=True), nullable=True),
    )
    delivery = Table(
        "webhook_delivery",
        metadata,
        Column("id", Uuid, primary_key=True),
        # No foreign keys, like the platform tables: rows are written only by this module, and a service's
        # schema must copy and migrate cleanly on SQLite and PostgreSQL alike.
        Column("subscription_id", String(40), nullable=False),
        Column("organization_id", String(64), nullable=False),
        Column("event_id", Uuid, nullable=False),
        Column("event_type", String(100), nullable=False),
        Column("subject", String(200), nullable=False),
        Column("body", LargeBinary, nullable=False),  # exactly the bytes signed and sent
        Column("status", String(20), nullable=False),
        Column("attempts", Integer, nullable=False),
        Column("next_attempt_at", DateTime(timezone=True), nullable=False),
        Column("last_status_code", Integer, nullable=True),
        Column("last_error", String(200), nullable=True),
        Column("resends", Integer, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("delivered_at", DateTime(timezone=True), nullable=True),
        # One delivery per event per subscription: a handler that runs twice does not notify twice.
        UniqueConstraint("subscription_id", "event_id"),
        Index(None, "status", "next_attempt_at"),
        Index(None, "organization_id", "created_at"),
    )
    attempt = Table(
        "webhook_attempt",
        metadata,
        Column("id", Uuid, primary_key=True),
        Column("delivery_id", Uuid, nullable=False, index=True),
        Column("attempted_at", DateTime(timezone=True), nullable=False),
        Column("status_code", Integer, nullable=True),
        Column("error", String(200), nullable=True),  # an error type, never a response body
        Column("duration_ms", Integer, nullable=False),
    )
    return WebhookTables(subscription=subscription, delivery=delivery, attempt=attempt)


def create_webhook_tables_v1(schema: str | None) -> None:
    """Alembic: create the webhook tables exactly as `define_webhook_tables` declares them (frozen v1).

    Call from a service migration with `shared.migrations.schema()`; later changes get their own function.
    """
    import sqlalchemy as sa
    from alembic import op

    op.create_table(
        "webhook_subscription",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("organization_id", sa.String(64), nullable=False),
        sa.Column("organization_kind", sa.String(8), nullable=False),
        sa.Column("organization_code", sa.String(50), nullable=True),
        sa.Column("url", sa.String(MAX_URL_LENGTH), nullable=False),
        sa.Column("secret", sa.String(100), nullable=False),
        sa.Column("event_types", sa.JSON, nullable=False),
        sa.Column("description", sa.String(200), nullable=True),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_webhook_subscription"),
        schema=schema,
    )
    op.create_index("ix_webhook_subscription_organization_id", "webhook_subscription", ["organization_id"],
                    schema=schema)
    op.create_table(
        "webhook_delivery",
        sa.Column("id", sa.Uuid, nullable=False),
        sa.Column("subscription_id", sa.String(40), nullable=False),
        sa.Column("organization_id", sa.String(64), nullable=False),
        sa.Column("event_id", sa.Uuid, nullable=False),
        sa.Column("event_type", sa.String(100), nullable=False),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("body", sa.LargeBinary, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_status_code", sa.Integer, nullable=True),
        sa.Column("last_error", sa.String(200), nullable=True),
        sa.Column("resends", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_webhook_delivery"),
        sa.UniqueConstraint("subscription_id", "event_id", name="uq_webhook_delivery_subscription_id_event_id"),
        schema=schema,
    )
    op.create_index("ix_webhook_delivery_status_next_attempt_at", "webhook_delivery",
                    ["status", "next_attempt_at"], schema=schema)
    op.create_index("ix_webhook_delivery_organization_id_created_at", "webhook_delivery",
                    ["organization_id", "created_at"], schema=schema)
    op.create_table(
        "webhook_attempt",
        sa.Column("id", sa.Uuid, nullable=False),
        sa.Column("delivery_id", sa.Uuid, nullable=False),
        sa.Column("attempted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status_code", sa.Integer, nullable=True),
        sa.Column("error", sa.String(200), nullable=True),
        sa.Column("duration_ms", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_webhook_attempt"),
        schema=schema,
    )
    op.create_index("ix_webhook_attempt_delivery_id", "webhook_attempt", ["delivery_id"], schema=schema)


# -------------------------------------------------------------------------------------------- enqueue

@dataclass(frozen=True)
class Audience:
    """Who may hear about a record: the organizations and MCP plan codes that may see it (the hub always)."""

    organization_ids: frozenset[str] = frozenset()
    mcp_codes: frozenset[str] = frozenset()

    @classmethod
    def of(cls, organization_ids: Collection[str | None] = (), mcp_codes: Collection[str | None] = ()) -> "Audience":
        """An audience from possibly missing ids and codes (None entries are dropped)."""
        return cls(frozenset(i for i in organization_ids if i), frozenset(c for c in mcp_codes if c))

    def includes(self, kind: str, organization_id: str, code: str | None) -> bool:
        """True if a subscriber of this kind, id and code may receive the event."""
        if kind == "hub":
            return True
        if organization_id in self.organization_ids:
            return True
        return kind == "mcp" and code is not None and code in self.mcp_codes


def _aware(moment: datetime) -> datetime:
    # SQLite returns timezone-aware columns naive; everything written here is UTC.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def webhook_body(*, event_id: UUID, event_type: str, occurred_at: datetime, data: Mapping[str, Any]) -> bytes:
    """The JSON body of a webhook: event id, type, time and the (PHI-free) data."""
    document = {"id": str(event_id), "type": event_type, "created_at": _aware(occurred_at).isoformat(),
                "data": dict(data)}
    return json.dumps(document, separators=(",", ":"), default=str).encode()


async def enqueue_webhook(session: AsyncSession, tables: WebhookTables, *, event_id: UUID, event_type: str,
                          subject: str, data: Mapping[str, Any], audience: Audience,
                          occurred_at: datetime) -> int:
    """Queue one delivery per active subscription that wants `event_type` and may see the record.

    Runs in the caller's transaction (the edge commits). Idempotent per (subscription, event id). Returns how
    many deliveries were queued. `data` must carry ids and codes only: it leaves CalHub.
    """
    sub = tables.subscription
    rows = (await session.execute(
        select(sub.c.id, sub.c.organization_id, sub.c.organization_kind, sub.c.organization_code,
               sub.c.event_types).where(sub.c.active.is_(True)))).all()
    wanted = [r for r in rows if event_type in (r.event_types or [])
              and audience.includes(r.organization_kind, r.organization_id, r.organization_code)]
    if not wanted:
        return 0
    existing = set((await session.execute(
        select(tables.delivery.c.subscription_id)
        .where(tables.delivery.c.event_id == event_id))).scalars())
    body = webhook_body(event_id=event_id, event_type=event_type, occurred_at=occurred_at, data=data)
    now = datetime.now(UTC)
    values = [{
        "id": uuid7(), "subscription_id": r.id, "organization_id": r.organization_id, "event_id": event_id,
        "event_type": event_type, "subject": subject, "body": body, "status": DeliveryStatus.PENDING.value,
        "attempts": 0, "next_attempt_at": now, "last_status_code": None, "last_error": None, "resends": 0,
        "created_at": now, "delivered_at": None,
    } for r in wanted if r.id not in existing]
    if values:
        await session.execute(insert(tables.delivery), values)
    return len(values)


@dataclass(frozen=True)
class WebhookNotice:
    """An event to notify subscribers of, staged by a unit of work and queued when it writes (`enqueue_notice`,
    or `fan_out_sql` inside a one-statement write)."""

    event_id: UUID
    event_type: str
    subject: str
    data: Mapping[str, Any]
    audience: Audience
    occurred_at: datetime


async def enqueue_notice(session: AsyncSession, tables: WebhookTables, notice: WebhookNotice) -> int:
    """`enqueue_webhook` for a staged notice; returns how many deliveries were queued."""
    return await enqueue_webhook(session, tables, event_id=notice.event_id, event_type=notice.event_type,
                                 subject=notice.subject, data=notice.data, audience=notice.audience,
                                 occurred_at=notice.occurred_at)


# A UUIDv7 made by PostgreSQL (15 has no uuidv7()): a random UUID whose first 48 bits become the Unix time in
# milliseconds and whose version nibble becomes 7 (bits 52-53 set; 54 is already set in version 4), so
# deliveries queued in SQL sort by time among those queued by `uuid7()` (the delivery log pages by id).
_UUID7_SQL = ("encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid()) placing "
              "substring(int8send((extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3) FROM 1 FOR 6), "
              "52, 1), 53, 1), 'hex')::uuid")


def fan_out_sql(connection: DriverConnection, tables: WebhookTables, notice: WebhookNotice, binds: Binds, *,
                source: str) -> str:
    """PostgreSQL: the INSERT ... SELECT that queues `notice` for every active subscription that wants its type
    and may see the record (`Audience.includes` in SQL), once per row of CTE `source`; RETURNING the ids.

    For a statement that writes a change, its events and its deliveries at once, in place of `enqueue_webhook`
    (the subscriptions are read by that same statement).
    """
    delivery, subscription = connection.name_of(tables.delivery), connection.name_of(tables.subscription)
    body = webhook_body(event_id=notice.event_id, event_type=notice.event_type, occurred_at=notice.occurred_at,
                        data=notice.data)
    now = binds(datetime.now(UTC), "timestamptz")
    event_type = binds(notice.event_type, "text")
    return (
        f"INSERT INTO {delivery} (id, subscription_id, organization_id, event_id, event_type, subject, body, "  # noqa: S608 - names from the Tables, values are parameters
        "status, attempts, next_attempt_at, last_status_code, last_error, resends, created_at, delivered_at) "
        f"SELECT {_UUID7_SQL}, s.id, s.organization_id, {binds(notice.event_id, 'uuid')}, {event_type}, "
        f"{binds(notice.subject, 'text')}, {binds(body, 'bytea')}, '{DeliveryStatus.PENDING.value}', 0, {now}, "
        f"NULL, NULL, 0, {now}, NULL FROM {source}, {subscription} AS s "
        f"WHERE s.active AND s.event_types::jsonb ? {event_type} AND (s.organization_kind = 'hub' "
        f"OR s.organization_id = ANY({binds(sorted(notice.audience.organization_ids), 'text[]')}) "
        f"OR (s.organization_kind = 'mcp' AND s.organization_code = ANY("
        f"{binds(sorted(notice.audience.mcp_codes), 'text[]')}))) "
        "ON CONFLICT (subscription_id, event_id) DO NOTHING RETURNING id")


# ------------------------------------------------------------------------------------------- delivery

class WebhookSender(Protocol):
    """The port that performs one HTTP POST; returns the status code or raises on a transport failure."""

    async def post(self, url: str, body: bytes, headers: Mapping[str, str], timeout_seconds: float) -> int:
        """POST `body` to `url`; the response status, or an exception if there was no answer."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


class HttpxWebhookSender:
    """The production sender: one pooled httpx client, no redirects followed (a redirect is a failure)."""

    def __init__(self, client: httpx.AsyncClient | None = None) -> None:
        self._client = client
        self._owned = client is None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(follow_redirects=False,
                                             limits=httpx.Limits(max_connections=50, max_keepalive_connections=20))
        return self._client

    async def post(self, url: str, body: bytes, headers: Mapping[str, str], timeout_seconds: float) -> int:
        """POST and return the status; the response body is read and discarded (it may be large or PHI)."""
        response = await self._http().post(url, content=body, headers=dict(headers),
                                           timeout=timeout_seconds)
        return response.status_code

    async def close(self) -> None:
        """Close the client if this sender created it."""
        if self._owned and self._client is not None:
            await self._client.aclose()
            self._client = None


_RECORD_ALLOWANCE = timedelta(seconds=5)


@dataclass(frozen=True)
class WebhookPolicy:
    """How deliveries are retried and which URLs are accepted."""

    max_attempts: int = 12
    initial_backoff: timedelta = timedelta(seconds=30)
    max_backoff: timedelta = timedelta(hours=6)
    timeout_seconds: float = 10.0
    claim_timeout: timedelta = timedelta(minutes=2)
    batch_size: int = 50
    concurrency: int = 10
    poll_interval: float = 1.0
    allow_http: bool = False  # plain http:// only for tests and the embedded demo

    def backoff(self, attempts: int) -> timedelta:
        """Wait after the given number of failed attempts: doubling from `initial_backoff`, capped."""
        seconds = self.initial_backoff.total_seconds() * (2 ** max(0, attempts - 1))
        return min(self.max_backoff, timedelta(seconds=seconds))

    def _round(self) -> timedelta:
        # The longest one attempt can hold a slot (the deliverer bounds it to twice the HTTP timeout), plus
        # recording its result.
        return timedelta(seconds=self.timeout_seconds * 2) + _RECORD_ALLOWANCE

    def claim_size(self) -> int:
        """How many deliveries one claim takes: no more than `concurrency` slots can send before the claim
        expires, so another instance never claims (and sends) a row this one still holds. At least one round."""
        rounds = max(1, self.claim_timeout // self._round())
        return max(1, min(self.batch_size, rounds * self.concurrency))

    def claim_hold(self) -> timedelta:
        """How long a claim holds its rows: `claim_timeout`, or one round of attempts if that is longer."""
        return max(self.claim_timeout, self._round())


class Clock(Protocol):
    """Where the deliverer reads the time."""

    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...


class _SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


@dataclass(frozen=True)
class _Claimed:
    id: UUID
    subscription_id: str
    url: str
    secret: str
    body: bytes
    event_id: UUID
    event_type: str
    attempts: int


def _error_name(error: BaseException) -> str:
    # The type only: messages of HTTP errors can quote URLs with tokens, and bodies may hold anything.
    return type(error).__qualname__[:200]


def _fail_pending(tables: WebhookTables, which: ColumnElement[bool]) -> Update:
    """The statement failing the pending deliveries `which` selects: their subscription no longer takes any."""
    d = tables.delivery
    return (update(d).where(d.c.status == DeliveryStatus.PENDING.value, which)
            .values(status=DeliveryStatus.FAILED.value, last_error="subscription_disabled"))


async def disable_subscription(session: AsyncSession, tables: WebhookTables, subscription_id: str,
                               at: datetime) -> None:
    """Deactivate a subscription and fail its pending deliveries, in the session's transaction: nothing more is
    sent to it (DELETE by its organization, or a receiver answering 410)."""
    sub = tables.subscription
    await session.execute(update(sub).where(sub.c.id == subscription_id).values(active=False, disabled_at=at))
    await session.execute(_fail_pending(tables, tables.delivery.c.subscription_id == subscription_id))


class WebhookDeliverer:
    """Claims due deliveries, POSTs them signed, records each attempt and schedules retries."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], tables: WebhookTables, sender: WebhookSender,
                 policy: WebhookPolicy | None = None, clock: Clock | None = None) -> None:
        self.sessions = sessions
        self.tables = tables
        self.sender = sender
        self.policy = policy or WebhookPolicy()
        self.clock: Clock = clock or _SystemClock()
        self._loop = PollingLoop(self._pass, name="webhook-deliverer", interval=self.policy.poll_interval,
                                 backoff_base=self.policy.poll_interval, max_backoff=30.0)

    async def deliver_due(self) -> int:
        """Send every delivery due now, batch by batch; returns how many attempts were made."""
        total = 0
        semaphore = asyncio.Semaphore(self.policy.concurrency)
        size = self.policy.claim_size()
        gone: set[str] = set()  # subscriptions a receiver answered 410 for during this pass

        async def one(item: _Claimed) -> int:
            async with semaphore:
                if item.subscription_id in gone:
                    return 0  # claimed before the 410; failed with the subscription's other deliveries
                if await self._attempt(item):
                    gone.add(item.subscription_id)
                return 1

        while True:
            claimed = await self._claim(size)
            if not claimed:
                return total

            total += sum(await asyncio.gather(*(one(item) for item in claimed)))
            if len(claimed) < size:
                return total

    async def fail_deliveries_of_disabled_subscriptions(self) -> int:
        """Mark failed the pending deliveries of subscriptions no longer active; returns how many.

        Disabling a subscription fails its pending deliveries in the same transaction, but rows left pending by
        earlier versions (and a delivery queued while its subscription was being disabled) would otherwise wait
        in the backlog for ever: they are never claimed."""
        s = self.tables.subscription
        disabled = select(s.c.id).where(s.c.active.is_(False))
        async with self.sessions() as session, session.begin():
            result = await session.execute(_fail_pending(self.tables,
                                                         self.tables.delivery.c.subscription_id.in_(disabled)))
        return int(getattr(result, "rowcount", 0) or 0)

    async def _claim(self, size: int) -> list[_Claimed]:
        """Take up to `size` due rows of active subscriptions and push their next attempt past the claim, so no
        other instance sends them (`WebhookPolicy.claim_size` keeps the batch sendable within it)."""
        d, s = self.tables.delivery, self.tables.subscription
        now = self.clock.now()
        async with self.sessions() as session, session.begin():
            query = (select(d.c.id, d.c.subscription_id, d.c.body, d.c.event_id, d.c.event_type, d.c.attempts,
                            s.c.url, s.c.secret)
                     .join(s, s.c.id == d.c.subscription_id)
                     .where(d.c.status == DeliveryStatus.PENDING.value, d.c.next_attempt_at <= now,
                            s.c.active.is_(True))
                     .order_by(d.c.next_attempt_at).limit(size))
            if session.get_bind().dialect.name == "postgresql":
                query = query.with_for_update(of=d, skip_locked=True)
            rows = (await session.execute(query)).all()
            if rows:
                await session.execute(update(d).where(d.c.id.in_([r.id for r in rows]))
                                      .values(next_attempt_at=now + self.policy.claim_hold()))
        return [_Claimed(id=r.id, subscription_id=r.subscription_id, url=r.url, secret=r.secret,
                         body=bytes(r.body), event_id=r.event_id, event_type=r.event_type, attempts=r.attempts)
                for r in rows]

    async def _attempt(self, item: _Claimed) -> bool:
        """POST one claimed delivery and record the result; True if the receiver said the endpoint is gone."""
        sent_at = int(self.clock.now().timestamp())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            SIGNATURE_HEADER: signature_header(item.secret, sent_at, item.body),
            EVENT_ID_HEADER: str(item.event_id),
            EVENT_TYPE_HEADER: item.event_type,
            DELIVERY_ID_HEADER: str(item.id),
        }
        started = time.monotonic()
        status: int | None = None
        error: str | None = None
        try:
            # httpx times each phase; this bounds the whole attempt so a trickling receiver cannot hold a slot.
            async with asyncio.timeout(self.policy.timeout_seconds * 2):
                status = await self.sender.post(item.url, item.body, headers, self.policy.timeout_seconds)
        except Exception as exc:  # noqa: BLE001 - any transport failure is a failed attempt, retried
            error = _error_name(exc)
        duration_ms = int((time.monotonic() - started) * 1000)
        return await self._record(item, status, error, duration_ms)

    async def _record(self, item: _Claimed, status: int | None, error: str | None, duration_ms: int) -> bool:
        d = self.tables.delivery
        now = self.clock.now()
        attempts = item.attempts + 1
        ok = status is not None and 200 <= status < 300
        gone = status == 410  # the receiver says the endpoint is gone for good: stop sending to it
        if ok:
            values: dict[str, Any] = {"status": DeliveryStatus.DELIVERED.value, "delivered_at": now}
        elif gone or attempts >= self.policy.max_attempts:
            values = {"status": DeliveryStatus.FAILED.value}
        else:
            values = {"next_attempt_at": now + self.policy.backoff(attempts)}
        if not ok and error is None:
            error = f"http_{status}"
        async with self.sessions() as session, session.begin():
            await session.execute(insert(self.tables.attempt).values(
                id=uuid7(), delivery_id=item.id, attempted_at=now, status_code=status, error=error,
                duration_ms=duration_ms))
            await session.execute(update(d).where(d.c.id == item.id).values(
                attempts=attempts, last_status_code=status, last_error=error, **values))
            if gone:  # as deleting the subscription does
                await disable_subscription(session, self.tables, item.subscription_id, now)
        log.info("webhook attempt", extra={"delivery_id": str(item.id), "status_code": status,
                                           "error_type": error, "attempt_count": attempts, "duration_ms": duration_ms})
        return gone

    async def backlog(self) -> dict[str, int]:
        """Pending and failed delivery counts (readiness and ops)."""
        d = self.tables.delivery
        async with self.sessions() as session:
            rows = (await session.execute(
                select(d.c.status, func.count()).where(d.c.status != DeliveryStatus.DELIVERED.value)
                .group_by(d.c.status))).all()
        counts = {str(status): int(count) for status, count in rows}
        return {"webhooks_pending": counts.get("pending", 0), "webhooks_failed": counts.get("failed", 0)}

    def notify(self) -> None:
        """Deliver now rather than at the next poll (called after a commit that queued a delivery)."""
        self._loop.notify()

    async def _pass(self) -> bool:
        await self.deliver_due()
        return False

    def start(self) -> None:
        """Run the loop in a background task."""
        self._loop.start()

    async def stop(self) -> None:
        """Stop the loop; a claimed row whose result was not recorded is sent again after the claim expires."""
        await self._loop.stop()
        await self.sender.close()


class WebhookBackground(Background):
    """The deliverer as a background part of a service."""

    def __init__(self, deliverer: WebhookDeliverer) -> None:
        self.deliverer = deliverer

    async def start(self) -> None:
        """Close what disabled subscriptions left pending, then start delivering."""
        await self.deliverer.fail_deliveries_of_disabled_subscriptions()
        self.deliverer.start()

    async def stop(self) -> None:
        """Stop delivering and close the HTTP client."""
        await self.deliverer.stop()

    async def ready(self) -> dict[str, Any]:
        """Backlog counts (never raises for a backlog: failed deliveries are an ops matter, not readiness)."""
        return dict(await self.deliverer.backlog())


def webhook_background(tables: WebhookTables, policy_of: Callable[[ServiceRuntime], WebhookPolicy],
                       sender_of: Callable[[ServiceRuntime], WebhookSender] | None = None,
                       ) -> Callable[[ServiceRuntime], Background]:
    """A `ServiceDefinition.background` entry: a deliverer on the runtime's sessions (kept in runtime.state)."""

    def make(runtime: ServiceRuntime) -> Background:
        sender = sender_of(runtime) if sender_of is not None else HttpxWebhookSender()
        deliverer = WebhookDeliverer(runtime.sessions, tables, sender, policy_of(runtime))
        runtime.state["webhooks"] = deliverer
        return WebhookBackground(deliverer)

    return make


def wake_deliverer(runtime: ServiceRuntime) -> None:
    """Wake the runtime's webhook deliverer, if it runs (call after committing queued deliveries)."""
    deliverer = runtime.state.get("webhooks")
    if isinstance(deliverer, WebhookDeliverer):
        deliverer.notify()


# --------------------------------------------------------------------------------------- management API

def check_url(url: str, *, allow_http: bool) -> list[FieldError]:
    """Why a callback URL is refused (empty list: acceptable). https only unless `allow_http`."""
    errors: list[FieldError] = []
    if len(url) > MAX_URL_LENGTH:
        return [FieldError(field="url", rule="max_length", message=f"At most {MAX_URL_LENGTH} characters.")]
    parts = urlsplit(url)
    schemes = ("https", "http") if allow_http else ("https",)
    if parts.scheme not in schemes:
        errors.append(FieldError(field="url", rule="https_required",
                                 message="Callback URLs must use https://."))
    if not parts.hostname:
        errors.append(FieldError(field="url", rule="host_required", message="The URL needs a host name."))
    if parts.username or parts.password:
        errors.append(FieldError(field="url", rule="no_credentials",
                                 message="Put no credentials in the URL; verify the signature instead."))
    if parts.fragment:
        errors.append(FieldError(field="url", rule="no_fragment", message="A callback URL has no #fragment."))
    return errors


class SubscriptionIn(BaseModel):
    """A callback registration."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1, max_length=MAX_URL_LENGTH, examples=["https://ehr.example.org/calhub/hooks"])
    event_types: list[str] | None = Field(default=None, description="Event types to receive; all when omitted.")
    description: str | None = Field(default=None, max_length=200)


class SubscriptionOut(BaseModel):
    """A subscription as its owner sees it (the secret only in the creation response)."""

    id: str
    organization_id: str
    url: str
    event_types: list[str]
    description: str | None
    active: bool
    created_at: datetime
    disabled_at: datetime | None = None
    secret: str | None = Field(default=None, description="Signing secret; returned once, at creation.")


class DeliveryOut(BaseModel):
    """One delivery in the log."""

    id: UUID
    subscription_id: str
    event_id: UUID
    event_type: str
    subject: str
    status: DeliveryStatus
    attempts: int
    resends: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None


class AttemptOut(BaseModel):
    """One HTTP attempt of a delivery."""

    attempted_at: datetime
    status_code: int | None
    error: str | None
    duration_ms: int


class DeliveryDetail(DeliveryOut):
    """A delivery with its attempts, oldest first."""

    attempt_log: list[AttemptOut]


class DeliveryPage(BaseModel):
    """A page of the delivery log, newest first."""

    items: list[DeliveryOut]
    next_cursor: str | None


def _owned_by(caller: Caller, column: Any) -> Any:
    """The hub sees every organization's webhooks; anyone else only its own."""
    return None if caller.is_hub else column == caller.organization_id


def _subscription_out(row: Any, secret: str | None = None) -> SubscriptionOut:
    return SubscriptionOut(id=row.id, organization_id=row.organization_id, url=row.url,
                           event_types=list(row.event_types), description=row.description, active=row.active,
                           created_at=_aware(row.created_at),
                           disabled_at=_aware(row.disabled_at) if row.disabled_at else None, secret=secret)


def _delivery_out(row: Any) -> DeliveryOut:
    return DeliveryOut(id=row.id, subscription_id=row.subscription_id, event_id=row.event_id,
                       event_type=row.event_type, subject=row.subject, status=DeliveryStatus(row.status),
                       attempts=row.attempts, resends=row.resends,
                       next_attempt_at=_aware(row.next_attempt_at) if row.status == "pending" else None,
                       last_status_code=row.last_status_code, last_error=row.last_error,
                       created_at=_aware(row.created_at),
                       delivered_at=_aware(row.delivered_at) if row.delivered_at else None)


def _not_found(what: str) -> Problem:
    return Problem(404, f"webhook-{what}-not-found", f"Webhook {what} not found")


def webhook_router(*, service: str, tables: WebhookTables, event_types: Sequence[str],
                   policy_of: Callable[[ServiceRuntime], WebhookPolicy]) -> APIRouter:
    """Routes under `/v1/webhooks/<service>`: subscriptions (create, list, delete, rotate secret), the delivery
    log and re-send. `<service>:write` manages, `<service>:read` reads; each organization sees its own."""
    router = APIRouter(prefix=f"/v1/webhooks/{service}", tags=["webhooks"])
    read = Depends(require_scopes(f"{service}:read"))
    write = Depends(require_scopes(f"{service}:write"))
    known_types = tuple(event_types)

    def runtime(request: Request) -> ServiceRuntime:
        found: ServiceRuntime = request.app.state.runtimes[service]
        return found

    @router.post("/subscriptions", status_code=201, response_model=SubscriptionOut,
                 summary="Register a callback URL", responses=problem_responses(401, 403, 409, 422))
    async def create_subscription(body: SubscriptionIn, request: Request,
                                  caller: Annotated[Caller, write]) -> SubscriptionOut:
        """Register an HTTPS URL for the given event types; the answer carries the signing secret, once."""
        rt = runtime(request)
        policy = policy_of(rt)
        errors = check_url(body.url, allow_http=policy.allow_http)
        wanted = list(dict.fromkeys(body.event_types)) if body.event_types else list(known_types)
        for index, name in enumerate(wanted):
            if name not in known_types:
                errors.append(FieldError(field=f"event_types[{index}]", rule="enum",
                                         message=f"Must be one of: {', '.join(known_types)}."))
        if errors:
            raise validation_problem(errors)
        sub = tables.subscription
        secret = new_secret()
        now = datetime.now(UTC)
        async with rt.sessions() as session, session.begin():
            count = await session.scalar(select(func.count()).select_from(sub).where(
                sub.c.organization_id == caller.organization_id, sub.c.active.is_(True)))
            if int(count or 0) >= MAX_SUBSCRIPTIONS_PER_ORGANIZATION:
                raise Problem(409, "webhook-subscription-limit", "Too many webhook subscriptions",
                              f"An organization may keep {MAX_SUBSCRIPTIONS_PER_ORGANIZATION} active subscriptions.")
            values = {"id": f"whs_{uuid7().hex}", "organization_id": caller.organization_id,
                      "organization_kind": caller.organization_kind, "organization_code": caller.organization_code,
                      "url": body.url, "secret": secret, "event_types": wanted, "description": body.description,
                      "active": True, "created_at": now, "disabled_at": None}
            await session.execute(insert(sub).values(**values))
        log.info("webhook subscription created", extra={"subscription_id": values["id"],
                                                        "organization_id": caller.organization_id})
        return _subscription_out(_Row(values), secret=secret)

    @router.get("/subscriptions", response_model=list[SubscriptionOut], summary="List callback URLs",
                responses=problem_responses(401, 403))
    async def list_subscriptions(request: Request, caller: Annotated[Caller, read]) -> list[SubscriptionOut]:
        """The caller's subscriptions (every organization's for the hub), newest first."""
        rt = runtime(request)
        sub = tables.subscription
        query = select(sub).order_by(sub.c.created_at.desc(), sub.c.id.desc())
        condition = _owned_by(caller, sub.c.organization_id)
        if condition is not None:
            query = query.where(condition)
        async with rt.sessions() as session:
            rows = (await session.execute(query)).all()
        return [_subscription_out(r) for r in rows]

    async def _load_subscription(session: AsyncSession, caller: Caller, subscription_id: str) -> Any:
        sub = tables.subscription
        query = select(sub).where(sub.c.id == subscription_id)
        condition = _owned_by(caller, sub.c.organization_id)
        if condition is not None:
            query = query.where(condition)
        row = (await session.execute(query)).first()
        if row is None:
            raise _not_found("subscription")
        return row

    @router.delete("/subscriptions/{subscription_id}", status_code=204, summary="Stop a subscription",
                   responses=problem_responses(401, 403, 404))
    async def delete_subscription(subscription_id: str, request: Request,
                                  caller: Annotated[Caller, write]) -> None:
        """Deactivate a subscription; its delivery log is kept and pending deliveries are not sent."""
        rt = runtime(request)
        async with rt.sessions() as session, session.begin():
            await _load_subscription(session, caller, subscription_id)
            await disable_subscription(session, tables, subscription_id, datetime.now(UTC))

    @router.post("/subscriptions/{subscription_id}/rotate-secret", response_model=SubscriptionOut,
                 summary="Replace the signing secret", responses=problem_responses(401, 403, 404))
    async def rotate_secret(subscription_id: str, request: Request,
                            caller: Annotated[Caller, write]) -> SubscriptionOut:
        """Issue a new signing secret (returned once); later attempts are signed with it."""
        rt = runtime(request)
        sub = tables.subscription
        secret = new_secret()
        async with rt.sessions() as session, session.begin():
            await _load_subscription(session, caller, subscription_id)
            await session.execute(update(sub).where(sub.c.id == subscription_id).values(secret=secret))
            row = await _load_subscription(session, caller, subscription_id)
        return _subscription_out(row, secret=secret)

    @router.get("/deliveries", response_model=DeliveryPage, summary="The delivery log",
                responses=problem_responses(401, 403, 422))
    async def list_deliveries(
        request: Request, caller: Annotated[Caller, read],
        status: Annotated[DeliveryStatus | None, Query(description="Only deliveries in this status.")] = None,
        subscription_id: Annotated[str | None, Query(max_length=40)] = None,
        subject: Annotated[str | None, Query(max_length=200, description="e.g. a referral id")] = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
        cursor: Annotated[str | None, Query(max_length=64, description="next_cursor of the previous page")] = None,
    ) -> DeliveryPage:
        """Deliveries of the caller's subscriptions, newest first, with cursor paging."""
        rt = runtime(request)
        d = tables.delivery
        query = select(d).order_by(d.c.id.desc()).limit(limit + 1)
        condition = _owned_by(caller, d.c.organization_id)
        if condition is not None:
            query = query.where(condition)
        if status is not None:
            query = query.where(d.c.status == status.value)
        if subscription_id is not None:
            query = query.where(d.c.subscription_id == subscription_id)
        if subject is not None:
            query = query.where(d.c.subject == subject)
        if cursor is not None:
            try:
                query = query.where(d.c.id < UUID(cursor))
            except ValueError:
                raise validation_problem([FieldError(field="query.cursor", rule="cursor",
                                                     message="Not a cursor from this log.")]) from None
        async with rt.sessions() as session:
            rows = (await session.execute(query)).all()
        more = len(rows) > limit
        rows = rows[:limit]
        return DeliveryPage(items=[_delivery_out(r) for r in rows],
                            next_cursor=str(rows[-1].id) if more and rows else None)

    async def _load_delivery(session: AsyncSession, caller: Caller, delivery_id: UUID) -> Any:
        d = tables.delivery
        query = select(d).where(d.c.id == delivery_id)
        condition = _owned_by(caller, d.c.organization_id)
        if condition is not None:
            query = query.where(condition)
        row = (await session.execute(query)).first()
        if row is None:
            raise _not_found("delivery")
        return row

    @router.get("/deliveries/{delivery_id}", response_model=DeliveryDetail, summary="One delivery and its attempts",
                responses=problem_responses(401, 403, 404))
    async def get_delivery(delivery_id: UUID, request: Request, caller: Annotated[Caller, read]) -> DeliveryDetail:
        """A delivery with every attempt (time, HTTP status or error type, duration)."""
        rt = runtime(request)
        a = tables.attempt
        async with rt.sessions() as session:
            row = await _load_delivery(session, caller, delivery_id)
            attempts = (await session.execute(select(a).where(a.c.delivery_id == delivery_id)
                                              .order_by(a.c.attempted_at, a.c.id))).all()
        base = _delivery_out(row)
        return DeliveryDetail(**base.model_dump(), attempt_log=[
            AttemptOut(attempted_at=_aware(x.attempted_at), status_code=x.status_code, error=x.error,
                       duration_ms=x.duration_ms) for x in attempts])

    @router.post("/deliveries/{delivery_id}/resend", response_model=DeliveryOut, status_code=202,
                 summary="Send a delivery again", responses=problem_responses(401, 403, 404, 409))
    async def resend(delivery_id: UUID, request: Request, caller: Annotated[Caller, write]) -> DeliveryOut:
        """Queue the same body (same event id) for another round of attempts, now; the log keeps the old ones."""
        rt = runtime(request)
        d, sub = tables.delivery, tables.subscription
        async with rt.sessions() as session, session.begin():
            row = await _load_delivery(session, caller, delivery_id)
            active = await session.scalar(select(sub.c.active).where(sub.c.id == row.subscription_id))
            if not active:
                raise Problem(409, "webhook-subscription-inactive", "Subscription is not active",
                              "Re-sending needs an active subscription; register the URL again.")
            await session.execute(update(d).where(d.c.id == delivery_id).values(
                status=DeliveryStatus.PENDING.value, attempts=0, next_attempt_at=datetime.now(UTC),
                resends=d.c.resends + 1, delivered_at=None))
            row = await _load_delivery(session, caller, delivery_id)
        wake_deliverer(rt)
        return _delivery_out(row)

    return router


class _Row:
    """Attribute access over a dict of column values (a just-inserted row)."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        self.__dict__.update(values)


__all__ = [
    "DELIVERY_ID_HEADER",
    "EVENT_ID_HEADER",
    "EVENT_TYPE_HEADER",
    "SIGNATURE_HEADER",
    "Audience",
    "DeliveryStatus",
    "HttpxWebhookSender",
    "WebhookBackground",
    "WebhookDeliverer",
    "WebhookNotice",
    "WebhookPolicy",
    "WebhookSender",
    "WebhookTables",
    "check_url",
    "create_webhook_tables_v1",
    "define_webhook_tables",
    "enqueue_notice",
    "enqueue_webhook",
    "fan_out_sql",
    "signature_header",
    "verify_signature",
    "wake_deliverer",
    "webhook_background",
    "webhook_body",
    "webhook_router",
]
