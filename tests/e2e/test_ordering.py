"""Events arriving out of order across services, on real Kafka: each story is told twice, once in the order it
happened and once scrambled (the order a dead-letter replay or a lagging partition produces), and every consumer
must end in the same state for both twins, with nothing lost or doubled. Then a late Member Information File for
an older reporting period, over real SFTP, after the newer period's file."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any
from uuid import UUID

import pytest
from flows import (
    approval_row,
    authorization,
    california_today,
    correlation_of,
    encounter_body,
    files,
    onboard,
    referral,
    submit_referral,
    wait_authorization,
    wait_referral_file_lists,
    wait_referral_status,
)
from harness import (
    Accountant,
    Cluster,
    Members,
    Tenants,
    all_pages,
    assert_no_duplicate_events,
    eventually,
    get_json,
    lacare_mif,
)
from stories import (
    Story,
    authorization_story,
    decision_and_end,
    eligibility_story,
    publish,
    reauthorization_and_end,
    session_member_id,
)

pytestmark = [pytest.mark.e2e, pytest.mark.integration]


def _today() -> date:
    return california_today()


async def _encounter(cluster: Cluster, tenants: Tenants, member: dict[str, Any], on: date) -> dict[str, Any]:
    async with cluster.client("claims", tenants.cbo_a.key) as client:
        response = await client.post("/v1/encounters", json=encounter_body(member, service_date=on))
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def _verdict(encounter: dict[str, Any]) -> tuple[str, list[str]]:
    return encounter["status"], sorted(r["code"] for r in encounter["reasons"])


async def _chw_rules(cluster: Cluster, tenants: Tenants, cin: str) -> list[str]:
    """The eligibility rule engine's CHW verdict today: which rules refuse it (ECM authorized → ECM/CHW clash)."""
    async with cluster.client("eligibility", tenants.hub.key) as client:
        answer = await get_json(client, f"/v1/members/{cin}/eligibility")
    return sorted(r["rule"] for r in answer["eligibility"]["chw"]["reasons"])


async def _gateway_authorization(cluster: Cluster, authorization_id: str) -> dict[str, Any] | None:
    """The gateway's projection of an authorization (what its referral files and RTF are built from). No API
    shows it, so it is read from the gateway's schema, read-only."""
    rows = await cluster.query(
        f'SELECT status, period_start, period_end, ended_on, referral_file_id '
        f'FROM "{cluster.schema("sftp-gateway")}".authorization_record WHERE authorization_id = :id',
        id=authorization_id)
    return rows[0] if rows else None


async def _member_plan(cluster: Cluster, member_id: str) -> tuple[str | None, date] | None:
    """Referrals' projection of the member's latest plan (what routes their next referral). No API shows it, so
    it is read from the referrals schema, read-only."""
    rows = await cluster.query(f'SELECT mcp_code, as_of FROM "{cluster.schema("referrals")}".member_plan '
                               f"WHERE member_id = :id", id=member_id)
    return (rows[0]["mcp_code"], rows[0]["as_of"]) if rows else None


async def _accounted_stories(accountant: Accountant, stories: Sequence[Story], referral_ids: Sequence[str] = (),
                             *, expected: dict[tuple[str, str], int] | None = None) -> list[dict[str, Any]]:
    """Every published event journaled exactly once, no one-shot fact twice (but the `expected` ones),
    nothing dead-lettered, every outbox drained; for real referrals, one authorization each."""
    await accountant.settle()
    correlations = [str(s.correlation_id) for s in stories]
    if referral_ids:
        ledger = await accountant.read(referral_ids)
        assert ledger.authorizations_by_referral() == {r: 1 for r in referral_ids}
        correlations += [await correlation_of(accountant.cluster, accountant.tenants, r) for r in referral_ids]
    journal = await accountant.journal_for(sorted(set(correlations)))
    journaled = {str(e["event_id"]) for e in journal}
    published = {str(e.id) for s in stories for e in s.told}
    assert published <= journaled, published - journaled
    assert_no_duplicate_events(journal, expected)
    dead = [d for d in await accountant.dead_letters()
            if str(d.get("event_id")) in journaled or str(d.get("subject")) in {s.subject for s in stories}]
    assert not dead, dead
    return journal


