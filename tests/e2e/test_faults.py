"""Faults in the middle of the flows, each followed by the full accounting: kill -9 of every service, duplicate
deliveries (the same Kafka record twice, the same file twice, the same REST call twice), acknowledgments out of
order, the gateway crashing while an MCP uploads."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from flows import (
    acknowledge,
    approval_row,
    authorizations,
    batch_now,
    california_month,
    correlation_of,
    encounter_body,
    files,
    onboard,
    pick_up_837,
    referral,
    upload_mif,
    wait_authorization,
    wait_claims,
    wait_referral_file_lists,
    wait_referral_status,
)
from harness import (
    Accountant,
    Cluster,
    Members,
    Tenants,
    assert_no_duplicate_events,
    eventually,
    lacare_mif,
    referral_body,
)

pytestmark = [pytest.mark.e2e, pytest.mark.integration]


async def _post_until_answered(cluster: Cluster, service: str, key: str, path: str, body: dict[str, Any],
                               idempotency_key: str, *, within: float = 120.0) -> httpx.Response:
    """POST like a careful client: on a dropped connection or a 5xx, send again with the same Idempotency-Key."""
    async def attempt() -> httpx.Response | None:
        async with cluster.client(service, key, headers={"Idempotency-Key": idempotency_key}) as client:
            response = await client.post(path, json=body)
        return response if response.status_code < 500 else None

    return await eventually(attempt, within=within, interval=0.5, what=f"POST {path} answered")


async def _accounted(accountant: Accountant, referral_ids: list[str], claim_ids: list[str]) -> None:
    """Nothing lost, nothing doubled: one authorization per referral, each claim once, every journaled event once,
    no dead letters, every outbox drained."""
    correlations = [await correlation_of(accountant.cluster, accountant.tenants, r) for r in referral_ids]
    ledger = await accountant.read(referral_ids, correlation_ids=correlations, claim_ids=claim_ids)
    assert ledger.authorizations_by_referral() == {r: 1 for r in referral_ids}
    listed = [c["id"] for c in ledger.claims if c["id"] in claim_ids]
    assert sorted(listed) == sorted(set(claim_ids)) and len(listed) == len(claim_ids)
    assert_no_duplicate_events(ledger.journal)
    assert not ledger.dead_letters, ledger.dead_letters

    async def drained() -> bool:
        return not any((await accountant.outbox_backlogs()).values())

    await eventually(drained, within=60, what="every outbox drained")


async def test_kill_9_of_every_service_mid_flow_loses_and_doubles_nothing(
        live: Cluster, tenants: Tenants, members: Members, accountant: Accountant) -> None:
    people = [members.next() for _ in range(4)]

    # referrals dies while the CBO's POSTs are in flight; the CBO sends again with the same Idempotency-Key.
    keys = [f"e2e-{uuid.uuid4().hex}" for _ in people]
    posts = [asyncio.create_task(_post_until_answered(
        live, "referrals", tenants.cbo_a.key, "/v1/referrals",
        referral_body(p, cbo_id=tenants.cbo_a.organization_id), k)) for p, k in zip(people, keys, strict=True)]
    await asyncio.sleep(0.05)
    live.kill("referrals")
    live.start("referrals")
    answers = await asyncio.gather(*posts)
    assert all(a.status_code == 201 for a in answers), [a.text for a in answers]
    referral_ids = [a.json()["id"] for a in answers]

    # authorizations dies while it consumes referral.routed; it comes back and finishes from its offsets.
    live.kill("authorizations")
    live.start("authorizations")
    # the gateway dies while it writes the referral file; ops dies while it journals.
    live.kill("sftp-gateway")
    live.kill("ops")
    live.start("sftp-gateway")
    live.start("ops")
    requested = [await wait_referral_status(live, tenants, r, "requested", within=120) for r in referral_ids]
    await wait_referral_file_lists(live, [p["cin"] for p in people], within=120)

    # eligibility and authorizations die while they consume the MIF's rows.
    await upload_mif(live, [approval_row(p, f"LAC-{p['cin']}") for p in people])
    await asyncio.sleep(0.3)
    live.kill("eligibility")
    live.kill("authorizations")
    live.start("eligibility")
    live.start("authorizations")
    for body in requested:
        await wait_authorization(live, tenants, body["authorization_id"], "approved", within=120)
    await accountant.settle(within=120)  # claims has heard of the approvals and the eligibility

    # claims dies while the CBO posts encounters (resent with the same key) and again while batching.
    encounter_keys = [f"e2e-{uuid.uuid4().hex}" for _ in people]
    posts = [asyncio.create_task(_post_until_answered(live, "claims", tenants.cbo_a.key, "/v1/encounters",
                                                      encounter_body(p), k))
             for p, k in zip(people, encounter_keys, strict=True)]
    await asyncio.sleep(0.05)
    live.kill("claims")
    live.start("claims")
    encounters = [(await t).json() for t in posts]
    assert [e["status"] for e in encounters] == ["recorded"] * 4, encounters
    claim_ids = [e["claim_id"] for e in encounters]
    batch = await batch_now(live, tenants)
    live.kill("sftp-gateway")  # while it delivers the 837P
    live.start("sftp-gateway")
    picked = await pick_up_837(live, batch["id"], within=120)
    assert set(claim_ids) <= {c.claim_id for c in picked.claims}
    await wait_claims(live, tenants, claim_ids, "submitted", within=120)
    await acknowledge(live, picked)
    live.kill("claims")  # while it applies the acknowledgments
    live.start("claims")
    await wait_claims(live, tenants, claim_ids, "accepted", within=120)
    for rid in referral_ids:
        await wait_referral_status(live, tenants, rid, "accepted", "in_service")

    await _accounted(accountant, referral_ids, claim_ids)


def _physical(cluster: Cluster, topic: str) -> str:
    return cluster.topic_prefix + topic


async def _records(cluster: Cluster, topic: str) -> list[Any]:
    """Every record of a topic right now (an ad-hoc reader, no consumer group)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=cluster.kafka, enable_auto_commit=False,
                                auto_offset_reset="earliest")
    await consumer.start()
    try:
        physical = _physical(cluster, topic)
        partitions = [TopicPartition(physical, p) for p in consumer.partitions_for_topic(physical) or ()]
        if not partitions:
            await consumer._client.force_metadata_update()  # noqa: SLF001 - first look at a fresh topic
            partitions = [TopicPartition(physical, p) for p in consumer.partitions_for_topic(physical) or ()]
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        await consumer.seek_to_beginning(*partitions)
        found: list[Any] = []
        while any([await consumer.position(tp) < ends[tp] for tp in partitions]):
            batch = await consumer.getmany(timeout_ms=1000)
            for records in batch.values():
                found.extend(records)
        return found
    finally:
        await consumer.stop()


