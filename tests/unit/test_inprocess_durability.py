"""Embedded mode's bus log survives a restart: nothing published is lost, nothing committed comes back."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from shared.bus.inprocess import InProcessBus
from shared.bus.message import IncomingMessage, OutgoingMessage


class Recorder:
    def __init__(self, stop_after: int | None = None) -> None:
        self.seen: list[bytes] = []
        self.stop_after = stop_after

    async def handle(self, message: IncomingMessage) -> None:
        if self.stop_after is not None and len(self.seen) >= self.stop_after:
            await asyncio.sleep(3600)  # hang: the process "dies" with the rest unhandled
        self.seen.append(message.value)

    async def handle_batch(self, messages: Sequence[IncomingMessage]) -> None:
        for message in messages:
            await self.handle(message)


def messages(n: int) -> list[OutgoingMessage]:
    return [OutgoingMessage(topic="t.a.v1", key=b"k", value=str(i).encode(), headers=(("h", b"v"),))
            for i in range(n)]


async def wait_for(predicate, seconds: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(seconds):
        while not predicate():
            await asyncio.sleep(0.01)


async def test_unhandled_messages_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "bus.db"
    bus = InProcessBus(partitions=3, batch_size=1, log_path=path)
    await bus.start()
    first = Recorder(stop_after=4)
    await bus.subscribe("g", ["t.a.v1"], first)
    await bus.publish(messages(10))
    await wait_for(lambda: len(first.seen) == 4)
    await bus.stop()

    again = InProcessBus(partitions=3, batch_size=1, log_path=path)
    await again.start()
    second = Recorder()
    await again.subscribe("g", ["t.a.v1"], second)
    await wait_for(lambda: len(second.seen) == 6)
    await asyncio.sleep(0.1)
    assert first.seen + second.seen == [str(i).encode() for i in range(10)]
    assert again.read("t.a.v1")[0].headers == (("h", b"v"),)
    await again.stop()


async def test_consumed_messages_are_trimmed_and_offsets_keep_counting(tmp_path: Path) -> None:
    bus = InProcessBus(partitions=1, batch_size=50, log_path=tmp_path / "bus.db", retain_messages=20)
    await bus.start()
    recorder = Recorder()
    await bus.subscribe("g", ["t.a.v1"], recorder)
    await bus.publish(messages(100))
    await wait_for(lambda: len(recorder.seen) == 100)
    await wait_for(lambda: bus.committed("g", "t.a.v1")[0] == 100)
    assert len(bus.read("t.a.v1")) <= 50
    await bus.stop()

    again = InProcessBus(partitions=1, log_path=tmp_path / "bus.db", retain_messages=20)
    await again.start()
    assert again.end_offsets("t.a.v1") == {0: 100}
    assert again.committed("g", "t.a.v1") == {0: 100}
    assert again.groups() == {"g": ["t.a.v1"]}
    await again.publish(messages(1))
    assert again.end_offsets("t.a.v1") == {0: 101}
    await again.stop()
