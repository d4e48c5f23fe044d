"""Inbox: the event ids a consumer group has handled, recorded in the handler's own transaction."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from uuid import UUID

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.platform_tables import PlatformTables


async def handled_among(session: AsyncSession, tables: PlatformTables, group: str,
                        event_ids: Iterable[UUID]) -> set[UUID]:
    """Which of these events the group has already handled."""
    ids = list(event_ids)
    if not ids:
        return set()
    inbox = tables.inbox
    rows = await session.execute(
        select(inbox.c.event_id).where(inbox.c.consumer_group == group, inbox.c.event_id.in_(ids))
    )
    return set(rows.scalars())


async def record_handled(session: AsyncSession, tables: PlatformTables, group: str,
                         events: Iterable[tuple[UUID, str]]) -> None:
    """Mark events handled; a concurrent duplicate fails the transaction on the primary key."""
    now = datetime.now(UTC)
    rows = [{"consumer_group": group, "event_id": event_id, "event_type": event_type, "handled_at": now}
            for event_id, event_type in events]
    if rows:
        await session.execute(insert(tables.inbox), rows)
