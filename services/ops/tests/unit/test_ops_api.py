"""The ops JSON API through the service harness: journal, timelines, dead letters and replay, boards, alerts, lag.

Each test runs on SQLite with the in-process bus, and again on real PostgreSQL (marked integration).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from ops import models as m
from ops.bootstrap import definition
from ops.repository import OpsUnitOfWork
from ops.testkit import (
    CBO_OPS_KEY,
    HUB_KEY,
    NO_OPS_KEY,
    FlakyConsumer,
    authorization_approved,
    authorization_requested,
    callers,
    claim_paid,
    claim_submitted,
    file_event,
    messages,
    poison,
    referral_received,
)
from sqlalchemy import func, select

from shared.bus.base import RetryPolicy
from shared.testing.app import ServiceHarness, service_harness
from shared.testing.polling import eventually
from shared.webhooks import verify_signature

REFERRALS = "referrals.referral.v1"
CONSUMER = "claims-test"  # a stand-in for another service's consumer group


class RecordingSender:
    """A webhook sender that records what it would POST (the shared deliverer signs and retries)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, dict[str, str]]] = []

    async def post(self, url: str, body: bytes, headers: Any, timeout_seconds: float) -> int:
        self.sent.append((url, body, dict(headers)))
        return 204

    async def close(self) -> None:
        return None


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.integration)])
async def h(request: pytest.FixtureRequest, tmp_path: Path, ops_env: None) -> AsyncIterator[ServiceHarness]:
    """The ops service on SQLite, or on PostgreSQL in an isolated schema."""
    url = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    sender = RecordingSender()
    async with service_harness([definition(webhook_sender=sender)], tmp_path, keys=callers(),
                               database_url=url) as harness:
        harness.sender = sender  # type: ignore[attr-defined]
        yield harness


async def get(h: ServiceHarness, path: str, key: str = HUB_KEY, **params: Any) -> Any:
    response = await h.client.get(path, params=params, headers=h.headers(key))
    assert response.status_code == 200, response.text
    return response.json()