async def _redeliver(cluster: Cluster, topic: str, records: list[Any]) -> None:
    """Publish records again byte for byte (same key, value, headers): what a producer retry or a consumer
    crash before its offset commit looks like to the next consumer."""
    producer = AIOKafkaProducer(bootstrap_servers=cluster.kafka)
    await producer.start()
    try:
        for record in records:
            await producer.send_and_wait(_physical(cluster, topic), record.value, key=record.key,
                                         headers=list(record.headers or ()))
    finally:
        await producer.stop()


async def test_duplicate_deliveries_change_nothing(live: Cluster, tenants: Tenants, members: Members,
                                                   accountant: Accountant) -> None:
    [item] = await onboard(live, tenants, [members.next()])
    before = await referral(live, tenants, item.referral_id)

    # The same Kafka records delivered again: referral.routed (authorizations), authorization.* (referrals,
    # claims, eligibility, gateway) and the MIF row (authorizations, eligibility).
    # Every MIF row of the session goes again too: each must be a no-op the second time.
    keys = {item.referral_id.encode(), item.authorization_id.encode()}
    for topic in ("referrals.referral.v1", "authorizations.authorization.v1", "sftp-gateway.member_information.v1"):
        records = [r for r in await _records(live, topic)
                   if r.key in keys or topic == "sftp-gateway.member_information.v1"]
        assert records, topic
        await _redeliver(live, topic, records)

    # The same MIF file again over SFTP: recognized as a duplicate, its rows are not published again.
    rows = [approval_row(item.member, f"LAC-{item.member['cin']}")]
    name, content = lacare_mif(rows, california_month())
    await live.upload("lacare", name, content)
    await live.upload("lacare", name, content)

    async def duplicate_seen() -> bool:
        return any(f["duplicate_of"] for f in await files(live, tenants, mcp_code="lacare"))

    await eventually(duplicate_seen, within=60, what="second copy recognized as a duplicate")

    # Let every consumer chew through the redeliveries: ops reports zero lag everywhere, outboxes drained.
    await accountant.settle()
    after = await referral(live, tenants, item.referral_id)
    assert after["status"] == before["status"]
    assert len(after["timeline"]) == len(before["timeline"]), (before["timeline"], after["timeline"])
    mine = [a for a in await authorizations(live, tenants) if a["referral_id"] == item.referral_id]
    assert len(mine) == 1 and mine[0]["status"] == "approved"
    await _accounted(accountant, [item.referral_id], [])