async def test_authorization_told_backwards_ends_as_told_forwards(live: Cluster, tenants: Tenants, members: Members,
                                                                 accountant: Accountant) -> None:
    """requested → approved → suspended → resumed, and the same story with every event reversed: claims bills and
    refuses the same dates, eligibility counts the same ECM authorization, the gateway keeps the same status and
    never asks the MCP to decide an authorization it already approved."""
    today = _today()
    twins = [members.next(), members.next()]
    stories = [authorization_story(live, m, cbo_organization_id=tenants.cbo_a.organization_id,
                                   period_start=today - timedelta(days=60), period_end=today + timedelta(days=300),
                                   suspended_on=today - timedelta(days=10), resumed_on=today - timedelta(days=3))
               for m in twins]
    enrolled = [eligibility_story(live, m, verified_on=today - timedelta(days=90)) for m in twins]
    await publish(live, [e for s in enrolled for e in s.told])
    forwards, backwards = stories
    await publish(live, forwards.in_order(0, 1, 2, 3) + backwards.in_order(3, 2, 1, 0))
    await accountant.settle()

    # claims: covered before the suspension and after the resumption, refused in between; the same for both.
    days = [today - timedelta(days=20), today - timedelta(days=5), today - timedelta(days=1)]
    verdicts = [[_verdict(await _encounter(live, tenants, m, d)) for d in days] for m in twins]
    assert verdicts[0] == [("recorded", []), ("rejected", ["authorization_suspended"]), ("recorded", [])], verdicts
    assert verdicts[1] == verdicts[0], verdicts

    # eligibility: the ECM authorization is active for both (CHW refused in the same period).
    rules = [await _chw_rules(live, tenants, m["cin"]) for m in twins]
    assert "ecm_chw_not_same_period" in rules[0], rules
    assert rules[1] == rules[0], rules

    # gateway: approved (resumed) for both; the reversed one never went out in a referral file.
    kept = [await _gateway_authorization(live, s.subject) for s in stories]
    assert kept[0] is not None and kept[0]["status"] == "approved", kept
    assert kept[1] is not None and kept[1]["status"] == "approved" and kept[1]["referral_file_id"] is None, kept
    assert (kept[1]["period_start"], kept[1]["period_end"]) == (kept[0]["period_start"], kept[0]["period_end"])

    await _accounted_stories(accountant, [*stories, *enrolled])
    # The member ids the events carried are the ones the services derive (nothing attached to a stranger).
    assert {s.member_id for s in stories} == {session_member_id(live, m["cin"]) for m in twins}


def _months_ago(day: date, months: int) -> str:
    """The reporting period (YYYYMM) `months` before the one of `day`."""
    index = day.year * 12 + day.month - 1 - months
    return f"{index // 12:04d}{index % 12 + 1:02d}"


async def test_older_eligibility_arriving_late_never_overwrites_the_newer(live: Cluster, tenants: Tenants,
                                                                         members: Members,
                                                                         accountant: Accountant) -> None:
    """eligibility.lost (from ten days ago) before eligibility.verified (forty days ago): authorizations suspends
    once and stays suspended, claims refuses the days after the loss and bills the days before, referrals forgets
    the plan; exactly as when the two arrive in the order they happened."""
    today = _today()
    # Approved from an older reporting period's MIF, so both facts are newer than anything eligibility knew.
    twins = await onboard(live, tenants, [members.next(), members.next()], period=_months_ago(today, 3),
                          start=today - timedelta(days=60))
    lost_on = today - timedelta(days=10)
    stories = [eligibility_story(live, t.member, verified_on=today - timedelta(days=40), lost_on=lost_on)
               for t in twins]
    forwards, backwards = stories
    await publish(live, forwards.in_order(0, 1) + backwards.in_order(1, 0))
    await accountant.settle()

    for twin in twins:
        await wait_authorization(live, tenants, twin.authorization_id, "suspended")
    days = [today - timedelta(days=35), today - timedelta(days=7)]
    verdicts = [[_verdict(await _encounter(live, tenants, t.member, d)) for d in days] for t in twins]
    assert verdicts[0] == [("recorded", []), ("rejected", ["authorization_suspended", "not_eligible"])], verdicts
    assert verdicts[1] == verdicts[0], verdicts
    assert [await _member_plan(live, t.member_id) for t in twins] == [(None, lost_on)] * 2
    kept = [await _gateway_authorization(live, t.authorization_id) for t in twins]
    assert [k["status"] if k else None for k in kept] == ["suspended", "suspended"], kept

    journal = await _accounted_stories(accountant, stories, [t.referral_id for t in twins])
    suspended = sorted(e["subject"] for e in journal if e["event_type"] == "authorization.suspended")
    assert suspended == sorted({t.authorization_id for t in twins}), suspended  # once each, never resumed
    assert not [e for e in journal if e["event_type"] == "authorization.resumed"]


