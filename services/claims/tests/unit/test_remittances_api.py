"""835 remittances through the real API (POST /v1/remittances) and the gateway's path (file.received kind 835),
on SQLite and on PostgreSQL: part one's golden fixtures posted against claims of ours, then the denials queue,
exceptions, the timely-payment report and CBO payouts."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from claims import testkit
from claims.bootstrap import definition
from claims.models import audit_event
from claims.x12.validation import validate_837p
from sqlalchemy import func, select

from shared.bus.message import encode
from shared.contracts.gateway import FileKind, FileReceived
from shared.envelope import new_event
from shared.filestore import FileStore
from shared.scheduler import FixedClock
from shared.testing.app import ServiceHarness, make_caller, service_harness
from shared.testing.polling import eventually

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "835"
NOW = datetime(2026, 11, 20, 17, 0, tzinfo=UTC)
RW = ["claims:read", "claims:write"]
KEYS = {"hub": make_caller("hub", "org_hub", scopes=RW), "cbo": make_caller("cbo", "org_cbo_a", scopes=RW),
        "cbo_b": make_caller("cbo", "org_cbo_b", scopes=RW),
        "mcp": make_caller("mcp", "org_mcp_hn", code="healthnet", scopes=RW),
        "mcp_la": make_caller("mcp", "org_mcp_la", code="lacare", scopes=RW)}
D = Decimal

# Our side of part one's fixtures: claim id (CLP01), lines (REF*6R id, code, modifiers, date, charge), CBO.
CLAIMS: list[tuple[str, list[tuple[str, str, tuple[str, ...], date, str]], str]] = [
    ("CLM-1001", [("CLM-1001-1", "G9008", ("U1",), date(2026, 9, 15), "350")], "org_cbo_a"),
    ("CLM-1002", [("CLM-1002-1", "G9012", ("U2",), date(2026, 9, 10), "250"),
                  ("CLM-1002-2", "G9012", ("U2",), date(2026, 9, 17), "250")], "org_cbo_b"),
    ("CLM-1003", [("CLM-1003-1", "T1016", ("U8",), date(2026, 9, 12), "300")], "org_cbo_a"),
    ("CLM-1004", [("CLM-1004-1", "G9008", ("U1",), date(2026, 9, 14), "350")], "org_cbo_b"),
    ("CLM-1005", [("CLM-1005-1", "H0043", ("U6",), date(2026, 10, 1), "200")], "org_cbo_a"),
    ("CLM-1006", [("CLM-1006-1", "G9012", ("U8",), date(2026, 9, 13), "100")], "org_cbo_a"),
    ("CLM-1007", [("CLM-1007-1", "G9008", ("U1",), date(2026, 8, 25), "350")], "org_cbo_a"),
    ("CLM-1008", [("CLM-1008-1", "G9008", ("U1",), date(2026, 9, 1), "350")], "org_cbo_a"),
    ("CLM-1009", [("CLM-1009-1", "G9008", ("U1",), date(2026, 10, 1), "350")], "org_cbo_a"),
    ("CLM-1010", [("CLM-1010-1", "T2041", ("U6",), date(2026, 10, 2), "200"),
                  ("CLM-1010-2", "T2041", ("U6",), date(2026, 10, 9), "200")], "org_cbo_a"),
    ("CLM-1011", [("CLM-1011-1", "G9008", ("U1",), date(2026, 10, 3), "350")], "org_cbo_a"),
    ("CLM-1012", [("CLM-1012-1", "G9008", ("U1",), date(2026, 10, 4), "350")], "org_cbo_a"),
]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.integration)])
async def harness(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ServiceHarness]:
    database_url = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    async with service_harness([definition(clock=FixedClock(NOW), billing=testkit.make_billing())], tmp_path,
                               keys=KEYS, database_url=database_url) as h:
        for n, (claim_id, lines, cbo) in enumerate(CLAIMS, start=1):
            member = 8 if claim_id == "CLM-1009" else n  # CLM-1008 and CLM-1009: two claims of one member
            await testkit.seed_claim(h.runtimes["claims"], claim_id, lines, n=member, cbo_organization_id=cbo)
        yield h


def fixture(name: str) -> bytes:
    return (FIXTURES / f"{name}.x12").read_bytes()


async def post_835(h: ServiceHarness, content: bytes, who: str = "hub", mcp: str | None = "healthnet",
                   key: str | None = None) -> Any:
    headers = h.headers(who, **({"Idempotency-Key": key} if key else {}))
    url = "/v1/remittances" + (f"?mcp_code={mcp}" if mcp else "")
    return await h.client.post(url, content=content, headers={**headers, "Content-Type": "application/edi-x12"})


async def claim(h: ServiceHarness, claim_id: str, who: str = "hub") -> dict[str, Any]:
    response = await h.client.get(f"/v1/claims/{claim_id}", headers=h.headers(who))
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


async def payments(h: ServiceHarness, claim_id: str) -> list[dict[str, Any]]:
    response = await h.client.get(f"/v1/claims/{claim_id}/payments", headers=h.headers("hub"))
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()
    return data


async def events(h: ServiceHarness, topic: str, event_type: str) -> list[dict[str, Any]]:
    """Events of a type the relay published (the relay runs in the background)."""
    found: list[dict[str, Any]] = []

    async def relayed() -> bool:
        found[:] = [json.loads(m.value) for m in h.bus.read(topic)]
        return True

    await relayed()
    return [e for e in found if e["type"] == event_type]


async def published(h: ServiceHarness, topic: str, event_type: str, count: int = 1) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = []

    async def enough() -> bool:
        result[:] = await events(h, topic, event_type)
        return len(result) >= count

    await eventually(enough, within=20.0)
    return result


async def audits(h: ServiceHarness, action: str) -> int:
    async with h.runtimes["claims"].uow() as uow:
        return int(await uow.session.scalar(select(func.count()).select_from(audit_event).where(
            audit_event.c.action == action)) or 0)


# ---------------------------------------------------------------------------------------------- scenarios

async def test_full_payment_pays_the_claim_and_keeps_trace_and_bpr_for_the_bank(harness: ServiceHarness) -> None:
    response = await post_835(harness, fixture("full_payment"), key="835-full")
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "accepted" and body["claim_payments"] == 1
    [remittance] = body["remittances"]
    assert remittance["trace_number"] == "EFT0001" and remittance["payment_amount"] == "350.00"
    assert remittance["payment_date"] == "2026-10-15" and remittance["payment_method"] == "ACH"
    detail = await claim(harness, "CLM-1001")
    assert detail["status"] == "paid" and detail["paid_amount"] == "350.00"
    assert detail["payer_claim_number"] == "PCN1001"
    assert detail["lines"][0]["paid_amount"] == "350.00"
    assert detail["history"][-1]["action"] == "payment_posted"
    paid = await published(harness, "claims.claim.v1", "claim.paid")
    assert paid[0]["data"]["paid_amount"] == "350.00" and paid[0]["data"]["trace_number"] == "EFT0001"
    assert paid[0]["data"]["settlement"] == "paid"
    posted = await published(harness, "claims.remittance.v1", "remittance.posted")
    assert posted[0]["data"]["paid_amount"] == "350.00" and posted[0]["data"]["claims_matched"] == 1
    found = await harness.client.get("/v1/remittances?trace_number=EFT0001", headers=harness.headers("hub"))
    assert [r["payment_amount"] for r in found.json()["items"]] == ["350.00"]
    assert await audits(harness, "remittance.posted") == 1
    # The same request again (same Idempotency-Key) replays the answer and posts nothing.
    again = await post_835(harness, fixture("full_payment"), key="835-full")
    assert again.status_code == 201 and again.headers.get("Idempotent-Replayed") == "true"
    assert len(await payments(harness, "CLM-1001")) == 1


async def test_partial_payment_posts_co45_on_each_line(harness: ServiceHarness) -> None:
    response = await post_835(harness, fixture("partial_co45"))
    assert response.status_code == 201, response.text
    detail = await claim(harness, "CLM-1002")
    assert detail["status"] == "paid" and detail["paid_amount"] == "400.00" and detail["adjustment_amount"] == "100.00"
    [posting] = await payments(harness, "CLM-1002")
    assert posting["outcome"] == "paid" and [ln["line_id"] for ln in posting["lines"]] == ["CLM-1002-1", "CLM-1002-2"]
    assert posting["lines"][0]["adjustments"] == [{"group": "CO", "reason": "45", "amount": "50.00"}]
    assert posting["lines"][0]["allowed"] == "200.00"
    denials = await harness.client.get("/v1/denials?status=open", headers=harness.headers("hub"))
    assert denials.json()["items"] == []  # a contractual write-off is not a denial


async def test_denials_carry_category_rarc_and_next_action_per_cbo(harness: ServiceHarness) -> None:
    response = await post_835(harness, fixture("denial_rarc"))
    assert response.status_code == 201, response.text
    assert (await claim(harness, "CLM-1003"))["status"] == "denied"
    assert (await claim(harness, "CLM-1004"))["status"] == "denied"
    queue = (await harness.client.get("/v1/denials", headers=harness.headers("hub"))).json()["items"]
    by_claim = {d["claim_id"]: d for d in queue}
    assert by_claim["CLM-1003"]["category"] == "missing_information"  # CO-16 defers to N290 (rendering NPI)
    assert by_claim["CLM-1003"]["deciding_code"] == "N290" and "CO-16" in by_claim["CLM-1003"]["codes"]
    assert by_claim["CLM-1004"]["category"] == "eligibility" and by_claim["CLM-1004"]["next_action"]
    assert by_claim["CLM-1003"]["denied_amount"] == "300.00"
    # Tenancy: each CBO sees its own denials only; an MCP its plan's.
    mine = (await harness.client.get("/v1/denials", headers=harness.headers("cbo"))).json()["items"]
    theirs = (await harness.client.get("/v1/denials", headers=harness.headers("cbo_b"))).json()["items"]
    assert [d["claim_id"] for d in mine] == ["CLM-1003"] and [d["claim_id"] for d in theirs] == ["CLM-1004"]
    other_plan = (await harness.client.get("/v1/denials", headers=harness.headers("mcp_la"))).json()["items"]
    assert other_plan == []
    hidden = await harness.client.get(f"/v1/denials/{by_claim['CLM-1004']['id']}", headers=harness.headers("cbo"))
    assert hidden.status_code == 404
    denied = await published(harness, "claims.claim.v1", "claim.denied", 2)
    assert {e["data"]["category"] for e in denied} == {"missing_information", "eligibility"}


async def test_zero_pay_co96_reporting_line_is_not_a_denial(harness: ServiceHarness) -> None:
    response = await post_835(harness, fixture("zero_pay_reporting"))
    assert response.status_code == 201, response.text
    detail = await claim(harness, "CLM-1006")
    assert detail["status"] == "paid" and detail["paid_amount"] == "0.00"
    [posting] = await payments(harness, "CLM-1006")
    assert posting["outcome"] == "reporting_only" and posting["denial"] is None
    assert (await harness.client.get("/v1/denials", headers=harness.headers("hub"))).json()["items"] == []
    paid = await published(harness, "claims.claim.v1", "claim.paid")
    assert paid[0]["data"]["settlement"] == "reporting_only"
    assert await events(harness, "claims.claim.v1", "claim.denied") == []


async def test_reversal_undoes_the_payment_and_the_correction_posts_on_top(harness: ServiceHarness) -> None:
    assert (await post_835(harness, fixture("full_payment"))).status_code == 201
    response = await post_835(harness, fixture("reversal_correction"))
    assert response.status_code == 201, response.text
    detail = await claim(harness, "CLM-1001")
    assert detail["status"] == "paid" and detail["paid_amount"] == "300.00"
    assert detail["payer_claim_number"] == "PCN1001C"
    original, reversal, correction = await payments(harness, "CLM-1001")
    assert reversal["kind"] == "reversal" and reversal["reverses_payment_id"] == original["id"]
    assert original["reversed_by"] == reversal["id"]
    assert correction["kind"] == "correction" and correction["paid"] == "300.00"
    assert (await claim(harness, "CLM-1005"))["paid_amount"] == "200.00"
    reversed_ = await published(harness, "claims.claim.v1", "claim.reversed")
    assert reversed_[0]["data"]["reversed_amount"] == "350.00"
    assert [h["action"] for h in detail["history"]][-2:] == ["reversal_posted", "correction_posted"]


async def test_plb_recoupment_and_interest_are_recorded_against_claims(harness: ServiceHarness) -> None:
    assert (await post_835(harness, fixture("partial_co45"))).status_code == 201  # PCN1002 is known now
    response = await post_835(harness, fixture("plb_recoupment_interest"))
    assert response.status_code == 201, response.text
    [remittance] = response.json()["remittances"]
    assert remittance["payment_amount"] == "254.38" and remittance["provider_adjustment_amount"] == "95.62"
    detail = (await harness.client.get(f"/v1/remittances/{remittance['id']}", headers=harness.headers("hub"))).json()
    plb = {a["reason"]: a for a in detail["provider_adjustments"]}
    assert plb["WO"]["kind"] == "recoupment" and plb["WO"]["claim_id"] == "CLM-1002"
    assert plb["WO"]["cbo_organization_id"] == "org_cbo_b" and plb["WO"]["amount"] == "100.00"
    assert plb["L6"]["kind"] == "interest" and plb["L6"]["claim_id"] == "CLM-1007" and plb["L6"]["amount"] == "-4.38"
    assert plb["WO"]["fiscal_period_date"] == "2026-12-31"
    exceptions = (await harness.client.get("/v1/remittances/exceptions", headers=harness.headers("hub"))).json()
    assert exceptions["items"] == []


async def test_a_plb_recoupment_never_lands_on_another_mcps_claim_with_the_same_payer_number(
        harness: ServiceHarness) -> None:
    # L.A. Care's claim carries PCN1002 too; Health Net's 835 recoups against PCN1002 (no claim of Health Net's).
    await testkit.seed_claim(harness.runtimes["claims"], "CLM-9001",
                             [("CLM-9001-1", "G9008", ("U1",), date(2026, 9, 15), "350")], n=90,
                             mcp_code="lacare", cbo_organization_id="org_cbo_z", payer_claim_number="PCN1002")
    async with harness.runtimes["claims"].uow() as uow:
        records, _ = await uow.remittances.claims_for([], ["PCN1002"], mcp_code="healthnet")
    assert records == {}
    response = await post_835(harness, fixture("plb_recoupment_interest"))
    assert response.status_code == 201, response.text
    [remittance] = response.json()["remittances"]
    detail = (await harness.client.get(f"/v1/remittances/{remittance['id']}", headers=harness.headers("hub"))).json()
    recoupment = {a["reason"]: a for a in detail["provider_adjustments"]}["WO"]
    assert (recoupment["claim_id"], recoupment["cbo_organization_id"]) == (None, None)
    queue = (await harness.client.get("/v1/remittances/exceptions", headers=harness.headers("hub"))).json()
    assert [(e["reason"], e["amount"]) for e in queue["items"]] == [("unattributed_adjustment", "100.00")]


async def test_two_claims_for_one_member_are_paid_separately(harness: ServiceHarness) -> None:
    response = await post_835(harness, fixture("two_claims_one_member"))
    assert response.status_code == 201, response.text
    first, second = await claim(harness, "CLM-1008"), await claim(harness, "CLM-1009")
    assert first["member_id"] == second["member_id"]
    assert (first["status"], first["paid_amount"]) == ("paid", "350.00")
    assert (second["status"], second["paid_amount"]) == ("paid", "350.00")
    assert response.json()["remittances"][0]["claims_posted"] == 2


async def test_a_claim_split_across_two_835s_is_paid_line_by_line(harness: ServiceHarness) -> None:
    assert (await post_835(harness, fixture("split_claim_part1"))).status_code == 201
    first = await claim(harness, "CLM-1010")
    assert first["status"] == "paid" and first["paid_amount"] == "200.00"
    assert [ln["paid_amount"] for ln in first["lines"]] == ["200.00", None]
    assert (await published(harness, "claims.claim.v1", "claim.paid"))[0]["data"]["settlement"] == "partially_paid"
    assert (await post_835(harness, fixture("split_claim_part2"))).status_code == 201
    second = await claim(harness, "CLM-1010")
    assert second["paid_amount"] == "380.00" and second["adjustment_amount"] == "20.00"
    assert [ln["paid_amount"] for ln in second["lines"]] == ["200.00", "180.00"]
    paid = await published(harness, "claims.claim.v1", "claim.paid", 2)
    assert paid[-1]["data"]["settlement"] == "paid"


@pytest.mark.parametrize("name", ["duplicate_in_one_set", "duplicate_across_sets"])
async def test_a_payment_repeated_within_one_file_is_posted_once_and_queued_once(
        harness: ServiceHarness, name: str) -> None:
    response = await post_835(harness, fixture(name))
    assert response.status_code == 201, response.text
    detail = await claim(harness, "CLM-1001")
    assert (detail["status"], detail["paid_amount"]) == ("paid", "350.00")
    assert len(await payments(harness, "CLM-1001")) == 1
    queue = (await harness.client.get("/v1/remittances/exceptions", headers=harness.headers("hub"))).json()
    assert [(e["reason"], e["amount"], e["claim_id"]) for e in queue["items"]] == [
        ("duplicate_payment", "350.00", "CLM-1001")]


async def test_a_claim_split_across_two_sets_of_one_file_is_paid(harness: ServiceHarness) -> None:
    assert (await post_835(harness, fixture("split_claim_across_sets"))).status_code == 201
    detail = await claim(harness, "CLM-1010")
    assert (detail["status"], detail["paid_amount"]) == ("paid", "380.00")
    assert [ln["paid_amount"] for ln in detail["lines"]] == ["200.00", "180.00"]
    paid = await published(harness, "claims.claim.v1", "claim.paid", 2)
    assert [e["data"]["settlement"] for e in paid] == ["partially_paid", "paid"]


async def test_a_reversal_in_a_later_set_of_one_file_undoes_the_payment_posted_by_an_earlier_set(
        harness: ServiceHarness) -> None:
    response = await post_835(harness, fixture("reversal_across_sets"))
    assert response.status_code == 201, response.text
    detail = await claim(harness, "CLM-1001")
    assert (detail["status"], detail["paid_amount"]) == ("paid", "300.00")
    original, reversal, correction = await payments(harness, "CLM-1001")
    assert reversal["kind"] == "reversal" and reversal["reverses_payment_id"] == original["id"]
    assert original["reversed_by"] == reversal["id"] and correction["kind"] == "correction"
    [reversed_] = await published(harness, "claims.claim.v1", "claim.reversed")
    assert reversed_["data"]["reversed_payment_id"] == original["id"]
    queue = (await harness.client.get("/v1/remittances/exceptions", headers=harness.headers("hub"))).json()
    assert queue["items"] == []


async def test_a_whole_claim_reversal_undoes_both_parts_of_a_split_payment_and_the_payout_follows(
        harness: ServiceHarness) -> None:
    assert (await post_835(harness, fixture("split_payment_one_number"))).status_code == 201
    response = await post_835(harness, fixture("split_reversal_correction"))
    assert response.status_code == 201, response.text
    detail = await claim(harness, "CLM-1002")
    assert (detail["status"], detail["paid_amount"]) == ("paid", "400.00")
    # One clock for both files: postings are told apart by kind and line, not by order.
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for posting in await payments(harness, "CLM-1002"):
        by_kind.setdefault(posting["kind"], []).append(posting)
    first, second = sorted(by_kind["payment"], key=lambda p: p["lines"][0]["line_id"])
    [reversal], [correction] = by_kind["reversal"], by_kind["correction"]
    assert reversal["reverses_payment_id"] == first["id"]
    assert first["reversed_by"] == reversal["id"] and second["reversed_by"] == reversal["id"]
    assert (correction["paid"], correction["reversed_by"]) == ("400.00", None)
    [reversed_] = await published(harness, "claims.claim.v1", "claim.reversed")
    assert reversed_["data"]["reversed_amount"] == "500.00"
    payout = (await harness.client.post("/v1/payouts", headers=harness.headers("hub"), json={
        "cbo_organization_id": "org_cbo_b", "period_start": "2026-11-01", "period_end": "2026-11-30"})).json()
    assert payout["collected"] == "400.00"  # 250 + 250 - 500 + 400
    queue = (await harness.client.get("/v1/remittances/exceptions", headers=harness.headers("hub"))).json()
    assert queue["items"] == []


async def test_unbalanced_file_is_refused_whole_with_the_figures(harness: ServiceHarness) -> None:
    response = await post_835(harness, fixture("unbalanced"), key="835-unbalanced")
    assert response.status_code == 422 and response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["type"].endswith("remittance-unbalanced")
    [error] = problem["errors"]
    assert error["field"] == "file.transaction_set[0001].BPR02" and error["rule"] == "BPR02 = ΣCLP04 − ΣPLB"
    [figures] = problem["sets"]
    assert (figures["payment_amount"], figures["claims_paid"], figures["difference"]) == ("400.00", "350.00", "50.00")
    detail = await claim(harness, "CLM-1011")
    assert detail["status"] == "accepted" and detail["paid_amount"] is None
    assert await payments(harness, "CLM-1011") == []
    refused = await published(harness, "claims.remittance.v1", "remittance.refused")
    assert refused[0]["data"]["reason"] == "unbalanced" and refused[0]["data"]["sets"][0]["difference"] == "50.00"
    assert await events(harness, "claims.remittance.v1", "remittance.posted") == []
    assert await audits(harness, "remittance_file.refused_unbalanced") == 1


async def test_unknown_clp01_goes_to_the_exception_queue_and_is_resolved_with_audit(
        harness: ServiceHarness) -> None:
    response = await post_835(harness, fixture("unknown_clp01"))
    assert response.status_code == 201, response.text
    assert response.json()["remittances"][0]["exception_amount"] == "200.00"
    assert (await claim(harness, "CLM-1012"))["paid_amount"] == "350.00"
    queue = (await harness.client.get("/v1/remittances/exceptions", headers=harness.headers("hub"))).json()["items"]
    [item] = queue
    assert item["reason"] == "unknown_claim" and item["patient_control_number"] == "XYZ-77"
    assert item["amount"] == "200.00" and item["payer_claim_number"] == "PCN9977" and item["patient"] is None
    assert item["procedures"] == ["H0043:U6"] and item["service_from"] == "2026-10-01"
    one = await harness.client.get(f"/v1/remittances/exceptions/{item['id']}", headers=harness.headers("hub"))
    assert one.json()["patient"]["last_name"] == "TESTPERSON"  # PHI for the queue's reader, audited
    assert await audits(harness, "remittance_exception.read") == 1
    cbo = await harness.client.get("/v1/remittances/exceptions", headers=harness.headers("cbo"))
    assert cbo.status_code == 403
    bad = await harness.client.post(f"/v1/remittances/exceptions/{item['id']}/resolve",
                                    json={"resolution": "matched"}, headers=harness.headers("hub"))
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "claim_id"
    done = await harness.client.post(f"/v1/remittances/exceptions/{item['id']}/resolve",
                                     json={"resolution": "returned_to_payer", "note": "not our member"},
                                     headers=harness.headers("hub"))
    assert done.status_code == 200 and done.json()["status"] == "resolved"
    assert await audits(harness, "remittance_exception.resolved") == 1
    again = await harness.client.post(f"/v1/remittances/exceptions/{item['id']}/resolve",
                                      json={"resolution": "written_off"}, headers=harness.headers("hub"))
    assert again.status_code == 409


async def test_the_same_file_twice_and_a_reenveloped_copy_are_recognized_not_posted(
        harness: ServiceHarness) -> None:
    first = await post_835(harness, fixture("full_payment"))
    assert first.status_code == 201
    same = await post_835(harness, fixture("full_payment"))
    assert same.status_code == 200 and same.json()["status"] == "duplicate"
    assert same.json()["duplicate_of"] == first.json()["file_id"]
    copy = await post_835(harness, fixture("full_payment_reenveloped"))
    assert copy.status_code == 200 and copy.json()["status"] == "duplicate"
    assert copy.json()["detail"]["reason"] == "payments_already_posted"
    assert len(await payments(harness, "CLM-1001")) == 1
    assert (await claim(harness, "CLM-1001"))["paid_amount"] == "350.00"


async def test_file_received_835_from_the_gateway_posts_through_the_same_function(
        harness: ServiceHarness) -> None:
    reference = FileStore(harness.platform.file_store_path()).put(fixture("two_claims_one_member"))
    event = new_event(FileReceived(file_id="file_835_a", mcp_code="healthnet", kind=FileKind.X12_835,
                                   file=reference, received_at=NOW), subject="file_835_a", source="sftp-gateway")
    await harness.bus.publish([encode(event)])

    async def posted() -> bool:
        return (await claim(harness, "CLM-1009"))["status"] == "paid"

    await eventually(posted, within=20.0)
    listing = (await harness.client.get("/v1/remittances", headers=harness.headers("hub"))).json()["items"]
    assert [r["trace_number"] for r in listing] == ["EFT0007"]
    history = (await claim(harness, "CLM-1008"))["history"][-1]
    assert history["actor"] == "system:sftp-gateway"
    # The same file delivered again by the gateway is a duplicate: nothing posted twice.
    await harness.bus.publish([encode(new_event(FileReceived(
        file_id="file_835_b", mcp_code="healthnet", kind=FileKind.X12_835, file=reference, received_at=NOW),
        subject="file_835_b", source="sftp-gateway"))])
    paid = await published(harness, "claims.remittance.v1", "remittance.posted")
    await asyncio.sleep(0.5)
    assert len(await events(harness, "claims.remittance.v1", "remittance.posted")) == len(paid) == 1
    assert len(await payments(harness, "CLM-1008")) == 1


async def test_replacing_a_denied_claim_goes_out_with_frequency_7_and_ref_f8(harness: ServiceHarness) -> None:
    assert (await post_835(harness, fixture("denial_rarc"))).status_code == 201
    response = await harness.client.post("/v1/claims/CLM-1003/replacement", headers=harness.headers("cbo"),
                                         json={"reason": "add rendering NPI", "rendering_npi": testkit.CHW_NPI})
    assert response.status_code == 201, response.text
    replacement = response.json()
    assert replacement["frequency_code"] == "7" and replacement["payer_claim_number"] == "PCN1003"
    [denial] = (await harness.client.get("/v1/denials?status=resubmitted&claim_id=CLM-1003",
                                         headers=harness.headers("cbo"))).json()["items"]
    assert denial["follow_up_claim_id"] == replacement["id"] and denial["resolution"] == "replaced"
    void = await harness.client.post("/v1/claims/CLM-1004/void", headers=harness.headers("cbo_b"),
                                     json={"reason": "member not eligible on the date"})
    assert void.status_code == 201 and void.json()["frequency_code"] == "8"
    batch = await harness.client.post("/v1/claims/batches", json={"mcp_code": "healthnet"},
                                      headers=harness.headers("hub"))
    assert batch.status_code == 201, batch.text
    text = FileStore(harness.platform.file_store_path()).get(batch.json()["file"]["uri"]).decode()
    assert validate_837p(text) == []
    assert "REF*F8*PCN1003~" in text and "REF*F8*PCN1004~" in text
    assert ":B:7*" in text and ":B:8*" in text


async def test_denial_resolution_is_audited_and_tenant_checked(harness: ServiceHarness) -> None:
    assert (await post_835(harness, fixture("denial_rarc"))).status_code == 201
    queue = (await harness.client.get("/v1/denials", headers=harness.headers("cbo"))).json()["items"]
    denial_id = queue[0]["id"]
    other = await harness.client.post(f"/v1/denials/{denial_id}/resolve", json={"resolution": "appealed"},
                                      headers=harness.headers("cbo_b"))
    assert other.status_code == 404
    bad = await harness.client.post(f"/v1/denials/{denial_id}/resolve", json={"resolution": "ignored"},
                                    headers=harness.headers("cbo"))
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "resolution"
    done = await harness.client.post(f"/v1/denials/{denial_id}/resolve",
                                     json={"resolution": "appealed", "note": "appeal sent"},
                                     headers=harness.headers("cbo"))
    assert done.status_code == 200 and done.json()["status"] == "resolved"
    assert await audits(harness, "denial.resolved") == 1


async def test_bad_input_answers_problem_json_naming_field_and_rule(harness: ServiceHarness) -> None:
    empty = await post_835(harness, b"")
    assert empty.status_code == 422 and empty.json()["errors"][0] == {
        "field": "body", "rule": "required", "message": "Send the 835 interchange."}
    broken = fixture("full_payment").replace(b"CLP*CLM-1001*1*350*350", b"CLP*CLM-1001*1*350*3X0")
    unreadable = await post_835(harness, broken)
    assert unreadable.status_code == 422
    error = unreadable.json()["errors"][0]
    assert error["rule"] == "835-structure" and error["field"].startswith("file.segment[")
    assert "CLP" in error["field"]
    unknown_mcp = await post_835(harness, fixture("full_payment"), mcp="nosuchplan")
    assert unknown_mcp.json()["errors"][0]["rule"] == "known_mcp"
    no_mcp = await post_835(harness, fixture("full_payment"), mcp=None)
    assert no_mcp.json()["errors"][0] == {"field": "query.mcp_code", "rule": "required",
                                          "message": "Name the paying MCP: ISA06 matches no MCP's interchange id."}
    assert (await post_835(harness, fixture("full_payment"), who="cbo")).status_code == 403
    other_plan = await post_835(harness, fixture("full_payment"), who="mcp", mcp="lacare")
    assert other_plan.json()["errors"][0]["rule"] == "own_plan"
    own = await post_835(harness, fixture("full_payment"), who="mcp", mcp=None)
    assert own.status_code == 201 and own.json()["mcp_code"] == "healthnet"
    payout = await harness.client.post("/v1/payouts", headers=harness.headers("hub"), json={
        "cbo_organization_id": "org_cbo_a", "period_start": "2026-11-30", "period_end": "2026-11-01"})
    assert payout.status_code == 422 and payout.json()["errors"][0]["field"] == "period_end"
    no_terms = await harness.client.post("/v1/payouts", headers=harness.headers("hub"), json={
        "cbo_organization_id": "org_cbo_z", "period_start": "2026-10-01", "period_end": "2026-10-31"})
    assert no_terms.json()["errors"][0] == {
        "field": "cbo_organization_id", "rule": "fee_terms_configured",
        "message": "The billing configuration has no fee terms (cbo_contracts) for this CBO."}


# ---------------------------------------------------------------------------------------- reports, payouts

async def test_timely_payment_report_shares_aging_interest_and_silence(harness: ServiceHarness) -> None:
    for name in ("full_payment", "partial_co45", "plb_recoupment_interest"):
        assert (await post_835(harness, fixture(name))).status_code == 201
    response = await harness.client.get("/v1/reports/timely-payment?as_of=2026-11-20",
                                        headers=harness.headers("hub"))
    assert response.status_code == 200, response.text
    reports = {r["mcp_code"]: r for r in response.json()["mcps"]}
    healthnet = reports["healthnet"]
    assert healthnet["hmo"] is False and healthnet["interest"]["working_days"] == 30
    thirty, ninety = healthnet["standards"]
    assert (thirty["days"], thirty["target"], ninety["target"]) == (30, "0.90", "0.99")
    # CLM-1007 was received 2026-09-01 (DTM*050) and paid 2026-11-02: past 30 working days, so interest is owed;
    # the MCP paid 4.38 in PLB L6.
    gap = next(c for c in healthnet["interest"]["claims"] if c["claim_id"] == "CLM-1007")
    assert gap["paid"] == "4.38" and D(gap["owed"]) >= D("15.00")  # the $15 floor
    assert healthnet["last_remittance_received"] == "2026-11-20" and healthnet["silent"] is False
    # Unpaid claims age from their receipt; the accepted claims still open sit in the 61-90 bucket.
    assert sum(b["claims"] for b in healthnet["aging"]) == 9
    assert reports["lacare"]["silent"] is True and reports["lacare"]["last_remittance_received"] is None
    assert reports["partnership"]["hmo"] is True and reports["partnership"]["interest"]["working_days"] == 45
    mcp_view = (await harness.client.get("/v1/reports/timely-payment", headers=harness.headers("mcp"))).json()
    assert [r["mcp_code"] for r in mcp_view["mcps"]] == ["healthnet"]
    cbo_view = (await harness.client.get("/v1/reports/timely-payment?mcp_code=healthnet&as_of=2026-11-20",
                                         headers=harness.headers("cbo_b"))).json()["mcps"][0]
    assert sum(b["claims"] for b in cbo_view["aging"]) == 1  # CLM-1004 only: CLM-1002 is paid


async def test_payout_per_cbo_and_period_with_fee_recoupment_statement_and_event(
        harness: ServiceHarness) -> None:
    for name in ("partial_co45", "plb_recoupment_interest", "full_payment", "reversal_correction"):
        assert (await post_835(harness, fixture(name))).status_code == 201
    request = {"cbo_organization_id": "org_cbo_b", "period_start": "2026-10-01", "period_end": "2026-10-31"}
    october = await harness.client.post("/v1/payouts", json=request, headers=harness.headers("hub", **{
        "Idempotency-Key": "payout-b-oct"}))
    assert october.status_code == 201, october.text
    b_october = october.json()
    # CLM-1002 paid 400 on 2026-10-16 at 8%.
    assert (b_october["collected"], b_october["hub_fee"], b_october["payable"]) == ("400.00", "32.00", "368.00")
    november = (await harness.client.post("/v1/payouts", headers=harness.headers("hub"), json={
        **request, "period_start": "2026-11-01", "period_end": "2026-11-30"})).json()
    # The WO recoupment of CLM-1002 (100) lands in November, with nothing collected: carried forward.
    assert (november["recoupments"], november["payable"], november["payout_amount"]) == ("100.00", "-100.00", "0.00")
    assert november["carry_forward"] == "-100.00"
    a = (await harness.client.post("/v1/payouts", headers=harness.headers("hub"), json={
        "cbo_organization_id": "org_cbo_a", "period_start": "2026-10-01", "period_end": "2026-11-30"})).json()
    lines = a["statement"]["lines"]
    kinds = sorted((line["kind"], line["claim_id"], line["collected"], line["fee_percent"]) for line in lines)
    # 350 paid in October at 10%; its reversal in November takes back the fee at the October rate; the
    # correction (300), CLM-1005 (200), CLM-1007 (350) and its interest (4.38) are at November's 12%.
    assert kinds == [("correction", "CLM-1001", "300.00", "12"), ("interest", "CLM-1007", "4.38", "12"),
                     ("payment", "CLM-1001", "350.00", "10"), ("payment", "CLM-1005", "200.00", "12"),
                     ("payment", "CLM-1007", "350.00", "12"), ("reversal", "CLM-1001", "-350.00", "10")]
    assert a["collected"] == "854.38" and a["hub_fee"] == "102.53" and a["payable"] == "751.85"
    generated = await published(harness, "claims.payout.v1", "payout.generated", 3)
    assert {e["data"]["cbo_organization_id"] for e in generated} == {"org_cbo_a", "org_cbo_b"}
    csv_response = await harness.client.get(f"/v1/payouts/{a['id']}/statement.csv", headers=harness.headers("cbo"))
    assert csv_response.status_code == 200 and csv_response.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(csv_response.text)))
    assert rows[0][:2] == ["date", "kind"] and rows[-1][1] == "total" and rows[-1][-1] == "751.85"
    hidden = await harness.client.get(f"/v1/payouts/{a['id']}", headers=harness.headers("cbo_b"))
    assert hidden.status_code == 404
    assert [p["id"] for p in (await harness.client.get("/v1/payouts", headers=harness.headers("cbo"))).json()] \
        == [a["id"]]
    same = await harness.client.post("/v1/payouts", json=request, headers=harness.headers("hub"))
    assert same.status_code == 200 and same.json()["id"] == b_october["id"]
    overlap = await harness.client.post("/v1/payouts", headers=harness.headers("hub"), json={
        **request, "period_start": "2026-10-15", "period_end": "2026-11-15"})
    assert overlap.status_code == 409
    assert await audits(harness, "payout.generated") == 3
    mcp = await harness.client.post("/v1/payouts", json=request, headers=harness.headers("mcp"))
    assert mcp.status_code == 403


async def test_unattributed_recoupment_is_an_exception_until_attributed_to_a_claim(
        harness: ServiceHarness) -> None:
    # Without CLM-1002's payment on file, PCN1002 names no claim of ours: the WO recoupment is unattributed.
    response = await post_835(harness, fixture("plb_recoupment_interest"))
    assert response.status_code == 201
    [item] = (await harness.client.get("/v1/remittances/exceptions?reason=unattributed_adjustment",
                                       headers=harness.headers("hub"))).json()["items"]
    assert item["amount"] == "100.00" and item["provider_adjustment_id"]
    done = await harness.client.post(f"/v1/remittances/exceptions/{item['id']}/resolve",
                                     json={"resolution": "attributed", "claim_id": "CLM-1002"},
                                     headers=harness.headers("hub"))
    assert done.status_code == 200, done.text
    payout = (await harness.client.post("/v1/payouts", headers=harness.headers("hub"), json={
        "cbo_organization_id": "org_cbo_b", "period_start": "2026-11-01", "period_end": "2026-11-30"})).json()
    assert payout["recoupments"] == "100.00"
