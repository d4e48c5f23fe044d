"""Fixtures of the authorizations service's tests (helpers live in authorizations.testkit)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from authorizations.testkit import running

from shared.scheduler import FixedClock
from shared.testing.app import ServiceHarness


@pytest.fixture
def clock() -> FixedClock:
    """Monday 2026-03-02 09:00 Pacific."""
    return FixedClock(datetime(2026, 3, 2, 17, 0, tzinfo=UTC))


@pytest.fixture
async def harness(tmp_path: Path, clock: FixedClock) -> AsyncIterator[ServiceHarness]:
    """The service on SQLite and the in-process bus, with the fixed clock."""
    async with running(tmp_path, clock) as h:
        yield h