async def test_an_end_before_its_decision_closes_the_loop_as_told_in_order(live: Cluster, tenants: Tenants,
                                                                          members: Members,
                                                                          accountant: Accountant) -> None:
    """The MCP approved and later discontinued two real requests; one story arrives in order, the other with the
    closure first (the approval replayed from the dead letters): both referrals end closed with the same reason,
    claims bills until the closure and no later, eligibility and the gateway keep the authorization ended."""
    today = _today()
    people = [members.next(), members.next()]
    asked = [await submit_referral(live, tenants, p) for p in people]
    requested = [await wait_referral_status(live, tenants, a["id"], "requested") for a in asked]
    enrolled = [eligibility_story(live, p, verified_on=today - timedelta(days=90)) for p in people]
    await publish(live, [e for s in enrolled for e in s.told])
    ended_on = today - timedelta(days=5)
    stories = [decision_and_end(live, r["authorization_id"], p, referral_id=r["id"],
                                cbo_organization_id=tenants.cbo_a.organization_id,
                                period_start=today - timedelta(days=60), period_end=today + timedelta(days=300),
                                ended_on=ended_on, correlation_id=UUID(await correlation_of(live, tenants, r["id"])))
               for r, p in zip(requested, people, strict=True)]
    forwards, backwards = stories
    await publish(live, forwards.in_order(0, 1) + backwards.in_order(1, 0))
    await accountant.settle()

    closed = [await wait_referral_status(live, tenants, r["id"], "closed") for r in requested]
    assert [(c["closure_reason_code"], c["authorization_id"]) for c in closed] == [
        ("authorization_closed", r["authorization_id"]) for r in requested], closed
    days = [today - timedelta(days=10), today - timedelta(days=2)]
    verdicts = [[_verdict(await _encounter(live, tenants, p, d)) for d in days] for p in people]
    assert verdicts[0] == [("recorded", []), ("rejected", ["no_authorization"])], verdicts
    assert verdicts[1] == verdicts[0], verdicts
    rules = [await _chw_rules(live, tenants, p["cin"]) for p in people]
    assert "ecm_chw_not_same_period" not in rules[0] and rules[1] == rules[0], rules
    kept = [await _gateway_authorization(live, r["authorization_id"]) for r in requested]
    assert [(k["status"], k["ended_on"], k["period_end"]) if k else None for k in kept] == [
        ("closed", ended_on, today + timedelta(days=300))] * 2, kept

    await _accounted_stories(accountant, stories, [r["id"] for r in requested])
    statuses = [[t["status"] for t in (await referral(live, tenants, r["id"]))["timeline"]
                 if t["kind"] == "status_changed"] for r in requested]
    # In order the loop went through accepted; with the closure first, the late approval was kept on the
    # timeline as ignored (the loop was closed) rather than reopening it.
    assert statuses[0][-2:] == ["accepted", "closed"], statuses
    assert statuses[1][-1] == "closed" and "accepted" not in statuses[1], statuses


