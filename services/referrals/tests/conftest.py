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


@pytest.fixture
async def harness(tmp_path: Path, webhook_env: None) -> AsyncIterator[ServiceHarness]:
    """The referrals service on SQLite and the in-process bus."""
    async with service_harness([definition()], tmp_path, keys=callers()) as h:
        yield h
