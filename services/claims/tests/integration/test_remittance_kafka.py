"""Claims side of the remittance flow on real Apache Kafka and PostgreSQL: encounter -> claim_batch.created (837P in
the file store) -> the MCP's 835 for those claims arrives as file.received kind 835 on the gateway's topic ->
claim.paid -> the CBO's payout.generated. (The gateway's SFTP leg is covered by tests/e2e.)"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from claims import testkit
from claims.bootstrap import definition
from claims.x12.tools import Remittance835Tool

from shared.bus.message import encode
from shared.contracts.gateway import FileKind, FileReceived
from shared.envelope import new_event
from shared.filestore import FileStore
from shared.scheduler import FixedClock
from shared.testing.app import ServiceHarness, make_caller, service_harness
from shared.testing.polling import eventually

pytestmark = pytest.mark.integration

NOW = datetime(2025, 3, 28, 17, 0, tzinfo=UTC)
RW = ["claims:read", "claims:write"]
KEYS = {"hub": make_caller("hub", "org_hub", scopes=RW), "cbo": make_caller("cbo", "org_cbo_a", scopes=RW)}


async def on_topic(bus: Any, topic: str, event_type: str, match: Callable[[dict[str, Any]], bool]
                   ) -> dict[str, Any]:
    found: list[dict[str, Any]] = []

    async def seen() -> bool:
        messages = [json.loads(m.value) for m in await bus.read(topic)]
        found[:] = [m for m in messages if m["type"] == event_type and match(m["data"])]
        return bool(found)

    await eventually(seen, within=90.0, interval=0.2)
    return found[0]


async def test_encounter_to_payout_through_an_835_on_kafka(tmp_path: Path, postgres_url: str, kafka_bootstrap: str,
                                                           kafka_topic_prefix: str) -> None:
    try:
        from shared.bus.kafka import KafkaBus
    except ImportError as exc:  # the Kafka bus is being finished by another engineer
        pytest.fail(f"shared.bus.kafka is not importable: {exc}")
    bus = KafkaBus(bootstrap_servers=kafka_bootstrap, topic_prefix=kafka_topic_prefix,
                   client_id="claims-remittance-test")
    async with service_harness([definition(clock=FixedClock(NOW), billing=testkit.make_billing())], tmp_path,
                               keys=KEYS, database_url=postgres_url, bus=bus) as h:
        h_: ServiceHarness = h
        facts = [testkit.eligibility_event(91), *testkit.authorization_events(91)]
        await bus.ensure_topics(sorted({e.topic for e in facts} | {"sftp-gateway.file.v1"}))
        await bus.publish([encode(e) for e in facts])
        attempt = 0

        async def recorded() -> bool:
            nonlocal attempt
            attempt += 1
            response = await h_.client.post("/v1/encounters", headers=h_.headers("cbo"),
                                            json=testkit.encounter_body(91, external_id=f"r-91-{attempt}"))
            return bool(response.json()["status"] == "recorded")

        await eventually(recorded, within=90.0, interval=0.2)
        created = await h_.client.post("/v1/claims/batches", json={"mcp_code": "healthnet"},
                                       headers=h_.headers("hub"))
        assert created.status_code == 201, created.text
        batch = await on_topic(bus, "claims.claim_batch.v1", "claim_batch.created",
                               lambda d: bool(d["batch_id"] == created.json()["id"]))
        store = FileStore(h_.platform.file_store_path())
        claims_file = store.get(batch["data"]["file"]["uri"]).decode()

        # The MCP pays every claim of that 837P; the gateway stores its 835 and announces it.
        remittance = testkit.remittance_paying(claims_file, trace_number="EFT-KAFKA-1", paid_on=date(2025, 3, 25),
                                               received_on=date(2025, 3, 21))
        assert Remittance835Tool().validate(remittance) == []
        reference = store.put(remittance.encode("ascii"), media_type="application/edi-x12")
        await bus.publish([encode(new_event(FileReceived(
            file_id="file_835_kafka", mcp_code="healthnet", kind=FileKind.X12_835, file=reference,
            received_at=NOW), subject="file_835_kafka", source="sftp-gateway"))])

        [listed] = (await h_.client.get(f"/v1/claims?batch_id={created.json()['id']}",
                                        headers=h_.headers("hub"))).json()["items"]
        claim_id = listed["id"]
        paid = await on_topic(bus, "claims.claim.v1", "claim.paid", lambda d: bool(d["claim_id"] == claim_id))
        assert paid["data"]["paid_amount"] == "400.00" and paid["data"]["trace_number"] == "EFT-KAFKA-1"
        assert paid["causation_id"] is not None  # caused by the gateway's file.received
        detail = (await h_.client.get(f"/v1/claims/{claim_id}", headers=h_.headers("hub"))).json()
        assert detail["status"] == "paid" and detail["paid_amount"] == "400.00"
        posted = await on_topic(bus, "claims.remittance.v1", "remittance.posted",
                                lambda d: bool(d["trace_number"] == "EFT-KAFKA-1"))
        assert posted["data"]["claims_matched"] == 1 and posted["data"]["claims_unmatched"] == 0

        payout = await h_.client.post("/v1/payouts", headers=h_.headers("hub"), json={
            "cbo_organization_id": "org_cbo_a", "period_start": "2025-03-01", "period_end": "2025-03-31"})
        assert payout.status_code == 201, payout.text
        assert (payout.json()["collected"], payout.json()["hub_fee"], payout.json()["payable"]) == \
            ("400.00", "40.00", "360.00")
        generated = await on_topic(bus, "claims.payout.v1", "payout.generated",
                                   lambda d: bool(d["payout_id"] == payout.json()["id"]))
        assert generated["data"]["payable"] == "360.00"
        keys = [m.key or b"" for m in await bus.read("claims.claim.v1")]
        assert all(b"90000091A" not in key for key in keys)  # never keyed by CIN
