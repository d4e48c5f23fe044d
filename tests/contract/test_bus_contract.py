"""One contract suite for both buses: the in-process bus (SQLite inbox) and Kafka (PostgreSQL inbox).

Everything runs through the real Dispatcher, HandlerRegistry, UnitOfWork and inbox; the handler's side effect
is a row in `widget_seen`, so "exactly once" is counted in the database.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import Column, Integer, MetaData, String, Table, Uuid, func, insert, select

from shared.bus.base import (
    HEADER_DLQ_ATTEMPTS,
    HEADER_DLQ_ERROR,
    HEADER_DLQ_ERROR_TYPE,
    HEADER_DLQ_GROUP,
    HEADER_DLQ_TOPIC,
    RetryPolicy,
)
from shared.bus.dispatcher import Dispatcher
from shared.bus.inprocess import InProcessBus
from shared.bus.message import IncomingMessage, OutgoingMessage, RetryableError, encode
from shared.bus.registry import HandlerRegistry
from shared.bus.replay import replay_message
from shared.contracts.base import EventData, Topic, event
from shared.envelope import Envelope, new_event
from shared.telemetry import BusMetrics
from shared.testing.database import ServiceDatabase, service_database, sqlite_url
from shared.testing.kafka import delete_topics
from shared.testing.polling import eventually
from shared.uow import UnitOfWork

WIDGETS = Topic("contracttest", "widget")
QUICK_RETRIES = RetryPolicy(max_attempts=3, initial_backoff=0.01, max_backoff=0.05)


@event("widget.created", WIDGETS)
class WidgetCreated(EventData):
    widget_id: str
    seq: int
    note: str = ""


def add_widget_seen(metadata: MetaData) -> None:
    Table(
        "widget_seen",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("consumer_group", String(100), nullable=False),
        Column("event_id", Uuid, nullable=False),
        Column("widget_id", String(100), nullable=False),
        Column("seq", Integer, nullable=False),
        Column("partition", Integer, nullable=True),
    )


def make_widget(widget_id: str, seq: int, note: str = "") -> Envelope[WidgetCreated]:
    return new_event(WidgetCreated(widget_id=widget_id, seq=seq, note=note), subject=widget_id,
                     source="contracttest")


# ------------------------------------------------------------------ harness


@dataclass
class Harness:
    """A bus plus the database its consumers write to, with the few calls that differ between buses."""

    kind: str
    bus: Any
    db: ServiceDatabase
    prefix: str = ""
    subscriptions: list[Any] = field(default_factory=list)

    def group(self, name: str) -> str:
        """A consumer group name (the Kafka bus prefixes group ids like topics, so tests never share one)."""
        return name

    @property
    def seen(self) -> Table:
        return self.db.metadata.tables[f"{self.db.schema}.widget_seen"]

    async def read(self, topic: str) -> list[IncomingMessage]:
        if self.kind == "kafka":
            return list(await self.bus.read(topic, timeout=20.0))
        return list(self.bus.read(topic))

    async def subscribe(self, group: str, consumer: Any, policy: RetryPolicy = QUICK_RETRIES) -> Any:
        subscription = await self.bus.subscribe(group, [WIDGETS.name], consumer, policy=policy)
        self.subscriptions.append(subscription)
        return subscription

    async def rows(self, group: str) -> list[Any]:
        async with self.db.sessions() as session:
            result = await session.execute(
                select(self.seen).where(self.seen.c.consumer_group == group).order_by(self.seen.c.id))
            return list(result.all())

    async def count(self, group: str) -> int:
        async with self.db.sessions() as session:
            return int(await session.scalar(
                select(func.count()).select_from(self.seen).where(self.seen.c.consumer_group == group)) or 0)


def has_stopped(subscription: Any) -> bool:
    return not subscription.healthy  # readiness reports a crashed member through this


@pytest.fixture(params=["inprocess", pytest.param("kafka", marks=pytest.mark.integration)])
async def harness(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Harness]:
    if request.param == "kafka":
        from shared.bus.kafka import KafkaBus

        bootstrap = request.getfixturevalue("kafka_bootstrap")
        url = request.getfixturevalue("postgres_url")
        prefix = f"t{uuid.uuid4().hex[:12]}."
        bus: Any = KafkaBus(bootstrap, topic_prefix=prefix, client_id="contracttest", batch_size=50)
    else:
        url = sqlite_url(tmp_path)
        prefix = ""
        bus = InProcessBus(partitions=6, batch_size=50)
    async with service_database(url, extend=add_widget_seen) as db:
        await bus.start()
        await bus.ensure_topics([WIDGETS.name])
        h = Harness(request.param, bus, db, prefix)
        try:
            yield h
        finally:
            for subscription in h.subscriptions:
                await subscription.stop()
            await bus.stop()
            if request.param == "kafka":
                await delete_topics(bootstrap, prefix)


# ---------------------------------------------------------------- consumers


def widget_dispatcher(h: Harness, group: str, *, refuse: Callable[[WidgetCreated], bool] | None = None,
                      metrics: CollectorRegistry | None = None) -> Dispatcher[UnitOfWork]:
    """The real dispatcher with one handler that writes a `widget_seen` row (or refuses some widgets)."""
    registry = HandlerRegistry[UnitOfWork]()

    @registry.handles(WidgetCreated)
    async def remember_widget(event: Envelope[WidgetCreated], uow: UnitOfWork) -> None:
        if refuse is not None and refuse(event.data):
            # Our own error type: its message (PHI-free by construction) rides in the dead-letter headers.
            raise RetryableError(f"widget {event.data.widget_id} refused")
        await uow.session.execute(insert(h.seen).values(
            consumer_group=group, event_id=event.id, widget_id=event.data.widget_id, seq=event.data.seq))

    return Dispatcher(group, registry, lambda: UnitOfWork(h.db.sessions, h.db.tables),
                      metrics=BusMetrics(metrics or CollectorRegistry()))


class Watching:
    """Passes messages through to a consumer and remembers which partitions and event ids it was given."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.partitions: set[int] = set()
        self.event_ids: set[str] = set()
        self.deliveries = 0

    async def handle(self, message: IncomingMessage) -> None:
        await self.handle_batch([message])

    async def handle_batch(self, messages: Sequence[IncomingMessage]) -> None:
        await self.inner.handle_batch(messages)
        self.partitions.update(m.partition for m in messages)
        self.event_ids.update(json.loads(m.value)["id"] for m in messages)
        self.deliveries += len(messages)


