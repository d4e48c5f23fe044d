"""Fixtures of the referrals service's tests (builders live in referrals.testkit)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from referrals.bootstrap import definition
from referrals.testkit import callers

from shared.testing.app import ServiceHarness, service_harness


@pytest.fixture
def webhook_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Webhooks to a local http:// receiver with quick retries (tests only)."""
    monkeypatch.setenv("REFERRALS_WEBHOOK_ALLOW_HTTP", "true")
    monkeypatch.setenv("REFERRALS_WEBHOOK_INITIAL_BACKOFF_SECONDS", "0.05")
    monkeypatch.setenv("REFERRALS_WEBHOOK_MAX_BACKOFF_SECONDS", "0.2")
    monkeypatch.setenv("REFERRALS_WEBHOOK_POLL_INTERVAL_SECONDS", "0.05")
    monkeypatch.setenv("REFERRALS_WEBHOOK_TIMEOUT_SECONDS", "5")


@pytest.fixture(params=["sqlite"])
async def harness(request: pytest.FixtureRequest, tmp_path: Path, webhook_env: None
                  ) -> AsyncIterator[ServiceHarness]:
    """The referrals service on SQLite (embedded) and the in-process bus; a test parametrized with
    `indirect=["harness"]` and "postgresql" runs on the real PostgreSQL (distributed mode's one-statement
    intake) instead."""
    database_url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
    async with service_harness([definition()], tmp_path, keys=callers(), database_url=database_url) as h:
        yield h