async def _gateway_referral(cluster: Cluster, referral_id: str) -> dict[str, Any] | None:
    """The gateway's closed-loop projection of a referral (the RTF's status, date and closure reason), read from
    its schema, read-only."""
    rows = await cluster.query(
        f'SELECT status, changed_at, closure_reason FROM "{cluster.schema("sftp-gateway")}".referral_record '
        f"WHERE referral_id = :id", id=referral_id)
    return rows[0] if rows else None


async def test_a_reauthorization_ended_before_its_links_closes_the_loop_as_told_in_order(
        live: Cluster, tenants: Tenants, members: Members, accountant: Accountant) -> None:
    """Two real referrals are approved, reauthorized, and the MCP discontinues each reauthorization. One story
    arrives in order; in the other the reauthorization's closure comes first, before the request and approval
    that link it to the referral (both replayed from the dead letters). The closure names its referral, and the
    reauthorization is the newest of the referral's chain: both loops end closed on the reauthorization with the
    MCP's reason, and the gateway reports the same closure on the RTF (decision 0127)."""
    today = _today()
    people = [members.next(), members.next()]
    asked = [await submit_referral(live, tenants, p) for p in people]
    requested = [await wait_referral_status(live, tenants, a["id"], "requested") for a in asked]
    told = [reauthorization_and_end(live, r["authorization_id"], p, referral_id=r["id"],
                                    cbo_organization_id=tenants.cbo_a.organization_id,
                                    period_start=today - timedelta(days=200), period_end=today - timedelta(days=30),
                                    ended_on=today - timedelta(days=5),
                                    correlation_id=UUID(await correlation_of(live, tenants, r["id"])))
            for r, p in zip(requested, people, strict=True)]
    decisions, reauthorizations = [d for d, _ in told], [s for _, s in told]
    await publish(live, [e for d in decisions for e in d.told])
    for r in requested:
        await wait_referral_status(live, tenants, r["id"], "accepted")
    forwards, backwards = reauthorizations
    await publish(live, forwards.in_order(0, 1, 2) + backwards.in_order(2, 1, 0))
    await accountant.settle()

    closed = [await wait_referral_status(live, tenants, r["id"], "closed") for r in requested]
    assert [(c["closure_reason_code"], c["status_reason"], c["authorization_id"]) for c in closed] == [
        ("authorization_closed", "discontinued_by_mcp", s.subject) for s in reauthorizations], closed
    statuses = [[t["status"] for t in c["timeline"] if t["kind"] == "status_changed"] for c in closed]
    assert statuses[0][-2:] == ["accepted", "closed"] and statuses[1] == statuses[0], statuses
    loops = [await _gateway_referral(live, r["id"]) for r in requested]
    assert [(lp["status"], lp["changed_at"], lp["closure_reason"]) if lp else None for lp in loops] == [
        ("closed", s.told[2].time, "discontinued_by_mcp") for s in reauthorizations], loops

    await _accounted_stories(accountant, [*decisions, *reauthorizations], [r["id"] for r in requested])


async def _uploaded_mif(cluster: Cluster, tenants: Tenants, rows: list[dict[str, Any]], period: str) -> dict[str, Any]:
    """L.A. Care posts a MIF over SFTP; returns the gateway's ledger entry once the file is processed."""
    name, content = lacare_mif(rows, period)
    await cluster.upload("lacare", name, content)
    digest = hashlib.sha256(content).hexdigest()

    async def processed() -> dict[str, Any] | None:
        found = [f for f in await files(cluster, tenants, mcp_code="lacare") if f["sha256"] == digest]
        return found[0] if found and found[0]["status"] == "processed" else None

    return await eventually(processed, what=f"{name} processed")