async def journaled(h: ServiceHarness, count: int, **params: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []

    async def enough() -> bool:
        nonlocal found
        found = (await get(h, "/v1/ops/journal", limit=500, **params))["items"]
        return len(found) >= count

    await eventually(enough, within=15.0)
    return found


async def dead_letters(h: ServiceHarness, count: int, status: str = "pending") -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []

    async def enough() -> bool:
        nonlocal found
        found = (await get(h, "/v1/ops/dead-letters", status=status))["items"]
        return len(found) >= count

    await eventually(enough, within=15.0)
    return found


def uow(h: ServiceHarness) -> OpsUnitOfWork:
    unit = h.runtimes["ops"].uow()
    assert isinstance(unit, OpsUnitOfWork)
    return unit


async def count(h: ServiceHarness, table: Any, *where: Any) -> int:
    async with uow(h) as unit:
        return int(await unit.session.scalar(select(func.count()).select_from(table).where(*where)) or 0)


# ------------------------------------------------------------------------------------------- journal

async def test_timeline_follows_a_referral_into_authorizations_and_not_into_other_stories(h: ServiceHarness) -> None:
    referral = referral_received()
    requested = authorization_requested(referral)
    approved = authorization_approved(requested, at=referral.time + timedelta(days=2))
    other = referral_received("ref_other", cin="90000002B")
    await h.bus.publish(messages(referral, requested, approved, other))
    await journaled(h, 4)

    story = await get(h, "/v1/ops/timeline", referral_id="ref_0001")
    assert [e["event_type"] for e in story["items"]] == ["referral.received", "authorization.requested",
                                                          "authorization.approved"]
    assert {e["correlation_id"] for e in story["items"]} == {str(referral.id)}
    by_member = await get(h, "/v1/ops/timeline", member_id=referral.member_id)
    assert [e["event_id"] for e in by_member["items"]] == [str(referral.id), str(requested.id), str(approved.id)]
    by_subject = await get(h, "/v1/ops/timeline", subject="auth_0001")
    assert len(by_subject["items"]) == 3  # the authorization's story widens to its referral's correlation
    assert (await get(h, "/v1/ops/timeline", correlation_id=str(other.id)))["count"] == 1


async def test_redelivered_messages_are_journaled_once(h: ServiceHarness) -> None:
    referral = referral_received()
    await h.bus.publish(messages(referral, referral))
    await h.bus.publish(messages(referral))
    await journaled(h, 1)
    await h.bus.publish(messages(referral_received("ref_0002")))
    await journaled(h, 2)
    assert await count(h, m.journal_entry, m.journal_entry.c.event_id == referral.id) == 1


async def test_journal_search_pages_and_filters_without_payloads(h: ServiceHarness) -> None:
    events = [referral_received(f"ref_{i:04d}", cin=f"9000000{i}A") for i in range(5)]
    await h.bus.publish(messages(*events, claim_submitted()))
    await journaled(h, 6)
    first = await get(h, "/v1/ops/journal", event_type="referral.received", limit=3)
    second = await get(h, "/v1/ops/journal", event_type="referral.received", limit=3, cursor=first["next_cursor"])
    assert len(first["items"]) == 3 and len(second["items"]) == 2 and second["next_cursor"] is None
    assert {e["id"] for e in first["items"]}.isdisjoint({e["id"] for e in second["items"]})
    assert (await get(h, "/v1/ops/journal", topic="claims.claim.v1"))["items"][0]["subject"] == "clm_0001"
    assert (await get(h, "/v1/ops/journal", mcp_code="nobody"))["items"] == []
    listing = json.dumps(first)
    assert "Testperson" not in listing and "9000000" not in listing  # metadata only: no PHI in listings


async def test_reading_a_payload_is_audited(h: ServiceHarness) -> None:
    referral = referral_received()
    await h.bus.publish(messages(referral))
    entry = (await journaled(h, 1))[0]
    detail = await get(h, f"/v1/ops/journal/{entry['id']}")
    assert detail["payload"]["data"]["member"]["last_name"] == "Testperson"
    assert detail["references"] == {"referral_id": "ref_0001"}
    assert detail["headers"]["calhub-event-type"] == "referral.received"
    audit = m.audit_event
    assert await count(h, audit, audit.c.action == "journal.payload_read", audit.c.resource_id == entry["id"]) == 1


@pytest.mark.parametrize(("params", "field", "rule"), [
    ({}, "query", "exactly_one"),
    ({"referral_id": "r1", "claim_id": "c1"}, "query", "exactly_one"),
    ({"member_id": "90000001A"}, "query.member_id", "internal_member_id"),
    ({"correlation_id": "not-a-uuid"}, "query.correlation_id", "uuid"),
    ({"referral_id": "90000001A"}, "query.referral_id", "aggregate_id"),
])
async def test_timeline_bad_input_names_field_and_rule(h: ServiceHarness, params: dict[str, str], field: str,
                                                       rule: str) -> None:
    response = await h.client.get("/v1/ops/timeline", params=params, headers=h.headers(HUB_KEY))
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    assert {"field": field, "rule": rule} in [{"field": e["field"], "rule": e["rule"]}
                                              for e in response.json()["errors"]]
    assert "90000001A" not in response.text


@pytest.mark.parametrize(("path", "body", "field", "rule"), [
    ("/v1/ops/journal?member_id=90000001A", None, "query.member_id", "pattern"),
    ("/v1/ops/journal?limit=0", None, "query.limit", "ge"),
    ("/v1/ops/journal?since=2026-01-01T00:00:00", None, "query.since", "timezone"),
    ("/v1/ops/journal?cursor=nope", None, "query.cursor", "cursor"),
    ("/v1/ops/dead-letters/replay", {"ids": []}, "ids", "min_items"),
    ("/v1/ops/dead-letters/replay", {"ids": ["x"]}, "ids[0]", "uuid_parsing"),
    ("/v1/ops/alerts/rules", {"name": "x", "metric": "nope", "threshold": 1}, "metric", "enum"),
    ("/v1/ops/alerts/rules", {"name": "x", "metric": "consumer_lag"}, "threshold", "required"),
    ("/v1/ops/alerts/destinations", {"url": "ftp://example.org/x"}, "url", "https_required"),
])
async def test_bad_input_is_a_problem_naming_field_and_rule(h: ServiceHarness, path: str, body: Any, field: str,
                                                            rule: str) -> None:
    if body is None:
        response = await h.client.get(path, headers=h.headers(HUB_KEY))
    else:
        response = await h.client.post(path, json=body, headers=h.headers(HUB_KEY))
    assert response.status_code == 422, response.text
    assert (field, rule) in [(e["field"], e["rule"]) for e in response.json()["errors"]]


@pytest.mark.parametrize(("key", "status", "slug"), [(None, 401, "unauthenticated"),
                                                     (NO_OPS_KEY, 403, "insufficient-scope"),
                                                     (CBO_OPS_KEY, 403, "ops-hub-only")])
async def test_only_hub_keys_with_the_ops_scope_get_in(h: ServiceHarness, key: str | None, status: int,
                                                       slug: str) -> None:
    headers = h.headers(key) if key else {}
    response = await h.client.get("/v1/ops/journal", headers=headers)
    assert response.status_code == status and response.json()["type"].endswith(slug)


# -------------------------------------------------------------------------------------- dead letters

async def test_a_dead_letter_is_replayed_through_the_outbox_and_handled(h: ServiceHarness) -> None:
    referral = referral_received()
    consumer = FlakyConsumer([referral.id])
    await h.bus.subscribe(CONSUMER, [REFERRALS], consumer, policy=RetryPolicy(max_attempts=1))
    await h.bus.publish(messages(referral))
    [dead] = await dead_letters(h, 1)
    assert (dead["consumer_group"], dead["original_topic"], dead["error_type"]) == (CONSUMER, REFERRALS,
                                                                                   "PermanentError")
    assert dead["event_id"] == str(referral.id) and dead["status"] == "pending"
    assert (await get(h, "/v1/ops/flow"))["dead_letters_pending"] == [
        {"group": CONSUMER, "topic": REFERRALS, "count": 1}]

    consumer.heal()
    response = await h.client.post(f"/v1/ops/dead-letters/{dead['id']}/replay", headers=h.headers(HUB_KEY))
    assert response.status_code == 200 and response.json()["replayed"] == 1

    async def handled() -> bool:
        item = (await get(h, f"/v1/ops/dead-letters/{dead['id']}"))
        return item["replay_outcome"] == "handled"

    await eventually(handled, within=15.0)
    assert consumer.handled == [str(referral.id)]
    detail = await get(h, f"/v1/ops/dead-letters/{dead['id']}")
    assert detail["status"] == "replayed" and detail["replay_count"] == 1 and len(detail["history"]) == 1
    replays = await get(h, "/v1/ops/journal", topic=REFERRALS)
    assert any(e["replayed_from"] == dead["position"] for e in replays["items"])
    audit = m.audit_event
    assert await count(h, audit, audit.c.action == "dead_letter.replayed", audit.c.resource_id == dead["id"]) == 1

    again = await h.client.post(f"/v1/ops/dead-letters/{dead['id']}/replay", headers=h.headers(HUB_KEY))
    assert again.status_code == 409 and again.json()["type"].endswith("dead-letter-not-pending")


async def test_a_replay_that_fails_again_shows_in_the_retry_history(h: ServiceHarness) -> None:
    referral = referral_received()
    await h.bus.subscribe(CONSUMER, [REFERRALS], FlakyConsumer([referral.id]), policy=RetryPolicy(max_attempts=1))
    await h.bus.publish(messages(referral))
    [dead] = await dead_letters(h, 1)
    many = await h.client.post("/v1/ops/dead-letters/replay", headers=h.headers(HUB_KEY),
                               json={"ids": [dead["id"], "00000000-0000-7000-8000-000000000000"]})
    assert [r["outcome"] for r in many.json()["results"]] == ["replayed", "not_found"]
    [second] = await dead_letters(h, 1)
    assert second["id"] != dead["id"]
    detail = await get(h, f"/v1/ops/dead-letters/{second['id']}")
    assert [x["id"] for x in detail["history"]] == [dead["id"], second["id"]]
    assert detail["history"][0]["replay_outcome"] == "failed_again"


async def test_poison_messages_are_journaled_dead_lettered_and_discarded_with_a_reason(h: ServiceHarness) -> None:
    await h.bus.subscribe(CONSUMER, [REFERRALS], FlakyConsumer(), policy=RetryPolicy(max_attempts=1))
    await h.bus.publish([poison()])
    [dead] = await dead_letters(h, 1)
    assert dead["event_id"] is None and dead["event_type"] is None
    raw = await journaled(h, 2)
    assert {e["dead_letter"] for e in raw} == {True, False} and all(e["event_type"] is None for e in raw)

    short = await h.client.post(f"/v1/ops/dead-letters/{dead['id']}/discard", json={"reason": "no"},
                                headers=h.headers(HUB_KEY))
    assert short.status_code == 422 and short.json()["errors"][0]["field"] == "reason"
    done = await h.client.post(f"/v1/ops/dead-letters/{dead['id']}/discard",
                               json={"reason": "malformed test message from a retired producer"},
                               headers=h.headers(HUB_KEY))
    assert done.status_code == 200 and done.json()["status"] == "discarded"
    assert (await get(h, "/v1/ops/dead-letters", status="pending"))["items"] == []
    audit = m.audit_event
    assert await count(h, audit, audit.c.action == "dead_letter.discarded") == 1
    twice = await h.client.post(f"/v1/ops/dead-letters/{dead['id']}/discard", json={"reason": "again please"},
                                headers=h.headers(HUB_KEY))
    assert twice.status_code == 409


async def test_purge_keeps_pending_dead_letters(h: ServiceHarness) -> None:
    await h.bus.subscribe(CONSUMER, [REFERRALS], FlakyConsumer(), policy=RetryPolicy(max_attempts=1))
    await h.bus.publish([poison(), *messages(referral_received())])
    await dead_letters(h, 1)
    await journaled(h, 3)
    async with uow(h) as unit:
        deleted = await unit.journal.purge(datetime.now(UTC) + timedelta(days=1), chunk=1000)
        await unit.commit()
    assert deleted == 2  # the poison message and the referral; the pending dead letter's entry stays
    remaining = await get(h, "/v1/ops/journal")
    assert [e["dead_letter"] for e in remaining["items"]] == [True]
    assert await count(h, m.journal_payload) == 1


# -------------------------------------------------------------------------------------- boards, alerts

async def test_boards_change_with_events(h: ServiceHarness) -> None:
    now = datetime.now(UTC)
    referral = referral_received(at=now - timedelta(days=10))
    overdue = authorization_requested(referral, at=now - timedelta(days=10), decision_due=now - timedelta(days=1))
    soon = authorization_requested(None, "auth_0002", referral_id=None, mcp_code="lacare", at=now,
                                   decision_due=now + timedelta(hours=3))
    submitted = claim_submitted(at=now - timedelta(days=45))
    await h.bus.publish(messages(referral, overdue, soon, submitted, file_event("received", at=now - timedelta(days=2)),
                                 file_event("quarantined", file_id="fil_2", at=now), file_event("late", at=now)))
    await journaled(h, 7)
    boards = await get(h, "/v1/ops/boards")
    assert [i["authorization_id"] for i in boards["decisions"]["healthnet"]["overdue"]] == ["auth_0001"]
    assert [i["authorization_id"] for i in boards["decisions"]["lacare"]["due_soon"]] == ["auth_0002"]
    assert boards["claims"]["healthnet"]["aging"]["31-60"] == 1
    assert boards["files"]["healthnet"] == {"received": 1, "quarantined": 1, "late_now": ["mif"]}

    approved = authorization_approved(overdue, at=now, period_end=(now + timedelta(days=20)).date())
    paid = claim_paid(submitted, paid_on=date.today(), at=now)
    received = file_event("received", file_id="fil_3", at=now + timedelta(minutes=1))
    await h.bus.publish(messages(approved, paid, received))
    await journaled(h, 10)
    boards = await get(h, "/v1/ops/boards")
    assert boards["decisions"].get("healthnet", {"overdue": []})["overdue"] == []
    assert [i["authorization_id"] for i in boards["expiring"]["healthnet"]] == ["auth_0001"]
    assert boards["claims"]["healthnet"]["timely_payment"]["share_30"] == 0.0
    assert boards["claims"]["healthnet"]["timely_payment"]["share_90"] == 1.0
    assert boards["files"]["healthnet"]["late_now"] == []


async def test_an_alert_fires_once_resolves_once_and_is_delivered_signed(h: ServiceHarness) -> None:
    added = await h.client.post("/v1/ops/alerts/destinations", headers=h.headers(HUB_KEY),
                                json={"url": "http://alerts.test/hook", "description": "on-call"})
    assert added.status_code == 201
    secret = added.json()["secret"]
    rule = await h.client.post("/v1/ops/alerts/rules", headers=h.headers(HUB_KEY),
                               json={"name": "Decisions overdue", "metric": "decisions_overdue", "threshold": 0})
    assert rule.status_code == 201 and rule.json()["comparator"] == "above"
    now = datetime.now(UTC)
    referral = referral_received(at=now - timedelta(days=10))
    requested = authorization_requested(referral, at=now - timedelta(days=10), decision_due=now - timedelta(hours=1))
    await h.bus.publish(messages(referral, requested))
    await journaled(h, 2)

    rounds = []
    for _ in range(3):  # the condition holds for three rounds: one notification
        rounds.append((await h.client.post("/v1/ops/alerts/evaluate", headers=h.headers(HUB_KEY))).json())
    assert [[t["kind"] for t in r["transitions"]] for r in rounds] == [["firing"], [], []]
    await h.bus.publish(messages(authorization_approved(requested, at=now)))
    await journaled(h, 3)
    cleared = (await h.client.post("/v1/ops/alerts/evaluate", headers=h.headers(HUB_KEY))).json()
    assert [(t["key"], t["kind"]) for t in cleared["transitions"]] == [("healthnet", "resolved")]

    history = await get(h, "/v1/ops/alerts/history")
    assert [(e["kind"], e["key"], e["deliveries"]) for e in history] == [("resolved", "healthnet", 1),
                                                                        ("firing", "healthnet", 1)]
    sender: RecordingSender = h.sender  # type: ignore[attr-defined]

    async def both_sent() -> bool:
        return len(sender.sent) == 2

    await eventually(both_sent, within=15.0)  # the service's own deliverer sends them
    assert {url for url, _, _ in sender.sent} == {"http://alerts.test/hook"}
    bodies = [json.loads(body) for _, body, _ in sender.sent]
    assert sorted(b["type"] for b in bodies) == ["ops.alert.firing", "ops.alert.resolved"]
    assert all(verify_signature(secret, headers["CalHub-Signature"], body) for _, body, headers in sender.sent)

    async def recorded() -> bool:
        return [e["delivered"] for e in await get(h, "/v1/ops/alerts/history")] == [1, 1]

    await eventually(recorded, within=15.0)
    [destination] = await get(h, "/v1/ops/alerts/destinations")
    assert destination["delivered"] == 2 and "secret" not in destination
    removed = await h.client.delete(f"/v1/ops/alerts/destinations/{destination['id']}", headers=h.headers(HUB_KEY))
    assert removed.status_code == 204 and await get(h, "/v1/ops/alerts/destinations") == []


async def test_lag_flow_health_and_metrics(h: ServiceHarness) -> None:
    referral = referral_received()
    consumer = FlakyConsumer([referral.id])
    await h.bus.subscribe(CONSUMER, [REFERRALS], consumer, policy=RetryPolicy(max_attempts=1))
    await h.bus.publish(messages(referral, referral_received("ref_0002")))
    await dead_letters(h, 1)
    lag = await get(h, "/v1/ops/lag")
    rows = {(r["group"], r["topic"]): r for r in lag["groups"]}
    assert rows[(CONSUMER, REFERRALS)]["lag"] == 0 and rows[(CONSUMER, REFERRALS)]["end"] == 2
    assert rows[("ops", REFERRALS)]["committed"] == 2
    assert lag["dead_letter_topics"]["referrals.referral.v1.dlq"] == 1
    flow = await get(h, "/v1/ops/flow")
    assert {t["topic"]: t["total"] for t in flow["topics"]} == {REFERRALS: 2, REFERRALS + ".dlq": 1}
    health = await get(h, "/v1/ops/health")
    assert health["ready"] is True and health["services"][0]["service"] == "ops"
    await h.client.post("/v1/ops/alerts/evaluate", headers=h.headers(HUB_KEY))
    text = (await h.client.get("/metrics")).text
    assert f'calhub_consumer_lag{{group="{CONSUMER}",topic="{REFERRALS}"}} 0.0' in text
    assert f'calhub_dead_letters_pending{{group="{CONSUMER}",topic="{REFERRALS}"}} 1.0' in text
    assert 'calhub_outbox_backlog{service="ops"} 0.0' in text
    assert 'calhub_scheduler_backlog{service="ops"}' in text
    assert "Testperson" not in text and "90000001A" not in text
