"""The gateway on PostgreSQL for integration tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from gateway_testing import Gateway, running_gateway


@pytest.fixture
async def pg_gateway(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, postgres_url: str) -> AsyncIterator[Gateway]:
    """The gateway on PostgreSQL whose own scheduler stays idle: each test fires timers itself, in its order."""
    async with running_gateway(tmp_path, monkeypatch, database_url=postgres_url,
                               env={"SFTP_GATEWAY_SCHEDULER_POLL_SECONDS": "3600"}) as running:
        yield running
