"""The transactional outbox end to end: units of work, the relay (with its lease) and both buses.

The broker-outage test stops and restarts the real Kafka broker (scripts/dev-services.sh kafka-stop /
kafka-start); it is marked `broker_outage` so CI can run it on its own, after everything else.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import Column, Integer, MetaData, String, Table, Uuid, func, insert, select

from shared.bus.base import BusUnavailable
from shared.bus.dispatcher import Dispatcher
from shared.bus.inprocess import InProcessBus
from shared.bus.message import IncomingMessage, encode
from shared.bus.registry import HandlerRegistry
from shared.contracts.base import EventData, Topic, event
from shared.envelope import Envelope, new_event
from shared.outbox import OutboxRelay
from shared.telemetry import BusMetrics
from shared.testing.database import ServiceDatabase, service_database, sqlite_url
from shared.testing.kafka import delete_topics
from shared.testing.polling import eventually
from shared.uow import UnitOfWork

GADGETS = Topic("outboxtest", "gadget")
DEV_SERVICES = Path(__file__).resolve().parents[2] / "scripts" / "dev-services.sh"


@event("gadget.assembled", GADGETS)
class GadgetAssembled(EventData):
    gadget_id: str
    n: int


def add_gadget_seen(metadata: MetaData) -> None:
    Table(
        "gadget_seen",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("consumer_group", String(100), nullable=False),
        Column("event_id", Uuid, nullable=False),
        Column("gadget_id", String(100), nullable=False),
        Column("n", Integer, nullable=False),
    )


def make_gadget(gadget_id: str, n: int) -> Envelope[GadgetAssembled]:
    return new_event(GadgetAssembled(gadget_id=gadget_id, n=n), subject=gadget_id, source="outboxtest")


def event_id(message: IncomingMessage) -> str:
    return str(json.loads(message.value)["id"])


def published(metrics: CollectorRegistry) -> float:
    return metrics.get_sample_value("calhub_outbox_published_total", {"service": "outboxtest"}) or 0.0


@dataclass
class Outbox:
    """A service database with an outbox, a bus, and how to read a topic back from that bus."""

    kind: str
    db: ServiceDatabase
    bus: Any

    async def read(self, topic: str) -> list[IncomingMessage]:
        if self.kind == "kafka":
            return list(await self.bus.read(topic, timeout=30.0))
        return list(self.bus.read(topic))

    def relay(self, metrics: CollectorRegistry | None = None, **options: Any) -> OutboxRelay:
        return OutboxRelay(self.db.sessions, self.db.tables, self.bus, service="outboxtest",
                           metrics=BusMetrics(metrics or CollectorRegistry()), **options)

    def unit_of_work(self, *relays: OutboxRelay) -> UnitOfWork:
        def notify() -> None:
            for relay in relays:
                relay.notify()

        return UnitOfWork(self.db.sessions, self.db.tables, on_commit=notify)


@pytest.fixture(params=["inprocess", pytest.param("kafka", marks=pytest.mark.integration)])
async def outbox(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Outbox]:
    """SQLite + in-process bus, or PostgreSQL + real Kafka."""
    if request.param == "kafka":
        from shared.bus.kafka import KafkaBus

        bootstrap = request.getfixturevalue("kafka_bootstrap")
        url = request.getfixturevalue("postgres_url")
        prefix = f"t{uuid.uuid4().hex[:12]}."
        bus: Any = KafkaBus(bootstrap, topic_prefix=prefix, client_id="outboxtest")
    else:
        url, prefix = sqlite_url(tmp_path), ""
        bus = InProcessBus()
    async with service_database(url) as db:
        await bus.start()
        await bus.ensure_topics([GADGETS.name])
        try:
            yield Outbox(request.param, db, bus)
        finally:
            await bus.stop()
            if request.param == "kafka":
                await delete_topics(bootstrap, prefix)


async def test_rolled_back_unit_of_work_publishes_nothing(outbox: Outbox) -> None:
    relay = outbox.relay()
    with pytest.raises(RuntimeError):
        async with outbox.unit_of_work(relay) as uow:
            uow.record(make_gadget("g-doomed", 0))
            await uow.flush()  # the row is in the outbox, inside the transaction
            raise RuntimeError("a rule failed after the write")
    async with outbox.unit_of_work(relay) as uow:
        uow.record(make_gadget("g-abandoned", 0))
        await uow.flush()  # leaving without commit rolls back too

    assert await relay.backlog() == 0
    assert await relay.publish_pending() == 0
    assert await outbox.read(GADGETS.name) == []

    kept = make_gadget("g-kept", 1)
    async with outbox.unit_of_work(relay) as uow:
        uow.record(kept)
        await uow.commit()
    assert await relay.publish_pending() == 1
    assert [event_id(m) for m in await outbox.read(GADGETS.name)] == [str(kept.id)]
    assert await relay.backlog() == 0


async def test_two_relays_publish_each_event_once_in_seq_order(outbox: Outbox) -> None:
    first_metrics, second_metrics = CollectorRegistry(), CollectorRegistry()
    relays = [outbox.relay(first_metrics, batch_size=25, poll_interval=0.02),
              outbox.relay(second_metrics, batch_size=25, poll_interval=0.02)]
    for relay in relays:
        relay.start()
    try:
        written: list[Envelope[GadgetAssembled]] = []
        n = 0
        for size in [1, 3, 5, 2, 4] * 12:  # 180 events in 60 transactions of varied size, one key
            async with outbox.unit_of_work(*relays) as uow:
                for _ in range(size):
                    gadget = make_gadget("g-ordered", n)
                    uow.record(gadget)
                    written.append(gadget)
                    n += 1
                await uow.commit()

        async def drained() -> bool:
            return await relays[0].backlog() == 0 and len(await outbox.read(GADGETS.name)) >= len(written)

        await eventually(drained, what="the outbox to drain", within=60.0, interval=0.2)
        await asyncio.sleep(0.3)  # a second publisher would show up now
    finally:
        for relay in relays:
            await relay.stop()

    on_topic = [event_id(m) for m in await outbox.read(GADGETS.name)]
    assert on_topic == [str(g.id) for g in written]  # each once, in seq order
    counts = sorted([published(first_metrics), published(second_metrics)])
    assert counts == [0, len(written)]  # only the lease holder published


# ----------------------------------------------------------------- outage


def gadget_dispatcher(db: ServiceDatabase, group: str) -> Dispatcher[UnitOfWork]:
    seen = db.metadata.tables[f"{db.schema}.gadget_seen"]
    registry = HandlerRegistry[UnitOfWork]()

    @registry.handles(GadgetAssembled)
    async def remember_gadget(event: Envelope[GadgetAssembled], uow: UnitOfWork) -> None:
        await uow.session.execute(insert(seen).values(
            consumer_group=group, event_id=event.id, gadget_id=event.data.gadget_id, n=event.data.n))

    return Dispatcher(group, registry, lambda: UnitOfWork(db.sessions, db.tables),
                      metrics=BusMetrics(CollectorRegistry()))


async def dev_services(command: str) -> None:
    process = await asyncio.create_subprocess_exec(
        str(DEV_SERVICES), command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env=os.environ.copy())
    output, _ = await process.communicate()
    assert process.returncode == 0, f"dev-services.sh {command} failed:\n{output.decode(errors='replace')}"


@pytest.mark.integration
@pytest.mark.broker_outage
async def test_events_written_while_the_broker_is_down_arrive_once_per_group(
    kafka_bootstrap: str, postgres_url: str
) -> None:
    from shared.bus.kafka import KafkaBus

    prefix = f"t{uuid.uuid4().hex[:12]}."
    groups = [f"{prefix}alpha", f"{prefix}beta"]  # consumer groups live broker-wide: unique per run
    async with (service_database(postgres_url) as producer_db,
                service_database(postgres_url, extend=add_gadget_seen) as consumer_db):
        producing = Outbox("kafka", producer_db, KafkaBus(kafka_bootstrap, topic_prefix=prefix,
                                                           client_id="outboxtest-producer"))
        consuming = KafkaBus(kafka_bootstrap, topic_prefix=prefix, client_id="outboxtest-consumer")
        seen = consumer_db.metadata.tables[f"{consumer_db.schema}.gadget_seen"]
        relay = producing.relay()
        broker_stopped = False
        try:
            await producing.bus.ensure_topics([GADGETS.name])
            members = [await consuming.subscribe(g, [GADGETS.name], gadget_dispatcher(consumer_db, g))
                       for g in groups]

            async def assigned() -> bool:
                return all(len(m.assignment) == 6 for m in members)

            await eventually(assigned, what="both groups to be assigned", within=60.0, interval=0.2)
            relay.start()

            async def handled(group: str) -> list[Any]:
                async with consumer_db.sessions() as session:
                    result = await session.execute(
                        select(seen.c.event_id, seen.c.gadget_id, seen.c.n)
                        .where(seen.c.consumer_group == group).order_by(seen.c.id))
                    return list(result.all())

            written: list[Envelope[GadgetAssembled]] = []

            async def write(count: int) -> None:
                for _ in range(count):
                    gadget = make_gadget(f"g-{len(written) % 25}", len(written))
                    async with producing.unit_of_work(relay) as uow:
                        uow.record(gadget)
                        await uow.commit()
                    written.append(gadget)

            await write(50)  # the producer and the groups are warm before the outage

            async def warm() -> bool:
                return [await consumer_db_count(consumer_db, seen, g) for g in groups] == [50, 50]

            await eventually(warm, what="the first 50 events", within=60.0, interval=0.2)

            broker_stopped = True  # set first: a half-failed stop must still be undone in `finally`
            await dev_services("kafka-stop")
            await write(1000)
            # Publishing against the stopped broker fails fast (the relay keeps its rows and retries).
            started = asyncio.get_running_loop().time()
            with pytest.raises(BusUnavailable):
                await producing.bus.publish([encode(make_gadget("g-direct", -1))])
            assert asyncio.get_running_loop().time() - started < 20
            assert await relay.backlog() > 0
            await dev_services("kafka-start")
            broker_stopped = False

            async def all_handled() -> bool:
                counts = [await consumer_db_count(consumer_db, seen, g) for g in groups]
                return counts == [len(written)] * len(groups) and await relay.backlog() == 0

            await eventually(all_handled, within=240, what="1,050 events in both groups", interval=0.2)
            await asyncio.sleep(1)  # late duplicates would show up now

            expected = {g.id for g in written}
            for group in groups:
                rows = await handled(group)
                assert len(rows) == len(written)  # each event's side effect exactly once
                assert {r.event_id for r in rows} == expected
                order: dict[str, list[int]] = defaultdict(list)
                for row in rows:
                    order[row.gadget_id].append(row.n)
                assert all(ns == sorted(ns) for ns in order.values())  # per-key order survived
            async with consumer_db.sessions() as session:
                inbox = consumer_db.tables.inbox
                per_group = dict((await session.execute(
                    select(inbox.c.consumer_group, func.count()).group_by(inbox.c.consumer_group))).all())
            assert per_group == {g: len(written) for g in groups}
        finally:
            if broker_stopped:
                try:
                    await dev_services("kafka-start")
                except AssertionError:  # one more try: the broker must be left running for whatever runs next
                    await asyncio.sleep(5)
                    await dev_services("kafka-start")
            await relay.stop()
            await consuming.stop()
            await producing.bus.stop()
            await delete_topics(kafka_bootstrap, prefix)


async def consumer_db_count(db: ServiceDatabase, seen: Table, group: str) -> int:
    async with db.sessions() as session:
        return int(await session.scalar(
            select(func.count()).select_from(seen).where(seen.c.consumer_group == group)) or 0)
