"""Two instances of one service in one consumer group share the partitions with no double processing; the time a
burst of referrals takes to become authorization requests with one instance and with two is printed (no timing
assertion: the machine is shared and the numbers are for docs/performance.md)."""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid

import httpx
import pytest
from flows import authorizations
from harness import Accountant, Cluster, Members, Tenants, eventually, referral_body

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

BURST = 24


def _handled(metrics: str, group: str, event_type: str) -> float:
    """calhub_events_handled_total{group=..., event_type=...} from one process's /metrics."""
    pattern = re.compile(r'^calhub_events_handled_total\{([^}]*)\}\s+([0-9.e+]+)$', re.MULTILINE)
    total = 0.0
    for labels, value in pattern.findall(metrics):
        if f'group="{group}"' in labels and f'event_type="{event_type}"' in labels:
            total += float(value)
    return total


async def _burst(cluster: Cluster, tenants: Tenants, members: Members) -> tuple[list[str], float]:
    """POST a burst of referrals concurrently; seconds until every one has its authorization request."""
    people = [members.next() for _ in range(BURST)]
    started = time.monotonic()
    async with cluster.client("referrals", tenants.cbo_a.key) as client:
        answers = await asyncio.gather(*(
            client.post("/v1/referrals", json=referral_body(p, cbo_id=tenants.cbo_a.organization_id),
                        headers={"Idempotency-Key": f"scale-{uuid.uuid4().hex}"}) for p in people))
    assert all(a.status_code == 201 for a in answers), [a.text for a in answers if a.status_code != 201]
    ids = [a.json()["id"] for a in answers]

    async def all_requested() -> bool:
        found = {a["referral_id"] for a in await authorizations(cluster, tenants) if a["referral_id"] in ids}
        return len(found) == len(ids)

    await eventually(all_requested, within=180, interval=0.25, what=f"{BURST} authorization requests")
    return ids, time.monotonic() - started


async def test_two_instances_share_partitions_without_double_processing(
        live: Cluster, tenants: Tenants, members: Members, accountant: Accountant) -> None:
    await accountant.settle()
    single_ids, single_seconds = await _burst(live, tenants, members)

    live.start("authorizations", instance=1)
    try:
        # Both members of the group must hold partitions before the second burst (a rebalance after a join).
        await asyncio.sleep(5)
        before = {i: await _metrics(live, i) for i in (0, 1)}
        double_ids, double_seconds = await _burst(live, tenants, members)
        await accountant.settle()
        after = {i: await _metrics(live, i) for i in (0, 1)}
        handled = {i: _handled(after[i], "authorizations", "referral.routed")
                   - _handled(before[i], "authorizations", "referral.routed") for i in (0, 1)}
        # Exactly one authorization request per referral, whichever instance consumed it.
        mine = [a for a in await authorizations(live, tenants) if a["referral_id"] in set(single_ids + double_ids)]
        per_referral: dict[str, int] = {}
        for auth in mine:
            per_referral[auth["referral_id"]] = per_referral.get(auth["referral_id"], 0) + 1
        assert per_referral == {rid: 1 for rid in single_ids + double_ids}
        # The routed events of the second burst were split between the instances (24 keys over 6 partitions:
        # both hold some) and none was handled twice.
        assert handled[0] + handled[1] == BURST, handled
        assert handled[0] > 0 and handled[1] > 0, handled
        print(json.dumps({"scenario": "referral burst to authorization requests", "referrals": BURST,
                          "one_instance_seconds": round(single_seconds, 2),
                          "two_instances_seconds": round(double_seconds, 2),
                          "handled_per_instance": handled}))
    finally:
        live.stop("authorizations", instance=1)


async def _metrics(cluster: Cluster, instance: int) -> str:
    async with httpx.AsyncClient(base_url=cluster.url("authorizations", instance), timeout=10) as client:
        return (await client.get("/metrics")).text
