"""The referrals API through the service harness (SQLite, in-process bus): intake, duplicates, idempotency,
tenancy, queries, withdrawal, routing from eligibility and the closed loop from authorization events."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from referrals.models import EarlyEncounter, audit_event
from referrals.repository import ReferralsUnitOfWork
from referrals.service import EARLY_ENCOUNTER_KEPT_FOR
from referrals.testkit import (
    approved,
    closed,
    deliver,
    denied,
    encounter,
    expired,
    lost,
    make_referral,
    publish,
    reauthorized,
    requested,
    verified,
    with_path,
)
from sqlalchemy import select

from shared.bus.message import decode
from shared.testing.app import ServiceHarness
from shared.testing.polling import eventually

TOPIC = "referrals.referral.v1"

# Intake on PostgreSQL is a different code path (one statement): these run on both databases.
ON_BOTH_DATABASES = pytest.mark.parametrize(
    "harness", ["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)], indirect=True)



async def submit(h: ServiceHarness, body: Any, key: str = "hub", **headers: str) -> Any:
    return await h.client.post("/v1/referrals", json=body, headers=h.headers(key, **headers))


async def get(h: ServiceHarness, referral_id: str, key: str = "hub") -> Any:
    return await h.client.get(f"/v1/referrals/{referral_id}", headers=h.headers(key))


def events_on_topic(h: ServiceHarness) -> list[Any]:
    return [decode(m) for m in h.bus.read(TOPIC)]  # type: ignore[attr-defined]


async def wait_for_status(h: ServiceHarness, referral_id: str, status: str) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        body = (await get(h, referral_id)).json()
        return body if body["status"] == status else None

    result: dict[str, Any] = await eventually(check, within=10.0, interval=0.02)
    return result


@ON_BOTH_DATABASES
async def test_a_referral_is_stored_routed_and_announced(harness: ServiceHarness) -> None:
    response = await submit(harness, make_referral(), "cbo_a", **{"Idempotency-Key": "r-1"})
    assert response.status_code == 201, response.text
    body = response.json()
    assert response.headers["location"] == f"/v1/referrals/{body['id']}"
    assert body["status"] == "routed" and body["mcp_code"] == "lacare" and body["routing_basis"] == "referral"
    assert body["referring_organization_id"] == "org_cbo_a"
    assert [t["kind"] for t in body["timeline"]] == ["received", "routed", "status_changed"]
    # The 201 is rendered from what the request wrote (no read-back): it must equal what was stored.
    assert (await get(harness, body["id"], "cbo_a")).json() == body

    async def announced() -> list[Any]:
        found = [e for e in events_on_topic(harness) if e.subject == body["id"]]
        return found if len(found) == 3 else []

    received, routed, changed = await eventually(announced, within=10.0, interval=0.02)
    assert (received.type, routed.type, changed.type) == ("referral.received", "referral.routed",
                                                          "referral.status_changed")
    assert routed.data.mcp_code == "lacare" and routed.data.member.cin == "90000001A"
    assert changed.data.status == "routed" and changed.data.previous_status == "received"
    assert {e.correlation_id for e in (received, routed, changed)} == {received.id}  # one lineage
    assert routed.causation_id == received.id and changed.causation_id == routed.id
    assert received.member_id == body["member_id"] and "90000001A" not in (received.subject + str(received.member_id))


@pytest.mark.parametrize(("path", "value", "field", "rule"), [
    ("member.cin", "ABC", "member.cin", "cin_format"),
    ("referring.npi", "1234567890", "referring.npi", "npi_check_digit"),
    ("service.pof_codes", ["0z"], "service.pof_codes[0]", "pof_code"),
    ("service", {"program": "cs", "cs_code": "yacht"}, "service.cs_code", "cs_code"),
    ("service", {"program": "cs"}, "service.cs_code", "required_for_cs"),
    ("service", {"program": "ecm"}, "service.pof_codes", "required_for_ecm"),
    ("member.address.county", "Narnia", "member.address.county", "california_county"),
    ("mcp_code", "partnership", "mcp_code", "plan_offered_in_county"),
    ("mcp_code", "acme health", "mcp_code", "known_plan"),
    ("member.birth_date", "2999-01-01", "member.birth_date", "birth_date_in_future"),
    ("member.birth_date", "1800-01-01", "member.birth_date", "birth_date_implausible"),
    ("urgency", "expedited", "expedited_reason", "required_when_expedited"),
    ("referring.contact", {"name": "Sam", "phone": ""}, "referring.contact", "phone_or_email_required"),
    ("member.first_name", ..., "member.first_name", "required"),
    ("favourite", "x", "favourite", "unknown_field"),
])
async def test_every_bad_input_class_is_a_problem_naming_field_and_rule(
        harness: ServiceHarness, path: str, value: Any, field: str, rule: str) -> None:
    response = await submit(harness, with_path(make_referral(), path, value))
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"].endswith("/validation-failed")
    assert {"field": field, "rule": rule} in [{"field": e["field"], "rule": e["rule"]} for e in problem["errors"]]
    # Nothing half-stored: no referral, no event.
    listed = await harness.client.get("/v1/referrals", headers=harness.headers("hub"))
    assert listed.json()["items"] == []
    assert events_on_topic(harness) == []


@ON_BOTH_DATABASES
async def test_all_errors_come_back_in_one_answer(harness: ServiceHarness) -> None:
    body = with_path(with_path(with_path(make_referral(), "member.cin", "1"), "referring.npi", "1"),
                     "member.address.county", "Nowhere")
    errors = (await submit(harness, body)).json()["errors"]
    assert {e["field"] for e in errors} >= {"member.cin", "referring.npi", "member.address.county"}


async def test_an_unknown_program_does_not_hide_the_missing_expedited_reason(harness: ServiceHarness) -> None:
    body = make_referral(urgency="expedited", service={"program": "ecmm", "pof_codes": ["1a"]})
    response = await submit(harness, body)
    assert response.status_code == 422
    assert {(e["field"], e["rule"]) for e in response.json()["errors"]} == {
        ("service.program", "enum"), ("expedited_reason", "required_when_expedited")}


@pytest.mark.parametrize(("content", "rule"), [(b"{not json", "json"), (b"[1, 2]", "type")])
async def test_a_body_that_is_not_a_referral_object_is_refused(harness: ServiceHarness, content: bytes,
                                                                rule: str) -> None:
    response = await harness.client.post("/v1/referrals", content=content,
                                         headers=harness.headers("hub", **{"Content-Type": "application/json"}))
    assert response.status_code == 422 and response.json()["errors"][0]["rule"] == rule


async def test_authentication_and_scope_are_required(harness: ServiceHarness) -> None:
    # Intake reads the key and the scopes without FastAPI dependencies: the same answers as every other route.
    post = harness.client.post
    missing = await post("/v1/referrals", json=make_referral())
    assert missing.status_code == 401 and missing.json()["type"].endswith("/unauthenticated")
    assert missing.headers["WWW-Authenticate"] == 'Bearer realm="calhub"'
    wrong_scheme = await post("/v1/referrals", json=make_referral(), headers={"Authorization": "Basic hub"})
    assert wrong_scheme.status_code == 401 and wrong_scheme.json()["type"].endswith("/unauthenticated")
    unknown = await post("/v1/referrals", json=make_referral(), headers={"Authorization": "Bearer nobody"})
    assert unknown.status_code == 401 and unknown.json()["type"].endswith("/invalid-api-key")
    assert "nobody" not in unknown.text
    for key in ("noscope", "reader"):
        refused = await submit(harness, make_referral(), key)
        assert refused.status_code == 403 and refused.json()["missing_scopes"] == ["referrals:write"]
        assert 'scope="referrals:write"' in refused.headers["WWW-Authenticate"]
    # Either scheme, as documented: a bearer token (any case) or X-API-Key.
    assert (await post("/v1/referrals", json=make_referral("90000011A"),
                       headers={"authorization": "bearer cbo_a"})).status_code == 201
    assert (await post("/v1/referrals", json=make_referral("90000012A"),
                       headers={"X-API-Key": "cbo_a"})).status_code == 201
    spec = (await harness.client.get("/openapi.json")).json()["paths"]["/v1/referrals"]["post"]
    assert spec["security"] == [{"bearer": []}, {"apiKey": []}]
    assert [p["name"] for p in spec["parameters"]] == ["Idempotency-Key"]


async def test_an_empty_or_overlong_idempotency_key_is_refused_naming_the_header(harness: ServiceHarness) -> None:
    for key in (" ", "k" * 256):
        refused = await submit(harness, make_referral(), **{"Idempotency-Key": key})
        assert refused.status_code == 400
        assert refused.json()["errors"][0]["field"] == "header.Idempotency-Key"


@ON_BOTH_DATABASES
async def test_same_idempotency_key_returns_the_original_answer(harness: ServiceHarness) -> None:
    first = await submit(harness, make_referral(), **{"Idempotency-Key": "same"})
    again = await submit(harness, make_referral(), **{"Idempotency-Key": "same"})
    assert again.status_code == 201 and again.headers.get("idempotent-replayed") == "true"
    assert again.content == first.content
    reused = await submit(harness, make_referral(cin="90000009Z"), **{"Idempotency-Key": "same"})
    assert reused.status_code == 422 and reused.json()["type"].endswith("/idempotency-key-reuse")
    assert len((await harness.client.get("/v1/referrals", headers=harness.headers("hub"))).json()["items"]) == 1


@ON_BOTH_DATABASES
async def test_an_open_referral_for_the_same_member_and_service_is_a_409_pointing_at_it(
        harness: ServiceHarness) -> None:
    first = (await submit(harness, make_referral(), "cbo_a")).json()
    duplicate = await submit(harness, make_referral(service={"program": "ecm", "pof_codes": ["2"]}), "cbo_a")
    assert duplicate.status_code == 409
    problem = duplicate.json()
    assert problem["existing_referral_id"] == first["id"]
    assert duplicate.headers["location"] == f"/v1/referrals/{first['id']}"
    # Another CBO learns that a referral exists, never its id (it may not see it).
    hidden = await submit(harness, make_referral(), "cbo_b")
    assert hidden.status_code == 409 and "existing_referral_id" not in hidden.json()
    # A different Community Support is a different service.
    cs = await submit(harness, make_referral(service={"program": "cs", "cs_code": "housing_deposits"}), "cbo_a")
    assert cs.status_code == 201
    # Once withdrawn, the member can be referred again.
    withdrawn = await harness.client.post(f"/v1/referrals/{first['id']}/withdraw", json={"reason": "duplicate"},
                                          headers=harness.headers("cbo_a"))
    assert withdrawn.status_code == 200 and withdrawn.json()["status"] == "withdrawn"
    assert (await submit(harness, make_referral(), "cbo_a")).status_code == 201


@ON_BOTH_DATABASES
async def test_a_cbo_never_sees_another_cbos_referral(harness: ServiceHarness) -> None:
    mine = (await submit(harness, make_referral(), "cbo_a")).json()
    assigned = (await submit(harness, make_referral(cin="90000002B", cbo_organization_id="org_cbo_b"),
                             "cbo_a")).json()
    assert (await get(harness, mine["id"], "cbo_b")).status_code == 404
    assert (await get(harness, assigned["id"], "cbo_b")).status_code == 200  # assigned to it
    listed = (await harness.client.get("/v1/referrals", headers=harness.headers("cbo_b"))).json()["items"]
    assert [r["id"] for r in listed] == [assigned["id"]]
    both = (await harness.client.get("/v1/referrals", headers=harness.headers("cbo_a"))).json()["items"]
    assert {r["id"] for r in both} == {mine["id"], assigned["id"]}
    # An MCP sees what is routed to it, and nothing else; the hub sees all.
    assert (await get(harness, mine["id"], "mcp_lacare")).status_code == 200
    assert (await get(harness, mine["id"], "mcp_healthnet")).status_code == 404
    assert (await harness.client.get("/v1/referrals", headers=harness.headers("mcp_healthnet"))).json()["items"] == []
    assert (await get(harness, mine["id"], "hub")).status_code == 200
    # The other CBO cannot withdraw it either, and learns nothing from trying.
    refused = await harness.client.post(f"/v1/referrals/{mine['id']}/withdraw", json={"reason": "x"},
                                        headers=harness.headers("cbo_b"))
    assert refused.status_code == 404


async def test_list_filters_and_cursor_paging(harness: ServiceHarness) -> None:
    ids = []
    for n in range(5):
        body = make_referral(cin=f"9000001{n}A", mcp_code="healthnet" if n % 2 else "lacare")
        ids.append((await submit(harness, body)).json()["id"])
    page1 = (await harness.client.get("/v1/referrals?limit=2", headers=harness.headers("hub"))).json()
    page2 = (await harness.client.get(f"/v1/referrals?limit=2&cursor={page1['next_cursor']}",
                                      headers=harness.headers("hub"))).json()
    page3 = (await harness.client.get(f"/v1/referrals?limit=2&cursor={page2['next_cursor']}",
                                      headers=harness.headers("hub"))).json()
    seen = [r["id"] for p in (page1, page2, page3) for r in p["items"]]
    assert seen == list(reversed(ids)) and page3["next_cursor"] is None
    healthnet = (await harness.client.get("/v1/referrals?mcp_code=healthnet", headers=harness.headers("hub"))).json()
    assert {r["id"] for r in healthnet["items"]} == {ids[1], ids[3]}
    routed = (await harness.client.get("/v1/referrals?status=routed&status=needs_plan",
                                       headers=harness.headers("hub"))).json()
    assert len(routed["items"]) == 5
    member = healthnet["items"][0]["member_id"]
    one = (await harness.client.get(f"/v1/referrals?member_id={member}", headers=harness.headers("hub"))).json()
    assert [r["id"] for r in one["items"]] == [healthnet["items"][0]["id"]]
    later = (await harness.client.get("/v1/referrals?created_since=2999-01-01T00:00:00Z",
                                      headers=harness.headers("hub"))).json()
    assert later["items"] == []
    assert "member" not in healthnet["items"][0]  # lists carry no demographics
    bad = await harness.client.get("/v1/referrals?cursor=nope", headers=harness.headers("hub"))
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "query.cursor"
    assert (await harness.client.get("/v1/referrals?status=lost", headers=harness.headers("hub"))).status_code == 422


@ON_BOTH_DATABASES
async def test_created_since_with_a_utc_offset_means_the_same_instant(harness: ServiceHarness) -> None:
    created = (await submit(harness, make_referral())).json()
    at = datetime.fromisoformat(created["created_at"])
    pacific, kiribati = timezone(timedelta(hours=-8)), timezone(timedelta(hours=14))

    async def listed(since: datetime) -> list[str]:
        page = (await harness.client.get("/v1/referrals", params={"created_since": since.isoformat()},
                                         headers=harness.headers("hub"))).json()
        return [r["id"] for r in page["items"]]

    assert await listed((at + timedelta(hours=1)).astimezone(pacific)) == []
    assert await listed((at - timedelta(hours=1)).astimezone(kiribati)) == [created["id"]]
    assert await listed((at - timedelta(hours=1)).replace(tzinfo=None)) == [created["id"]]  # naive: UTC


async def test_reading_a_referral_is_audited(harness: ServiceHarness) -> None:
    created = (await submit(harness, make_referral(), "cbo_a")).json()
    assert (await get(harness, created["id"], "cbo_a")).status_code == 200
    runtime = harness.runtimes["referrals"]
    async with runtime.sessions() as session:
        rows = (await session.execute(select(audit_event.c.action, audit_event.c.organization_id)
                                      .where(audit_event.c.resource_id == created["id"]))).all()
    assert ("referral.read", "org_cbo_a") in rows and ("referral.created", "org_cbo_a") in rows


@ON_BOTH_DATABASES
async def test_without_a_plan_the_referral_waits_until_eligibility_answers(harness: ServiceHarness) -> None:
    body = make_referral(mcp_code=None)
    created = (await submit(harness, body, "cbo_a")).json()
    assert created["status"] == "needs_plan" and created["mcp_code"] is None
    assert (await get(harness, created["id"], "cbo_a")).json() == created
    await publish(harness.bus, verified("90000001A", "healthnet"))
    routed = await wait_for_status(harness, created["id"], "routed")
    assert routed["mcp_code"] == "healthnet" and routed["routing_basis"] == "eligibility"
    # The next referral for the member routes at once from the known plan.
    cs = (await submit(harness, make_referral(mcp_code=None, service={"program": "cs",
                                                                      "cs_code": "housing_deposits"}))).json()
    assert cs["status"] == "routed" and cs["mcp_code"] == "healthnet" and cs["routing_basis"] == "eligibility"


async def test_older_eligibility_news_does_not_overwrite_newer(harness: ServiceHarness) -> None:
    from datetime import date

    await publish(harness.bus, verified("90000001A", "healthnet", as_of=date(2026, 11, 1)),
                  verified("90000001A", "lacare", as_of=date(2026, 10, 1)))

    async def routed_somewhere() -> Any:
        body = (await submit(harness, make_referral(mcp_code=None))).json()
        if body.get("status") == "routed":
            return body
        await harness.client.post(f"/v1/referrals/{body['id']}/withdraw", json={"reason": "retry"},
                                  headers=harness.headers("hub"))
        return None

    assert (await eventually(routed_somewhere, within=10.0, interval=0.02))["mcp_code"] == "healthnet"




@pytest.mark.parametrize("loss_learnt_last", [True, False])
async def test_a_retroactive_loss_learnt_later_stops_routing_to_the_old_plan(harness: ServiceHarness,
                                                                             loss_learnt_last: bool) -> None:
    from datetime import date

    # Known on 11-10: enrolled with Health Net. Learnt on 11-20: not enrolled since 11-01 (retroactive).
    known = verified("90000001A", "healthnet", as_of=date(2026, 11, 10))
    loss = lost("90000001A", "healthnet", as_of=date(2026, 11, 20), effective=date(2026, 11, 1))
    await deliver(harness, *((known, loss) if loss_learnt_last else (loss, known)))
    body = (await submit(harness, make_referral(mcp_code=None))).json()
    assert (body["status"], body["mcp_code"]) == ("needs_plan", None)


@ON_BOTH_DATABASES
async def test_the_loop_follows_authorization_and_encounter_events(harness: ServiceHarness) -> None:
    referral = (await submit(harness, make_referral(), "cbo_a")).json()
    rid = referral["id"]
    await publish(harness.bus, requested(rid, "auth_1"))
    assert (await wait_for_status(harness, rid, "requested"))["authorization_id"] == "auth_1"
    await publish(harness.bus, approved(rid, "auth_1"))
    await wait_for_status(harness, rid, "accepted")
    await publish(harness.bus, encounter("auth_1", "enc_1"), encounter("auth_1", "enc_2"))
    in_service = await wait_for_status(harness, rid, "in_service")
    assert in_service["closure_reason_code"] == "member_connected_to_services"
    # A reauthorization continues the referral: the old authorization's expiry closes nothing.
    await publish(harness.bus, reauthorized("auth_1", "auth_2"), expired("auth_1"))

    async def superseded() -> Any:
        body = (await get(harness, rid)).json()
        return body if any(t["detail"].get("superseded") for t in body["timeline"]) else None

    still = await eventually(superseded, within=10.0, interval=0.02)
    assert still["status"] == "in_service" and still["authorization_id"] == "auth_2"
    await publish(harness.bus, closed("auth_2", reason="member moved out of county"))
    done = await wait_for_status(harness, rid, "closed")
    assert done["closure_reason_code"] == "authorization_closed"
    assert done["status_reason"] == "member moved out of county"
    statuses = [t["status"] for t in done["timeline"] if t["kind"] == "status_changed"]
    assert statuses == ["routed", "requested", "accepted", "in_service", "closed"]

    async def loop_events() -> list[Any]:
        found = [e.data.status.value for e in events_on_topic(harness)
                 if e.subject == rid and e.type == "referral.status_changed"]
        return found if len(found) == 5 else []

    assert await eventually(loop_events, within=10.0, interval=0.02) == statuses
    # Withdrawing a closed referral is refused.
    refused = await harness.client.post(f"/v1/referrals/{rid}/withdraw", json={"reason": "late"},
                                        headers=harness.headers("cbo_a"))
    assert refused.status_code == 409 and refused.json()["type"].endswith("/referral-not-open")


@ON_BOTH_DATABASES
async def test_an_encounter_recorded_before_its_authorization_was_linked_puts_the_member_in_service(
        harness: ServiceHarness) -> None:
    # Claims and authorizations are different topics: the encounter may be handled before the request linking
    # its authorization to the referral (consumer lag, a dead letter replayed later).
    rid = (await submit(harness, make_referral(), "cbo_a")).json()["id"]
    await publish(harness.bus, encounter("auth_7", "enc_7"))
    runtime = harness.runtimes["referrals"]

    async def kept() -> Any:
        async with runtime.sessions() as session:
            return await session.get(EarlyEncounter, "auth_7")

    assert (await eventually(kept, within=10.0, interval=0.02)).encounter_id == "enc_7"
    await publish(harness.bus, requested(rid, "auth_7"))
    in_service = await wait_for_status(harness, rid, "in_service")
    assert in_service["authorization_id"] == "auth_7"
    assert in_service["closure_reason_code"] == "member_connected_to_services"
    [entry] = [t for t in in_service["timeline"] if t["status"] == "in_service"]
    assert entry["detail"]["encounter_id"] == "enc_7" and entry["detail"]["encounter_recorded_before_link"]
    assert await kept() is None  # applied once
    # The approval that follows is past already, and a later encounter changes nothing.
    await publish(harness.bus, approved(rid, "auth_7"), encounter("auth_7", "enc_9"))

    async def approval_seen() -> Any:
        body = (await get(harness, rid)).json()
        return body if any(t["detail"].get("requested_status") == "accepted" for t in body["timeline"]) else None

    after = await eventually(approval_seen, within=10.0, interval=0.02)
    assert after["status"] == "in_service"
    statuses = [t["status"] for t in after["timeline"] if t["kind"] == "status_changed"]
    assert statuses == ["routed", "requested", "in_service"]


@pytest.mark.parametrize("harness", [pytest.param("postgresql", marks=pytest.mark.integration)], indirect=True)
async def test_an_encounter_handled_while_its_link_commits_is_not_lost(harness: ServiceHarness) -> None:
    # The two handlers run at once (different topics, partitions, instances): without serializing them the
    # encounter's transaction misses the uncommitted link, the link's misses the uncommitted kept encounter.
    from referrals import handlers

    rid = (await submit(harness, make_referral(), "cbo_a")).json()["id"]
    runtime = harness.runtimes["referrals"]
    link, served = runtime.uow(), runtime.uow()
    assert isinstance(link, ReferralsUnitOfWork) and isinstance(served, ReferralsUnitOfWork)
    async with link:
        await handlers.mark_requested(requested(rid, "auth_5"), link)  # linked, not committed yet
        async with served:
            encounter_task = asyncio.create_task(handlers.mark_in_service(encounter("auth_5", "enc_5"), served))
            await asyncio.sleep(0.5)  # it waits for the link's transaction
            assert not encounter_task.done()
            await link.commit()
            await encounter_task
            await served.commit()
    body = await wait_for_status(harness, rid, "in_service")
    assert [t["detail"].get("encounter_id") for t in body["timeline"] if t["status"] == "in_service"] == ["enc_5"]


async def test_an_encounter_kept_for_an_authorization_that_ends_unlinked_is_dropped(harness: ServiceHarness) -> None:
    # An MCP assignment (no referral) is served, then ends: nothing will ever link it.
    await publish(harness.bus, encounter("auth_assigned", "enc_5"))
    runtime = harness.runtimes["referrals"]

    async def kept() -> Any:
        async with runtime.sessions() as session:
            return await session.get(EarlyEncounter, "auth_assigned")

    await eventually(kept, within=10.0, interval=0.02)
    await publish(harness.bus, expired("auth_assigned"))

    async def dropped() -> bool:
        return await kept() is None

    await eventually(dropped, within=10.0, interval=0.02)


@ON_BOTH_DATABASES
async def test_an_encounter_kept_past_any_authorization_period_is_dropped_by_the_next_one_kept(
        harness: ServiceHarness) -> None:
    # Encounters that arrived after their unlinked authorizations had ended: no end will come to drop them.
    runtime = harness.runtimes["referrals"]
    now = datetime.now(UTC)
    async with runtime.sessions() as session:
        for authorization_id, age in (("auth_stale", EARLY_ENCOUNTER_KEPT_FOR + timedelta(days=1)),
                                      ("auth_recent", EARLY_ENCOUNTER_KEPT_FOR - timedelta(days=1))):
            session.add(EarlyEncounter(authorization_id=authorization_id, encounter_id=f"enc_{authorization_id}",
                                       recorded_at=now - age, event_id=uuid.uuid4()))
        await session.commit()
    await publish(harness.bus, encounter("auth_assigned", "enc_5"))

    async def kept() -> set[str]:
        async with runtime.sessions() as session:
            return set((await session.scalars(select(EarlyEncounter.authorization_id))).all())

    async def stale_dropped() -> bool:
        return await kept() == {"auth_recent", "auth_assigned"}

    await eventually(stale_dropped, within=10.0, interval=0.02)


async def test_a_denial_declines_the_referral_with_its_reason(harness: ServiceHarness) -> None:
    rid = (await submit(harness, make_referral(), "cbo_a")).json()["id"]
    await publish(harness.bus, requested(rid, "auth_9"), denied(rid, "auth_9", reason="member not eligible"))
    declined = await wait_for_status(harness, rid, "declined")
    assert declined["closure_reason_code"] == "authorization_denied"
    assert declined["status_reason"] == "member not eligible"
    # The loop is closed: a new referral for the same member and service is accepted.
    assert (await submit(harness, make_referral(), "cbo_a")).status_code == 201


async def test_events_about_no_referral_of_ours_change_nothing(harness: ServiceHarness) -> None:
    rid = (await submit(harness, make_referral())).json()["id"]
    await publish(harness.bus, requested(None, "auth_x"), requested("ref_unknown", "auth_y"), encounter(None),
                  encounter("auth_unknown"), expired("auth_unknown"))
    await publish(harness.bus, requested(rid, "auth_3"))
    body = await wait_for_status(harness, rid, "requested")
    assert body["authorization_id"] == "auth_3"


async def test_openapi_documents_an_example_per_service_type(harness: ServiceHarness) -> None:
    spec = (await harness.client.get("/openapi.json")).json()
    content = spec["paths"]["/v1/referrals"]["post"]["requestBody"]["content"]["application/json"]
    assert set(content["examples"]) == {"ecm", "cs", "chw"}
    assert "$ref" not in json.dumps(content["schema"])  # inline, resolvable
    assert "409" in spec["paths"]["/v1/referrals"]["post"]["responses"]


@ON_BOTH_DATABASES
@pytest.mark.parametrize("name", ["ecm", "cs", "chw"])
async def test_the_published_examples_are_accepted(harness: ServiceHarness, name: str) -> None:
    from referrals.api import EXAMPLES

    response = await submit(harness, EXAMPLES[name]["value"])
    assert response.status_code == 201, response.text


def assert_is_the_documented_shape(body: dict[str, Any]) -> None:
    from referrals.api import ReferralOut

    # The renderer writes JSON by hand: it must be exactly what the documented model makes of it.
    assert ReferralOut.model_validate(body).model_dump(mode="json") == body


@ON_BOTH_DATABASES
@pytest.mark.parametrize("name", ["ecm", "cs", "chw"])
async def test_a_referral_renders_as_its_documented_model_when_created_read_and_withdrawn(
        harness: ServiceHarness, name: str) -> None:
    from referrals.api import EXAMPLES

    created = (await submit(harness, EXAMPLES[name]["value"], **{"Idempotency-Key": f"shape-{name}"})).json()
    assert_is_the_documented_shape(created)
    assert created["timeline"] and all(e["at"].endswith("Z") for e in created["timeline"])
    path = f"/v1/referrals/{created['id']}"
    read = (await harness.client.get(path, headers=harness.headers("hub"))).json()
    assert_is_the_documented_shape(read)
    assert read == created  # the staged timeline renders as the stored one
    replayed = (await submit(harness, EXAMPLES[name]["value"], **{"Idempotency-Key": f"shape-{name}"})).json()
    assert replayed == created
    withdrawn = (await harness.client.post(f"{path}/withdraw", json={"reason": "member moved away"},
                                           headers=harness.headers("hub"))).json()
    assert_is_the_documented_shape(withdrawn)
    assert withdrawn["status"] == "withdrawn" and withdrawn["closure_reason_code"] is not None
    listed = (await harness.client.get("/v1/referrals", headers=harness.headers("hub"))).json()["items"]
    assert [item["id"] for item in listed] == [created["id"]]
    assert {k: v for k, v in listed[0].items()} == {k: withdrawn[k] for k in listed[0]}


@ON_BOTH_DATABASES
async def test_the_demo_seed_is_idempotent(harness: ServiceHarness) -> None:
    from referrals.demo import seed

    organizations = [{"organization_id": "org_cbo_a", "kind": "cbo", "code": "demo-cbo-harbor"},
                     {"organization_id": "org_cbo_b", "kind": "cbo", "code": "demo-cbo-valley"}]
    await seed(harness.runtimes["referrals"], organizations)
    await seed(harness.runtimes["referrals"], organizations)
    items = (await harness.client.get("/v1/referrals", headers=harness.headers("hub"))).json()["items"]
    assert sorted(i["program"] for i in items) == ["chw", "cs", "ecm"]
