"""The gateway on real PostgreSQL and real Kafka: upload over SFTP → rows on Kafka; concurrent duplicates."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from gateway_testing import hn_mif, running_gateway, wait_for, x12

from shared.bus.kafka import KafkaBus
from shared.bus.message import decode, encode
from shared.contracts.claims import ClaimBatchCreated
from shared.envelope import new_event

pytestmark = pytest.mark.integration


async def test_upload_rows_reach_kafka_and_ledger_is_in_postgres(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                postgres_url: str, kafka_bootstrap: str,
                                                                kafka_topic_prefix: str) -> None:
    bus = KafkaBus(kafka_bootstrap, topic_prefix=kafka_topic_prefix, client_id="gateway-test")
    async with running_gateway(tmp_path, monkeypatch, database_url=postgres_url, bus=bus) as gateway:
        await gateway.upload("healthnet", "HN_ECM_MIF_202610.csv", hn_mif(25))
        # A claim batch published on Kafka by "claims" is consumed and delivered.
        batch_file = gateway.ports.files.put(x12("HC", "005010X222A1", [["BHT", "0019", "00", "B1"]]))
        await bus.publish([encode(new_event(ClaimBatchCreated(
            batch_id="batch_k", mcp_code="healthnet", claims=1, total_amount=Decimal("350.00"), file=batch_file,
            created_at=datetime.now(UTC)), subject="batch_k", source="test"))])

        async def rows_on_kafka() -> bool:
            return len(await bus.read("sftp-gateway.member_information.v1")) >= 25

        await wait_for(rows_on_kafka, timeout=60)
        rows = [decode(m) for m in await bus.read("sftp-gateway.member_information.v1")]
        assert sorted(e.data.row_number for e in rows) == list(range(2, 27))
        assert all(m.key and m.key.startswith(b"mbr_") for m in await bus.read("sftp-gateway.member_information.v1"))

        async def delivered() -> bool:
            events = [decode(m) for m in await bus.read("sftp-gateway.file.v1")]
            return any(e.type == "file.delivered" for e in events)

        await wait_for(delivered, timeout=60)
        files = await gateway.files()
        assert sorted((f["direction"], f["kind"], f["status"]) for f in files) == [
            ("inbound", "mif", "processed"), ("outbound", "837p", "delivered")]


async def test_concurrent_identical_uploads_are_processed_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               postgres_url: str) -> None:
    async with running_gateway(tmp_path, monkeypatch, database_url=postgres_url) as gateway:
        content = hn_mif(5)

        async def one(name: str) -> None:
            async with gateway.session("healthnet") as sftp, sftp.open(f"/inbound/{name}", "wb") as handle:
                await handle.write(content)

        await asyncio.gather(*(one(f"HN_ECM_MIF_202610_{i}.csv") for i in range(4)))
        await gateway.settle()
        statuses = sorted(f["status"] for f in await gateway.files(direction="inbound"))
        assert statuses == ["duplicate", "duplicate", "duplicate", "processed"]
        assert len(gateway.events("sftp-gateway.member_information.v1")) == 5
        assert len(gateway.events("sftp-gateway.file.v1", "file.duplicate")) == 3