async def test_a_late_mif_of_an_older_period_never_undoes_the_newer_one(live: Cluster, tenants: Tenants,
                                                                      members: Members,
                                                                      accountant: Accountant) -> None:
    """This month's MIF shortened one member's period and discontinued another; last month's MIF then arrives
    late over SFTP. The newer decisions stand (no period reverted, no discontinued member assigned again), last
    month's row for a member this month's file never mentioned is applied, and the two rows set aside are
    visible as exceptions of that file. Nothing else happens twice."""
    today = _today()
    this_month, last_month = f"{today:%Y%m}", _months_ago(today, 1)
    kept, ended = await onboard(live, tenants, [members.next(), members.next()])
    newcomer = members.next()
    asked = await submit_referral(live, tenants, newcomer)
    waiting = await wait_referral_status(live, tenants, asked["id"], "requested")
    await wait_referral_file_lists(live, [newcomer["cin"]])
    short_end = today + timedelta(days=180)
    await _uploaded_mif(live, tenants, [approval_row(kept.member, f"LAC-{kept.member['cin']}", end=short_end),
                                        approval_row(ended.member, f"LAC-{ended.member['cin']}",
                                                     status="Discontinued")], this_month)
    await wait_authorization(live, tenants, ended.authorization_id, "closed")

    async def shortened() -> bool:
        return bool((await authorization(live, tenants, kept.authorization_id))["period_end"] == short_end.isoformat())

    await eventually(shortened, what="the corrected period applied")
    await accountant.settle()
    correlations = [kept.correlation_id, ended.correlation_id, await correlation_of(live, tenants, asked["id"])]
    before = Counter((e["event_type"], e["subject"]) for e in await accountant.journal_for(correlations))

    older = today - timedelta(days=30)
    late = await _uploaded_mif(live, tenants, [approval_row(p, f"LAC-{p['cin']}", start=older)
                                               for p in (kept.member, ended.member, newcomer)], last_month)
    assert (late["reporting_period"], late["rows_accepted"], late["rows_rejected"]) == (
        f"{last_month[:4]}-{last_month[4:]}", 3, 0), late
    await wait_authorization(live, tenants, waiting["authorization_id"], "approved")
    await wait_referral_status(live, tenants, asked["id"], "accepted")
    await accountant.settle()

    # Nothing lost, nothing doubled: the late file added only the newcomer's story.
    after = Counter((e["event_type"], e["subject"]) for e in await accountant.journal_for(correlations))
    added = after - before
    for fact in added:
        assert fact[1] not in (kept.authorization_id, ended.authorization_id, kept.referral_id,
                               ended.referral_id), added
    assert added[("authorization.approved", waiting["authorization_id"])] == 1, added
    assert not (before - after)

    # authorizations: the newer decisions stand; the older rows that would undo them are kept for a person.
    current = await authorization(live, tenants, kept.authorization_id)
    assert (current["status"], current["period_start"], current["period_end"]) == (
        "approved", today.isoformat(), short_end.isoformat()), current
    async with live.client("authorizations", tenants.hub.key) as client:
        of_ended = await all_pages(client, "/v1/authorizations", member_id=ended.member_id)
        set_aside = [e for e in await all_pages(client, "/v1/authorization-exceptions", mcp_code="lacare")
                     if e["file_id"] == late["id"]]
    assert [(a["id"], a["status"]) for a in of_ended] == [(ended.authorization_id, "closed")], of_ended
    # Row numbers count the file's lines (line 1 is the header).
    assert sorted((e["row_number"], e["reason"], e["authorization_id"]) for e in set_aside) == [
        (2, "older_reporting_period", kept.authorization_id), (3, "older_reporting_period", None)], set_aside
    newcomer_auth = await authorization(live, tenants, waiting["authorization_id"])
    assert newcomer_auth["period_start"] == older.isoformat()

    # referrals, claims and eligibility agree: still served, discontinued, enrolled.
    assert [(await referral(live, tenants, r))["status"] for r in (kept.referral_id, ended.referral_id)] == [
        "accepted", "closed"]
    verdicts = [_verdict(await _encounter(live, tenants, p, today)) for p in (kept.member, ended.member)]
    assert verdicts == [("recorded", []), ("rejected", ["no_authorization"])], verdicts
    async with live.client("eligibility", tenants.hub.key) as client:
        enrolled = [(await get_json(client, f"/v1/members/{p['cin']}/eligibility"))["status"]
                    for p in (kept.member, ended.member, newcomer)]
    assert enrolled == ["enrolled"] * 3, enrolled

    await _accounted_stories(accountant, [], [kept.referral_id, ended.referral_id, asked["id"]],
                             expected={("authorization.approved", kept.authorization_id): 2})  # initial, modified
