"""Ops on real Kafka and PostgreSQL: the journal, lag per group and dead-letter counts, and a replay."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from ops.bootstrap import definition
from ops.testkit import HUB_KEY, FlakyConsumer, callers, messages, poison, referral_received

from shared.bus.base import RetryPolicy
from shared.testing.app import ServiceHarness, service_harness
from shared.testing.polling import eventually

pytestmark = pytest.mark.integration

REFERRALS = "referrals.referral.v1"
CONSUMER = "claims-kafka-test"


async def get(h: ServiceHarness, path: str, **params: Any) -> Any:
    response = await h.client.get(path, params=params, headers=h.headers(HUB_KEY))
    assert response.status_code == 200, response.text
    return response.json()


async def test_lag_dead_letters_and_replay_on_real_kafka(tmp_path: Path, ops_env: None, postgres_url: str,
                                                         kafka_bootstrap: str, kafka_topic_prefix: str) -> None:
    from shared.bus.kafka import KafkaBus

    bus = KafkaBus(kafka_bootstrap, topic_prefix=kafka_topic_prefix, client_id="calhub-ops-test",
                   partitions=3)
    async with service_harness([definition()], tmp_path, keys=callers(), bus=bus,
                               database_url=postgres_url) as h:
        failing = referral_received("ref_k1")
        fine = [referral_received(f"ref_k{i}", cin=f"9000001{i}A") for i in range(2, 5)]
        consumer = FlakyConsumer([failing.id])
        await bus.ensure_topics([REFERRALS])
        await bus.subscribe(CONSUMER, [REFERRALS], consumer, policy=RetryPolicy(max_attempts=2,
                                                                                 initial_backoff=0.05))
        await bus.publish([*messages(failing, *fine), poison()])

        dead: list[dict[str, Any]] = []

        async def two_dead_letters() -> bool:
            nonlocal dead
            dead = (await get(h, "/v1/ops/dead-letters"))["items"]
            return len(dead) == 2

        await eventually(two_dead_letters, within=90)
        assert {d["error_type"] for d in dead} == {"PermanentError"}
        assert {d["attempts"] for d in dead} == {1}  # a PermanentError is dead-lettered without retrying
        assert {d["event_id"] for d in dead} == {str(failing.id), None}  # the poison message has no event id

        lag: dict[str, Any] = {}

        async def settled() -> bool:
            nonlocal lag
            lag = await get(h, "/v1/ops/lag")
            rows = {(r["group"], r["topic"]): r for r in lag["groups"]}
            mine, ops = rows.get((CONSUMER, REFERRALS)), rows.get(("ops", REFERRALS))
            return bool(mine and ops and mine["end"] == 5 and mine["lag"] == 0 and ops["lag"] == 0)

        await eventually(settled, within=90)
        assert lag["dead_letter_topics"][REFERRALS + ".dlq"] == 2
        assert lag["errors"] == []
        flow = await get(h, "/v1/ops/flow")
        assert flow["dead_letters_pending"] == [{"group": CONSUMER, "topic": REFERRALS, "count": 2}]
        timeline = await get(h, "/v1/ops/timeline", referral_id="ref_k1")
        assert [e["dead_letter"] for e in timeline["items"]] == [False, True]

        consumer.heal()
        target = next(d for d in dead if d["event_id"] == str(failing.id))
        response = await h.client.post(f"/v1/ops/dead-letters/{target['id']}/replay", headers=h.headers(HUB_KEY))
        assert response.status_code == 200

        async def handled() -> bool:
            return (await get(h, f"/v1/ops/dead-letters/{target['id']}"))["replay_outcome"] == "handled"

        await eventually(handled, within=90)
        assert consumer.handled.count(str(failing.id)) == 1
        evaluated = await h.client.post("/v1/ops/alerts/evaluate", headers=h.headers(HUB_KEY))
        assert evaluated.json()["bus_errors"] == []
        text = (await h.client.get("/metrics")).text
        assert f'calhub_consumer_lag{{group="{CONSUMER}",topic="{REFERRALS}"}} 0.0' in text
        assert f'calhub_dead_letter_topic_messages{{topic="{REFERRALS}.dlq"}} 2.0' in text
        assert f'calhub_dead_letters_pending{{group="{CONSUMER}",topic="{REFERRALS}"}} 1.0' in text
