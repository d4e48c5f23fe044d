"""The eligibility API: answers with source and age, manual entry, check jobs, tenancy, problem+json."""

from __future__ import annotations

from datetime import date
from typing import Any

from eligibility import models
from sqlalchemy import select


async def post(kit: Any, path: str, body: dict[str, Any], token: str = "hub-token", **headers: str) -> Any:
    return await kit.harness.client.post(path, json=body, headers=kit.harness.headers(token, **headers))


async def get(kit: Any, path: str, token: str = "hub-token", **params: str) -> Any:
    return await kit.harness.client.get(path, params=params, headers=kit.harness.headers(token))


def field_rules(response: Any) -> set[tuple[str, str]]:
    assert response.headers["content-type"] == "application/problem+json", response.text
    return {(e["field"], e["rule"]) for e in response.json().get("errors", [])}


async def test_eligibility_answer_has_source_and_age_and_is_audited(kit: Any) -> None:
    await kit.deliver(kit.mif(period="2026-02"))
    response = await get(kit, "/v1/members/90000001A/eligibility", date="2026-03-02", cs_code="recuperative_care")
    body = response.json()
    assert response.status_code == 200, body
    assert (body["status"], body["mcp_code"], body["source"], body["age_days"]) == ("enrolled", "lacare", "mif", 0)
    assert body["span"] == {"start": "2026-02-01", "end": None, "source": "mif"}
    assert body["eligibility"]["cs"]["allowed"] is True and body["eligibility"]["cs"]["cs_code"] == "recuperative_care"
    async with kit.uow() as uow:
        audit = (await uow.session.execute(select(models.audit_event))).all()
    assert [(a.action, a.resource_id) for a in audit] == [("member.eligibility.read", body["member_id"])]


async def test_unknown_member_is_404_and_bad_cin_names_the_rule(kit: Any) -> None:
    missing = await get(kit, "/v1/members/90000009A/eligibility")
    assert missing.status_code == 404 and missing.json()["type"].endswith("/member-not-found")
    bad = await get(kit, "/v1/members/9000000A/eligibility")
    assert bad.status_code == 422 and field_rules(bad) == {("path.cin", "pattern")}
    bad_date = await get(kit, "/v1/members/90000001A/eligibility", date="2026-02-30")
    assert bad_date.status_code == 422 and {f for f, _ in field_rules(bad_date)} == {"query.date"}


async def test_tenancy_cbo_sees_its_members_mcp_its_plan(kit: Any) -> None:
    for event in kit.authorization():
        await kit.deliver(event)
    await kit.deliver(kit.mif(period="2026-02"))
    assert (await get(kit, "/v1/members/90000001A/eligibility", "cbo-token")).status_code == 200
    assert (await get(kit, "/v1/members/90000001A/eligibility", "cbo2-token")).status_code == 404
    assert (await get(kit, "/v1/members/90000001A/eligibility", "lacare-token")).status_code == 200
    assert (await get(kit, "/v1/members/90000001A/eligibility", "healthnet-token")).status_code == 404


async def test_manual_entry_announces_the_change_once_and_replays_by_key(kit: Any) -> None:
    await kit.deliver(kit.mif(period="2026-02"))
    body = {"mcp_code": "lacare", "active": False, "as_of": "2026-03-02", "span_end": "2026-02-28",
            "reason": "member moved out of county"}
    first = await post(kit, "/v1/members/90000001A/enrollment", body, **{"Idempotency-Key": "k1"})
    assert first.status_code == 200 and first.json()["changes"] == ["lost"]
    replay = await post(kit, "/v1/members/90000001A/enrollment", body, **{"Idempotency-Key": "k1"})
    assert replay.json() == first.json() and replay.headers["Idempotent-Replayed"] == "true"
    again = await post(kit, "/v1/members/90000001A/enrollment", body)
    assert again.json()["changes"] == []
    lost = await kit.events_of("eligibility.lost")
    assert [(e.data.source, e.data.reason, e.data.effective) for e in lost] == [
        ("manual", "member moved out of county", date(2026, 3, 1))]


async def test_manual_entry_rules(kit: Any) -> None:
    unknown = await post(kit, "/v1/members/90000001A/enrollment",
                         {"mcp_code": "acme", "active": True, "as_of": "2026-03-02"})
    assert unknown.status_code == 422 and field_rules(unknown) == {("mcp_code", "known_plan")}
    other_plan = await post(kit, "/v1/members/90000001A/enrollment",
                            {"mcp_code": "healthnet", "active": True, "as_of": "2026-03-02"}, "lacare-token")
    assert other_plan.status_code == 403 and field_rules(other_plan) == {("mcp_code", "own_plan")}
    own = await post(kit, "/v1/members/90000001A/enrollment",
                     {"mcp_code": "lacare", "active": True, "as_of": "2026-03-02"}, "lacare-token")
    assert own.status_code == 200 and own.json()["changes"] == ["verified"]
    reversed_span = await post(kit, "/v1/members/90000001A/enrollment",
                               {"mcp_code": "lacare", "active": True, "as_of": "2026-03-02",
                                "span_start": "2026-03-01", "span_end": "2026-02-01"})
    assert reversed_span.status_code == 422 and field_rules(reversed_span) == {("body", "value_error")}
    extra = await post(kit, "/v1/members/90000001A/enrollment",
                       {"mcp_code": "lacare", "active": True, "as_of": "2026-03-02", "ssn": "1"})
    assert extra.status_code == 422 and field_rules(extra) == {("ssn", "unknown_field")}
    cbo = await post(kit, "/v1/members/90000001A/enrollment",
                     {"mcp_code": "lacare", "active": True, "as_of": "2026-03-02"}, "cbo-token")
    assert cbo.status_code == 403


