"""AuthStore, the audit trail and Idempotency-Key against real PostgreSQL (throwaway schemas)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import Column, MetaData, String, Table, func, insert, select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.auth import (
    AUTH_SCHEMA,
    AuthStore,
    Caller,
    api_key_table,
    audit_event_table,
    create_auth_schema,
)
from shared.db import create_engine, session_factory
from shared.idempotency import idempotent, request_hash
from shared.problems import Problem
from shared.testing.database import ServiceDatabase, service_database
from shared.testing.polling import eventually

pytestmark = pytest.mark.integration

CBO = Caller(organization_id="org_cbo1", organization_kind="cbo", organization_code=None, key_id="k1",
             scopes=frozenset({"referrals:write"}))
TABLES: dict[str, Table] = {}


@pytest.fixture
async def auth_engine(postgres_url: str) -> AsyncIterator[AsyncEngine]:
    """The auth tables in a schema of their own, via the same translate map a deployment could use."""
    schema = f"t_auth_{uuid.uuid4().hex[:10]}"
    engine = create_engine(postgres_url, schema=None)
    engine = engine.execution_options(schema_translate_map={AUTH_SCHEMA: schema})
    await create_auth_schema(engine)
    try:
        yield engine
    finally:
        async with engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        await engine.dispose()


async def test_keys_are_issued_verified_and_revoked(auth_engine: AsyncEngine) -> None:
    store = AuthStore(session_factory(auth_engine))
    org = await store.create_organization("mcp", "Health Plan of San Joaquin", code="HPSJ")
    key_id, plaintext = await store.create_api_key(org.id, ["authorizations:write"])
    caller = await store.verify(plaintext)
    assert caller is not None and caller.organization_code == "HPSJ"
    assert caller.has_scope("authorizations:read")
    tampered = plaintext[:-1] + ("0" if plaintext[-1] != "0" else "1")
    assert await store.verify(tampered) is None
    # A second process (fresh cache) sees the revocation straight from the database.
    await store.revoke_key(key_id)
    assert await AuthStore(session_factory(auth_engine)).verify(plaintext) is None
    async with session_factory(auth_engine)() as session:
        stored = (await session.execute(select(api_key_table.c.hashed_secret))).scalar_one()
    assert plaintext.rsplit("_", 1)[1] not in stored  # only the hash is kept
    with pytest.raises(ValueError, match="code already in use"):
        await store.create_organization("mcp", "Another", code="HPSJ")


async def test_the_audit_trail_is_append_only(auth_engine: AsyncEngine) -> None:
    store = AuthStore(session_factory(auth_engine))
    await store.create_organization("cbo", "Fresno Community Care")
    async with session_factory(auth_engine)() as session:
        with pytest.raises(DBAPIError, match="append-only"):
            await session.execute(update(audit_event_table).values(action="tampered"))
        await session.rollback()
        with pytest.raises(DBAPIError, match="append-only"):
            await session.execute(audit_event_table.delete())
        await session.rollback()
        assert (await session.execute(select(func.count()).select_from(audit_event_table))).scalar_one() == 1


# ------------------------------------------------------------------------------------------- idempotency

def add_referral_table(metadata: MetaData) -> None:
    TABLES["referral"] = Table("referral", metadata, Column("id", String, primary_key=True))


@pytest.fixture
async def db(postgres_url: str) -> AsyncIterator[ServiceDatabase]:
    async with service_database(postgres_url, extend=add_referral_table) as database:
        yield database


async def submit(db: ServiceDatabase, body: bytes, referral_id: str, *, pause: asyncio.Event | None = None,
                 entered: asyncio.Event | None = None, roll_back: bool = False) -> Any:
    async with db.sessions() as session:

        async def produce() -> tuple[int, dict[str, str]]:
            await session.execute(insert(TABLES["referral"]).values(id=referral_id))
            if entered is not None:
                entered.set()
            if pause is not None:
                await pause.wait()
            return 201, {"referral_id": referral_id}

        fingerprint = request_hash("POST", "/v1/referrals", body)
        result = await idempotent(session, db.tables, CBO, "key-1", fingerprint, produce)
        if roll_back:
            await session.rollback()
        else:
            await session.commit()
        return result


async def count(db: ServiceDatabase) -> int:
    async with db.sessions() as session:
        return int((await session.execute(select(func.count()).select_from(TABLES["referral"]))).scalar_one())


async def test_replay_and_mismatch(db: ServiceDatabase) -> None:
    first = await submit(db, b'{"a": 1}', "ref_1")
    again = await submit(db, b'{"a":1}', "ref_2")
    assert again.replayed and again.body == first.body and again.status_code == 201
    with pytest.raises(Problem) as refused:
        await submit(db, b'{"a": 2}', "ref_3")
    assert refused.value.status == 422
    assert await count(db) == 1


async def test_a_concurrent_duplicate_waits_on_the_key_and_replays_the_winner(db: ServiceDatabase) -> None:
    pause, entered = asyncio.Event(), asyncio.Event()
    winner = asyncio.create_task(submit(db, b"{}", "ref_1", pause=pause, entered=entered))
    await entered.wait()  # the winner's record row is inserted, not committed
    loser = asyncio.create_task(submit(db, b"{}", "ref_2"))
    await asyncio.sleep(0.2)
    assert not loser.done()  # blocked on the primary key
    pause.set()
    first, second = await asyncio.gather(winner, loser)
    assert (first.replayed, second.replayed) == (False, True)
    assert second.json() == {"referral_id": "ref_1"}
    assert await count(db) == 1


async def test_when_the_first_request_rolls_back_the_duplicate_does_the_work(db: ServiceDatabase) -> None:
    pause, entered = asyncio.Event(), asyncio.Event()
    first = asyncio.create_task(submit(db, b"{}", "ref_1", pause=pause, entered=entered, roll_back=True))
    await entered.wait()
    second = asyncio.create_task(submit(db, b"{}", "ref_2"))
    await asyncio.sleep(0.2)
    pause.set()
    _, done = await asyncio.gather(first, second)
    assert done.replayed is False and done.json() == {"referral_id": "ref_2"}
    assert await count(db) == 1


class _StoppedClock:
    """Cached verifications never expire by time: only a revocation's notice can evict them."""

    def __call__(self) -> float:
        return 0.0


