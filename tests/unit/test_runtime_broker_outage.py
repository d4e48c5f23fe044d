"""A service started while the broker is down still starts: its API takes work into the outbox, readiness says
it waits for the broker, and once the broker answers it creates its topics, joins its group and the relay
publishes what was accepted meanwhile. Runs the referrals service on SQLite with a bus that can be 'down'."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import pytest
from referrals.bootstrap import definition
from referrals.testkit import callers, make_referral

import shared.runtime
from shared.bus.base import BusUnavailable, Consumer, OutgoingMessage, RetryPolicy, Subscription
from shared.bus.inprocess import InProcessBus
from shared.bus.message import HEADER_EVENT_TYPE
from shared.contracts import EVENT_TYPES
from shared.testing.app import service_harness
from shared.testing.polling import eventually


class OutageBus(InProcessBus):
    """The in-process bus, refusing every call while `down` is set, as aiokafka does against a stopped broker."""

    def __init__(self) -> None:
        super().__init__()
        self.down = True
        self.refused: list[str] = []

    def _refuse(self, what: str) -> None:
        if self.down:
            self.refused.append(what)
            raise BusUnavailable(f"{what}: broker unavailable")

    async def ensure_topics(self, topics: Sequence[str]) -> None:
        self._refuse("ensure_topics")
        await super().ensure_topics(topics)

    async def publish(self, messages: Sequence[OutgoingMessage]) -> None:
        self._refuse("publish")
        await super().publish(messages)

    async def subscribe(self, group: str, topics: Sequence[str], consumer: Consumer, *,
                        policy: RetryPolicy | None = None) -> Subscription:
        self._refuse("subscribe")
        return await super().subscribe(group, topics, consumer, policy=policy)


async def test_a_service_started_during_a_broker_outage_serves_and_catches_up(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shared.runtime, "BROKER_RETRY_FIRST", 0.05)
    monkeypatch.setattr(shared.runtime, "BROKER_RETRY_MAX", 0.2)
    bus = OutageBus()
    async with service_harness([definition()], tmp_path, keys=callers(), bus=bus) as harness:
        runtime = harness.runtimes["referrals"]
        assert "ensure_topics" in bus.refused

        waiting = await runtime.readiness()
        assert (waiting["ready"], waiting["consumer"]) == (False, "waiting for the broker")

        # The API takes the referral during the outage; its events wait in the outbox.
        response = await harness.client.post("/v1/referrals", json=make_referral(),
                                             headers=harness.headers("hub", **{"Idempotency-Key": "outage-1"}))
        assert response.status_code == 201, response.text
        referral_id = response.json()["id"]
        await asyncio.sleep(0.3)  # several relay and join attempts fail meanwhile
        assert await runtime.relay.backlog() > 0
        assert runtime.subscription is None

        bus.down = False

        async def caught_up() -> bool:
            ready = await runtime.readiness()
            return bool(ready["ready"]) and await runtime.relay.backlog() == 0

        await eventually(caught_up, within=20, interval=0.02)
        assert (await runtime.readiness())["consumer"] == "running"
        assert runtime.joining_bus is not None and runtime.joining_bus.done()
        topic = EVENT_TYPES.get("referral.received").topic.name
        received = [m for m in bus.read(topic) if dict(m.headers).get(HEADER_EVENT_TYPE) == b"referral.received"]
        assert len(received) == 1
        assert referral_id.encode() in received[0].value


async def test_stopping_a_service_that_still_waits_for_the_broker_ends_the_retries(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shared.runtime, "BROKER_RETRY_FIRST", 0.05)
    bus = OutageBus()
    async with service_harness([definition()], tmp_path, keys=callers(), bus=bus) as harness:
        runtime = harness.runtimes["referrals"]
        joining = runtime.joining_bus
        assert joining is not None and not joining.done()
    assert joining.done() and runtime.joining_bus is None
    attempts = len(bus.refused)
    await asyncio.sleep(0.2)
    assert len(bus.refused) == attempts  # nothing retries after the stop
