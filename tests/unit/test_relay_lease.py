"""The outbox relay renews its lease once half the TTL has passed, not on every pass (a renewal is an UPDATE and a
COMMIT, and a busy service runs many passes a second); an instance without the lease publishes nothing."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import select

from shared import outbox
from shared.bus.inprocess import InProcessBus
from shared.contracts.base import EventData, Topic, event
from shared.envelope import new_event
from shared.outbox import OutboxRelay
from shared.telemetry import BusMetrics
from shared.testing.database import ServiceDatabase, service_database, sqlite_url
from shared.uow import encode_outbox_rows, insert_outbox_rows


@event("lease.noted", Topic("leasetest", "lease"))
class LeaseNoted(EventData):
    n: int


class Clock:
    """A settable stand-in for time.monotonic."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def lease_expiry(db: ServiceDatabase) -> Any:
    async with db.sessions() as session:
        return await session.scalar(select(db.tables.lease.c.expires_at))


def relay(db: ServiceDatabase) -> OutboxRelay:
    return OutboxRelay(db.sessions, db.tables, InProcessBus(), service="leasetest",
                       lease_ttl=timedelta(seconds=10), metrics=BusMetrics(CollectorRegistry()))


async def test_the_lease_is_renewed_at_half_its_ttl_not_on_every_pass(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    # Only the relay's clock: the event loop keeps the real one.
    monkeypatch.setattr(outbox, "time", SimpleNamespace(monotonic=clock, perf_counter=time.perf_counter))
    async with service_database(sqlite_url(tmp_path)) as db:
        holder = relay(db)
        await holder.publish_pending()
        first = await lease_expiry(db)
        clock.now += 4.9
        await holder.publish_pending()
        assert await lease_expiry(db) == first  # still within half the TTL: no renewal
        clock.now += 0.2
        await holder.publish_pending()
        assert await lease_expiry(db) > first


async def test_only_the_holder_publishes(tmp_path: Path) -> None:
    async with service_database(sqlite_url(tmp_path)) as db:
        holder, other = relay(db), relay(db)
        assert await holder.publish_pending() == 0  # takes the lease; nothing to publish yet
        async with db.sessions() as session, session.begin():
            await insert_outbox_rows(session, db.tables, encode_outbox_rows([
                new_event(LeaseNoted(n=1), subject="lease-1", source="leasetest")]))
        assert await other.publish_pending() == 0
        assert await holder.publish_pending() == 1
