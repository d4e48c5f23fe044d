"""Deleting a test run's topics on the real broker (shared.testing.kafka): only that prefix, never failing the run."""

from __future__ import annotations

import asyncio
import logging
import socket
import uuid

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from shared.testing.kafka import delete_topics

pytestmark = pytest.mark.integration


async def topics_on(bootstrap: str, prefix: str) -> set[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
    await admin.start()
    try:
        return {t for t in await admin.list_topics() if t.startswith(prefix)}
    finally:
        await admin.close()


async def test_delete_topics_removes_the_prefix_and_nothing_that_merely_starts_alike(kafka_bootstrap: str) -> None:
    prefix = f"t{uuid.uuid4().hex[:12]}."
    neighbour = prefix[:-1] + "x."  # same first characters, another run's prefix
    names = [f"{prefix}a.v1", f"{prefix}a.v1.dlq", f"{neighbour}a.v1"]
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap, request_timeout_ms=10000)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, 1, 1) for name in names])
    finally:
        await admin.close()
    try:
        # A new topic reaches the broker's metadata a moment after the controller created it: wait until all
        # three are listed, or the neighbour's absence below would prove nothing (and fail on a fresh broker).
        deadline = asyncio.get_running_loop().time() + 30
        while await topics_on(kafka_bootstrap, prefix[:-1]) != set(names):
            assert asyncio.get_running_loop().time() < deadline, "created topics not listed within 30 s"
            await asyncio.sleep(0.2)
        await delete_topics(kafka_bootstrap, prefix)
        deadline = asyncio.get_running_loop().time() + 30
        while await topics_on(kafka_bootstrap, prefix):  # metadata may trail the controller briefly
            assert asyncio.get_running_loop().time() < deadline, "topics still listed 30 s after deletion"
            await asyncio.sleep(0.2)
        assert await topics_on(kafka_bootstrap, neighbour) == {f"{neighbour}a.v1"}
    finally:
        await delete_topics(kafka_bootstrap, neighbour)


async def test_delete_topics_refuses_an_empty_prefix() -> None:
    with pytest.raises(ValueError, match="empty prefix"):
        await delete_topics("127.0.0.1:9", "")


async def test_an_unreachable_broker_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with caplog.at_level(logging.WARNING, logger="calhub.testing.kafka"):
        await delete_topics(f"127.0.0.1:{port}", "tgone.")
    assert any("could not delete topics under 'tgone.'" in r.getMessage() for r in caplog.records)
