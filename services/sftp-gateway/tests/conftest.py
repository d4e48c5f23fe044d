"""Fixtures of the gateway's tests."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gateway_testing import Gateway, running_gateway  # noqa: E402


@pytest.fixture
async def gateway(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Gateway]:
    """The gateway on SQLite and the in-process bus, with the example profiles and fresh client keys."""
    async with running_gateway(tmp_path, monkeypatch) as running:
        yield running
