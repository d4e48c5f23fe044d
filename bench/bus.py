"""Benchmark: raw aiokafka throughput against CalHub's full consumer → handler → outbox → relay hop.

(a) raw: N small messages produced (idempotent, acks=all) and consumed by plain aiokafka, concurrently.
(b) hop: N events pre-loaded on an input topic; KafkaBus.subscribe + Dispatcher (batch mode) hand them to a
handler that adds one row through the unit of work and records one follow-up event; the outbox relay
publishes the follow-ups to an output topic. Timed from subscribe until all N follow-ups are on the output
topic. Prints one JSON object. Needs real Kafka and PostgreSQL (CALHUB_TEST_KAFKA, CALHUB_TEST_DATABASE_URL).

    python bench/bus.py [--n 50000] [--kafka HOST:PORT] [--database-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import sys
import time
import uuid
from importlib.metadata import version
from pathlib import Path
from typing import Any

# Run as a script, this file's folder comes first on sys.path; keep it from shadowing anything.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition  # noqa: E402
from prometheus_client import CollectorRegistry  # noqa: E402
from sqlalchemy import Column, Integer, MetaData, String, Table, Uuid, func, select, text  # noqa: E402
from sqlalchemy.orm import registry as mapper_registry  # noqa: E402

from shared.bus.dispatcher import Dispatcher  # noqa: E402
from shared.bus.kafka import KafkaBus  # noqa: E402
from shared.bus.message import encode  # noqa: E402
from shared.bus.registry import HandlerRegistry  # noqa: E402
from shared.contracts.base import EventData, Topic, event  # noqa: E402
from shared.envelope import Envelope, caused_by, new_event  # noqa: E402
from shared.outbox import OutboxRelay  # noqa: E402
from shared.telemetry import BusMetrics  # noqa: E402
from shared.testing.database import service_database  # noqa: E402
from shared.testing.kafka import delete_topics  # noqa: E402
from shared.uow import UnitOfWork  # noqa: E402

ORDERS = Topic("bench", "order")
RECEIPTS = Topic("bench", "receipt")
KEYS = 1000


@event("order.placed", ORDERS)
class OrderPlaced(EventData):
    order_id: str
    n: int
    amount_cents: int


@event("receipt.issued", RECEIPTS)
class ReceiptIssued(EventData):
    order_id: str
    n: int


class Receipt:
    """The handler's one row per event (mapped imperatively onto the throwaway schema)."""

    def __init__(self, id: uuid.UUID, order_id: str, n: int) -> None:  # noqa: A002 - column name
        self.id = id
        self.order_id = order_id
        self.n = n


def add_receipt_table(metadata: MetaData) -> None:
    table = Table("receipt", metadata, Column("id", Uuid, primary_key=True),
                  Column("order_id", String(64), nullable=False), Column("n", Integer, nullable=False))
    mapper_registry().map_imperatively(Receipt, table)


def input_events(n: int) -> list[Envelope[OrderPlaced]]:
    return [new_event(OrderPlaced(order_id=f"o-{i % KEYS}", n=i, amount_cents=1000 + i % 500),
                      subject=f"o-{i % KEYS}", source="bench") for i in range(n)]


