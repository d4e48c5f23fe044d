"""Which checks a 271 answers: a member answer closes the check the hub's 270 traced, echoed back (never the MCP's
own trace), and an answer naming no check of ours is an exception attached to nothing; a rejection of a whole
transaction set rejects that set's checks only."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from eligibility import models
from eligibility.x12.x270 import parse_270
from sqlalchemy import select

from shared.identity import member_id_for

OURS = "9CALHUB000"  # the hub's TRN03 (ELIGIBILITY_TRACE_ORIGINATOR default)
PAYER_TRACE = ("1", "PAYERTRACE77", "9LACARE001")  # the MCP's own TRN (TRN01=1 under its TRN03)


async def check_statuses(kit: Any) -> dict[str, str]:
    async with kit.uow() as uow:
        rows = (await uow.session.execute(select(models.eligibility_check))).all()
    return {r.check_id: r.status for r in rows}


async def test_answer_closes_the_check_its_echoed_trace_names_not_the_mcps_own_trace(kit: Any) -> None:
    await kit.add_check("chk_a", referral_id="ref_1")
    answer = kit.member_answer("90000001A", PAYER_TRACE, ("2", "chk_a", OURS))
    await kit.deliver(kit.file_received(kit.make_271(kit.response_set("eb_fixture_batch", [answer]))))
    assert await check_statuses(kit) == {"chk_a": "answered"}
    verified = await kit.events_of("eligibility.verified")
    assert [(e.data.mcp_code, e.data.referral_id) for e in verified] == [("lacare", "ref_1")]
    processed = await kit.events_of("eligibility_response.processed", "eligibility.eligibility_response.v1")
    assert processed[0].data.unmatched == 0


async def test_answer_with_a_rewritten_originator_closes_only_a_check_about_that_member(kit: Any) -> None:
    await kit.add_check("chk_a", cin="90000001A", referral_id="ref_1")
    await kit.add_check("chk_b", cin="90000002A", referral_id="ref_2")
    file = kit.make_271(kit.response_set("eb_fixture_batch", [
        kit.member_answer("90000001A", ("2", "chk_a", "1999999999")),  # TRN03 rewritten: still this member's
        kit.member_answer("90000003A", ("2", "chk_b", "1999999999")),  # names another member's check
    ]))
    await kit.deliver(kit.file_received(file))
    assert await check_statuses(kit) == {"chk_a": "answered", "chk_b": "sent"}
    verified = await kit.events_of("eligibility.verified")
    assert sorted((e.data.cin, e.data.referral_id) for e in verified) == [("90000001A", "ref_1"),
                                                                         ("90000003A", None)]


async def test_answer_naming_no_check_of_ours_is_an_exception_attached_to_nothing(kit: Any) -> None:
    await kit.add_check("chk_a", referral_id="ref_1")
    answer = kit.member_answer("90000001A", PAYER_TRACE)  # the MCP dropped our trace
    event = kit.file_received(kit.make_271(kit.response_set("eb_fixture_batch", [answer])))
    await kit.deliver(event)
    assert await check_statuses(kit) == {"chk_a": "sent"}  # still waiting for its answer
    verified = await kit.events_of("eligibility.verified")
    assert [e.data.referral_id for e in verified] == [None]  # the MCP's fact is kept, no referral is answered
    processed = await kit.events_of("eligibility_response.processed", "eligibility.eligibility_response.v1")
    assert (processed[0].data.subscribers, processed[0].data.unmatched) == (1, 1)
    async with kit.uow() as uow:
        (errors,) = (await uow.session.execute(select(models.response_file.c.errors).where(
            models.response_file.c.file_id == event.data.file_id))).one()
    assert [(e["position"], e["segment"], e["rule"]) for e in errors] == [(9, "TRN", "trace_unmatched")]
    assert "PAYERTRACE77" not in str(errors) and "90000001A" not in str(errors)


async def send_checks_one_per_set(kit: Any, *cins: str) -> dict[str, Any]:
    """Referrals queue a check per member; the flush sends them in one 270, one member per transaction set.
    Returns each member's check row by CIN."""
    kit.runtime.ports["settings"] = kit.runtime.settings.model_copy(update={"max_per_transaction": 1})
    for number, cin in enumerate(cins, start=1):
        await kit.deliver(kit.referral(cin=cin, mcp="lacare", referral_id=f"ref_{number}"))
    assert await kit.scheduler.scheduler.fire_due(kit.clock.now() + timedelta(minutes=16)) == 1
    async with kit.uow() as uow:
        rows = (await uow.session.execute(select(models.eligibility_check))).all()
    by_member = {member_id_for(cin): cin for cin in cins}
    return {by_member[r.member_id]: r for r in rows}


async def test_rejection_of_one_transaction_set_rejects_only_that_sets_checks(kit: Any) -> None:
    sent = await send_checks_one_per_set(kit, "90000001A", "90000002A")
    (batch,) = await kit.events_of("eligibility_batch.created", "eligibility.eligibility_batch.v1")
    references = [t["reference"] for t in parse_270(kit.files.get(batch.data.file).decode())["transactions"]]
    first, second = sent["90000001A"], sent["90000002A"]
    assert references == [first.check_id, second.check_id]  # each set its own BHT03: its first check
    # The MCP cannot answer set 1 now (2000A AAA 42, resubmit); set 2 answers its member.
    file = kit.make_271(kit.response_set(references[0], rejection="42"),
                        kit.response_set(references[1], [kit.member_answer("90000002A",
                                                                           ("2", second.check_id, OURS))]))
    await kit.deliver(kit.file_received(file))
    rejected = await kit.events_of("eligibility.check_rejected")
    assert [(e.data.check_id, e.data.cin, e.data.retry) for e in rejected] == [
        (first.check_id, "90000001A", True)]
    statuses = await check_statuses(kit)
    assert (statuses[first.check_id], statuses[second.check_id]) == ("rejected", "answered")
    async with kit.uow() as uow:
        queued = await uow.checks.queued("lacare")
    assert [(q.member_id, q.referral_id) for q in queued] == [(member_id_for("90000001A"), "ref_1")]  # retry
    verified = await kit.events_of("eligibility.verified")
    assert [(e.data.cin, e.data.referral_id) for e in verified] == [("90000002A", "ref_2")]


async def test_rejection_of_a_270_written_before_sets_had_their_own_reference_rejects_the_batch(kit: Any) -> None:
    # Such a 270 gave every set the batch id as BHT03: its sets cannot be told apart, so the batch's
    # outstanding checks are rejected, as they were then.
    await kit.add_check("chk_1", cin="90000001A", batch_id="eb_old")
    await kit.add_check("chk_2", cin="90000002A", batch_id="eb_old")
    await kit.add_check("chk_3", cin="90000003A", batch_id="eb_other")
    await kit.deliver(kit.file_received(kit.make_271(kit.response_set("eb_old", rejection="42"))))
    statuses = await check_statuses(kit)
    assert [statuses[c] for c in ("chk_1", "chk_2", "chk_3")] == ["rejected", "rejected", "sent"]
