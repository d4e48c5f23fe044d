"""Posting an 835 big enough for the bulk paths (PostgreSQL COPY from 200 rows, the outbox's COPY from 100
events, set-based updates) writes exactly what the golden-file tests expect of small files, on SQLite and on
PostgreSQL: payments with their JSON columns, line postings, denials, PLB rows, exceptions, claim and line
amounts, history, reversals and corrections, and one event per claim."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from claims import testkit
from claims.bootstrap import definition
from claims.models import Claim, ClaimHistory, ClaimLine, ClaimPayment, Denial, LinePayment, ProviderAdjustment
from claims.models import RemittanceExceptionRow as ExceptionRow
from sqlalchemy import select

from shared.scheduler import FixedClock
from shared.testing.app import ServiceHarness, make_caller, service_harness
from shared.x12.envelope import EnvelopeSpec, Party, build_interchange

NOW = datetime(2026, 11, 20, 17, 0, tzinfo=UTC)
KEYS = {"hub": make_caller("hub", "org_hub", scopes=["claims:read", "claims:write"])}
FIRST = 220  # claims the first 835 pays or denies (one in ten denied, two in ten with CO-45)
FRESH = 40  # claims only the second 835 pays
NPI = "1234567893"


def claim_id(i: int) -> str:
    return f"CLM-{2000 + i}"


def kind(i: int) -> str:
    return "fresh" if i >= FIRST else {0: "denied", 1: "co45", 2: "co45"}.get(i % 10, "paid")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.integration)])
async def harness(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ServiceHarness]:
    database_url = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    async with service_harness([definition(clock=FixedClock(NOW), billing=testkit.make_billing())], tmp_path,
                               keys=KEYS, database_url=database_url) as h:
        for i in range(FIRST + FRESH):
            lines = [(f"{claim_id(i)}-{n}", "G9008", ("U1",), date(2026, 9, 15), "175") for n in (1, 2)]
            await testkit.seed_claim(h.runtimes["claims"], claim_id(i), lines, n=i + 1,
                                     cbo_organization_id=f"org_cbo_{'ab'[i % 2]}")
        yield h


def interchange(control: int, paid_on: str, trace: str, body: list[list[str]], total: Decimal) -> bytes:
    header = [["BPR", "I", str(total), "C", "ACH", "CCP", "01", "999999992", "DA", "123456", "1123456789", "",
               "01", "999988880", "DA", "98765", paid_on], ["TRN", "1", trace, "1123456789"],
              ["DTM", "405", paid_on], ["N1", "PR", "TESTPLAN HEALTH"], ["N3", "100 TEST PLAZA"],
              ["N4", "SACRAMENTO", "CA", "95814"], ["PER", "BL", "PROVIDER SERVICES", "TE", "9165550100"],
              ["N1", "PE", "TESTHUB CBO NETWORK", "XX", NPI], ["LX", "1"]]
    spec = EnvelopeSpec(sender=Party("ZZ", "TESTPLAN", "TESTPLAN"), receiver=Party("ZZ", "CALHUBHUB", "CALHUB"),
                        interchange_control_number=control, group_control_number=control, functional_code="HP",
                        version="005010X221A1", created=datetime(2026, 11, 1, 9, 30))
    return build_interchange(spec, [header + body], st03=False).encode()


def payment(i: int, status: str, paid: int, *, line_paid: int, co45: int = 0, pcn: str = "") -> list[list[str]]:
    sign = -1 if status == "22" else 1
    body = [["CLP", claim_id(i), status, str(sign * 350), str(paid), "", "MC", pcn or f"PCN{2000 + i}", "11", "1"],
            ["NM1", "QC", "1", "TESTPERSON", "ALEX", "", "", "", "MI", testkit.cin(i + 1)]]
    for n in (1, 2):
        body += [["SVC", "HC:G9008:U1", str(sign * 175), str(line_paid), "", str(sign)], ["DTM", "472", "20260915"],
                 *([["CAS", "CO", "45", str(co45)]] if co45 else []), ["REF", "6R", f"{claim_id(i)}-{n}"]]
    return body


def first_835() -> bytes:
    """220 claims paid, paid with CO-45 or denied (CO-16, N290), an unknown CLP01, PLB interest on a claim of
    ours and a recoupment naming no claim."""
    body: list[list[str]] = []
    total = Decimal(0)
    for i in range(FIRST):
        if kind(i) == "denied":
            body += [["CLP", claim_id(i), "4", "350", "0", "", "MC", f"PCN{2000 + i}", "11", "1"],
                     ["NM1", "QC", "1", "TESTPERSON", "ALEX", "", "", "", "MI", testkit.cin(i + 1)],
                     ["MOA", "", "", "N290"]]
            for n in (1, 2):
                body += [["SVC", "HC:G9008:U1", "175", "0", "", "1"], ["DTM", "472", "20260915"],
                         ["CAS", "CO", "16", "175"], ["REF", "6R", f"{claim_id(i)}-{n}"]]
            continue
        co45 = 25 if kind(i) == "co45" else 0
        body += payment(i, "1", 350 - 2 * co45, line_paid=175 - co45, co45=co45)
        total += 350 - 2 * co45
    body += [["CLP", "CLM-9999", "1", "100", "100", "", "MC", "PCN9999", "11", "1"],
             ["NM1", "QC", "1", "TESTPERSON", "ALEX", "", "", "", "MI", "99999999A"]]
    total += 100
    body.append(["PLB", NPI, "20261231", f"L6:{claim_id(3)}", "-4.38", "WO:NOSUCHCLAIM", "100"])
    return interchange(201, "20261015", "EFT-BULK-1", body, total + Decimal("4.38") - 100)


def second_835() -> bytes:
    """Every claim paid in full reversed (CLP02 = 22) and corrected at 300 with CO-45, and 40 new claims paid."""
    body: list[list[str]] = []
    total = Decimal(0)
    for i in range(FIRST + FRESH):
        if kind(i) == "paid":
            body += payment(i, "22", -350, line_paid=-175)
            body += payment(i, "1", 300, line_paid=150, co45=25, pcn=f"PCN{2000 + i}C")
            total -= 50
        elif kind(i) == "fresh":
            body += payment(i, "1", 350, line_paid=175)
            total += 350
    return interchange(202, "20261101", "EFT-BULK-2", body, total)


async def post(h: ServiceHarness, content: bytes) -> dict[str, Any]:
    response = await h.client.post("/v1/remittances?mcp_code=healthnet", content=content,
                                   headers={**h.headers("hub"), "Content-Type": "application/edi-x12"})
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()
    return data


async def rows(h: ServiceHarness, model: Any) -> list[Any]:
    async with h.runtimes["claims"].uow() as uow:
        found = list((await uow.session.scalars(select(model))).all())
        uow.session.expunge_all()  # plain values after the unit of work ends
        return found


async def relayed(h: ServiceHarness, topic: str, count: int) -> list[dict[str, Any]]:
    """The events of a topic once the relay (running in the background) has published `count` of them."""
    deadline = asyncio.get_running_loop().time() + 30
    while len(published := [json.loads(m.value) for m in h.bus.read(topic)]) < count:
        assert asyncio.get_running_loop().time() < deadline, f"{len(published)} of {count} events relayed"
        await asyncio.sleep(0.05)
    return published


def loaded(value: Any) -> Any:
    """A JSON column as the application reads it (SQLite and PostgreSQL alike)."""
    return json.loads(value) if isinstance(value, str) else value


async def test_a_file_big_enough_for_copy_posts_what_small_files_post(harness: ServiceHarness) -> None:
    first = await post(harness, first_835())
    assert first["remittances"][0]["claims_posted"] == FIRST and first["remittances"][0]["exceptions"] == 2

    payments = {p.claim_id: p for p in await rows(harness, ClaimPayment)}
    assert len(payments) == FIRST and len({p.id for p in payments.values()}) == FIRST
    paid = payments[claim_id(3)]
    assert (paid.kind, paid.outcome, paid.status_code, Decimal(paid.paid)) == ("payment", "paid", "1", 350)
    assert loaded(paid.line_ids) == loaded(paid.paid_line_ids) == [f"{claim_id(3)}-1", f"{claim_id(3)}-2"]
    assert loaded(paid.adjustments) == [] and loaded(paid.remarks) == [] and paid.denial is None
    assert paid.trace_number == "EFT-BULK-1" and paid.paid_on == date(2026, 10, 15) and paid.reversed_by is None
    denied = payments[claim_id(10)]
    assert denied.outcome == "denied" and loaded(denied.remarks) == ["N290"]
    assert loaded(denied.denial)["category"] and loaded(denied.line_ids) == [f"{claim_id(10)}-1", f"{claim_id(10)}-2"]

    lines = await rows(harness, LinePayment)
    assert len(lines) == 2 * FIRST
    co45 = next(line for line in lines if line.claim_id == claim_id(1))
    assert loaded(co45.adjustments) == [{"group": "CO", "reason": "45", "amount": "25.00"}]
    assert (co45.procedure, Decimal(co45.charge), Decimal(co45.paid), co45.outcome) == ("G9008:U1", 175, 150, "paid")
    assert co45.claim_payment_id == payments[claim_id(1)].id

    denials = await rows(harness, Denial)
    assert len(denials) == FIRST // 10 and {d.status for d in denials} == {"open"}
    assert {"CO-16", "N290"} <= set(loaded(denials[0].codes)) and Decimal(denials[0].denied_amount) == 350

    adjustments = {a.reason: a for a in await rows(harness, ProviderAdjustment)}
    assert adjustments["L6"].claim_id == claim_id(3) and Decimal(adjustments["L6"].amount) == Decimal("-4.38")
    exceptions = {e.reason: e for e in await rows(harness, ExceptionRow)}
    assert exceptions["unattributed_adjustment"].provider_adjustment_id == adjustments["WO"].id
    assert loaded(exceptions["unknown_claim"].patient)["last_name"] == "TESTPERSON"
    assert loaded(exceptions["unknown_claim"].procedures) == []

    second = await post(harness, second_835())
    reversed_count = sum(1 for i in range(FIRST) if kind(i) == "paid")
    assert second["remittances"][0]["claims_posted"] == 2 * reversed_count + FRESH

    claims = {c.id: c for c in await rows(harness, Claim)}
    expected = {"denied": ("denied", 0), "co45": ("paid", 300), "paid": ("paid", 300), "fresh": ("paid", 350)}
    for i in range(FIRST + FRESH):
        assert (claims[claim_id(i)].status, claims[claim_id(i)].paid_amount) == expected[kind(i)]
    corrected = claims[claim_id(3)]
    assert (corrected.payer_claim_number, Decimal(corrected.adjustment_amount)) == ("PCN2003C", 50)
    assert corrected.version == 3 and corrected.settlement == "paid"
    claim_lines = {line.encounter_id: line for line in await rows(harness, ClaimLine)}
    assert (claim_lines[f"{claim_id(3)}-2"].paid_amount, claim_lines[f"{claim_id(3)}-2"].adjustment_amount) == (150, 25)
    assert claim_lines[f"{claim_id(250)}-1"].paid_amount == 175

    postings = {p.kind: p for p in await rows(harness, ClaimPayment) if p.claim_id == claim_id(3)}
    original, reversal, correction = postings["payment"], postings["reversal"], postings["correction"]
    assert original.reversed_by == reversal.id and reversal.reverses_payment_id == original.id
    assert (reversal.kind, correction.kind, Decimal(correction.paid)) == ("reversal", "correction", 300)

    history = Counter(h.action for h in await rows(harness, ClaimHistory) if h.claim_id == claim_id(3))
    assert history == Counter({"payment_posted": 1, "reversal_posted": 1, "correction_posted": 1})

    events = FIRST + 2 * reversed_count + FRESH  # first file: one per claim; then reversed + paid, and paid
    published = await relayed(harness, "claims.claim.v1", events)
    types = Counter(e["type"] for e in published)
    assert types["claim.paid"] == FIRST - FIRST // 10 + reversed_count + FRESH
    assert types["claim.denied"] == FIRST // 10 and types["claim.reversed"] == reversed_count
    assert len({e["id"] for e in published}) == len(published)
    last_paid = [e for e in published if e["type"] == "claim.paid" and e["subject"] == claim_id(3)][-1]
    assert last_paid["data"]["paid_amount"] == "300.00" and last_paid["data"]["payer_claim_number"] == "PCN2003C"
    assert last_paid["data"]["payment_id"] == correction.id and last_paid["source"] == "claims"
