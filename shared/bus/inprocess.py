"""The in-process bus: partitioned in-memory logs with consumer groups, for embedded mode and tests.

It keeps Kafka's semantics that CalHub relies on (per-key order, group members splitting partitions,
offsets committed after handling, dead-letter topics) so the same contract tests pass against both.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import zlib
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from shared.bus.base import DLQ_SUFFIX, Consumer, RetryPolicy, deliver
from shared.bus.message import IncomingMessage, OutgoingMessage

log = logging.getLogger("calhub.bus.inprocess")


def partition_for(key: bytes | None, partitions: int, fallback: int) -> int:
    """Stable key → partition mapping; keyless messages are spread round-robin."""
    if key is None:
        return fallback % partitions
    return zlib.crc32(key) % partitions


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
        logs = self.bus._logs[topic][partition]
        batch = logs[start:start + self.batch_size]
        if not batch:
            return False
        await deliver(batch, self.consumer, group=self.group, policy=self.policy,
                      dead_letter=self.bus._publish_one)
        if (topic, partition) in self.assignment:  # still ours after a rebalance: commit
            group.committed[(topic, partition)] = max(group.committed.get((topic, partition), 0),
                                                      batch[-1].offset + 1)
        return True


class InProcessBus:
    """A Bus for one process. Topics are created on first use with `partitions` partitions."""

    def __init__(self, *, partitions: int = 6, batch_size: int = 100) -> None:
        self.partitions = partitions
        self.batch_size = batch_size
        self._logs: dict[str, list[list[IncomingMessage]]] = {}
        self._groups: dict[str, _Group] = defaultdict(_Group)
        self._round_robin = itertools.count()
        self._new_messages = asyncio.Event()
        self._started = False

    async def start(self) -> None:
        self._started = True

    async def stop(self) -> None:
        for group in list(self._groups.values()):
            for member in list(group.members):
                await member.stop()
        self._started = False

    async def ensure_topics(self, topics: Sequence[str]) -> None:
        for topic in topics:
            self._topic(topic)
            self._topic(topic + DLQ_SUFFIX)

    def _topic(self, topic: str) -> list[list[IncomingMessage]]:
        if topic not in self._logs:
            self._logs[topic] = [[] for _ in range(self.partitions)]
        return self._logs[topic]

    async def publish(self, messages: Sequence[OutgoingMessage]) -> None:
        for message in messages:
            self._append(message)
        if messages:
            self._new_messages.set()

    async def _publish_one(self, message: OutgoingMessage) -> None:
        await self.publish([message])

    def _append(self, message: OutgoingMessage) -> None:
        partitions = self._topic(message.topic)
        number = partition_for(message.key, len(partitions), next(self._round_robin))
        log_ = partitions[number]
        log_.append(IncomingMessage(topic=message.topic, partition=number, offset=len(log_), key=message.key,
                                    value=message.value, headers=message.headers))

    async def _wait_for_messages(self, seconds: float) -> None:
        self._new_messages.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._new_messages.wait(), seconds)

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
        return {p: len(msgs) for p, msgs in enumerate(self._topic(topic))}

    def committed(self, group: str, topic: str) -> dict[int, int]:
        """Committed offset per partition for a group."""
        return {p: self._groups[group].committed.get((topic, p), 0) for p in range(len(self._topic(topic)))}

    def read(self, topic: str) -> list[IncomingMessage]:
        """Every message of a topic, partition by partition (tests and dead-letter listings)."""
        return [m for part in self._topic(topic) for m in part]
