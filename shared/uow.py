"""Unit of work: one database transaction per request or message, with the events it causes.

Events recorded during the unit are written to the service's outbox in the same transaction, so a state
change and its events commit (or roll back) together. The edge (route, dispatcher, scheduler) owns commit.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.bus.message import encode
from shared.envelope import Envelope
from shared.platform_tables import PlatformTables


class UnitOfWork:
    """Base unit of work; services subclass it to expose their repositories (built in `_open`)."""

    session: AsyncSession

    def __init__(self, sessions: async_sessionmaker[AsyncSession], tables: PlatformTables, *,
                 on_commit: Callable[[], None] | None = None, ports: Mapping[str, Any] | None = None) -> None:
        self._sessions = sessions
        self.tables = tables
        self._on_commit = on_commit
        # Adapters the composition root hands in (file store, clock, settings): handlers never build them.
        self.ports: Mapping[str, Any] = ports or {}
        self._events: list[Envelope[Any]] = []

    async def __aenter__(self) -> Self:
        self.session = self._sessions()
        self._events = []
        self._open()
        return self

    def _open(self) -> None:
        """Hook for subclasses: build repositories on `self.session`."""

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        try:
            await self.rollback()
        finally:
            await self.session.close()

    def record(self, *events: Envelope[Any]) -> None:
        """Queue events to be written to the outbox when this unit commits."""
        self._events.extend(events)

    @property
    def recorded(self) -> tuple[Envelope[Any], ...]:
        """Events recorded and not yet committed."""
        return tuple(self._events)

    async def flush(self) -> None:
        """Send pending changes (and recorded events) to the database without committing."""
        if self._events:
            await write_outbox(self.session, self.tables, self._events)
            self._events = []
        await self.session.flush()

    async def commit(self) -> None:
        """Write recorded events to the outbox and commit everything in one transaction."""
        await self.flush()
        await self.session.commit()
        if self._on_commit is not None:
            self._on_commit()

    async def rollback(self) -> None:
        """Discard changes and recorded events."""
        self._events = []
        await self.session.rollback()


async def write_outbox(session: AsyncSession, tables: PlatformTables, events: list[Envelope[Any]]) -> None:
    """Insert events into the outbox within the session's transaction."""
    now = datetime.now(UTC)
    rows = []
    for envelope in events:
        message = encode(envelope)
        rows.append({
            "event_id": envelope.id,
            "topic": message.topic,
            "key": message.key,
            "value": message.value,
            "headers": [[k, v.decode()] for k, v in message.headers],
            "created_at": now,
        })
    await session.execute(insert(tables.outbox), rows)
