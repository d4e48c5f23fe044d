"""Infrastructure outages mid-flow: the Kafka broker stopped for 30 seconds, PostgreSQL restarted. Both disturb
every process on the machine, so these run alone after the rest (`-m broker_outage`, scripts/test.sh).

The rule under test (ARCHITECTURE.md, reliability): Kafka being down delays events, it never loses them; a
database restart costs the requests in flight a retry, never a record."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx
import pytest
from flows import (
    approval_row,
    correlation_of,
    upload_mif,
    wait_authorization,
    wait_referral_file_lists,
    wait_referral_status,
)
from harness import (
    SERVICES,
    Accountant,
    Cluster,
    Members,
    Tenants,
    assert_no_duplicate_events,
    eventually,
    referral_body,
)

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.broker_outage]

OUTAGE_SECONDS = 30


async def _refer(cluster: Cluster, tenants: Tenants, member: dict[str, Any], *, within: float = 120) -> str:
    """POST a referral like a careful client: retried with the same Idempotency-Key until answered."""
    key = f"outage-{uuid.uuid4().hex}"

    async def attempt() -> httpx.Response | None:
        async with cluster.client("referrals", tenants.cbo_a.key, headers={"Idempotency-Key": key}) as client:
            response = await client.post("/v1/referrals",
                                         json=referral_body(member, cbo_id=tenants.cbo_a.organization_id))
        return response if response.status_code < 500 else None

    response = await eventually(attempt, within=within, what="referral accepted")
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def _finish_and_account(cluster: Cluster, tenants: Tenants, accountant: Accountant,
                              people: list[dict[str, Any]], referral_ids: list[str]) -> None:
    requested = [await wait_referral_status(cluster, tenants, r, "requested", within=180) for r in referral_ids]
    await wait_referral_file_lists(cluster, [p["cin"] for p in people], within=120)
    await upload_mif(cluster, [approval_row(p, f"LAC-{p['cin']}") for p in people])
    for body in requested:
        await wait_authorization(cluster, tenants, body["authorization_id"], "approved", within=120)
    await accountant.settle(within=180)
    correlations = [await correlation_of(cluster, tenants, r) for r in referral_ids]
    ledger = await accountant.read(referral_ids, correlation_ids=correlations)
    assert ledger.authorizations_by_referral() == {r: 1 for r in referral_ids}
    assert_no_duplicate_events(ledger.journal)
    assert not ledger.dead_letters, ledger.dead_letters
    for rid in referral_ids:
        kinds = [e["event_type"] for e in ledger.journal if e["subject"] == rid]
        assert kinds.count("referral.received") == 1 and kinds.count("referral.routed") == 1, kinds


async def test_kafka_down_for_30_seconds_delays_and_loses_nothing(live: Cluster, tenants: Tenants,
                                                                    members: Members,
                                                                    accountant: Accountant) -> None:
    people = [members.next() for _ in range(6)]
    referral_ids = [await _refer(live, tenants, p) for p in people[:3]]
    live.kafka_stop()
    stopped = time.monotonic()
    try:
        # The API keeps taking referrals: they commit with their events in the outbox.
        referral_ids += [await _refer(live, tenants, p) for p in people[3:]]

        async def backlog() -> bool:
            return (await accountant.outbox_backlogs()).get("referrals[0]", 0) > 0

        await eventually(backlog, within=20, what="referrals' outbox holding the events")
        await asyncio.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - stopped)))
    finally:
        live.kafka_start()
    # No service died of the outage.
    down = [name for name in SERVICES if not live.processes[(name, 0)].running]
    assert not down, f"died during the broker outage: {down}"
    await _finish_and_account(live, tenants, accountant, people, referral_ids)


async def test_postgres_restart_mid_flow_loses_and_doubles_nothing(live: Cluster, tenants: Tenants,
                                                                 members: Members, accountant: Accountant) -> None:
    people = [members.next() for _ in range(6)]
    referral_ids = [await _refer(live, tenants, p) for p in people[:3]]
    restart = asyncio.create_task(asyncio.to_thread(live.postgres_restart))
    # Referrals posted while the database goes down and comes back: retried with their keys until answered.
    referral_ids += await asyncio.gather(*(_refer(live, tenants, p) for p in people[3:]))
    await restart
    down = [name for name in SERVICES if not live.processes[(name, 0)].running]
    assert not down, f"died during the PostgreSQL restart: {down}"
    for name in SERVICES:
        await asyncio.to_thread(live.wait_ready, name, 0, timeout=120)
    await _finish_and_account(live, tenants, accountant, people, referral_ids)
