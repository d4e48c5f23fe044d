"""End-to-end flows of the eligibility service through the in-process bus and SQLite: MIF rows, 271 files,
referrals, authorizations, the monthly schedule."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from eligibility import models
from eligibility.service import FLUSH_TIMER, MONTHLY_TIMER
from eligibility.x12.x270 import parse_270, validate_270
from sqlalchemy import func, select

from shared.contracts.eligibility import EligibilityExcluded, EligibilitySource
from shared.envelope import new_event
from shared.identity import member_id_for
from shared.reference.plans import plans_in_county


async def test_mif_row_registers_member_and_verifies_once(kit: Any) -> None:
    await kit.deliver(kit.mif())
    await kit.deliver(kit.mif())  # the same row again (another file): nothing new to announce
    verified = await kit.events_of("eligibility.verified")
    assert len(verified) == 1
    event = verified[0]
    assert event.data.mcp_code == "lacare" and event.data.first_seen and event.data.source == "mif"
    assert event.subject == member_id_for("90000001A") and event.member_id == event.subject
    assert "90000001A" not in event.subject  # keyed by the internal id, never the CIN


async def test_member_who_lost_eligibility_yesterday_produces_exactly_one_lost(kit: Any) -> None:
    await kit.deliver(kit.mif(period="2026-02"))
    await kit.deliver(kit.file_received(kit.fixture("271_inactive.x12")))
    # The same facts again: a second copy of the 271 (other bytes), and an older MIF row for February.
    second = kit.fixture("271_inactive.x12").replace("000000102", "000000112").replace("*102*", "*112*")
    second = second.replace("GE*1*102~", "GE*1*112~")
    await kit.deliver(kit.file_received(second))
    await kit.deliver(kit.mif(period="2026-02"))
    lost = await kit.events_of("eligibility.lost")
    assert len(lost) == 1
    assert lost[0].data.effective == date(2026, 3, 1)  # coverage ended 28 Feb: lost yesterday (2 Mar)
    assert lost[0].data.mcp_code == "lacare" and lost[0].data.reason == "inactive"
    assert await kit.events_of("eligibility.regained") == []
    async with kit.uow() as uow:
        state = (await uow.members.load_states([member_id_for("90000001A")]))[member_id_for("90000001A")]
    assert state.status == "not_enrolled" and state.span_on(date(2026, 3, 1)) is None
    assert state.span_on(date(2026, 2, 28)) is not None


async def test_271_active_answer_is_first_verification_and_file_applies_once(kit: Any) -> None:
    await kit.add_check("chk_fixture_active")
    event = kit.file_received(kit.fixture("271_active.x12"))
    await kit.deliver(event)
    verified = await kit.events_of("eligibility.verified")
    assert [(e.data.mcp_code, e.data.span_start, e.data.source) for e in verified] == [
        ("lacare", date(2025, 1, 1), "271")]
    assert verified[0].causation_id == event.id and verified[0].correlation_id == event.correlation_id
    processed = await kit.events_of("eligibility_response.processed", "eligibility.eligibility_response.v1")
    assert processed[0].data.subscribers == 1 and processed[0].data.rejected == 0
    # The gateway re-announces the same file: nothing is applied twice.
    again = kit.file_received(kit.fixture("271_active.x12"), file_id=event.data.file_id)
    await kit.deliver(again)
    assert len(await kit.events_of("eligibility_response.processed", "eligibility.eligibility_response.v1")) == 1
    async with kit.uow() as uow:
        check = (await uow.checks.get_many(["chk_fixture_active"]))["chk_fixture_active"]
    assert (check.status, check.result, check.result_mcp_code) == ("answered", "enrolled", "lacare")


async def test_plan_change_in_271_publishes_plan_changed(kit: Any) -> None:
    await kit.deliver(kit.mif(period="2026-02"))
    await kit.deliver(kit.file_received(kit.fixture("271_plan_changed.x12")))
    changed = await kit.events_of("eligibility.plan_changed")
    assert [(e.data.previous_mcp_code, e.data.mcp_code, e.data.effective) for e in changed] == [
        ("lacare", "healthnet", date(2026, 3, 1))]
    assert await kit.events_of("eligibility.lost") == []  # a plan change, not a loss


async def test_hospice_in_271_excludes_ecm_and_the_engine_says_why(kit: Any) -> None:
    await kit.deliver(kit.mif(period="2026-02"))
    await kit.deliver(kit.file_received(kit.fixture("271_excluded_program.x12")))
    excluded = await kit.events_of("eligibility.excluded")
    assert [(e.data.program, e.data.exclusion, e.data.effective) for e in excluded] == [
        ("ecm", "hospice", date(2026, 2, 15))]
    response = await kit.harness.client.get("/v1/members/90000001A/eligibility", params={"date": "2026-03-02"},
                                            headers=kit.harness.headers("hub-token"))
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "enrolled" and body["mcp_code"] == "lacare" and body["programs"] == ["hospice"]
    assert body["eligibility"]["ecm"]["allowed"] is False
    assert [r["code"] for r in body["eligibility"]["ecm"]["reasons"]] == ["ecm_not_eligible"]
    assert body["eligibility"]["chw"]["allowed"] is True
    before = await kit.harness.client.get("/v1/members/90000001A/eligibility", params={"date": "2026-02-14"},
                                          headers=kit.harness.headers("hub-token"))
    assert before.json()["eligibility"]["ecm"]["allowed"] is True  # hospice began 15 Feb


async def test_hospice_stay_over_before_the_271_is_not_an_exclusion(kit: Any) -> None:
    await kit.deliver(kit.mif(period="2026-02"))
    # The MCP reports a hospice stay of January-March 2024 on 2 March 2026: history, not an open exclusion.
    past = kit.fixture("271_excluded_program.x12").replace(
        "EB*R*IND*45*MA*MEDICARE HOSPICE BENEFIT ELECTED~", "EB*1*IND*45*MC~").replace(
        "DTP*193*D8*20260215~", "DTP*292*RD8*20240101-20240331~")
    assert "RD8*20240101-20240331" in past
    await kit.deliver(kit.file_received(past))
    assert await kit.events_of("eligibility.excluded") == []
    response = await kit.harness.client.get("/v1/members/90000001A/eligibility", params={"date": "2026-03-02"},
                                            headers=kit.harness.headers("hub-token"))
    assert response.json()["programs"] == [] and response.json()["eligibility"]["ecm"]["allowed"] is True


async def test_exclusion_event_says_when_the_program_ends(kit: Any) -> None:
    await kit.deliver(kit.mif(period="2026-02"))
    running = kit.fixture("271_excluded_program.x12").replace("DTP*193*D8*20260215~",
                                                              "DTP*292*RD8*20260215-20260630~")
    assert "RD8*20260215-20260630" in running
    await kit.deliver(kit.file_received(running))
    excluded = await kit.events_of("eligibility.excluded")
    assert [(e.data.exclusion, e.data.effective, e.data.effective_to) for e in excluded] == [
        ("hospice", date(2026, 2, 15), date(2026, 6, 30))]


def test_exclusion_written_before_it_carried_an_end_still_reads() -> None:
    """`effective_to` was added within major 1 (decision 0050): an exclusion already on the topic or in a
    dead-letter queue reads as open-ended, and the schema version stays 1."""
    data = EligibilityExcluded(cin="90000001A", mcp_code="lacare", source=EligibilitySource.X12_271,
                               as_of=date(2026, 3, 2), verified_at=datetime(2026, 3, 2, 17, tzinfo=UTC),
                               program="ecm", exclusion="hospice", effective=date(2026, 2, 15), reason="hospice")
    envelope = new_event(data, subject="mbr_1", source="eligibility")
    raw = envelope.model_dump(mode="json")
    del raw["data"]["effective_to"]
    older = type(envelope).model_validate(raw)
    assert older.data.effective_to is None and older.schema_version == EligibilityExcluded.schema_version == 1


async def test_aaa_rejection_is_mapped_to_a_plain_reason(kit: Any) -> None:
    await kit.add_check("chk_fixture_rejected", referral_id="ref_9")
    await kit.deliver(kit.file_received(kit.fixture("271_rejected.x12")))
    rejected = await kit.events_of("eligibility.check_rejected")
    assert len(rejected) == 1
    data = rejected[0].data
    assert (data.reject_reason_code, data.loop, data.follow_up_code, data.retry) == ("75", "2100C", "C", False)
    assert data.reason == "The plan has no member with this CIN: confirm which plan the member is in"
    assert data.referral_id == "ref_9" and data.check_id == "chk_fixture_rejected"
    assert await kit.events_of("eligibility.verified") == []


async def test_malformed_271_is_refused_whole_and_nothing_is_applied(kit: Any) -> None:
    await kit.add_check("chk_fixture_ok")
    await kit.deliver(kit.file_received(kit.fixture("271_malformed.x12")))
    refused = await kit.events_of("eligibility_response.refused", "eligibility.eligibility_response.v1")
    assert len(refused) == 1 and refused[0].data.errors == 4
    assert "90000001A" not in refused[0].data.reason and "TESTPERSON" not in refused[0].data.reason
    assert await kit.events("eligibility.eligibility.v1") == []
    async with kit.uow() as uow:
        check = (await uow.checks.get_many(["chk_fixture_ok"]))["chk_fixture_ok"]
        members = (await uow.session.execute(select(func.count()).select_from(models.member))).scalar()
        spans = (await uow.session.execute(select(func.count()).select_from(models.enrollment_span))).scalar()
        stored = (await uow.session.execute(select(models.response_file))).one()
    assert check.status == "sent"  # the valid first answer was not applied either
    assert (members, spans) == (1, 0)  # only the member the test created for its check
    assert stored.status == "refused" and {e["rule"] for e in stored.errors} == {
        "eb01_code", "dtp_qualifier", "dtp_date", "hl_parent"}


async def test_referral_for_known_member_is_answered_with_verified(kit: Any) -> None:
    await kit.deliver(kit.mif(period="2026-03"))
    referral = kit.referral(referral_id="ref_42")
    await kit.deliver(referral)
    answers = [e for e in await kit.events_of("eligibility.verified") if e.data.referral_id == "ref_42"]
    assert len(answers) == 1
    assert answers[0].data.mcp_code == "lacare" and answers[0].causation_id == referral.id
    assert answers[0].correlation_id == referral.correlation_id


async def test_referral_for_unknown_member_queues_a_270_and_the_271_answers_it(kit: Any) -> None:
    referral = kit.referral(cin="90000002A", mcp="lacare", referral_id="ref_7")
    await kit.deliver(referral)
    assert await kit.events_of("eligibility.verified") == []
    async with kit.uow() as uow:
        queued = await uow.checks.queued("lacare")
    assert [(c.reason, c.referral_id) for c in queued] == [("referral", "ref_7")]
    fired = await kit.scheduler.scheduler.fire_due(kit.clock.now() + timedelta(minutes=16))
    assert fired == 1
    batches = await kit.events_of("eligibility_batch.created", "eligibility.eligibility_batch.v1")
    assert len(batches) == 1 and batches[0].data.members == 1 and batches[0].data.period is None
    text = kit.files.get(batches[0].data.file).decode()
    assert validate_270(text) == []
    inquiry = parse_270(text)
    members = inquiry["transactions"][0]["information_sources"][0]["receivers"][0]["members"]
    assert [m["member_id"] for m in members] == ["90000002A"]
    await kit.deliver(kit.file_received(kit.answer_270(text)))
    answers = [e for e in await kit.events_of("eligibility.verified") if e.data.referral_id == "ref_7"]
    assert len(answers) == 1 and answers[0].data.mcp_code == "lacare" and answers[0].data.first_seen


async def test_referral_without_plan_asks_every_plan_of_the_county(kit: Any) -> None:
    await kit.deliver(kit.referral(cin="90000003A", county="Alameda", referral_id="ref_8"))
    async with kit.uow() as uow:
        rows = (await uow.session.execute(select(models.eligibility_check.c.mcp_code))).all()
    expected = sorted(p.code for p in plans_in_county("Alameda", date(2026, 3, 2)))
    assert len(expected) >= 2 and sorted(r.mcp_code for r in rows) == expected


async def test_monthly_batch_checks_authorized_members_once_per_period(kit: Any) -> None:
    for event in kit.authorization():
        await kit.deliver(event)
    for event in kit.authorization(cin="90000004A", authorization_id="auth_2", end=date(2026, 2, 28)):
        await kit.deliver(event)  # ended before the April run: not re-checked
    async with kit.uow() as uow:
        timer = (await uow.session.execute(select(uow.tables.timer).where(
            uow.tables.timer.c.kind == MONTHLY_TIMER))).one()
    due = timer.due_at.replace(tzinfo=timer.due_at.tzinfo or datetime.now().astimezone().tzinfo)
    assert (timer.subject, timer.status) == ("lacare", "pending")
    assert due.isoformat().startswith("2026-04-01T13:00")  # 1 April 06:00 Pacific
    fired = await kit.scheduler.scheduler.fire_due(datetime.fromisoformat("2026-04-01T13:00:00+00:00"))
    assert fired == 1
    batches = await kit.events_of("eligibility_batch.created", "eligibility.eligibility_batch.v1")
    assert [(b.data.mcp_code, b.data.period, b.data.members, b.data.batch_key) for b in batches] == [
        ("lacare", "2026-04", 1, "monthly:lacare:2026-04")]
    text = kit.files.get(batches[0].data.file).decode()
    assert validate_270(text) == []
    # A duplicate April timer (a second instance, a manual run) never sends a second file for April.
    response = await kit.harness.client.post("/v1/eligibility/batches", json={"mcp_code": "lacare",
                                                                              "period": "2026-04"},
                                             headers=kit.harness.headers("hub-token"))
    assert response.status_code == 200 and response.json()["created"] is False
    assert len(await kit.events_of("eligibility_batch.created", "eligibility.eligibility_batch.v1")) == 1
    async with kit.uow() as uow:
        pending = (await uow.session.execute(select(uow.tables.timer.c.due_at).where(
            uow.tables.timer.c.kind == MONTHLY_TIMER, uow.tables.timer.c.status == "pending"))).all()
    assert len(pending) == 1 and pending[0].due_at.isoformat().startswith("2026-05-01T13:00")


async def test_queued_checks_flush_timer_is_scheduled_once(kit: Any) -> None:
    await kit.deliver(kit.referral(cin="90000005A", mcp="lacare", referral_id="ref_a"))
    await kit.deliver(kit.referral(cin="90000006A", mcp="lacare", referral_id="ref_b"))
    async with kit.uow() as uow:
        timers = (await uow.session.execute(select(uow.tables.timer).where(
            uow.tables.timer.c.kind == FLUSH_TIMER))).all()
    assert len(timers) == 1

