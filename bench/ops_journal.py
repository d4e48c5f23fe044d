"""Benchmark of the ops journal: batch-journaling throughput and timeline / board latency.

Journals N synthetic referral lineages (referral.received, authorization.requested, authorization.approved:
3 events each) through the journal consumer in batches, as the bus would deliver them, then times timeline
queries and a board computation. SQLite by default; `--database-url postgresql+asyncpg://...` for PostgreSQL
(an isolated schema, dropped afterwards). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ops.bootstrap import definition
from ops.journal import JournalConsumer
from ops.repository import OpsUnitOfWork
from ops.service import compute_boards, timeline, timeline_query
from ops.settings import OpsSettings
from ops.testkit import authorization_approved, authorization_requested, referral_received
from sqlalchemy import text

from shared.bus.inprocess import InProcessBus
from shared.bus.message import IncomingMessage, encode
from shared.runtime import ServiceRuntime
from shared.settings import PlatformSettings


def _incoming(lineages: int) -> list[IncomingMessage]:
    now = datetime.now(UTC)
    found: list[IncomingMessage] = []
    offsets: dict[str, int] = {}
    for i in range(lineages):
        referral = referral_received(f"ref_{i:07d}", cin=f"{90000000 + i:08d}A", at=now - timedelta(days=3))
        requested = authorization_requested(referral, f"auth_{i:07d}", referral_id=f"ref_{i:07d}",
                                            at=now - timedelta(days=3), decision_due=now + timedelta(days=2))
        approved = authorization_approved(requested, f"auth_{i:07d}", at=now - timedelta(days=1))
        for event in (referral, requested, approved):
            message = encode(event)
            offset = offsets.get(message.topic, 0)
            offsets[message.topic] = offset + 1
            found.append(IncomingMessage(topic=message.topic, partition=0, offset=offset, key=message.key,
                                         value=message.value, headers=message.headers))
    return found


async def run(lineages: int, batch: int, database_url: str | None) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as folder:
        suffix = f"_b{uuid.uuid4().hex[:8]}" if database_url else ""
        platform = PlatformSettings(mode="distributed" if database_url else "embedded", data_dir=Path(folder),
                                    database_url=database_url, schema_suffix=suffix)
        ops = definition()
        runtime = ServiceRuntime(definition=ops, platform=platform, settings=OpsSettings(), bus=InProcessBus())
        await runtime.migrate()
        try:
            consumer = JournalConsumer(runtime.uow)  # type: ignore[arg-type]
            messages = _incoming(lineages)
            started = time.perf_counter()
            for start in range(0, len(messages), batch):
                await consumer.handle_batch(messages[start:start + batch])
            journal_seconds = time.perf_counter() - started
            started = time.perf_counter()
            await consumer.handle_batch(messages[:batch])  # a redelivered batch: all duplicates
            duplicate_seconds = time.perf_counter() - started

            latencies = []
            for i in range(0, lineages, max(1, lineages // 50)):
                started = time.perf_counter()
                async with runtime.uow() as uow:
                    assert isinstance(uow, OpsUnitOfWork)
                    rows = await timeline(uow, timeline_query(referral_id=f"ref_{i:07d}"))
                latencies.append((time.perf_counter() - started) * 1000)
                assert len(rows) == 3, len(rows)
            started = time.perf_counter()
            async with runtime.uow() as uow:
                assert isinstance(uow, OpsUnitOfWork)
                await compute_boards(uow, OpsSettings(), datetime.now(UTC))
            board_ms = (time.perf_counter() - started) * 1000
        finally:
            if database_url:
                async with runtime.engine.begin() as conn:
                    await conn.execute(text(f'DROP SCHEMA IF EXISTS "{runtime.physical_schema}" CASCADE'))
            await runtime.engine.dispose()
    return {
        "benchmark": "ops_journal",
        "database": "postgresql" if database_url else "sqlite",
        "events": len(messages),
        "batch_size": batch,
        "journal_events_per_second": round(len(messages) / journal_seconds, 1),
        "redelivered_batch_ms": round(duplicate_seconds * 1000, 2),
        "timeline_ms_p50": round(statistics.median(latencies), 2),
        "timeline_ms_max": round(max(latencies), 2),
        "boards_ms": round(board_ms, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lineages", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.lineages, args.batch, args.database_url))))


if __name__ == "__main__":
    main()
