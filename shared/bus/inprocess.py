"""The in-process bus: partitioned logs with consumer groups, for embedded mode and tests.

It keeps Kafka's semantics that CalHub relies on (per-key order, group members splitting partitions,
offsets committed after handling, dead-letter topics) so the same contract tests pass against both.
Logs live in memory; with `log_path` every message and committed offset is also written to a SQLite file and
read back at start, so in embedded mode a crash or restart loses no event that was published but not yet
handled. Messages every group has consumed are trimmed once a partition grows past `retain_messages`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import sqlite3
import zlib
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from shared.bus.base import DLQ_SUFFIX, BusUnavailable, Consumer, RetryPolicy, deliver
from shared.bus.message import IncomingMessage, OutgoingMessage

log = logging.getLogger("calhub.bus.inprocess")


def partition_for(key: bytes | None, partitions: int, fallback: int) -> int:
    """Stable key → partition mapping; keyless messages are spread round-robin."""
    if key is None:
        return fallback % partitions
    return zlib.crc32(key) % partitions


class _Partition:
    """One partition's log: messages from `base` (the first retained offset) on."""

    def __init__(self) -> None:
        self.base = 0
        self.messages: list[IncomingMessage] = []

    @property
    def end(self) -> int:
        return self.base + len(self.messages)

    def read(self, start: int, limit: int) -> list[IncomingMessage]:
        begin = max(start, self.base) - self.base
        return self.messages[begin:begin + limit]

    def trim(self, below: int) -> int:
        """Drop messages with offsets below `below`; returns how many."""
        drop = min(max(0, below - self.base), len(self.messages))
        if drop:
            del self.messages[:drop]
            self.base += drop
        return drop