class ProcessCrash(BaseException):
    """Stands for the process dying (kill -9, OOM): not an error any handler code would catch."""


class CrashAfterCommit:
    """Handles its first batch (the unit of work commits), then 'dies' before the offset commit."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.crashed_ids: list[str] = []

    async def handle(self, message: IncomingMessage) -> None:
        await self.handle_batch([message])

    async def handle_batch(self, messages: Sequence[IncomingMessage]) -> None:
        await self.inner.handle_batch(messages)
        if not self.crashed_ids:
            self.crashed_ids = [json.loads(m.value)["id"] for m in messages]
            raise ProcessCrash()


async def wait_split(h: Harness, members: Sequence[Any], partitions: int = 6) -> None:
    """Wait until every member holds some partitions and together they hold each exactly once."""

    async def split() -> bool:
        held = [list(m.assignment) for m in members]
        flat = [tp for a in held for tp in a]
        return all(held) and len(flat) == partitions and len(set(flat)) == partitions

    await eventually(split, within=60, what="the group to split the partitions", interval=0.1)


def publish_widgets(h: Harness, envelopes: Sequence[Envelope[Any]]) -> Awaitable[None]:
    return h.bus.publish([encode(e) for e in envelopes])


def sample(metrics: CollectorRegistry, name: str, **labels: str) -> float:
    return metrics.get_sample_value(name, labels) or 0.0


# -------------------------------------------------------------------- tests


async def test_each_key_arrives_in_order(harness: Harness) -> None:
    h = harness
    orderly = h.group("orderly")
    await h.subscribe(orderly, widget_dispatcher(h, orderly))
    keys = ["w-alpha", "w-bravo", "w-charlie"]
    events = [make_widget(k, seq) for seq in range(200) for k in keys]
    for start in range(0, len(events), 50):  # many publish calls, as the relay makes them
        await publish_widgets(h, events[start:start + 50])

    async def all_seen() -> bool:
        return await h.count(orderly) == len(events)

    await eventually(all_seen, what="600 events", within=60.0, interval=0.1)
    rows = await h.rows(orderly)
    for key in keys:
        assert [r.seq for r in rows if r.widget_id == key] == list(range(200))
    assert len({r.event_id for r in rows}) == len(events)


async def test_two_members_split_the_partitions(harness: Harness) -> None:
    h = harness
    splitters = h.group("splitters")
    first, second = Watching(widget_dispatcher(h, splitters)), Watching(widget_dispatcher(h, splitters))
    members = [await h.subscribe(splitters, first), await h.subscribe(splitters, second)]
    await wait_split(h, members)
    events = [make_widget(f"w-{n % 30}", n) for n in range(300)]
    await publish_widgets(h, events)

    async def all_seen() -> bool:
        return await h.count(splitters) == len(events)

    await eventually(all_seen, what="300 events", within=60.0, interval=0.1)
    await asyncio.sleep(0.5)  # anything extra would show up now
    rows = await h.rows(splitters)
    assert len(rows) == len(events)
    assert {r.event_id for r in rows} == {e.id for e in events}
    assert first.partitions and second.partitions
    assert not first.partitions & second.partitions
    # No failures, no rebalance after the split: every message was delivered once, to one member.
    assert first.deliveries + second.deliveries == len(events)
    assert first.event_ids | second.event_ids == {str(e.id) for e in events}


async def test_crash_before_offset_commit_is_redelivered_and_deduplicated(harness: Harness) -> None:
    h = harness
    crashers = h.group("crashers")
    survivor_metrics = CollectorRegistry()
    doomed = CrashAfterCommit(widget_dispatcher(h, crashers))
    crashing = await h.subscribe(crashers, doomed)
    survivor = Watching(widget_dispatcher(h, crashers, metrics=survivor_metrics))
    surviving = await h.subscribe(crashers, survivor)
    await wait_split(h, [crashing, surviving])
    events = [make_widget(f"w-{n % 12}", n) for n in range(120)]
    await publish_widgets(h, events)

    async def all_seen() -> bool:
        return await h.count(crashers) == len(events)

    await eventually(all_seen, what="every event handled after the crash", within=60.0, interval=0.1)

    async def crashed() -> bool:
        return has_stopped(crashing)

    await eventually(crashed, what="the crashed member to stop", within=60.0, interval=0.1)
    assert doomed.crashed_ids, "the crashing member never handled a batch"

    # The crashed batch reached the survivor again and its inbox skipped it: one side effect per event.
    # (Batches of other partitions the doomed member had in flight may be redelivered too: at least once.)
    async def redelivered() -> bool:
        return set(doomed.crashed_ids) <= survivor.event_ids and sample(
            survivor_metrics, "calhub_events_duplicate_total", group=crashers,
            event_type="widget.created") >= len(doomed.crashed_ids)

    await eventually(redelivered, what="the crashed batch to be redelivered", within=60.0, interval=0.1)
    await asyncio.sleep(0.5)
    rows = await h.rows(crashers)
    assert len(rows) == len(events)
    assert {str(r.event_id) for r in rows} == {str(e.id) for e in events}


async def test_poison_message_goes_to_dead_letters_and_its_neighbours_are_handled(harness: Harness) -> None:
    h = harness
    picky = h.group("picky")
    await h.subscribe(picky, widget_dispatcher(h, picky, refuse=lambda w: w.note == "poison"))
    events = [make_widget("w-same", n, note="poison" if n == 2 else "") for n in range(6)]
    await publish_widgets(h, events)

    async def dead_lettered() -> bool:
        return len(await h.read(WIDGETS.dead_letters)) == 1

    await eventually(dead_lettered, what="the poison message in the dead-letter topic", within=60.0, interval=0.1)

    async def neighbours_seen() -> bool:
        return await h.count(picky) == 5

    await eventually(neighbours_seen, what="the other five events", within=60.0, interval=0.1)
    [dead] = await h.read(WIDGETS.dead_letters)
    assert dead.topic == WIDGETS.dead_letters
    assert dead.key == b"w-same"
    assert json.loads(dead.value)["id"] == str(events[2].id)
    assert dead.header(HEADER_DLQ_ERROR_TYPE) == "RetryableError"
    assert dead.header(HEADER_DLQ_ERROR) == "widget w-same refused"
    assert dead.header(HEADER_DLQ_ATTEMPTS) == "3"
    assert dead.header(HEADER_DLQ_GROUP) == picky
    assert dead.header(HEADER_DLQ_TOPIC) == WIDGETS.name
    assert [r.seq for r in await h.rows(picky)] == [0, 1, 3, 4, 5]


async def test_replayed_dead_letter_is_handled_once_and_skipped_by_groups_that_had_it(harness: Harness) -> None:
    h = harness
    fixable, healthy = h.group("fixable"), h.group("healthy")
    broken = True
    fixed_metrics, healthy_metrics = CollectorRegistry(), CollectorRegistry()
    await h.subscribe(fixable, widget_dispatcher(h, fixable, refuse=lambda w: broken and w.note == "odd",
                                                 metrics=fixed_metrics))
    await h.subscribe(healthy, widget_dispatcher(h, healthy, metrics=healthy_metrics))
    odd = make_widget("w-replay", 1, note="odd")
    events = [make_widget("w-replay", 0), odd, make_widget("w-replay", 2)]
    await publish_widgets(h, events)

    async def settled() -> bool:
        return (await h.count(fixable) == 2 and await h.count(healthy) == 3
                and len(await h.read(WIDGETS.dead_letters)) == 1)

    await eventually(settled, what="the dead letter and the healthy group's three events", within=60.0, interval=0.1)

    broken = False  # the fix is deployed
    [dead] = await h.read(WIDGETS.dead_letters)
    await h.bus.publish([replay_message(dead)])

    async def replayed() -> bool:
        return (await h.count(fixable) == 3
                and sample(healthy_metrics, "calhub_events_duplicate_total", group=healthy,
                           event_type="widget.created") == 1)

    await eventually(replayed, what="the replayed event to be handled by the fixed group", within=60.0, interval=0.1)
    await asyncio.sleep(0.5)
    fixed_rows, healthy_rows = await h.rows(fixable), await h.rows(healthy)
    assert [r.seq for r in fixed_rows] == [0, 2, 1]
    assert [r.event_id for r in fixed_rows if r.seq == 1] == [odd.id]  # same event id: the inbox key
    assert [r.seq for r in healthy_rows] == [0, 1, 2]  # skipped by its inbox, not handled twice
    assert len(await h.read(WIDGETS.dead_letters)) == 1  # nothing new went wrong


async def test_schema_violation_is_dead_lettered_at_once(harness: Harness) -> None:
    h = harness
    strict = h.group("strict")
    await h.subscribe(strict, widget_dispatcher(h, strict), policy=RetryPolicy(max_attempts=50))
    original, good = make_widget("w-schema", 0), make_widget("w-schema", 1)
    broken = json.loads(original.to_json())
    del broken["data"]["widget_id"]
    broken["data"]["seq"] = "not a number"
    bad = OutgoingMessage(topic=WIDGETS.name, key=b"w-schema", value=json.dumps(broken).encode(),
                          headers=encode(original).headers)
    await h.bus.publish([bad, encode(good)])

    async def settled() -> bool:
        return await h.count(strict) == 1 and len(await h.read(WIDGETS.dead_letters)) == 1

    await eventually(settled, within=30, what="the bad event dead-lettered and the good one handled", interval=0.1)
    [dead] = await h.read(WIDGETS.dead_letters)
    assert dead.header(HEADER_DLQ_ERROR_TYPE) == "MalformedEvent"
    assert dead.header(HEADER_DLQ_ATTEMPTS) == "1"
    error = dead.header(HEADER_DLQ_ERROR) or ""
    assert error.startswith("schema validation failed")
    assert "data.widget_id: missing" in error and "data.seq: int_parsing" in error
    assert "not a number" not in error  # field paths and rules only, never the (possibly PHI) values
    assert [r.seq for r in await h.rows(strict)] == [1]


async def test_unknown_event_type_is_skipped_and_counted(harness: Harness) -> None:
    h = harness
    curious = h.group("curious")
    metrics = CollectorRegistry()
    await h.subscribe(curious, widget_dispatcher(h, curious, metrics=metrics))
    future = json.loads(make_widget("w-future", 0).to_json())
    future["type"] = "widget.teleported"  # a newer producer's type this build does not know
    unknown = OutgoingMessage(topic=WIDGETS.name, key=b"w-future", value=json.dumps(future).encode())
    after = make_widget("w-future", 1)
    await h.bus.publish([unknown, encode(after)])

    async def handled_after() -> bool:
        return await h.count(curious) == 1

    await eventually(handled_after, what="the event after the unknown one", within=60.0, interval=0.1)
    assert [r.event_id for r in await h.rows(curious)] == [after.id]
    assert sample(metrics, "calhub_events_unknown_type_total", group=curious, topic=WIDGETS.name) == 1
    assert await h.read(WIDGETS.dead_letters) == []


async def test_kafka_group_ids_carry_the_deployment_prefix(harness: Harness) -> None:
    """Deployments (and test sessions) sharing a cluster keep apart: the broker's group id is prefixed like
    the topics, the bus and the ops console speak the logical name."""
    h = harness
    if h.kind != "kafka":
        pytest.skip("group ids are a broker concept")
    from aiokafka.admin import AIOKafkaAdminClient

    group = h.group("prefixed")
    await h.subscribe(group, widget_dispatcher(h, group))
    await publish_widgets(h, [make_widget("w-prefix", 1)])

    async def seen() -> bool:
        return await h.count(group) == 1

    await eventually(seen, what="one event", within=60.0, interval=0.1)
    admin = AIOKafkaAdminClient(bootstrap_servers=h.bus.bootstrap_servers, request_timeout_ms=10000)
    await admin.start()
    try:
        on_broker = {entry[0] for entry in await admin.list_consumer_groups()}
    finally:
        await admin.close()
    assert h.prefix + group in on_broker
    assert group not in on_broker
    assert h.bus.logical_group(h.prefix + group) == group
    assert h.bus.logical_group("someone-elses-group") is None

    async def committed() -> bool:
        return sum((await h.bus.committed(group, WIDGETS.name)).values()) == 1

    await eventually(committed, what="the group's commit read back through the logical name", within=60.0, interval=0.1)
