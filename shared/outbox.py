"""The outbox relay: publishes committed events in commit order, surviving broker outages.

Only the holder of the service's relay lease publishes, so events of one key keep their order even with
several instances of a service running. A publish that fails leaves the rows in place and is retried with
backoff: Kafka being down delays events, it never loses them. Rows are deleted once the broker acknowledged
them; a crash between acknowledgment and delete republishes, and consumers' inboxes absorb the duplicate.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import BigInteger, any_, bindparam, delete, func, insert, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.bus.base import Bus
from shared.bus.message import OutgoingMessage
from shared.platform_tables import PlatformTables
from shared.polling import PollingLoop
from shared.telemetry import BusMetrics

log = logging.getLogger("calhub.outbox")


def instance_id() -> str:
    """Identifies this process in leases: host, pid and a random suffix."""
    return f"{socket.gethostname()}:{os.getpid()}:{os.urandom(3).hex()}"


async def acquire_lease(session: AsyncSession, tables: PlatformTables, name: str, holder: str,
                        ttl: timedelta) -> bool:
    """Take or renew a named lease; True if `holder` holds it now. Commits."""
    now = datetime.now(UTC)
    lease = tables.lease
    result = await session.execute(
        update(lease)
        .where(lease.c.name == name, (lease.c.holder == holder) | (lease.c.expires_at < now))
        .values(holder=holder, expires_at=now + ttl)
    )
    if result.rowcount:  # type: ignore[attr-defined]
        await session.commit()
        return True
    exists = await session.scalar(select(func.count()).select_from(lease).where(lease.c.name == name))
    if exists:
        await session.rollback()
        return False
    try:
        await session.execute(insert(lease).values(name=name, holder=holder, expires_at=now + ttl))
        await session.commit()
        return True
    except IntegrityError:
        await session.rollback()
        return False


class OutboxRelay:
    """Moves a service's outbox rows onto the bus."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], tables: PlatformTables, bus: Bus, *,
                 service: str, batch_size: int = 500, poll_interval: float = 0.5,
                 lease_ttl: timedelta = timedelta(seconds=15), max_backoff: float = 5.0,
                 max_batches: int = 20, metrics: BusMetrics | None = None) -> None:
        self.sessions = sessions
        self.tables = tables
        self.bus = bus
        self.service = service
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.lease_ttl = lease_ttl
        self.max_backoff = max_backoff
        self.max_batches = max_batches  # per pass, so the lease is renewed and stop() is honoured regularly
        self.holder = instance_id()
        self.metrics = metrics or BusMetrics.default()
        self._loop = PollingLoop(self._pass, name=f"outbox-relay-{service}", interval=poll_interval,
                                 backoff_base=0.1, max_backoff=max_backoff)
        # One pass at a time per process: two concurrent passes would both hold the (same) lease and
        # publish the same rows twice.
        self._pass_lock = asyncio.Lock()
        self._lease_until = 0.0  # time.monotonic() until which the lease is held without renewing it

    def notify(self) -> None:
        """Wake the relay (called after a unit of work commits)."""
        self._loop.notify()

    async def publish_pending(self) -> int:
        """One pass: publish up to `max_batches` batches of `batch_size` events if this instance holds the lease;
        returns the count.

        Raises whatever the bus raises; the rows stay for the next pass.
        """
        async with self._pass_lock:
            return await self._publish_pending()

    async def _hold_lease(self, session: AsyncSession) -> bool:
        # Renewed once half its TTL has passed, not on every pass: a busy service runs many passes a second, and
        # each renewal is an UPDATE and a COMMIT. The lease still expires `lease_ttl` after the last renewal,
        # and this instance stops relying on it at half that.
        now = time.monotonic()
        if now < self._lease_until:
            return True
        if not await acquire_lease(session, self.tables, f"outbox-relay:{self.service}", self.holder,
                                   self.lease_ttl):
            self._lease_until = 0.0
            return False
        self._lease_until = now + self.lease_ttl.total_seconds() / 2
        return True

    async def _publish_pending(self) -> int:
        async with self.sessions() as session:
            if not await self._hold_lease(session):
                return 0
            total = 0
            rows = await self._next_batch(session, after=None)
            await session.rollback()
            while rows:
                # Pipelined: the next batch is read while this one waits for the broker's acknowledgments.
                # Batches still go out one after the other, so publish order is seq order.
                publishing = asyncio.create_task(self._send(rows))
                try:
                    full = len(rows) == self.batch_size and total + len(rows) < self.batch_size * self.max_batches
                    following = await self._next_batch(session, after=rows[-1].seq) if full else []
                finally:
                    await publishing  # raises the broker's error; the rows stay for the next pass
                await self._delete(session, [r.seq for r in rows])
                await session.commit()
                total += len(rows)
                self.metrics.outbox_published.labels(self.service).inc(len(rows))
                rows = following
        return total

    async def _next_batch(self, session: AsyncSession, *, after: int | None) -> list[Any]:
        outbox = self.tables.outbox
        query = select(outbox.c.seq, outbox.c.topic, outbox.c.key, outbox.c.value, outbox.c.headers)
        if after is not None:
            query = query.where(outbox.c.seq > after)
        return list((await session.execute(query.order_by(outbox.c.seq).limit(self.batch_size))).all())

    async def _send(self, rows: list[Any]) -> None:
        messages = [OutgoingMessage(topic=r.topic, key=r.key, value=r.value,
                                    headers=tuple((k, v.encode()) for k, v in r.headers)) for r in rows]
        started = time.perf_counter()
        await self.bus.publish(messages)
        self.metrics.relay_batch_seconds.labels(self.service).observe(time.perf_counter() - started)

    async def _delete(self, session: AsyncSession, seqs: list[int]) -> None:
        # Delete exactly what was published: a lower seq from a transaction still open when we read may have
        # committed since, and must wait for the next pass rather than vanish.
        outbox = self.tables.outbox
        if session.get_bind().dialect.name == "postgresql":
            # One array parameter instead of thousands of bound values (measured 2.7x faster per batch).
            published = outbox.c.seq == any_(bindparam("seqs", value=seqs, type_=ARRAY(BigInteger)))
        else:
            published = outbox.c.seq.in_(seqs)
        await session.execute(delete(outbox).where(published))

    async def backlog(self) -> int:
        """Events committed but not yet published."""
        async with self.sessions() as session:
            return int(await session.scalar(select(func.count()).select_from(self.tables.outbox)) or 0)

    async def _pass(self) -> bool:
        return await self.publish_pending() >= self.batch_size

    def start(self) -> None:
        """Run the relay in a background task."""
        self._loop.start()

    async def stop(self) -> None:
        """Stop the background task (events not yet published stay in the outbox)."""
        await self._loop.stop()
