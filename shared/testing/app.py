"""Service test harness: one or more services' apps with their runtimes, an in-process (or given) bus, and
static API keys, reachable through an httpx client. SQLite by default; PostgreSQL in an isolated schema when
a database URL is given."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import text

from shared.app import create_api
from shared.auth import Caller, StaticAuthenticator
from shared.bus.base import Bus
from shared.bus.inprocess import InProcessBus
from shared.runtime import ServiceDefinition, ServiceRuntime
from shared.settings import PlatformSettings


def make_caller(kind: str = "hub", organization_id: str = "org_hub", *, code: str | None = None,
                scopes: Sequence[str] = ("admin", "ops")) -> Caller:
    """A caller for tests (synthetic organization)."""
    return Caller(organization_id=organization_id, organization_kind=kind, organization_code=code,  # type: ignore[arg-type]
                  key_id=f"key_{organization_id}", scopes=frozenset(scopes))


@dataclass
class ServiceHarness:
    """A running app and what tests need to reach into it."""

    app: FastAPI
    client: httpx.AsyncClient
    runtimes: dict[str, ServiceRuntime]
    bus: Bus
    platform: PlatformSettings

    def headers(self, key: str, **extra: str) -> dict[str, str]:
        """Request headers authenticating with one of the harness's keys."""
        return {"Authorization": f"Bearer {key}", **extra}


@asynccontextmanager
async def service_harness(
    definitions: Sequence[ServiceDefinition],
    data_dir: Path,
    *,
    keys: Mapping[str, Caller],
    database_url: str | None = None,
    bus: Bus | None = None,
    settings: Mapping[str, Any] | None = None,
) -> AsyncIterator[ServiceHarness]:
    """Start the services (migrations, relay, consumers, background parts) and yield a client.

    `keys` maps bearer tokens to callers. With `database_url` (PostgreSQL) each service's schema gets a
    unique suffix and is dropped afterwards, so parallel tests never meet.
    """
    suffix = f"_t{uuid.uuid4().hex[:8]}" if database_url else ""
    platform = PlatformSettings(
        mode="distributed" if database_url else "embedded", data_dir=data_dir, database_url=database_url,
        schema_suffix=suffix, **(settings or {}))
    bus = bus or InProcessBus(partitions=platform.kafka_partitions, batch_size=platform.consumer_batch_size)
    runtimes = [ServiceRuntime(definition=d, platform=platform, settings=d.settings(), bus=bus)
                for d in definitions]
    app = create_api(title="CalHub test", bus=bus, runtimes=runtimes, authenticator=StaticAuthenticator(keys))
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://calhub.test") as client:
                yield ServiceHarness(app=app, client=client, runtimes={r.name: r for r in runtimes}, bus=bus,
                                     platform=platform)
    finally:
        if database_url:
            from shared.db import create_engine

            engine = create_engine(database_url, schema=None)
            async with engine.begin() as conn:
                for runtime in runtimes:
                    await conn.execute(text(f'DROP SCHEMA IF EXISTS "{runtime.physical_schema}" CASCADE'))
            await engine.dispose()
