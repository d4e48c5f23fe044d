"""The monitor's round on real PostgreSQL: its boards read one snapshot, its writes stay at READ COMMITTED."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ops.monitor
import pytest
from ops.api import monitor_of
from ops.bootstrap import definition
from ops.repository import OpsUnitOfWork
from ops.service import compute_boards, evaluate_rules
from ops.testkit import callers
from sqlalchemy import text

from shared.testing.app import service_harness

pytestmark = pytest.mark.integration


async def _isolation(uow: OpsUnitOfWork) -> str:
    return str((await uow.session.execute(text("SHOW transaction_isolation"))).scalar_one())


async def test_a_round_reads_its_boards_in_one_snapshot_and_writes_at_read_committed(
        tmp_path: Path, ops_env: None, postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, str] = {}

    async def boards_watched(uow: OpsUnitOfWork, *args: Any) -> Any:
        seen["boards"] = await _isolation(uow)
        return await compute_boards(uow, *args)

    async def rules_watched(uow: OpsUnitOfWork, *args: Any) -> Any:
        seen["rules"] = await _isolation(uow)
        return await evaluate_rules(uow, *args)

    monkeypatch.setattr(ops.monitor, "compute_boards", boards_watched)
    monkeypatch.setattr(ops.monitor, "evaluate_rules", rules_watched)
    async with service_harness([definition()], tmp_path, keys=callers(), database_url=postgres_url) as h:
        report = await monitor_of(h.runtimes["ops"]).run_once()

    assert seen == {"boards": "repeatable read", "rules": "read committed"}
    assert report.boards is not None and monitor_of(h.runtimes["ops"]).last is report
