"""Lineage through the claims service (ARCHITECTURE "Events": a referral's whole lineage, from REST call to CBO
payout, shares one correlation id): an encounter billed against an authorization continues the authorization's
correlation id through encounter.recorded and every claim.* event; an encounter without one (CHW) starts its own."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from claims import testkit
from claims.bootstrap import definition
from claims.models import AuthorizationCoverage, Claim

from shared.bus.inprocess import InProcessBus
from shared.bus.message import encode
from shared.contracts.gateway import FileDelivered, FileKind
from shared.envelope import Envelope, new_event
from shared.filestore import FileStore
from shared.ids import uuid7
from shared.scheduler import FixedClock
from shared.testing.app import ServiceHarness, make_caller, service_harness
from shared.testing.polling import eventually

NOW = datetime(2025, 3, 20, 17, 0, tzinfo=UTC)
RW = ["claims:read", "claims:write"]
KEYS = {"hub": make_caller("hub", "org_hub", scopes=RW), "cbo": make_caller("cbo", "org_cbo_a", scopes=RW)}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.integration)])
async def harness(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ServiceHarness]:
    database_url = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    async with service_harness([definition(clock=FixedClock(NOW), billing=testkit.make_billing())], tmp_path,
                               keys=KEYS, database_url=database_url) as h:
        yield h


async def event_of(h: ServiceHarness, topic: str, event_type: str, subject: str) -> dict[str, Any]:
    """The one event of a type about a subject the relay published (waits for the relay)."""
    found: list[dict[str, Any]] = []
    assert isinstance(h.bus, InProcessBus)  # the harness's default bus

    async def relayed() -> bool:
        assert isinstance(h.bus, InProcessBus)
        found[:] = [e for e in (json.loads(m.value) for m in h.bus.read(topic))
                    if e["type"] == event_type and e["subject"] == subject]
        return bool(found)

    await eventually(relayed, within=10.0)
    assert len(found) == 1, found
    return found[0]


def in_lineage(events: list[Envelope[Any]], correlation_id: UUID) -> list[Envelope[Any]]:
    """The same events as the authorizations service would publish them in one referral's lineage."""
    return [e.model_copy(update={"correlation_id": correlation_id}) for e in events]


async def test_authorization_lineage_runs_through_encounter_claim_submission_and_payment(
        harness: ServiceHarness) -> None:
    referral_lineage = uuid7()
    runtime = harness.runtimes["claims"]
    await testkit.apply_events(runtime, [testkit.eligibility_event(1),
                                         *in_lineage(testkit.authorization_events(1), referral_lineage)])
    recorded = await harness.client.post("/v1/encounters", json=testkit.encounter_body(1),
                                         headers=harness.headers("cbo"))
    assert recorded.status_code == 201 and recorded.json()["status"] == "recorded", recorded.text
    encounter_id, claim_id = recorded.json()["id"], recorded.json()["claim_id"]
    encounter = await event_of(harness, "claims.encounter.v1", "encounter.recorded", encounter_id)
    assert UUID(encounter["correlation_id"]) == referral_lineage
    async with runtime.uow() as uow:
        row = await uow.session.get(Claim, claim_id)
        assert row is not None and row.correlation_id == referral_lineage

    batch = await harness.client.post("/v1/claims/batches", json={"mcp_code": "healthnet"},
                                      headers=harness.headers("hub"))
    assert batch.status_code == 201, batch.text
    created = await event_of(harness, "claims.claim.v1", "claim.created", claim_id)
    assert UUID(created["correlation_id"]) == referral_lineage
    batch_event = await event_of(harness, "claims.claim_batch.v1", "claim_batch.created", batch.json()["id"])
    # A batch gathers many referrals' claims: it is its own lineage, not any one referral's.
    assert UUID(batch_event["correlation_id"]) != referral_lineage

    delivered = new_event(FileDelivered(
        file_id="out_1", mcp_code="healthnet", kind=FileKind.X12_837P, source_id=batch.json()["id"],
        delivered_at=NOW + timedelta(minutes=5)), subject="out_1", source="sftp-gateway")
    await harness.bus.publish([encode(delivered)])
    submitted = await event_of(harness, "claims.claim.v1", "claim.submitted", claim_id)
    # The claim's lineage, and the gateway's delivery report as the cause.
    assert UUID(submitted["correlation_id"]) == referral_lineage
    assert UUID(submitted["causation_id"]) == delivered.id

    claims_file = FileStore(harness.platform.file_store_path()).get(batch.json()["file"]["uri"]).decode()
    remittance = testkit.remittance_paying(claims_file, trace_number="EFT-LINEAGE-1", paid_on=date(2025, 3, 25),
                                           received_on=date(2025, 3, 21))
    posted = await harness.client.post("/v1/remittances?mcp_code=healthnet", content=remittance.encode("ascii"),
                                       headers={**harness.headers("hub"), "Content-Type": "application/edi-x12"})
    assert posted.status_code == 201, posted.text
    paid = await event_of(harness, "claims.claim.v1", "claim.paid", claim_id)
    assert UUID(paid["correlation_id"]) == referral_lineage


async def test_lineage_is_kept_when_the_approval_is_the_first_event_seen(harness: ServiceHarness) -> None:
    lineage = uuid7()
    runtime = harness.runtimes["claims"]
    _requested, approved = testkit.authorization_events(2)
    await testkit.apply_events(runtime, [testkit.eligibility_event(2), *in_lineage([approved], lineage)])
    async with runtime.uow() as uow:
        row = await uow.session.get(AuthorizationCoverage, approved.data.authorization_id)
        assert row is not None and row.correlation_id == lineage
    recorded = await harness.client.post("/v1/encounters", json=testkit.encounter_body(2),
                                         headers=harness.headers("cbo"))
    assert recorded.json()["status"] == "recorded", recorded.text
    event = await event_of(harness, "claims.encounter.v1", "encounter.recorded", recorded.json()["id"])
    assert UUID(event["correlation_id"]) == lineage


async def test_an_encounter_without_an_authorization_starts_its_own_lineage(harness: ServiceHarness) -> None:
    runtime = harness.runtimes["claims"]
    await testkit.apply_events(runtime, [testkit.eligibility_event(3)])  # CHW is billed without an authorization
    recorded = await harness.client.post(
        "/v1/encounters", headers=harness.headers("cbo"),
        json=testkit.encounter_body(3, program="chw", hcpcs="98960", modifiers=[], units="2"))
    assert recorded.status_code == 201 and recorded.json()["status"] == "recorded", recorded.text
    assert recorded.json()["authorization_id"] is None
    claim_id = recorded.json()["claim_id"]
    event = await event_of(harness, "claims.encounter.v1", "encounter.recorded", recorded.json()["id"])
    assert event["correlation_id"] == event["id"] and event["causation_id"] is None
    batch = await harness.client.post("/v1/claims/batches", json={"mcp_code": "healthnet"},
                                      headers=harness.headers("hub"))
    assert batch.status_code == 201, batch.text
    created = await event_of(harness, "claims.claim.v1", "claim.created", claim_id)
    # The claim continues the lineage its first encounter started.
    assert created["correlation_id"] == event["id"]
