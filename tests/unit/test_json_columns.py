"""JSON columns are written by one encoder (`shared.json_encoding.to_json_text`) whichever path writes them: the
ORM on SQLite and PostgreSQL, and the hand-written hot statements (`shared.db.insert_rows_sql`). A value is then
stored the same way, or refused the same way, on every path."""

from __future__ import annotations

import enum
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import JSON, Column, MetaData, String, Table, insert, select, text
from sqlalchemy.exc import StatementError
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db import Binds, create_engine, driver_connection, insert_rows_sql, session_factory
from shared.json_encoding import to_json_text


class Colour(enum.Enum):
    RED = "red"


metadata = MetaData()
note = Table("json_note", metadata, Column("id", String(10), primary_key=True), Column("body", JSON))

# json.dumps refuses a UUID and a plain Enum, and writes NaN, which PostgreSQL's json type refuses.
VALUE: dict[str, Any] = {"id": uuid.UUID("01234567-89ab-7def-8123-456789abcdef"), "colour": Colour.RED,
                         "counts": {1: 2}, "ratio": float("nan"), "text": "ça"}


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
async def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    if request.param == "sqlite":
        made = create_engine(f"sqlite+aiosqlite:///{tmp_path}/t.db", schema=None)
    else:
        made = create_engine(request.getfixturevalue("postgres_url"), schema=None)
    async with made.begin() as connection:
        await connection.run_sync(metadata.drop_all)
        await connection.run_sync(metadata.create_all)
    try:
        yield made
    finally:
        async with made.begin() as connection:
            await connection.run_sync(metadata.drop_all)
        await made.dispose()


async def stored_text(engine: AsyncEngine, row_id: str) -> str:
    async with engine.connect() as connection:
        found = await connection.scalar(text("SELECT CAST(body AS TEXT) FROM json_note WHERE id = :id"),
                                        {"id": row_id})
    assert isinstance(found, str)
    return found


async def test_the_orm_stores_what_the_shared_encoder_writes(engine: AsyncEngine) -> None:
    async with session_factory(engine)() as session:
        await session.execute(insert(note).values(id="orm", body=VALUE))
        await session.commit()
        read = (await session.execute(select(note.c.body).where(note.c.id == "orm"))).scalar_one()
    assert await stored_text(engine, "orm") == to_json_text(VALUE)
    assert read == {"id": str(VALUE["id"]), "colour": "red", "counts": {"1": 2}, "ratio": None, "text": "ça"}


async def test_the_hot_statement_and_the_orm_store_the_same_text(engine: AsyncEngine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("the hand-written statements are PostgreSQL's")
    async with session_factory(engine)() as session:
        await session.execute(insert(note).values(id="orm", body=VALUE))
        binds, connection = Binds(), await driver_connection(session)
        sql = insert_rows_sql(connection, note, [{"id": "hot", "body": VALUE}], binds)
        await connection.driver.execute(sql, *binds.values)
        await session.commit()
    assert await stored_text(engine, "hot") == await stored_text(engine, "orm")


async def test_a_datetime_is_refused_on_every_path(engine: AsyncEngine) -> None:
    # A JSON column's value is made JSON-ready by its owner (an ISO date), never formatted by accident.
    with pytest.raises(TypeError):
        to_json_text({"at": datetime.now(UTC)})
    async with session_factory(engine)() as session:
        with pytest.raises(StatementError):
            await session.execute(insert(note).values(id="dt", body={"at": datetime.now(UTC)}))
    if engine.dialect.name == "postgresql":
        async with session_factory(engine)() as session:
            with pytest.raises(TypeError):
                insert_rows_sql(await driver_connection(session), note,
                                [{"id": "dt", "body": {"at": datetime.now(UTC)}}], Binds())