async def test_a_revocation_reaches_other_processes_at_once_and_after_their_listener_reconnects(
        auth_engine: AsyncEngine) -> None:
    store = AuthStore(session_factory(auth_engine))
    other = AuthStore(session_factory(auth_engine), cache_ttl=30, clock=_StoppedClock())
    org = await store.create_organization("cbo", "Fresno Community Care")
    first_id, first = await store.create_api_key(org.id, ["referrals:read"])
    second_id, second = await store.create_api_key(org.id, ["referrals:read"])

    async def refused(plaintext: str) -> bool:
        return await other.verify(plaintext) is None

    other.listen_for_revocations(auth_engine)
    try:
        await eventually(lambda: other.listening, within=10.0, what="listening")
        assert await other.verify(first) is not None and await other.verify(second) is not None  # cached
        await store.revoke_key(first_id)
        await eventually(lambda: refused(first), within=5.0, what="revocation seen without waiting for the TTL")
        assert await other.verify(second) is not None
        # The listening connection dies (a restart, a failover): the store reconnects and listens again. Only
        # this store's backend: other processes may listen on the same cluster.
        listener = other.listener_pid
        assert listener is not None
        async with auth_engine.connect() as admin:
            ended = await admin.scalar(text("SELECT pg_terminate_backend(:pid)"), {"pid": listener})
        assert ended is True
        await eventually(lambda: not other.listening, within=10.0, what="loss noticed")
        await eventually(lambda: other.listening, within=10.0, what="listening again")
        assert other.listener_pid not in (None, listener)  # a new backend
        assert await other.verify(second) is not None
        await store.revoke_key(second_id)
        await eventually(lambda: refused(second), within=5.0, what="revocation seen after the reconnect")
    finally:
        await other.close()