async def test_acknowledgments_out_of_order(live: Cluster, tenants: Tenants, members: Members) -> None:
    """The 277CA arrives before the 999 that precedes it in the MCP's process: the claim still ends accepted."""
    [item] = await onboard(live, tenants, [members.next()])
    async with live.client("claims", tenants.cbo_a.key) as client:
        encounter = (await client.post("/v1/encounters", json=encounter_body(item.member))).json()
    batch = await batch_now(live, tenants)
    picked = await pick_up_837(live, batch["id"])
    await wait_claims(live, tenants, [encounter["claim_id"]], "submitted")
    await acknowledge(live, picked, order="277ca-first")
    [claim] = await wait_claims(live, tenants, [encounter["claim_id"]], "accepted")
    assert claim["payer_claim_number"]
    async with live.client("claims", tenants.hub.key) as client:
        batches = (await client.get("/v1/claims/batches")).json()
    listed = batches["items"] if isinstance(batches, dict) else batches
    [mine] = [b for b in listed if b["id"] == batch["id"]]
    await eventually(lambda: _batch_acknowledged(live, tenants, batch["id"]), within=60, what="batch acknowledged")
    assert mine["mcp_code"] == "lacare"


async def _batch_acknowledged(cluster: Cluster, tenants: Tenants, batch_id: str) -> bool:
    async with cluster.client("claims", tenants.hub.key) as client:
        body = (await client.get(f"/v1/claims/batches/{batch_id}")).json()
    return bool(body.get("acknowledgment_code") == "A")


async def test_gateway_crash_mid_upload_processes_nothing_partial(live: Cluster, tenants: Tenants,
                                                                 members: Members) -> None:
    """kill -9 of the gateway while an MCP uploads under a temporary name: the partial file is never processed;
    the MCP's retry is processed exactly once."""
    people = [members.next() for _ in range(3)]
    name, content = lacare_mif([approval_row(p, f"LAC-CRASH-{p['cin']}") for p in people],
                               california_month())
    half = len(content) // 2
    with contextlib.suppress(Exception):  # the connection dies with the gateway
        async with live.sftp("lacare") as sftp:
            handle = await sftp.open(f"/inbound/{name}.part", "wb")
            await handle.write(content[:half])
            live.kill("sftp-gateway")
            await handle.write(content[half:])
    live.start("sftp-gateway")
    # The sweep at start would have picked up a complete file by now; a partial one stays untouched.
    await asyncio.sleep(2)
    partial = {_sha(content[:half]), _sha(content)}
    assert not [f for f in await files(live, tenants, mcp_code="lacare") if f["sha256"] in partial]
    await live.upload("lacare", name, content)

    async def processed() -> list[dict[str, Any]] | None:
        found = [f for f in await files(live, tenants, mcp_code="lacare") if f["sha256"] == _sha(content)]
        return found if found and all(f["status"] == "processed" for f in found) else None

    found = await eventually(processed, within=60, what="the retried upload processed")
    assert len(found) == 1 and found[0]["rows_accepted"] == 3
    async with live.sftp("lacare") as sftp:
        leftovers = [n for n in await sftp.listdir("/inbound") if n not in (".", "..")]
    # The half-written temporary file is the MCP's to clean up or overwrite; it was never taken as a file.
    assert all(n.endswith(".part") for n in leftovers), leftovers


def _sha(content: bytes) -> str:
    import hashlib

    return hashlib.sha256(content).hexdigest()


async def test_gateway_crash_mid_direct_upload_processes_nothing_partial(live: Cluster, tenants: Tenants,
                                                                        members: Members) -> None:
    people = [members.next() for _ in range(3)]
    name, content = lacare_mif([approval_row(p, f"LAC-DIRECT-{p['cin']}") for p in people],
                               california_month())
    half = len(content) // 2
    with contextlib.suppress(Exception):  # the connection dies with the gateway
        async with live.sftp("lacare") as sftp:
            handle = await sftp.open(f"/inbound/{name}", "wb")
            await handle.write(content[:half])
            live.kill("sftp-gateway")
    live.start("sftp-gateway")
    await asyncio.sleep(3)  # the start-up sweep runs at once
    partial = _sha(content[:half])
    # The partial bytes may be recorded, but only as set aside (ADR 0081): never processed, no rows accepted.
    cut = [f for f in await files(live, tenants, mcp_code="lacare") if f["sha256"] == partial]
    assert all((f["status"], f["reason"], f["rows_accepted"]) == ("quarantined", "incomplete_upload", None)
               for f in cut), cut
