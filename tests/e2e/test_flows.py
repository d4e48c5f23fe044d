"""The CalAIM flows of ARCHITECTURE.md end to end, each service in its own process on PostgreSQL and Kafka, the MCP
on real SFTP: referral → authorization → MIF approval → encounter → 837P → 999/277CA; MCP-initiated assignment;
eligibility lost → suspended → encounter refused; expiry → reauthorization. Each ends with the accounting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from flows import (
    acknowledge,
    approval_row,
    authorizations,
    batch_now,
    california_today,
    claims,
    correlation_of,
    encounter_body,
    files,
    next_control,
    onboard,
    pick_up_837,
    post_encounter,
    upload_mif,
    wait_authorization,
    wait_claims,
    wait_referral_status,
)
from harness import CBO_A_NPI, Accountant, Cluster, Members, Tenants, all_pages, assert_no_duplicate_events, eventually
from payer import build_835

pytestmark = [pytest.mark.e2e, pytest.mark.integration]


async def test_referral_to_accepted_claim_over_sftp(live: Cluster, tenants: Tenants, members: Members,
                                                    accountant: Accountant) -> None:
    people = [members.next(), members.next()]
    done = await onboard(live, tenants, people)

    # The MCP's decision reached the referrer: closed loop, and the authorization carries the MIF's number.
    for item in done:
        auth = await wait_authorization(live, tenants, item.authorization_id, "approved")
        assert auth["mcp_authorization_number"] == f"LAC-{item.member['cin']}"
        assert auth["cbo_organization_id"] == tenants.cbo_a.organization_id

    encounters = [await post_encounter(live, tenants, encounter_body(item.member)) for item in done]
    assert [e["status"] for e in encounters] == ["recorded", "recorded"], encounters
    assert {e["authorization_id"] for e in encounters} == {item.authorization_id for item in done}
    claim_ids = [e["claim_id"] for e in encounters]

    batch = await batch_now(live, tenants)
    assert batch["claims"] >= 2 and batch["file_kind"] == "837P"
    picked = await pick_up_837(live, batch["id"])
    assert set(claim_ids) <= {c.claim_id for c in picked.claims}
    await wait_claims(live, tenants, claim_ids, "submitted")

    await acknowledge(live, picked)
    accepted = await wait_claims(live, tenants, claim_ids, "accepted")
    assert all(c["payer_claim_number"] for c in accepted)

    # Accounting: one authorization per referral, one claim per encounter, every event journaled once, nothing
    # dead-lettered, nothing left in any outbox.
    # The encounter starts its own lineage today (claims does not continue the authorization's correlation id),
    # so the claims' events are gathered by claim id as well.
    ledger = await accountant.read([d.referral_id for d in done], correlation_ids=[d.correlation_id for d in done],
                                   claim_ids=claim_ids)
    assert ledger.authorizations_by_referral() == {d.referral_id: 1 for d in done}
    mine = [c for c in ledger.claims if c["id"] in claim_ids]
    assert len(mine) == 2 and all(c["batch_id"] == batch["id"] for c in mine)
    assert_no_duplicate_events(ledger.journal)
    types = {e["event_type"] for e in ledger.journal}
    assert {"referral.received", "referral.routed", "authorization.requested", "authorization.approved",
            "encounter.recorded", "claim.created", "claim.submitted", "claim.accepted"} <= types, types
    assert not ledger.dead_letters, ledger.dead_letters
    await eventually(lambda: _outboxes_drained(accountant), within=30, what="outboxes drained")


async def _outboxes_drained(accountant: Accountant) -> bool:
    return not any((await accountant.outbox_backlogs()).values())


async def test_remittance_is_reconciled_and_pays_the_cbo(live: Cluster, tenants: Tenants, members: Members,
                                                        accountant: Accountant) -> None:
    async with live.client("claims", tenants.hub.key) as client:
        paths = set((await client.get("/openapi.json")).json()["paths"])
    missing = [p for p in ("/v1/remittances", "/v1/payouts", "/v1/claims/{claim_id}/payments") if p not in paths]
    if missing:
        pytest.skip(f"claims does not serve {missing} yet (835 intake from file.received kind 835 and CBO payouts "
                    "are landing with issue 7)")
    [item] = await onboard(live, tenants, [members.next()])
    encounter = await post_encounter(live, tenants, encounter_body(item.member))
    assert encounter["status"] == "recorded", encounter
    batch = await batch_now(live, tenants)
    picked = await pick_up_837(live, batch["id"])
    await wait_claims(live, tenants, [encounter["claim_id"]], "submitted")
    await acknowledge(live, picked)
    await wait_claims(live, tenants, [encounter["claim_id"]], "accepted")

    # The MCP pays the whole batch with one 835 over SFTP; claims balances it and posts each payment.
    now = datetime.now(UTC)
    trace = f"EFT{now:%H%M%S%f}"
    await live.upload("lacare", f"LAC_{now:%Y%m%d%H%M%S}.835", build_835(picked, control=next_control(), now=now,
                                                                          trace=trace))
    [claim] = await wait_claims(live, tenants, [encounter["claim_id"]], "paid", within=90)
    assert Decimal(claim["paid_amount"]) == Decimal(encounter["expected_amount"])
    async with live.client("claims", tenants.hub.key) as client:
        payments = (await client.get(f"/v1/claims/{encounter['claim_id']}/payments")).json()
        remittances = await all_pages(client, "/v1/remittances")
    assert len(payments) == 1, payments
    assert [r for r in remittances if r.get("trace_number") == trace], remittances

    # The hub pays CBO A what was collected for it, less the hub's fee.
    today = california_today()
    async with live.client("claims", tenants.hub.key) as client:
        response = await client.post("/v1/payouts", json={"cbo_organization_id": tenants.cbo_a.organization_id,
                                                         "period_start": (today - timedelta(days=1)).isoformat(),
                                                         "period_end": (today + timedelta(days=1)).isoformat()},
                                     headers={"Idempotency-Key": f"payout-{trace}"})
    assert response.status_code == 201, response.text
    payout = response.json()
    assert Decimal(payout["collected"]) >= Decimal(claim["paid_amount"])
    assert Decimal(payout["hub_fee"]) == (Decimal(payout["collected"]) * Decimal("0.15")).quantize(Decimal("0.01"))
    assert Decimal(payout["payable"]) == Decimal(payout["collected"]) - Decimal(payout["hub_fee"]) \
        - Decimal(payout["recoupments"]) + Decimal(payout["balance_forward"])
    async with live.client("claims", tenants.cbo_b.key) as other:
        assert (await other.get(f"/v1/payouts/{payout['id']}")).status_code == 404
    ledger = await accountant.read([item.referral_id], correlation_ids=[item.correlation_id],
                                   claim_ids=[encounter["claim_id"]])
    kinds = [e["event_type"] for e in ledger.journal]
    assert kinds.count("claim.paid") == 1, kinds
    assert_no_duplicate_events(ledger.journal)
    assert not ledger.dead_letters, ledger.dead_letters


async def test_mcp_assignment_without_referral(live: Cluster, tenants: Tenants, members: Members) -> None:
    person = members.next()
    number = f"LAC-ASSIGN-{person['cin']}"
    await upload_mif(live, [approval_row(person, number, status="Assigned", npi=CBO_A_NPI)])

    async def assigned() -> dict[str, Any] | None:
        found = [a for a in await authorizations(live, tenants, mcp_code="lacare")
                 if a["mcp_authorization_number"] == number]
        return found[0] if found else None

    auth = await eventually(assigned, within=60, what="authorization from the MCP's assignment")
    assert auth["origin"] == "mcp_assignment" and auth["referral_id"] is None
    assert auth["status"] == "approved"
    assert auth["cbo_organization_id"] == tenants.cbo_a.organization_id  # the NPI → CBO map of the policy
    # The assigned CBO sees it; the other CBO does not.
    async with live.client("authorizations", tenants.cbo_a.key) as cbo_a, \
            live.client("authorizations", tenants.cbo_b.key) as cbo_b:
        assert (await cbo_a.get(f"/v1/authorizations/{auth['id']}")).status_code == 200
        assert (await cbo_b.get(f"/v1/authorizations/{auth['id']}")).status_code == 404
    # The CBO can bill against it at once.
    recorded = await post_encounter(live, tenants, encounter_body(person))
    assert recorded["status"] == "recorded" and recorded["authorization_id"] == auth["id"], recorded


async def test_eligibility_lost_suspends_and_refuses_encounters(live: Cluster, tenants: Tenants,
                                                                 members: Members) -> None:
    [item] = await onboard(live, tenants, [members.next()])
    today = california_today()
    async with live.client("eligibility", tenants.hub.key) as eligibility:
        response = await eligibility.post(f"/v1/members/{item.member['cin']}/enrollment", json={
            "mcp_code": "lacare", "active": False, "as_of": today.isoformat(), "reason": "disenrolled"})
    assert response.status_code == 200, response.text
    assert "lost" in response.json()["changes"], response.json()

    auth = await wait_authorization(live, tenants, item.authorization_id, "suspended")
    assert auth["status"] == "suspended"

    async def refused() -> dict[str, Any] | None:
        result = await post_encounter(live, tenants, encounter_body(item.member, service_date=today))
        return result if result["status"] == "rejected" else None

    rejected = await eventually(refused, within=60, what="encounter refused after eligibility was lost")
    assert rejected["claim_id"] is None
    assert rejected["reasons"], rejected
    text = " ".join(str(r) for r in rejected["reasons"]).lower()
    assert "eligib" in text or "suspend" in text or "enrolled" in text, rejected["reasons"]


async def test_expiry_opens_a_reauthorization(live: Cluster, tenants: Tenants, members: Members) -> None:
    [item] = await onboard(live, tenants, [members.next()])
    # Engagement: an in-person encounter (outreach attempts do not count).
    assert (await post_encounter(live, tenants, encounter_body(item.member)))["status"] == "recorded"
    # The MCP shortens the period in a corrected MIF: it now ends in 10 days, inside the 30-day notice.
    today = california_today()
    await upload_mif(live, [approval_row(item.member, f"LAC-{item.member['cin']}", start=today,
                                         end=today + timedelta(days=10))])

    async def reauthorized() -> dict[str, Any] | None:
        found = [a for a in await authorizations(live, tenants)
                 if a.get("previous_authorization_id") == item.authorization_id]
        return found[0] if found else None

    new = await eventually(reauthorized, within=90, what="reauthorization request")
    assert new["origin"] == "reauthorization" and new["status"] in ("requested", "pended", "approved")
    old = await wait_authorization(live, tenants, item.authorization_id, "approved", "expiring")
    assert old["expiring_raised_at"] is not None
    # The closed loop follows the member to the new request; the ops journal has both events once.
    correlation = await correlation_of(live, tenants, item.referral_id)
    async with live.client("ops", tenants.hub.key) as ops:
        timeline = (await ops.get("/v1/ops/timeline", params={"correlation_id": correlation})).json()["items"]
    kinds = [e["event_type"] for e in timeline]
    assert kinds.count("authorization.expiring") == 1, kinds
    assert kinds.count("authorization.reauth_requested") == 1, kinds
    await wait_referral_status(live, tenants, item.referral_id, "accepted", "requested", "in_service")


async def test_claims_and_files_are_listed_once(live: Cluster, tenants: Tenants) -> None:
    """Cursor pages of the list endpoints never repeat or drop an item (accounting reads through them)."""
    async with live.client("claims", tenants.hub.key) as client:
        small = await all_pages(client, "/v1/claims", limit=1)
        large = await all_pages(client, "/v1/claims", limit=200)
    assert [c["id"] for c in small] == [c["id"] for c in large]
    assert len({c["id"] for c in small}) == len(small)
    every = await files(live, tenants)
    assert len({f["id"] for f in every}) == len(every)
    assert await claims(live, tenants) == large
