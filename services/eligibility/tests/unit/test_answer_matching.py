"""Which check a 271 answer closes: the trace the hub's 270 sent, echoed back (never the MCP's own trace); an
answer naming no check of ours is an exception, attached to nothing."""

from __future__ import annotations

from typing import Any

from eligibility import models
from sqlalchemy import select

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
