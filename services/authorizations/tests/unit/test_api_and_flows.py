"""The service end to end on SQLite and the in-process bus: events in, API, timers, events out."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from authorizations.domain.policy import AuthorizationPolicy, McpTerms
from authorizations.models import audit_event
from authorizations.testkit import (
    CBO_HARBOR,
    CBO_VALLEY,
    HUB,
    MCP_HEALTHNET,
    MCP_LACARE,
    envelope,
    fire_timers,
    mif_row,
    publish,
    routed,
    running,
    wait_published,
)
from sqlalchemy import func, select

from shared.contracts.claims import EncounterRecorded
from shared.contracts.eligibility import (
    EligibilityLost,
    EligibilityPlanChanged,
    EligibilityRegained,
    EligibilitySource,
    EligibilityVerified,
)
from shared.contracts.values import Program, Urgency
from shared.identity import member_id_for
from shared.scheduler import FixedClock
from shared.testing.app import ServiceHarness
from shared.testing.polling import eventually

T0 = datetime(2026, 3, 2, 17, 0, tzinfo=UTC)  # Monday 09:00 Pacific


async def listed(h: ServiceHarness, token: str = HUB, **params: Any) -> list[dict[str, Any]]:
    r = await h.client.get("/v1/authorizations", headers=h.headers(token), params=params)
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


async def opened(h: ServiceHarness, n: int = 1, count: int = 1, **kwargs: Any) -> dict[str, Any]:
    """Publish referral.routed for member n and return the request it opened."""
    await publish(h.bus, envelope(routed(n, **kwargs), at=T0))
    member_id = member_id_for(f"9{n:07d}A")

    async def probe() -> list[dict[str, Any]]:
        items = await listed(h, member_id=member_id)
        return items if len(items) >= count else []

    return (await eventually(probe, within=15.0))[0]


async def decide(h: ServiceHarness, auth_id: str, body: dict[str, Any], token: str = HUB,
                 **headers: str) -> Any:
    return await h.client.post(f"/v1/authorizations/{auth_id}/decision", json=body,
                               headers=h.headers(token, **headers))


async def test_referral_opens_one_request_with_its_deadline_and_calendar(harness: ServiceHarness) -> None:
    auth = await opened(harness)
    assert auth["status"] == "requested" and auth["calendar"] == "us-ca-state"
    assert auth["decision_due"] == "2026-03-10T06:59:59.999999Z"  # end of Monday 2026-03-09 Pacific
    assert auth["deadline_basis"] == "standard_business_days"
    # The same referral routed again (a new event id): still one request.
    await publish(harness.bus, envelope(routed(1), at=T0))
    requested = await wait_published(harness, "authorization.requested")
    assert len(await listed(harness)) == 1 and len(requested) == 1
    assert requested[0]["data"]["member"]["cin"] == "90000001A"
    assert requested[0]["subject"] == auth["id"] and requested[0]["member_id"] == member_id_for("90000001A")


async def test_always_expedited_service_is_expedited_whatever_the_referral_says(harness: ServiceHarness) -> None:
    auth = await opened(harness, program=Program.CS, cs_code="recuperative_care", urgency=Urgency.STANDARD)
    assert (auth["urgency"], auth["requested_urgency"], auth["expedited_by_rule"]) == ("expedited", "standard", True)
    assert auth["decision_due"] == "2026-03-05T17:00:00Z"


async def test_mcp_approves_through_the_api_with_period_and_number(harness: ServiceHarness) -> None:
    auth = await opened(harness)
    r = await decide(harness, auth["id"], {"decision": "approved", "mcp_authorization_number": "LAC-1",
                                           "period_start": "2026-03-05"}, token=MCP_LACARE, **{"Idempotency-Key": "k1"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["status"], body["period_end"], body["decided_within_deadline"]) == ("approved", "2027-03-04", True)
    replay = await decide(harness, auth["id"], {"decision": "approved", "mcp_authorization_number": "LAC-1",
                                                "period_start": "2026-03-05"}, token=MCP_LACARE,
                          **{"Idempotency-Key": "k1"})
    assert replay.status_code == 200 and replay.headers["Idempotent-Replayed"] == "true"
    approved = await wait_published(harness, "authorization.approved")
    assert len(approved) == 1 and approved[0]["data"]["mcp_authorization_number"] == "LAC-1"
    again = await decide(harness, auth["id"], {"decision": "denied", "reason": "late"}, token=MCP_LACARE)
    assert again.status_code == 409 and again.json()["rule"] == "decision_on_closed_request"


@pytest.mark.parametrize(("body", "field", "rule"), [
    ({"decision": "denied"}, "reason", "required"),
    ({"decision": "pended"}, "reason", "required"),
    ({"decision": "approved", "period_start": "2026-03-05", "period_end": "2026-03-01"}, "period_end",
     "not_before_start"),
    ({"decision": "denied", "reason": "x", "period_start": "2026-03-05"}, "period_start", "not_allowed"),
    ({"decision": "maybe"}, "decision", "enum"),
    ({"decision": "approved", "surprise": 1}, "surprise", "unknown_field"),
    ({"decision": "approved", "period_start": "03/05/2026"}, "period_start", "date_from_datetime_parsing"),
])
async def test_bad_decisions_answer_problem_json_naming_field_and_rule(harness: ServiceHarness,
                                                                       body: dict[str, Any], field: str,
                                                                       rule: str) -> None:
    auth = await opened(harness)
    r = await decide(harness, auth["id"], body)
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
    assert {"field": field, "rule": rule} in [{k: e[k] for k in ("field", "rule")} for e in r.json()["errors"]]


@pytest.mark.parametrize(("body", "fields"), [
    ({"decision": "denied", "reason": "x", "period_end": "2026-05-01"}, ["period_end"]),
    ({"decision": "pended", "reason": "x", "period_start": "2026-03-05", "period_end": "2026-05-01"},
     ["period_start", "period_end"]),
])
async def test_a_period_on_a_denial_or_pend_is_refused_naming_each_field_sent(harness: ServiceHarness,
                                                                              body: dict[str, Any],
                                                                              fields: list[str]) -> None:
    auth = await opened(harness)
    r = await decide(harness, auth["id"], body)
    assert r.status_code == 422
    assert [(e["field"], e["rule"]) for e in r.json()["errors"]] == [(f, "not_allowed") for f in fields]


async def test_a_cs_approval_without_an_end_or_beyond_its_cap(harness: ServiceHarness) -> None:
    auth = await opened(harness, program=Program.CS, cs_code="housing_deposits")
    r = await decide(harness, auth["id"], {"decision": "approved", "period_start": "2026-03-05"})
    assert r.status_code == 422 and r.json()["errors"][0] == {
        "field": "period_end", "rule": "required",
        "message": "this service has no period by rule: the approval must give its end date"}
    capped = await opened(harness, 2, program=Program.CS, cs_code="recuperative_care")
    r = await decide(harness, capped["id"], {"decision": "approved_as_modified", "period_start": "2026-03-05",
                                             "period_end": "2026-12-31"})
    assert r.json()["review_flags"] == ["period_beyond_cap"] and r.json()["period_end"] == "2026-12-31"


async def test_tenancy_on_decisions_and_reads(harness: ServiceHarness) -> None:
    auth = await opened(harness)
    assert (await decide(harness, auth["id"], {"decision": "approved"}, token=MCP_HEALTHNET)).status_code == 404
    assert (await decide(harness, auth["id"], {"decision": "approved"}, token=CBO_HARBOR)).status_code == 403
    assert await listed(harness, CBO_VALLEY) == []
    assert len(await listed(harness, CBO_HARBOR)) == 1
    assert (await harness.client.get(f"/v1/authorizations/{auth['id']}",
                                     headers=harness.headers(CBO_VALLEY))).status_code == 404
    bad = await harness.client.get("/v1/authorizations", headers=harness.headers(HUB), params={"cin": "12AB"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "query.cin"
    assert "12AB" not in bad.text


async def test_detail_has_member_history_and_the_read_is_audited(harness: ServiceHarness) -> None:
    auth = await opened(harness)
    await decide(harness, auth["id"], {"decision": "pended", "reason": "need assessment"}, token=MCP_LACARE)
    r = await harness.client.get(f"/v1/authorizations/{auth['id']}", headers=harness.headers(HUB))
    body = r.json()
    assert body["member"]["last_name"] == "Testperson"
    assert [h["action"] for h in body["history"]] == ["requested", "pended"]
    assert body["clock_stopped"] is True and body["decision_due"] == "2026-03-24T06:59:59.999999Z"
    runtime = harness.runtimes["authorizations"]
    async with runtime.sessions() as session:
        reads = await session.scalar(select(func.count()).select_from(audit_event)
                                     .where(audit_event.c.action == "authorization.read"))
    assert reads == 1
    pended = await wait_published(harness, "authorization.pended")
    assert pended[0]["data"]["clock_stopped"] is True


async def test_a_pend_after_the_deadline_keeps_the_request_overdue(harness: ServiceHarness,
                                                                    clock: FixedClock) -> None:
    auth = await opened(harness)
    clock.set(datetime(2026, 3, 16, 17, 0, tzinfo=UTC))  # a week past the deadline (end of 2026-03-09 Pacific)
    await fire_timers(harness)
    r = await decide(harness, auth["id"], {"decision": "pended", "reason": "need assessment"}, token=MCP_LACARE)
    body = r.json()
    assert (body["status"], body["clock_stopped"], body["overdue"]) == ("pended", False, True)
    assert body["decision_due"] == auth["decision_due"]
    pended = await wait_published(harness, "authorization.pended")
    assert pended[0]["data"]["clock_stopped"] is False
    late = await decide(harness, auth["id"], {"decision": "approved"}, token=MCP_LACARE)
    assert late.json()["decided_within_deadline"] is False


async def test_overdue_decisions_escalate_each_business_day_until_decided(harness: ServiceHarness,
                                                                        clock: FixedClock) -> None:
    auth = await opened(harness)
    clock.set(datetime(2026, 3, 10, 7, 0, tzinfo=UTC))  # just past Monday 2026-03-09 end of day Pacific
    await fire_timers(harness)
    clock.set(datetime(2026, 3, 11, 7, 0, tzinfo=UTC))
    await fire_timers(harness)
    overdue = await wait_published(harness, "authorization.decision_overdue", 2)
    assert [e["data"]["escalation"] for e in overdue] == [1, 2]
    assert [i["id"] for i in await listed(harness, overdue="true")] == [auth["id"]]
    await decide(harness, auth["id"], {"decision": "approved"}, token=MCP_LACARE)
    clock.set(datetime(2026, 3, 20, 7, 0, tzinfo=UTC))
    await fire_timers(harness)
    assert len(await wait_published(harness, "authorization.decision_overdue")) == 2
    report = (await harness.client.get("/v1/reports/authorization-sla", headers=harness.headers(HUB))).json()
    assert report["mcps"] == [{"mcp_code": "lacare", "decided": 1, "median_decision_hours": 206.0,
                               "decided_within_deadline_share": 0.0, "open_overdue": 0,
                               "expiring_next_30_days": 0}]


async def test_justice_involved_referral_is_authorized_presumptively(harness: ServiceHarness) -> None:
    auth = await opened(harness, pof=("4",))
    assert (auth["status"], auth["presumptive"], auth["decision"]) == ("approved", True, "presumptive")
    assert (auth["period_start"], auth["period_end"]) == ("2026-03-02", "2027-03-01")
    approved = await wait_published(harness, "authorization.approved")
    assert approved[0]["data"]["presumptive"] is True
    await publish(harness.bus, envelope(mif_row(1, number="LAC-77", start=date(2026, 2, 20)), at=T0,
                                        source="sftp-gateway"))

    async def confirmed() -> list[dict[str, Any]]:
        return [i for i in await listed(harness) if i["decision"] == "approved"]

    item = (await eventually(confirmed, within=15.0))[0]
    assert (item["mcp_authorization_number"], item["period_start"]) == ("LAC-77", "2026-02-20")


async def test_mif_rows_that_match_nothing_are_kept(tmp_path: Path, clock: FixedClock) -> None:
    policy = AuthorizationPolicy(providers={"1234567893": "org_cbo_harbor"})
    async with running(tmp_path, clock, policy) as h:
        await publish(h.bus, envelope(mif_row(5, row=1, status="declined", number=None), at=T0),
                      envelope(mif_row(6, row=2, number="LAC-6", start=date(2026, 3, 1), npi="1234567893"), at=T0),
                      envelope(mif_row(7, row=3, number="LAC-7", start=date(2026, 3, 1), npi="1679576722"), at=T0),
                      envelope(mif_row(8, row=4, status="on the moon"), at=T0))

        async def exceptions() -> list[dict[str, Any]]:
            r = await h.client.get("/v1/authorization-exceptions", headers=h.headers(HUB))
            items: list[dict[str, Any]] = r.json()["items"]
            return items if len(items) == 3 else []

        found = await eventually(exceptions, within=15.0)
        assert sorted(e["reason"] for e in found) == ["no_open_request", "unknown_benefit_status", "unknown_provider"]
        assert "Testperson" not in str(found)
        assignments = [i for i in await listed(h) if i["origin"] == "mcp_assignment"]
        assert sorted((str(a["cbo_organization_id"]), a["status"]) for a in assignments) == [
            ("None", "approved"), ("org_cbo_harbor", "approved")]
        approved = await wait_published(h, "authorization.approved", 2)
        assert {e["data"]["assigned_provider_npi"] for e in approved} == {"1234567893", "1679576722"}
        # No request carried these members: the approval does, so the gateway can report them on the RTF.
        assert {e["data"]["member"]["cin"] for e in approved} == {"90000006A", "90000007A"}
        assert len(await wait_published(h, "authorization.mif_exception_recorded", 3)) == 3
        # The gateway republishes the same file: no second outcome, no second assignment.
        await publish(h.bus, envelope(mif_row(6, row=2, number="LAC-6", start=date(2026, 3, 1), npi="1234567893"),
                                      at=T0))
        first = found[0]["id"]
        r = await h.client.post(f"/v1/authorization-exceptions/{first}/resolve", json={"resolution": "mapped"},
                                headers=h.headers(HUB))
        assert r.status_code == 200 and r.json()["resolved_at"]
        assert len([i for i in await listed(h) if i["origin"] == "mcp_assignment"]) == 2
        open_now = (await h.client.get("/v1/authorization-exceptions", headers=h.headers(HUB))).json()["items"]
        assert len(open_now) == 2


def eligibility(kind: type, n: int = 1, **fields: Any) -> Any:
    base = {"cin": f"9{n:07d}A", "source": EligibilitySource.X12_271, "as_of": date(2026, 3, 2),
            "verified_at": T0}
    return kind(**{**base, **fields})


async def test_eligibility_lost_suspends_regained_resumes_plan_change_moves(harness: ServiceHarness) -> None:
    auth = await opened(harness)
    await decide(harness, auth["id"], {"decision": "approved", "period_start": "2026-03-05"})
    await publish(harness.bus, envelope(eligibility(EligibilityLost, mcp_code="lacare", effective=date(2026, 4, 1),
                                                    reason="disenrolled", as_of=date(2026, 4, 1)), at=T0,
                                        source="eligibility"))
    suspended = await wait_published(harness, "authorization.suspended")
    assert suspended[0]["data"]["reason"] == "disenrolled"
    await publish(harness.bus, envelope(eligibility(EligibilityRegained, mcp_code="lacare",
                                                    effective=date(2026, 4, 15), as_of=date(2026, 4, 15)), at=T0,
                                        source="eligibility"))
    await wait_published(harness, "authorization.resumed")
    assert (await listed(harness))[0]["status"] == "approved"
    await publish(harness.bus, envelope(eligibility(EligibilityPlanChanged, mcp_code="healthnet",
                                                    previous_mcp_code="lacare", effective=date(2026, 5, 1),
                                                    as_of=date(2026, 5, 1)), at=T0, source="eligibility"))
    closed = await wait_published(harness, "authorization.closed")
    assert closed[0]["data"]["reason"] == "plan_changed"
    assert closed[0]["data"]["referral_id"] == "ref_0001"  # the loop closes even before the link (decision 0127)
    requested = await wait_published(harness, "authorization.requested", 2)  # read by partition, not in order
    moved = next(e for e in requested if e["data"]["origin"] == "plan_change")
    first = next(e for e in requested if e["data"]["origin"] == "referral")
    assert moved["data"]["mcp_code"] == "healthnet"
    assert moved["data"]["previous_authorization_id"] == auth["id"]
    assert moved["correlation_id"] == first["correlation_id"]
    # An older fact arriving late changes nothing.
    stale = envelope(eligibility(EligibilityLost, mcp_code="lacare", effective=date(2026, 3, 1), reason="stale",
                                 as_of=date(2026, 3, 1)), at=T0, source="eligibility")
    await publish(harness.bus, stale)
    runtime = harness.runtimes["authorizations"]
    inbox = runtime.definition.tables.inbox

    async def handled() -> bool:
        async with runtime.sessions() as session:
            return bool(await session.scalar(select(func.count()).select_from(inbox)
                                             .where(inbox.c.event_id == stale.id)))

    await eventually(handled, within=15.0)
    assert len(await wait_published(harness, "authorization.suspended")) == 1
    assert {i["status"] for i in await listed(harness)} == {"closed", "requested"}


async def test_a_period_change_while_suspended_keeps_the_authorization_suspended_for_consumers(
        harness: ServiceHarness) -> None:
    # The MIF moves the period of a suspended authorization: the new period goes out on authorization.approved,
    # which a consumer keeping the newest status (the gateway's RTF) would read as enrolled again.
    auth = await opened(harness)
    await decide(harness, auth["id"], {"decision": "approved", "period_start": "2026-03-05",
                                       "mcp_authorization_number": "LAC-0001"})
    await publish(harness.bus, envelope(eligibility(EligibilityLost, mcp_code="lacare", effective=date(2026, 4, 1),
                                                    reason="disenrolled", as_of=date(2026, 4, 1)), at=T0,
                                        source="eligibility"))
    await wait_published(harness, "authorization.suspended")
    await publish(harness.bus, envelope(mif_row(1, number="LAC-0001", start=date(2026, 3, 5),
                                                end=date(2027, 1, 31)), at=T0, source="sftp-gateway"))
    approvals = await wait_published(harness, "authorization.approved", 2)
    modified = next(e for e in approvals if e["data"]["modified"])
    assert modified["data"]["period_end"] == "2027-01-31"
    suspensions = await wait_published(harness, "authorization.suspended", 2)
    restated = max(suspensions, key=lambda e: datetime.fromisoformat(e["time"]))
    # The newest status any consumer sees is suspended.
    assert datetime.fromisoformat(restated["time"]) > datetime.fromisoformat(modified["time"])
    assert (restated["data"]["reason"], restated["data"]["effective"]) == ("disenrolled", "2026-04-01")
    assert (await listed(harness))[0]["status"] == "suspended"


async def test_expiring_reauthorizes_the_engaged_and_tasks_the_rest_then_expires(harness: ServiceHarness,
                                                                                 clock: FixedClock) -> None:
    engaged = await opened(harness, 1)
    idle = await opened(harness, 2)
    for auth in (engaged, idle):
        r = await decide(harness, auth["id"], {"decision": "approved", "period_start": "2026-03-05"})
        assert r.json()["period_end"] == "2027-03-04"
    await publish(harness.bus,
                  envelope(EncounterRecorded(encounter_id="enc_1", cbo_organization_id="org_cbo_harbor",
                                             mcp_code="lacare", authorization_id=engaged["id"], program=Program.ECM,
                                             service_date=date(2027, 1, 20), hcpcs="G9012", units=1), at=T0,
                           source="claims"),
                  envelope(eligibility(EligibilityVerified, 1, mcp_code="lacare", as_of=date(2027, 1, 1)), at=T0,
                           source="eligibility"))
    await eventually(lambda: _engagement_known(harness), within=15.0)
    clock.set(datetime(2027, 2, 2, 8, 0, 1, tzinfo=UTC))  # 2027-02-02 00:00:01 Pacific: 30 days before the end
    await fire_timers(harness)
    expiring = await wait_published(harness, "authorization.expiring", 2)
    assert {e["data"]["days_left"] for e in expiring} == {30}
    reauth = await wait_published(harness, "authorization.reauth_requested")
    assert reauth[0]["data"]["authorization_id"] == engaged["id"]
    task_events = await wait_published(harness, "authorization.care_task_opened")
    assert task_events[0]["data"] == {**task_events[0]["data"], "authorization_id": idle["id"], "reason": "not_engaged"}
    tasks = (await harness.client.get("/v1/authorization-tasks", headers=harness.headers(CBO_HARBOR))).json()["items"]
    assert [t["authorization_id"] for t in tasks] == [idle["id"]]
    await fire_timers(harness)  # fired once: nothing raised twice
    assert len(await wait_published(harness, "authorization.expiring")) == 2
    # The care team decides to reauthorize after all.
    done = await harness.client.post(f"/v1/authorization-tasks/{tasks[0]['id']}/complete",
                                     json={"outcome": "reauthorization_requested"}, headers=harness.headers(CBO_HARBOR))
    assert done.status_code == 200 and done.json()["new_authorization_id"]
    new = [i for i in await listed(harness) if i["origin"] == "reauthorization"]
    assert len(new) == 2
    # The MCP approves the automatic one without dates: 6 months from the day after the old end.
    auto = next(i for i in new if i["previous_authorization_id"] == engaged["id"])
    r = await decide(harness, auto["id"], {"decision": "approved"})
    assert (r.json()["period_start"], r.json()["period_end"]) == ("2027-03-05", "2027-09-04")
    clock.set(datetime(2027, 3, 5, 8, 0, 1, tzinfo=UTC))  # 2027-03-05 Pacific: the old periods ended yesterday
    await fire_timers(harness)
    expired = await wait_published(harness, "authorization.expired", 2)
    assert {e["data"]["authorization_id"] for e in expired} == {engaged["id"], idle["id"]}
    assert {e["data"]["referral_id"] for e in expired} == {"ref_0001", "ref_0002"}
    assert len(await listed(harness, expiring_within_days=200)) == 1


async def _engagement_known(h: ServiceHarness) -> bool:
    from authorizations.models import MemberEligibility, MemberEngagement

    async with h.runtimes["authorizations"].sessions() as session:
        engaged = await session.scalar(select(func.count()).select_from(MemberEngagement))
        eligible = await session.scalar(select(func.count()).select_from(MemberEligibility))
    return bool(engaged and eligible)


async def test_an_invalid_policy_file_stops_the_service_at_start(tmp_path: Path, clock: FixedClock,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from authorizations.policy_file import PolicyFileError

    bad = tmp_path / "policy.yaml"
    bad.write_text("mcps: {lacare: [{expedited_hours: 100}]}\n")
    monkeypatch.setenv("AUTHORIZATIONS_POLICY_FILE", str(bad))
    with pytest.raises(PolicyFileError, match="expedited_hours"):
        async with running(tmp_path, clock):
            pass


async def test_trusted_provider_gets_presumptive_authorization(tmp_path: Path, clock: FixedClock) -> None:
    policy = AuthorizationPolicy(mcps={"lacare": (McpTerms(trusted_providers=frozenset({"org_cbo_harbor"})),)})
    async with running(tmp_path, clock, policy) as h:
        auth = await opened(h)
        assert auth["presumptive"] is True
        later = datetime(2026, 3, 10, 7, 0, tzinfo=UTC)
        clock.set(later)
        await fire_timers(h)
        assert (await wait_published(h, "authorization.decision_overdue"))[0]["data"]["escalation"] == 1
        assert later - timedelta(days=1) < clock.now()


async def test_the_sla_report_measures_mcp_decisions_not_mcp_assignments(tmp_path: Path, clock: FixedClock) -> None:
    policy = AuthorizationPolicy(providers={"1234567893": "org_cbo_harbor"})
    async with running(tmp_path, clock, policy) as h:
        auth = await opened(h)
        clock.set(T0 + timedelta(hours=100))
        r = await decide(h, auth["id"], {"decision": "approved", "mcp_authorization_number": "LAC-1"}, MCP_LACARE)
        assert r.status_code == 200, r.text
        # An MCP-initiated assignment has no request and no deadline: nothing the MCP had to decide in time.
        await publish(h.bus, envelope(mif_row(6, row=2, number="LAC-6", start=date(2026, 3, 1), npi="1234567893"),
                                      at=T0, source="sftp-gateway"))
        await opened_assignment(h, 6)
        report = (await h.client.get("/v1/reports/authorization-sla", headers=h.headers(HUB))).json()
        assert report["mcps"] == [{"mcp_code": "lacare", "decided": 1, "median_decision_hours": 100.0,
                                   "decided_within_deadline_share": 1.0, "open_overdue": 0,
                                   "expiring_next_30_days": 0}]


async def opened_assignment(h: ServiceHarness, n: int) -> dict[str, Any]:
    """Wait for the MCP assignment a MIF row made for member n."""

    async def probe() -> list[dict[str, Any]]:
        items = await listed(h, member_id=member_id_for(f"9{n:07d}A"))
        return [i for i in items if i["origin"] == "mcp_assignment"]

    return (await eventually(probe, within=15.0))[0]


async def test_a_trusted_providers_referral_without_a_period_by_rule_stays_open_for_the_mcp(
        tmp_path: Path, clock: FixedClock) -> None:
    policy = AuthorizationPolicy(mcps={"lacare": (McpTerms(trusted_providers=frozenset({"org_cbo_harbor"})),)})
    async with running(tmp_path, clock, policy) as h:
        chw = await opened(h, 1, program=Program.CHW)
        navigation = await opened(h, 2, program=Program.CS, cs_code="housing_transition_navigation")
        for auth in (chw, navigation):
            assert (auth["status"], auth["presumptive"], auth["decision"], auth["period_end"]) == (
                "requested", False, None, None)
            r = await h.client.get(f"/v1/authorizations/{auth['id']}", headers=h.headers(HUB))
            entry = r.json()["history"][-1]
            assert (entry["action"], entry["detail"]) == (
                "presumptive_not_applied", {"basis": "trusted_provider", "reason": "no_period_by_rule"})
        assert h.bus.read("referrals.referral.v1.dlq") == []  # type: ignore[attr-defined]
        # The MCP decides with a period, as for any open request.
        r = await decide(h, chw["id"], {"decision": "approved", "period_end": "2026-12-31"}, MCP_LACARE)
        assert (r.json()["status"], r.json()["period_end"]) == ("approved", "2026-12-31")


async def test_the_monthly_mif_gives_its_number_to_an_approval_recorded_without_one(harness: ServiceHarness) -> None:
    auth = await opened(harness)
    # The MCP phoned its approval: the hub records it before the MCP's authorization number is known.
    r = await decide(harness, auth["id"], {"decision": "approved", "period_start": "2026-03-05"}, MCP_LACARE)
    assert (r.json()["period_end"], r.json()["mcp_authorization_number"]) == ("2027-03-04", None)
    await publish(harness.bus, envelope(mif_row(1, number="LAC-1", start=date(2026, 3, 5), end=date(2027, 3, 4)),
                                        at=T0, source="sftp-gateway"))

    async def numbered() -> list[dict[str, Any]]:
        return [i for i in await listed(harness) if i["mcp_authorization_number"] == "LAC-1"]

    [item] = await eventually(numbered, within=15.0)
    assert (item["id"], item["origin"], item["status"]) == (auth["id"], "referral", "approved")
    assert len(await listed(harness)) == 1  # no MCP assignment beside it
    approvals = await wait_published(harness, "authorization.approved", 2)
    # The approval is restated with the number (claims bill with it), for the same authorization and period.
    assert {(e["subject"], e["data"]["period_end"], e["data"]["mcp_authorization_number"]) for e in approvals} == {
        (auth["id"], "2027-03-04", None), (auth["id"], "2027-03-04", "LAC-1")}


async def test_a_mif_approval_of_a_request_suspended_while_open_is_kept_for_a_person(
        harness: ServiceHarness) -> None:
    auth = await opened(harness)
    await publish(harness.bus, envelope(eligibility(EligibilityLost, mcp_code="lacare", effective=date(2026, 3, 3),
                                                    reason="disenrolled", as_of=date(2026, 3, 3)), at=T0,
                                        source="eligibility"))
    await wait_published(harness, "authorization.suspended")
    await publish(harness.bus, envelope(mif_row(1, number="LAC-1", start=date(2026, 3, 5)), at=T0,
                                        source="sftp-gateway"))

    async def exceptions() -> list[dict[str, Any]]:
        r = await harness.client.get("/v1/authorization-exceptions", headers=harness.headers(HUB))
        items: list[dict[str, Any]] = r.json()["items"]
        return items

    [found] = await eventually(exceptions, within=15.0)
    assert (found["reason"], found["authorization_id"]) == ("request_suspended", auth["id"])
    assert [(i["id"], i["status"]) for i in await listed(harness)] == [(auth["id"], "suspended")]


@pytest.mark.parametrize(("escalation_max", "raised"), [(10, [1, 2, 3, 4]), (3, [1, 2, 3])])
async def test_escalations_continue_after_a_suspension_up_to_the_maximum(tmp_path: Path, clock: FixedClock,
                                                                         escalation_max: int,
                                                                         raised: list[int]) -> None:
    async with running(tmp_path, clock, AuthorizationPolicy(escalation_max=escalation_max)) as h:
        auth = await opened(h)
        for day in (10, 11, 12):  # the deadline is the end of 2026-03-09 Pacific
            clock.set(datetime(2026, 3, day, 7, 30, tzinfo=UTC))
            await fire_timers(h)
        await wait_published(h, "authorization.decision_overdue", 3)
        await publish(h.bus, envelope(eligibility(EligibilityLost, mcp_code="lacare", effective=date(2026, 3, 12),
                                                  reason="disenrolled", as_of=date(2026, 3, 12)), at=T0,
                                      source="eligibility"))
        await wait_published(h, "authorization.suspended")
        await publish(h.bus, envelope(eligibility(EligibilityRegained, mcp_code="lacare",
                                                  effective=date(2026, 3, 13), as_of=date(2026, 3, 13)), at=T0,
                                      source="eligibility"))
        await wait_published(h, "authorization.resumed")
        clock.set(datetime(2026, 3, 13, 7, 30, tzinfo=UTC))
        await fire_timers(h)
        r = await h.client.get(f"/v1/authorizations/{auth['id']}", headers=h.headers(HUB))
        assert [e["detail"]["escalation"] for e in r.json()["history"] if e["action"] == "decision_overdue"] == raised


async def test_the_care_team_can_reauthorize_a_just_expired_authorization(harness: ServiceHarness,
                                                                         clock: FixedClock) -> None:
    auth = await opened(harness)
    await decide(harness, auth["id"], {"decision": "approved", "period_start": "2026-03-05"})
    clock.set(datetime(2027, 2, 2, 8, 0, 1, tzinfo=UTC))  # the expiring notice: no encounter, so a task
    await fire_timers(harness)
    await wait_published(harness, "authorization.care_task_opened")
    clock.set(datetime(2027, 3, 5, 8, 0, 1, tzinfo=UTC))  # the period ended yesterday (Pacific)
    await fire_timers(harness)
    await wait_published(harness, "authorization.expired")
    tasks = (await harness.client.get("/v1/authorization-tasks", headers=harness.headers(CBO_HARBOR))).json()["items"]
    # The task was done after the period end: the same statuses as the automatic pass may be reauthorized.
    done = await harness.client.post(f"/v1/authorization-tasks/{tasks[0]['id']}/complete",
                                     json={"outcome": "reauthorization_requested"}, headers=harness.headers(CBO_HARBOR))
    assert done.status_code == 200, done.text
    [new] = [i for i in await listed(harness) if i["origin"] == "reauthorization"]
    assert (new["previous_authorization_id"], new["status"]) == (auth["id"], "requested")
    r = await decide(harness, new["id"], {"decision": "approved"})
    assert (r.json()["period_start"], r.json()["period_end"]) == ("2027-03-05", "2027-09-04")
