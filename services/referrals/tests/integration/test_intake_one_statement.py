"""The PostgreSQL intake writes a referral with its timeline, events, audit row, stored answer and webhook
deliveries in one statement: the deliveries go exactly to the audience, and a refused submission writes
nothing at all."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest
from referrals.bootstrap import definition
from referrals.models import Referral, ReferralTimeline, audit_event, platform, webhooks
from referrals.testkit import callers, make_referral
from sqlalchemy import func, insert, select

from shared.bus.message import decode
from shared.testing.app import ServiceHarness, service_harness
from shared.testing.polling import eventually
from shared.webhooks import Audience

pytestmark = pytest.mark.integration
TOPIC = "referrals.referral.v1"

# Not the outbox: the relay empties it as it publishes (the events are checked on the bus instead).
TABLES = {"referral": Referral.__table__, "timeline": ReferralTimeline.__table__, "audit": audit_event,
          "answers": platform.idempotency_record, "deliveries": webhooks.delivery}


async def counts(h: ServiceHarness) -> dict[str, int]:
    async with h.runtimes["referrals"].sessions() as session:
        return {name: int(await session.scalar(select(func.count()).select_from(table)) or 0)
                for name, table in TABLES.items()}


async def test_deliveries_go_exactly_to_the_audience(postgres_url: str, tmp_path: Path) -> None:
    # (id, kind, organization id, code, event types, active)
    subscriptions = [
        ("whs_hub", "hub", "org_hub", None, ["referral.status_changed"], True),
        ("whs_a", "cbo", "org_cbo_a", None, ["referral.status_changed"], True),
        ("whs_b", "cbo", "org_cbo_b", None, ["referral.status_changed"], True),
        ("whs_c", "cbo", "org_cbo_c", None, ["referral.status_changed"], True),
        ("whs_lacare", "mcp", "org_mcp_lacare", "lacare", ["referral.status_changed"], True),
        ("whs_healthnet", "mcp", "org_mcp_healthnet", "healthnet", ["referral.status_changed"], True),
        ("whs_off", "mcp", "org_mcp_lacare2", "lacare", ["referral.status_changed"], False),
        ("whs_other_type", "cbo", "org_cbo_a", None, ["referral.other"], True),
    ]
    async with service_harness([definition()], tmp_path, keys=callers(), database_url=postgres_url) as h:
        async with h.runtimes["referrals"].sessions() as session, session.begin():
            await session.execute(insert(webhooks.subscription), [
                {"id": i, "organization_id": org, "organization_kind": kind, "organization_code": code,
                 "url": "https://receiver.example.org/hooks", "secret": "whsec_test", "event_types": types,
                 "description": None, "active": active, "created_at": datetime.now(UTC), "disabled_at": None}
                for i, kind, org, code, types, active in subscriptions])
        response = await h.client.post("/v1/referrals", json=make_referral(cbo_organization_id="org_cbo_c"),
                                       headers=h.headers("cbo_a"))
        assert response.status_code == 201, response.text
        async with h.runtimes["referrals"].sessions() as session:
            rows = (await session.execute(select(webhooks.delivery))).all()
        audience = Audience.of(["org_cbo_a", "org_cbo_c"], ["lacare"])
        expected = {i for i, kind, org, code, types, active in subscriptions
                    if active and "referral.status_changed" in types and audience.includes(kind, org, code)}
        assert {r.subscription_id for r in rows} == expected == {"whs_hub", "whs_a", "whs_c", "whs_lacare"}
        assert {r.event_type for r in rows} == {"referral.status_changed"}
        assert all(r.id.version == 7 for r in rows)  # the delivery log pages by time-ordered id


async def test_a_refused_submission_writes_nothing(postgres_url: str, tmp_path: Path) -> None:
    async with service_harness([definition()], tmp_path, keys=callers(), database_url=postgres_url) as h:
        created = await h.client.post("/v1/referrals", json=make_referral(),
                                      headers=h.headers("cbo_a", **{"Idempotency-Key": "k-1"}))
        assert created.status_code == 201, created.text
        after_create = await counts(h)
        assert after_create == {"referral": 1, "timeline": 3, "audit": 1, "answers": 1, "deliveries": 0}

        duplicate = await h.client.post("/v1/referrals", json=make_referral(),
                                        headers=h.headers("cbo_a", **{"Idempotency-Key": "k-2"}))
        assert duplicate.status_code == 409
        reused = await h.client.post("/v1/referrals", json=make_referral(cin="90000002B"),
                                     headers=h.headers("cbo_a", **{"Idempotency-Key": "k-1"}))
        assert reused.status_code == 422 and reused.json()["type"].endswith("/idempotency-key-reuse")
        invalid = await h.client.post("/v1/referrals", json=make_referral(cin="bad"),
                                      headers=h.headers("cbo_a", **{"Idempotency-Key": "k-3"}))
        assert invalid.status_code == 422
        assert await counts(h) == after_create
        # The 409's key stored nothing: once the first referral is withdrawn, the same key creates one.
        withdrawn = await h.client.post(f"/v1/referrals/{created.json()['id']}/withdraw", json={"reason": "x"},
                                        headers=h.headers("cbo_a"))
        assert withdrawn.status_code == 200
        again = await h.client.post("/v1/referrals", json=make_referral(),
                                    headers=h.headers("cbo_a", **{"Idempotency-Key": "k-2"}))
        assert again.status_code == 201 and again.headers.get("idempotent-replayed") is None

        # Published in the order written (per referral: the bus keeps order per key).
        async def published() -> dict[str, list[str]] | None:
            events = [decode(m) for m in h.bus.read(TOPIC)]  # type: ignore[attr-defined]
            by_referral: dict[str, list[str]] = {}
            for event in events:
                by_referral.setdefault(event.subject, []).append(event.type)
            return by_referral if len(events) >= 7 else None

        expected = ["referral.received", "referral.routed", "referral.status_changed"]
        assert await eventually(published, within=10.0, interval=0.02) == {
            created.json()["id"]: [*expected, "referral.status_changed"], again.json()["id"]: expected}


async def test_concurrent_requests_with_one_key_create_one_referral(postgres_url: str, tmp_path: Path) -> None:
    async with service_harness([definition()], tmp_path, keys=callers(), database_url=postgres_url) as h:
        retries = await asyncio.gather(*(
            h.client.post("/v1/referrals", json=make_referral(),
                          headers=h.headers("cbo_a", **{"Idempotency-Key": "same"})) for _ in range(4)))
        assert [r.status_code for r in retries] == [201] * 4
        assert len({r.content for r in retries}) == 1
        # Different members under one key: the first stores its answer, the others are refused as key reuse
        # (their referral, written in the same statement as the taken key, is not stored).
        reused = await asyncio.gather(*(
            h.client.post("/v1/referrals", json=make_referral(cin=f"9000010{n}A"),
                          headers=h.headers("cbo_a", **{"Idempotency-Key": "other"})) for n in range(4)))
        assert sorted(r.status_code for r in reused) == [201, 422, 422, 422]
        assert (await counts(h))["referral"] == 2
