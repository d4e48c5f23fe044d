"""Every service's migrations produce exactly the tables its models declare, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import MetaData, text
from sqlalchemy.engine import Connection

from calhub.services import SERVICES, definition_of
from shared.db import create_engine, is_sqlite
from shared.migrations import upgrade_to_head
from shared.runtime import ServiceDefinition


def _differences(connection: Connection, definition: ServiceDefinition, physical: str | None) -> list[Any]:
    sqlite = connection.dialect.name == "sqlite"

    def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
        if type_ == "schema":
            return name == physical or (sqlite and name is None)
        if type_ == "table":
            return name != "alembic_version"
        return True

    context = MigrationContext.configure(connection, opts={
        "include_schemas": not sqlite,
        "include_name": include_name,
        "compare_type": True,
        "compare_server_default": False,
    })
    # The models name the logical schema; the database holds the physical one (or none, on SQLite).
    target = MetaData(naming_convention=definition.metadata.naming_convention)
    for table in definition.metadata.sorted_tables:
        table.to_metadata(target, schema=None if sqlite else physical,
                          referred_schema_fn=lambda _table, to_schema, _constraint, _referred: to_schema)
    return compare_metadata(context, target)


async def _check(url: str, service: str) -> list[Any]:
    definition = definition_of(service)
    physical = None if is_sqlite(url) else f"{definition.schema}_m{uuid.uuid4().hex[:8]}"
    engine = create_engine(url, schema=definition.schema, physical_schema=physical)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(upgrade_to_head, definition.migrations, physical or definition.schema)
        async with engine.connect() as conn:
            return await conn.run_sync(_differences, definition, physical)
    finally:
        if physical:
            async with engine.begin() as conn:
                await conn.execute(text(f'DROP SCHEMA IF EXISTS "{physical}" CASCADE'))
        await engine.dispose()


@pytest.mark.parametrize("service", sorted(SERVICES))
async def test_migrations_match_models_on_sqlite(service: str, tmp_path: Path) -> None:
    diff = await _check(f"sqlite+aiosqlite:///{tmp_path / 'm.db'}", service)
    assert diff == [], f"{service}: migrations and models disagree: {diff}"


@pytest.mark.integration
@pytest.mark.parametrize("service", sorted(SERVICES))
async def test_migrations_match_models_on_postgres(service: str, postgres_url: str) -> None:
    diff = await _check(postgres_url, service)
    assert diff == [], f"{service}: migrations and models disagree: {diff}"