class EndWatcher:
    """Polls a topic's end offsets with one long-lived client (cheap enough not to skew the timing)."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
        self.topic = topic

    async def total(self) -> int:
        partitions = self.consumer.partitions_for_topic(self.topic)
        if not partitions:
            await self.consumer._client.force_metadata_update()
            partitions = self.consumer.partitions_for_topic(self.topic) or set()
        ends = await self.consumer.end_offsets([TopicPartition(self.topic, p) for p in partitions])
        return int(sum(ends.values()))


# --------------------------------------------------------------------------------------------- raw

async def bench_raw(bootstrap: str, topic: str, payloads: list[tuple[bytes, bytes]], args: argparse.Namespace
                    ) -> dict[str, Any]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=f"raw-{uuid.uuid4().hex[:8]}",
                                auto_offset_reset="earliest", max_poll_records=args.fetch_max_records)
    await consumer.start()
    while not consumer.assignment():
        await consumer.getmany(timeout_ms=100)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all",
                                linger_ms=args.linger_ms, max_batch_size=args.max_batch_bytes)
    await producer.start()
    produced_at = 0.0

    async def produce() -> None:
        nonlocal produced_at
        acks = [await producer.send(topic, value, key=key) for key, value in payloads]
        await asyncio.gather(*acks)
        produced_at = time.perf_counter()

    async def consume() -> None:
        seen = 0
        while seen < len(payloads):
            batches = await consumer.getmany(timeout_ms=200, max_records=args.fetch_max_records)
            seen += sum(len(records) for records in batches.values())

    started, cpu, waited = time.perf_counter(), time.process_time(), cpu_stall()
    try:
        await asyncio.gather(produce(), consume())
        seconds, cpu, waited = time.perf_counter() - started, time.process_time() - cpu, cpu_stall() - waited
    finally:
        await producer.stop()
        await consumer.stop()
    return {"seconds": round(seconds, 3), "messages_per_s": round(len(payloads) / seconds, 1),
            "produce_seconds": round(produced_at - started, 3), "python_cpu_seconds": round(cpu, 3),
            "cpu_stalled_share": round(waited / seconds, 2)}


# --------------------------------------------------------------------------------------------- hop

async def bench_hop(bus: KafkaBus, database_url: str, n: int, args: argparse.Namespace) -> dict[str, Any]:
    async with service_database(database_url, extend=add_receipt_table) as db:
        receipts = db.metadata.tables[f"{db.schema}.receipt"]
        registry = HandlerRegistry[UnitOfWork]()
        relay = OutboxRelay(db.sessions, db.tables, bus, service="bench", batch_size=args.relay_batch,
                            poll_interval=0.05, metrics=BusMetrics(CollectorRegistry()))

        @registry.handles(OrderPlaced)
        async def issue_receipt(event: Envelope[OrderPlaced], uow: UnitOfWork) -> None:
            uow.session.add(Receipt(id=uuid.uuid4(), order_id=event.data.order_id, n=event.data.n))
            uow.record(caused_by(event, ReceiptIssued(order_id=event.data.order_id, n=event.data.n),
                                 subject=event.subject, source="bench"))

        dispatcher = Dispatcher("bench", registry,
                                lambda: UnitOfWork(db.sessions, db.tables, on_commit=relay.notify),
                                metrics=BusMetrics(CollectorRegistry()))
        watcher = EndWatcher(bus.bootstrap_servers, bus.physical(RECEIPTS.name))
        await watcher.consumer.start()
        started, cpu, waited = time.perf_counter(), time.process_time(), cpu_stall()
        subscription = await bus.subscribe("bench", [ORDERS.name], dispatcher)
        relay.start()
        try:
            while not subscription.assignment:  # noqa: ASYNC110 - polling the consumer's state
                await asyncio.sleep(0.01)
            joined = time.perf_counter()
            while await watcher.total() < n:
                if subscription.done:
                    raise RuntimeError("the subscription stopped during the benchmark")
                await asyncio.sleep(0.05)
            seconds, cpu, waited = time.perf_counter() - started, time.process_time() - cpu, cpu_stall() - waited
        finally:
            await subscription.stop()
            await relay.stop()
            await watcher.consumer.stop()
        async with db.sessions() as session:
            rows = int(await session.scalar(select(func.count()).select_from(receipts)) or 0)
            backlog = int(await session.scalar(select(func.count()).select_from(db.tables.outbox)) or 0)
    return {"seconds": round(seconds, 3), "events_per_s": round(n / seconds, 1),
            "join_seconds": round(joined - started, 3), "python_cpu_seconds": round(cpu, 3),
            "cpu_stalled_share": round(waited / seconds, 2),
            "rows_written": rows, "outbox_backlog": backlog}


def cpu_stall() -> float:
    """Seconds (machine-wide, Linux PSI) during which some task was runnable but waiting for a CPU; 0 elsewhere.

    Over the measured interval, a high share means other processes competed for the cores (benchmark, broker and
    database included): the throughput numbers are then low bounds.
    """
    try:
        with open("/proc/pressure/cpu") as pressure:
            return int(pressure.readline().rsplit("total=", 1)[1]) / 1e6
    except (OSError, IndexError, ValueError):
        return 0.0


async def main(args: argparse.Namespace) -> dict[str, Any]:
    prefix = f"bench{uuid.uuid4().hex[:8]}."
    bus = KafkaBus(args.kafka, topic_prefix=prefix, client_id="bench", batch_size=args.batch_size,
                   fetch_max_records=args.fetch_max_records, linger_ms=args.linger_ms,
                   max_batch_bytes=args.max_batch_bytes, partition_concurrency=args.partition_concurrency)
    await bus.start()
    try:
        await bus.ensure_topics(["raw.v1", ORDERS.name, RECEIPTS.name])
        messages = [encode(e) for e in input_events(args.n)]
        payloads = [(m.key or b"", m.value) for m in messages]
        message_bytes = round(sum(len(v) for _, v in payloads) / len(payloads))
        raw = await bench_raw(args.kafka, bus.physical("raw.v1"), payloads, args)
        for start in range(0, len(messages), 5000):  # pre-load the input topic (not timed)
            await bus.publish(messages[start:start + 5000])
        # A service does not hold N events in memory; neither should the measured hop (the cyclic garbage
        # collector would walk them all again and again).
        del messages, payloads
        gc.collect()
        if args.gc_freeze:  # what a service runtime may do once booted: exempt start-up objects from GC scans
            gc.freeze()
        hop = await bench_hop(bus, args.database_url, args.n, args)
    finally:
        await bus.stop()
        await delete_topics(args.kafka, prefix)
    ratio = hop["events_per_s"] / raw["messages_per_s"]
    return {
        "n": args.n,
        "message_bytes": message_bytes,
        "raw_aiokafka": raw,
        "full_hop": hop,
        "hop_to_raw_ratio": round(ratio, 3),
        "targets": {"hop_events_per_s": 3000, "ratio": 0.10,
                    "met": hop["events_per_s"] >= 3000 and ratio >= 0.10},
        "settings": {"consumer_batch_size": args.batch_size, "fetch_max_records": args.fetch_max_records,
                     "relay_batch": args.relay_batch, "linger_ms": args.linger_ms,
                     "max_batch_bytes": args.max_batch_bytes, "partition_concurrency": args.partition_concurrency,
                     "gc_freeze": args.gc_freeze, "keys": KEYS},
        "machine": {"cpu_count": os.cpu_count(), "load_average": [round(x, 2) for x in os.getloadavg()],
                    "platform": platform.platform(), "python": platform.python_version(),
                    "aiokafka": version("aiokafka"), "sqlalchemy": version("sqlalchemy"), "asyncpg": version("asyncpg"),
                    "postgres": await _postgres_version(args.database_url)},
    }


async def _postgres_version(url: str) -> str:
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return str(await conn.scalar(text("SHOW server_version")))
    finally:
        await engine.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--kafka", default=os.environ.get("CALHUB_TEST_KAFKA"))
    parser.add_argument("--database-url", default=os.environ.get("CALHUB_TEST_DATABASE_URL"))
    parser.add_argument("--batch-size", type=int, default=500, help="messages per dispatcher transaction")
    parser.add_argument("--fetch-max-records", type=int, default=3000, help="getmany max_records")
    parser.add_argument("--relay-batch", type=int, default=1000, help="outbox rows per relay publish")
    parser.add_argument("--linger-ms", type=int, default=5)
    parser.add_argument("--max-batch-bytes", type=int, default=512 * 1024)
    parser.add_argument("--partition-concurrency", type=int, default=6, help="partitions delivered at once")
    parser.add_argument("--gc-freeze", action="store_true", help="gc.freeze() before the hop (runtime tuning)")
    arguments = parser.parse_args()
    if not arguments.kafka or not arguments.database_url:
        parser.error("set CALHUB_TEST_KAFKA and CALHUB_TEST_DATABASE_URL (scripts/dev-services.sh env) "
                     "or pass --kafka and --database-url")
    sys.stdout.write(json.dumps(asyncio.run(main(arguments))) + "\n")
