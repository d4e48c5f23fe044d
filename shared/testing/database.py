"""Throwaway service databases for tests: a unique PostgreSQL schema, or a SQLite file."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import MetaData, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from shared.db import create_engine, is_sqlite, service_metadata, session_factory
from shared.platform_tables import PlatformTables, define_platform_tables


@dataclass
class ServiceDatabase:
    """An engine, sessions and platform tables for one test schema."""

    url: str
    schema: str
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    metadata: MetaData
    tables: PlatformTables


@asynccontextmanager
async def service_database(
    url: str, *, schema: str | None = None, extend: Callable[[MetaData], object] | None = None
) -> AsyncIterator[ServiceDatabase]:
    """Create a fresh schema (PostgreSQL) or use the SQLite file at `url`, with platform tables; drop after."""
    schema = schema or f"t_{uuid.uuid4().hex[:12]}"
    metadata = service_metadata(schema)
    tables = define_platform_tables(metadata)
    if extend is not None:
        extend(metadata)
    engine = create_engine(url, schema=schema)
    async with engine.begin() as conn:
        if not is_sqlite(url):
            await conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        await conn.run_sync(metadata.create_all)
    try:
        yield ServiceDatabase(url=url, schema=schema, engine=engine, sessions=session_factory(engine),
                              metadata=metadata, tables=tables)
    finally:
        if not is_sqlite(url):
            async with engine.begin() as conn:
                await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        await engine.dispose()


def sqlite_url(directory: Path, name: str = "test") -> str:
    """A SQLite URL for a file in `directory`."""
    return f"sqlite+aiosqlite:///{(directory / f'{name}.db').as_posix()}"
