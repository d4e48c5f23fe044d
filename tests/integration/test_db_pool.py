"""The PostgreSQL pool replaces a connection the server closed, and a long-idle one that no longer answers,
without the caller seeing an error (what pool_pre_ping did, without its three round trips per checkout)."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest
from sqlalchemy import text

from shared import db

pytestmark = pytest.mark.integration


async def test_a_connection_the_server_closed_is_replaced_at_checkout(postgres_url: str) -> None:
    engine = db.create_engine(postgres_url, schema=None)
    admin = db.create_engine(postgres_url, schema=None)
    try:
        async with engine.connect() as conn:
            first = await conn.scalar(text("SELECT pg_backend_pid()"))
        async with admin.connect() as other:
            # Another session ends ours, as a server restart or an administrator would.
            await other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
            for _ in range(100):
                gone = not await other.scalar(text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"),
                                              {"pid": first})
                if gone:
                    break
                await asyncio.sleep(0.05)
        await asyncio.sleep(0.05)  # the event loop reads the closed socket
        async with engine.connect() as conn:
            second = await conn.scalar(text("SELECT pg_backend_pid()"))
        assert second is not None and second != first
    finally:
        await engine.dispose()
        await admin.dispose()


async def test_a_long_idle_connection_is_pinged_before_use(postgres_url: str,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    engine = db.create_engine(postgres_url, schema=None)
    try:
        async with engine.connect() as conn:
            await conn.scalar(text("SELECT 1"))
        monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 0.0)  # every checkout counts as long idle
        pings = 0
        sync_pool = engine.sync_engine.pool

        def count(dbapi_connection: object, record: object, proxy: object) -> None:
            nonlocal pings
            pings += 1

        from sqlalchemy import event

        event.listen(sync_pool, "checkout", count)
        async with engine.connect() as conn:
            assert await conn.scalar(text("SELECT 1")) == 1
        assert pings == 1
    finally:
        await engine.dispose()


async def test_a_statement_cancelled_mid_flight_does_not_leave_its_connection_to_the_next_caller(
        postgres_url: str) -> None:
    """A request cancelled during its statement (its client went away, a timeout) must not hand the next one a
    connection with that command still running on the server."""
    engine = db.create_engine(postgres_url, schema=None)
    try:
        async with db.pooled_driver_connection(engine) as connection:
            first = await connection.driver.fetchval("SELECT pg_backend_pid()")

        async def slow() -> None:
            async with db.pooled_driver_connection(engine) as connection:
                await connection.driver.fetchval("SELECT pg_sleep(30)")

        task = asyncio.create_task(slow())
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        async with db.pooled_driver_connection(engine) as connection:
            second = await asyncio.wait_for(connection.driver.fetchval("SELECT pg_backend_pid()"), 5)
        assert second != first  # a fresh connection, not the one whose statement was cancelled
    finally:
        await engine.dispose()


async def test_an_error_the_server_answered_keeps_the_connection(postgres_url: str) -> None:
    engine = db.create_engine(postgres_url, schema=None)
    try:
        async with db.pooled_driver_connection(engine) as connection:
            first = await connection.driver.fetchval("SELECT pg_backend_pid()")
        with pytest.raises(asyncpg.DivisionByZeroError):
            async with db.pooled_driver_connection(engine) as connection:
                await connection.driver.fetchval("SELECT 1 / 0")
        async with db.pooled_driver_connection(engine) as connection:
            assert await connection.driver.fetchval("SELECT pg_backend_pid()") == first
    finally:
        await engine.dispose()


async def test_a_session_that_reads_one_snapshot_does_not_see_a_commit_made_between_its_queries(
        postgres_url: str) -> None:
    engine = db.create_engine(postgres_url, schema=None, pool_size=1)  # one connection: the level must be reset
    writer_engine = db.create_engine(postgres_url, schema=None)
    table = f"snapshot_probe_{uuid.uuid4().hex[:8]}"
    try:
        async with engine.begin() as conn:
            await conn.execute(text(f"CREATE TABLE {table} (n int)"))
        sessions, writers = db.session_factory(engine), db.session_factory(writer_engine)

        async def counts(one_snapshot: bool) -> tuple[int, int]:
            async with sessions() as reader:
                if one_snapshot:
                    await db.read_one_snapshot(reader)
                before = await reader.scalar(text(f"SELECT count(*) FROM {table}"))  # noqa: S608 - our own name
                async with writers() as writer:
                    await writer.execute(text(f"INSERT INTO {table} VALUES (1)"))  # noqa: S608
                    await writer.commit()
                after = await reader.scalar(text(f"SELECT count(*) FROM {table}"))  # noqa: S608
                await reader.commit()
            return int(before or 0), int(after or 0)

        assert await counts(one_snapshot=True) == (0, 0)
        # The same pooled connection, given back at its default level: the next transaction sees each commit.
        assert await counts(one_snapshot=False) == (1, 2)
    finally:
        async with engine.begin() as conn:
            await conn.execute(text(f"DROP TABLE IF EXISTS {table}"))
        await engine.dispose()
        await writer_engine.dispose()