class _SqliteLog:
    """Durable copy of the logs and committed offsets (synchronous sqlite3: appends are sub-millisecond in WAL)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        # FULL: a publish that returned must survive power loss, as acks=all does on Kafka (one fsync per batch).
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("CREATE TABLE IF NOT EXISTS message (topic TEXT, part INTEGER, offs INTEGER, key BLOB, "
                        "value BLOB, headers TEXT, PRIMARY KEY (topic, part, offs))")
        self.db.execute("CREATE TABLE IF NOT EXISTS committed (grp TEXT, topic TEXT, part INTEGER, offs INTEGER, "
                        "PRIMARY KEY (grp, topic, part))")

    def append(self, messages: Sequence[IncomingMessage]) -> None:
        self.db.execute("BEGIN")
        self.db.executemany(
            "INSERT INTO message VALUES (?, ?, ?, ?, ?, ?)",
            [(m.topic, m.partition, m.offset, m.key, m.value, json.dumps([[k, v.decode()] for k, v in m.headers]))
             for m in messages])
        self.db.execute("COMMIT")

    def commit(self, group: str, topic: str, partition: int, offset: int) -> None:
        self.db.execute("INSERT INTO committed VALUES (?, ?, ?, ?) ON CONFLICT (grp, topic, part) "
                        "DO UPDATE SET offs = excluded.offs", (group, topic, partition, offset))

    def trim(self, topic: str, partition: int, below: int) -> None:
        self.db.execute("DELETE FROM message WHERE topic = ? AND part = ? AND offs < ?", (topic, partition, below))

    def load(self) -> tuple[list[IncomingMessage], list[tuple[str, str, int, int]]]:
        messages = [IncomingMessage(topic=t, partition=p, offset=o, key=k, value=v,
                                    headers=tuple((hk, hv.encode()) for hk, hv in json.loads(h)))
                    for t, p, o, k, v, h in self.db.execute(
                        "SELECT topic, part, offs, key, value, headers FROM message ORDER BY topic, part, offs")]
        committed = list(self.db.execute("SELECT grp, topic, part, offs FROM committed"))
        return messages, committed

    def close(self) -> None:
        self.db.close()


@dataclass
class _Group:
    members: list[_Member] = field(default_factory=list)
    committed: dict[tuple[str, int], int] = field(default_factory=dict)
    generation: int = 0


class _Member:
    def __init__(self, bus: InProcessBus, group: str, topics: Sequence[str], consumer: Consumer,
                 policy: RetryPolicy, batch_size: int) -> None:
        self.bus = bus
        self.group = group
        self.topics = list(topics)
        self.consumer = consumer
        self.policy = policy
        self.batch_size = batch_size
        self.assignment: list[tuple[str, int]] = []
        self.task: asyncio.Task[None] | None = None

    @property
    def healthy(self) -> bool:
        """False once the consumer loop has died (readiness reports it)."""
        return self.task is not None and not self.task.done()

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):  # stopping; errors were logged
                await self.task
        self.bus._leave(self)

    async def run(self) -> None:
        try:
            while True:
                progressed = False
                for topic, partition in list(self.assignment):
                    progressed |= await self._poll(topic, partition)
                if not progressed:
                    await self.bus._wait_for_messages(0.05)
        except asyncio.CancelledError:
            raise
        except BaseException:
            # A crash of the consumer (including a simulated one) leaves uncommitted messages for the next member.
            log.exception("in-process consumer crashed", extra={"group": self.group})
            self.bus._leave(self)

    async def _poll(self, topic: str, partition: int) -> bool:
        group = self.bus._groups[self.group]
        start = group.committed.get((topic, partition), 0)
        batch = self.bus._logs[topic][partition].read(start, self.batch_size)
        if not batch:
            return False
        await deliver(batch, self.consumer, group=self.group, policy=self.policy,
                      dead_letter=self.bus._publish_one)
        if (topic, partition) in self.assignment:  # still ours after a rebalance: commit
            self.bus._commit(self.group, topic, partition, batch[-1].offset + 1)
        return True


class InProcessBus:
    """A Bus for one process. Topics are created on first use with `partitions` partitions."""

    def __init__(self, *, partitions: int = 6, batch_size: int = 100, log_path: Path | None = None,
                 retain_messages: int = 10_000) -> None:
        self.partitions = partitions
        self.batch_size = batch_size
        self.log_path = log_path
        self.retain_messages = retain_messages
        self._logs: dict[str, list[_Partition]] = {}
        self._groups: dict[str, _Group] = defaultdict(_Group)
        self._round_robin = itertools.count()
        self._new_messages = asyncio.Event()
        self._store: _SqliteLog | None = None
        self._started = False
        self._stopped = False

    async def start(self) -> None:
        if self.log_path is not None and self._store is None:
            self._store = _SqliteLog(self.log_path)
            messages, committed = self._store.load()
            for message in messages:
                part = self._topic(message.topic)[message.partition]
                if not part.messages:
                    part.base = message.offset
                part.messages.append(message)
            for group, topic, partition, offset in committed:
                self._groups[group].committed[(topic, partition)] = offset
                part = self._topic(topic)[partition]
                if not part.messages and part.base < offset:
                    part.base = offset  # everything below was consumed and trimmed before the restart
        self._started = True
        self._stopped = False

    async def stop(self) -> None:
        for group in list(self._groups.values()):
            for member in list(group.members):
                await member.stop()
        if self._store is not None:
            self._store.close()
            self._store = None
        self._started = False
        self._stopped = True

    async def ensure_topics(self, topics: Sequence[str]) -> None:
        for topic in topics:
            self._topic(topic)
            self._topic(topic + DLQ_SUFFIX)

    def _topic(self, topic: str) -> list[_Partition]:
        if topic not in self._logs:
            self._logs[topic] = [_Partition() for _ in range(self.partitions)]
        return self._logs[topic]

    async def publish(self, messages: Sequence[OutgoingMessage]) -> None:
        if self._stopped:
            raise BusUnavailable("the in-process bus was stopped")
        placed = self._place(messages)
        if self._store is not None and placed:
            try:  # durable before anyone can read them, as acks=all is on Kafka
                self._store.append(placed)
            except sqlite3.Error as exc:
                raise BusUnavailable(f"bus log write failed: {type(exc).__name__}") from None
        for incoming in placed:
            self._logs[incoming.topic][incoming.partition].messages.append(incoming)
        if messages:
            self._new_messages.set()

    async def _publish_one(self, message: OutgoingMessage) -> None:
        await self.publish([message])

    def _place(self, messages: Sequence[OutgoingMessage]) -> list[IncomingMessage]:
        """Give messages their partitions and offsets without appending them yet."""
        next_offset: dict[tuple[str, int], int] = {}
        placed = []
        for message in messages:
            partitions = self._topic(message.topic)
            number = partition_for(message.key, len(partitions), next(self._round_robin))
            offset = next_offset.get((message.topic, number), partitions[number].end)
            next_offset[(message.topic, number)] = offset + 1
            placed.append(IncomingMessage(topic=message.topic, partition=number, offset=offset, key=message.key,
                                          value=message.value, headers=message.headers))
        return placed

    def _commit(self, group: str, topic: str, partition: int, offset: int) -> None:
        committed = self._groups[group].committed
        committed[(topic, partition)] = max(committed.get((topic, partition), 0), offset)
        if self._store is not None:
            self._store.commit(group, topic, partition, committed[(topic, partition)])
        part = self._logs[topic][partition]
        if len(part.messages) > self.retain_messages:
            self._trim(topic, partition)

    def _trim(self, topic: str, partition: int) -> None:
        # Keep what any group that reads this topic has not committed yet; a group that never committed keeps all.
        readers = [g for g in self._groups.values() if any(topic in m.topics for m in g.members)
                   or any(t == topic for t, _ in g.committed)]
        if not readers or any((topic, partition) not in g.committed for g in readers):
            return
        below = min(g.committed[(topic, partition)] for g in readers)
        if self._logs[topic][partition].trim(below) and self._store is not None:
            self._store.trim(topic, partition, below)

    async def _wait_for_messages(self, seconds: float) -> None:
        self._new_messages.clear()
        # asyncio.timeout, not wait_for: on 3.11 wait_for swallows a cancel that lands as the event is set,
        # and the member then never stops.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._new_messages.wait()

    async def subscribe(self, group: str, topics: Sequence[str], consumer: Consumer, *,
                        policy: RetryPolicy | None = None) -> _Member:
        for topic in topics:
            self._topic(topic)
        member = _Member(self, group, topics, consumer, policy or RetryPolicy(), self.batch_size)
        self._groups[group].members.append(member)
        self._rebalance(group)
        member.task = asyncio.create_task(member.run(), name=f"inprocess-consumer-{group}")
        return member

    def _leave(self, member: _Member) -> None:
        group = self._groups[member.group]
        if member in group.members:
            group.members.remove(member)
            self._rebalance(member.group)

    def _rebalance(self, name: str) -> None:
        # Range-style assignment per topic, like Kafka's default: members sorted by join order.
        group = self._groups[name]
        group.generation += 1
        for member in group.members:
            member.assignment = []
        topics = sorted({t for m in group.members for t in m.topics})
        for topic in topics:
            members = [m for m in group.members if topic in m.topics]
            for partition in range(len(self._topic(topic))):
                members[partition % len(members)].assignment.append((topic, partition))
        self._new_messages.set()

    # Introspection used by ops and tests (Kafka's admin API answers the same questions).
    def end_offsets(self, topic: str) -> dict[int, int]:
        """Next offset per partition of a topic."""
        return {p: part.end for p, part in enumerate(self._topic(topic))}

    def groups(self) -> dict[str, list[str]]:
        """Each consumer group with the topics it reads or has committed on, sorted."""
        found: dict[str, set[str]] = {}
        for name, group in self._groups.items():
            topics = {t for member in group.members for t in member.topics} | {t for t, _ in group.committed}
            if topics:
                found[name] = topics
        return {name: sorted(topics) for name, topics in sorted(found.items())}

    def committed(self, group: str, topic: str) -> dict[int, int]:
        """Committed offset per partition for a group."""
        return {p: self._groups[group].committed.get((topic, p), 0) for p in range(len(self._topic(topic)))}

    def read(self, topic: str) -> list[IncomingMessage]:
        """Every retained message of a topic, partition by partition (tests and dead-letter listings)."""
        return [m for part in self._topic(topic) for m in part.messages]
