"""Fixtures of the ops service's tests (builders live in ops.testkit)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from ops.bootstrap import definition
from ops.testkit import callers

from shared.testing.app import ServiceHarness, service_harness


@pytest.fixture
def ops_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Alert webhooks to local http:// receivers; a long monitor interval so tests drive rounds themselves."""
    monkeypatch.setenv("OPS_ALERT_WEBHOOK_ALLOW_HTTP", "true")
    monkeypatch.setenv("OPS_ALERT_INTERVAL_SECONDS", "3600")
    monkeypatch.setenv("OPS_TRACE_URL_TEMPLATE", "http://jaeger.test/trace/{trace_id}")


@pytest.fixture
async def harness(tmp_path: Path, ops_env: None) -> AsyncIterator[ServiceHarness]:
    """The ops service on SQLite and the in-process bus."""
    async with service_harness([definition()], tmp_path, keys=callers()) as h:
        yield h
