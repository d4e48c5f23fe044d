"""End to end on real infrastructure: PostgreSQL, and PostgreSQL with real Kafka.

On Kafka the service runs alone; this test publishes the upstream events (referral.routed,
member_information.received, encounter.recorded, eligibility.verified) onto their real topics as the
referrals, gateway, claims and eligibility services would, then moves the service's clock to the expiring
date and watches authorization.expiring and authorization.reauth_requested arrive on the real topic.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from authorizations.testkit import (
    HUB,
    MCP_LACARE,
    envelope,
    fire_timers,
    member,
    mif_row,
    publish,
    routed,
    running,
    wait_published,
)
from authorizations.timers import AuthorizationScheduler
from sqlalchemy import text

from shared.contracts.claims import EncounterRecorded
from shared.contracts.eligibility import EligibilitySource, EligibilityVerified
from shared.contracts.values import Program
from shared.identity import member_id_for
from shared.scheduler import FixedClock
from shared.testing.app import ServiceHarness
from shared.testing.kafka import delete_topics
from shared.testing.polling import eventually

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 2, 17, 0, tzinfo=UTC)
TOPIC = "authorizations.authorization.v1"


async def items(h: ServiceHarness, **params: Any) -> list[dict[str, Any]]:
    r = await h.client.get("/v1/authorizations", headers=h.headers(HUB), params=params)
    assert r.status_code == 200, r.text
    found: list[dict[str, Any]] = r.json()["items"]
    return found


def upstream(correlation: uuid.UUID) -> list[Any]:
    """Engagement and eligibility as claims and eligibility publish them."""
    return [
        envelope(EncounterRecorded(encounter_id="enc_1", cbo_organization_id="org_cbo_harbor", mcp_code="lacare",
                                   program=Program.ECM, service_date=date(2027, 1, 20), hcpcs="G9012", units=1),
                 at=T0, source="claims", subject="enc_1", correlation_id=correlation
                 ).model_copy(update={"member_id": member_id_for(member(1).cin)}),
        envelope(EligibilityVerified(cin=member(1).cin, mcp_code="lacare", source=EligibilitySource.X12_271,
                                     as_of=date(2027, 1, 5), verified_at=T0),
                 at=T0, source="eligibility", subject=member_id_for(member(1).cin)),
    ]


async def test_on_postgres_referral_to_reauthorization_and_append_only_audit(postgres_url: str, tmp_path: Path,
                                                                            ) -> None:
    clock = FixedClock(T0)
    async with running(tmp_path, clock, database_url=postgres_url) as h:
        referral = envelope(routed(1), at=T0)
        await publish(h.bus, referral)
        auth = (await eventually(lambda: items(h), within=15.0))[0]
        r = await h.client.post(f"/v1/authorizations/{auth['id']}/decision", headers=h.headers(MCP_LACARE),
                                json={"decision": "approved", "period_start": "2026-03-05",
                                      "mcp_authorization_number": "LAC-1"})
        assert r.status_code == 200, r.text
        await publish(h.bus, *upstream(referral.id))
        r = await h.client.get(f"/v1/authorizations/{auth['id']}", headers=h.headers(HUB))
        assert r.status_code == 200
        clock.set(datetime(2027, 2, 2, 8, 0, 1, tzinfo=UTC))
        await eventually(lambda: _engaged(h), within=15.0)
        await fire_timers(h)
        reauth = await wait_published(h, "authorization.reauth_requested")
        assert reauth[0]["correlation_id"] == str(referral.correlation_id)
        runtime = h.runtimes["authorizations"]
        async with runtime.engine.connect() as conn:
            with pytest.raises(Exception, match="append-only"):
                await conn.execute(text(f'DELETE FROM "{runtime.physical_schema}".audit_event'))


async def _engaged(h: ServiceHarness) -> bool:
    runtime = h.runtimes["authorizations"]
    async with runtime.engine.connect() as conn:
        n = await conn.scalar(text(f'SELECT count(*) FROM "{runtime.physical_schema}".member_engagement'))
        m = await conn.scalar(text(f'SELECT count(*) FROM "{runtime.physical_schema}".member_eligibility'))
    return bool(n and m)


async def test_on_kafka_referral_request_mif_approval_expiring_reauthorization(postgres_url: str,
                                                                              kafka_bootstrap: str,
                                                                              tmp_path: Path) -> None:
    from shared.bus.kafka import KafkaBus

    prefix = f"t{uuid.uuid4().hex[:12]}."
    bus = KafkaBus(kafka_bootstrap, topic_prefix=prefix, client_id="authorizations-e2e", batch_size=50)
    clock = FixedClock(T0)
    try:
        async with running(tmp_path, clock, database_url=postgres_url, bus=bus) as h:
            await bus.ensure_topics([TOPIC])  # the service's own topic (its consumed ones exist since start)
            referral = envelope(routed(1), at=T0)
            await publish(bus, referral)
            request = (await eventually(lambda: items(h), within=60))[0]
            assert request["status"] == "requested"

            await publish(bus, envelope(mif_row(1, start=date(2026, 3, 5), number="LAC-1"), at=T0,
                                        source="sftp-gateway", subject="file_0001:1"))

            async def approved() -> list[dict[str, Any]]:
                return [i for i in await items(h) if i["status"] == "approved"]

            assert (await eventually(approved, within=60))[0]["period_end"] == "2027-03-04"
            await publish(bus, *upstream(referral.correlation_id))
            await eventually(lambda: _engaged(h), within=60)

            clock.set(datetime(2027, 2, 2, 8, 0, 1, tzinfo=UTC))  # 30 days before the period end, Pacific
            part = next(p for p in h.runtimes["authorizations"].background if isinstance(p, AuthorizationScheduler))
            part.notify()

            async def on_topic() -> dict[str, list[dict[str, Any]]]:
                found: dict[str, list[dict[str, Any]]] = {}
                for message in await bus.read(TOPIC):
                    value = json.loads(message.value)
                    found.setdefault(value["type"], []).append(value)
                return found if "authorization.reauth_requested" in found else {}

            found = await eventually(on_topic, within=60, interval=0.5)
            assert [e["data"]["days_left"] for e in found["authorization.expiring"]] == [30]
            reauth = found["authorization.reauth_requested"][0]
            assert reauth["data"]["authorization_id"] == request["id"]
            new = [e for e in found["authorization.requested"] if e["data"]["origin"] == "reauthorization"]
            assert new[0]["data"]["authorization_id"] == reauth["data"]["new_authorization_id"]
            # One lineage from the referral to the reauthorization; keyed by authorization id, never a CIN.
            assert {e["correlation_id"] for e in found["authorization.expiring"] + [reauth]} == {
                str(referral.correlation_id)}
            assert all(member(1).cin not in (m.key or b"").decode() for m in await bus.read(TOPIC))
    finally:
        await bus.stop()
        await delete_topics(kafka_bootstrap, prefix)