async def test_program_flag_and_alias(kit: Any) -> None:
    await kit.deliver(kit.mif(period="2026-02"))
    flagged = await post(kit, "/v1/members/90000001A/programs", {"program_code": "pace", "start": "2026-03-01"})
    assert flagged.status_code == 200 and flagged.json()["changes"] == ["excluded"]
    bad = await post(kit, "/v1/members/90000001A/programs", {"program_code": "yoga", "start": "2026-03-01"})
    assert bad.status_code == 422 and field_rules(bad) == {("program_code", "known_program")}
    alias = await post(kit, "/v1/members/90000001A/aliases", {"alias_cin": "90000011A"})
    assert alias.status_code == 201
    via_alias = await get(kit, "/v1/members/90000011A/eligibility", date="2026-03-02")
    assert via_alias.status_code == 200 and via_alias.json()["cin"] == "90000001A"
    assert via_alias.json()["eligibility"]["ecm"]["reasons"][0]["program"] == "pace"
    taken = await post(kit, "/v1/members/90000001A/aliases", {"alias_cin": "90000011A"})
    assert taken.status_code == 409 and field_rules(taken) == {("alias_cin", "unused_cin")}


async def test_check_job_progress_and_results(kit: Any) -> None:
    await kit.deliver(kit.mif(cin="90000001A", period="2026-03"))
    response = await post(kit, "/v1/eligibility/checks", {"members": [
        {"cin": "90000001A"},
        {"cin": "90000002A", "mcp_code": "lacare", "last_name": "Testperson", "first_name": "Bea",
         "birth_date": "1990-05-06"},
        {"cin": "90000003A"},
    ]}, "cbo-token")
    job = response.json()
    assert response.status_code == 202, job
    assert response.headers["Location"] == f"/v1/eligibility/checks/{job['job_id']}"
    assert (job["total"], job["pending"], job["failed"]) == (3, 2, 1)
    view = (await get(kit, f"/v1/eligibility/checks/{job['job_id']}", "cbo-token")).json()
    assert view["status"] == "running"
    assert view["items"][2]["detail"] == "the member's plan is unknown: give mcp_code"
    assert (await get(kit, f"/v1/eligibility/checks/{job['job_id']}", "cbo2-token")).status_code == 404
    await kit.scheduler.scheduler.fire_due(kit.clock.now().replace(hour=23))
    batch = (await kit.events_of("eligibility_batch.created", "eligibility.eligibility_batch.v1"))[-1]
    await kit.deliver(kit.file_received(kit.answer_270(kit.files.get(batch.data.file).decode())))
    done = (await get(kit, f"/v1/eligibility/checks/{job['job_id']}", "cbo-token")).json()
    assert (done["status"], done["completed"], done["failed"]) == ("completed", 2, 1)
    assert [i["result"]["mcp_code"] for i in done["items"][:2]] == ["lacare", "lacare"]
    assert done["items"][1]["cin"] == "90000002A"


async def test_check_job_validation_names_each_item(kit: Any) -> None:
    bad = await post(kit, "/v1/eligibility/checks", {"members": [{"cin": "90000001A", "mcp_code": "acme"},
                                                                 {"cin": "bad"}]})
    assert bad.status_code == 422 and field_rules(bad) == {("members[1].cin", "pattern")}
    unknown_plan = await post(kit, "/v1/eligibility/checks", {"members": [{"cin": "90000001A", "mcp_code": "acme"}]})
    assert field_rules(unknown_plan) == {("members[0].mcp_code", "known_plan")}
    empty = await post(kit, "/v1/eligibility/checks", {"members": []})
    assert field_rules(empty) == {("members", "min_items")}
    forbidden = await kit.harness.client.post("/v1/eligibility/checks", json={"members": [{"cin": "90000001A"}]},
                                              headers=kit.harness.headers("healthnet-token"))
    assert forbidden.status_code == 403


async def test_batches_and_schedules_are_listed_per_tenant(kit: Any) -> None:
    for event in kit.authorization():
        await kit.deliver(event)
    created = await post(kit, "/v1/eligibility/batches", {"mcp_code": "lacare"})
    assert created.status_code == 201 and created.json()["members"] == 1
    assert (await post(kit, "/v1/eligibility/batches", {"mcp_code": "lacare"}, "lacare-token")).status_code == 403
    assert len((await get(kit, "/v1/eligibility/batches", "lacare-token")).json()["items"]) == 1
    assert (await get(kit, "/v1/eligibility/batches", "healthnet-token")).json()["items"] == []
    schedules = (await get(kit, "/v1/eligibility/schedules")).json()["items"]
    assert [s["mcp_code"] for s in schedules] == ["lacare"]
    bad_period = await post(kit, "/v1/eligibility/batches", {"mcp_code": "lacare", "period": "2026-13"})
    assert field_rules(bad_period) == {("period", "pattern")}
