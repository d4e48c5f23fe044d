"""`shared.db.new_transient`: an object made without the declarative constructor behaves like one made with it
(inserted when added, its later changes tracked), and a misspelt attribute is refused as the constructor would."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import String, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.db import create_engine, new_transient, session_factory


class Base(DeclarativeBase):
    pass


class Parcel(Base):
    __tablename__ = "parcel"

    id: Mapped[str] = mapped_column(String(10), primary_key=True)
    status: Mapped[str] = mapped_column(String(10))
    note: Mapped[str | None] = mapped_column(String(40))


@pytest.fixture
async def sessions(tmp_path: Path) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/t.db", schema=None)
    async with engine.begin() as connection:
        await connection.run_sync(Base.metadata.create_all)
    yield session_factory(engine)
    await engine.dispose()


async def test_it_is_inserted_and_its_later_changes_are_tracked(sessions: async_sessionmaker[AsyncSession]) -> None:
    parcel = new_transient(Parcel, id="p1", status="new", note=None)
    assert parcel.status == "new" and parcel.note is None
    parcel.status = "routed"  # a change before it is stored, as intake's routing makes
    async with sessions() as session:
        session.add(parcel)
        await session.commit()
        parcel.note = "changed after insert"
        assert session.is_modified(parcel)
        await session.commit()
    async with sessions() as session:
        stored = (await session.execute(select(Parcel))).scalar_one()
        assert (stored.id, stored.status, stored.note) == ("p1", "routed", "changed after insert")


def test_a_misspelt_attribute_is_refused() -> None:
    with pytest.raises(TypeError, match="statsu"):
        new_transient(Parcel, id="p1", statsu="new")
    with pytest.raises(TypeError):
        Parcel(id="p1", statsu="new")  # the constructor refuses it the same way
