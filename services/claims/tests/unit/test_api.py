"""The claims API through the service harness (SQLite, in-process bus): encounters, claims, batches,
acknowledgments arriving as file.received, corrections, replacements and voids, tenancy and audit."""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from claims import testkit
from claims.bootstrap import definition
from claims.domain.configuration import BillingConfiguration
from claims.models import audit_event
from claims.x12.validation import validate_837p
from sqlalchemy import func, select

from shared.bus.message import decode, encode
from shared.contracts.eligibility import EligibilityExcluded, EligibilitySource
from shared.contracts.gateway import FileDelivered, FileKind, FileReceived
from shared.envelope import new_event
from shared.filestore import FileStore
from shared.identity import member_id_for
from shared.scheduler import FixedClock
from shared.testing.app import ServiceHarness, make_caller, service_harness
from shared.testing.polling import eventually

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
NOW = datetime(2025, 3, 20, 17, 0, tzinfo=UTC)
RW = ["claims:read", "claims:write"]
KEYS = {"hub": make_caller("hub", "org_hub", scopes=RW), "cbo": make_caller("cbo", "org_cbo_a", scopes=RW),
        "cbo_b": make_caller("cbo", "org_cbo_b", scopes=RW),
        "mcp": make_caller("mcp", "org_mcp_hn", code="healthnet", scopes=RW)}


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
def billing() -> BillingConfiguration:
    return testkit.make_billing()


@pytest.fixture
async def harness(tmp_path: Path, clock: FixedClock, billing: BillingConfiguration) -> AsyncIterator[ServiceHarness]:
    async with service_harness([definition(clock=clock, billing=billing)], tmp_path, keys=KEYS) as h:
        yield h


async def post(h: ServiceHarness, path: str, body: Any, who: str = "cbo", **headers: str) -> Any:
    return await h.client.post(path, json=body, headers=h.headers(who, **headers))


def published(h: ServiceHarness, topic: str, event_type: str) -> list[Any]:
    return [m for m in h.bus.read(topic) if m.header("event_type") == event_type or event_type.encode() in m.value]


async def claim(h: ServiceHarness, claim_id: str) -> dict[str, Any]:
    response = await h.client.get(f"/v1/claims/{claim_id}", headers=h.headers("hub"))
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


async def statuses(h: ServiceHarness, claim_ids: list[str]) -> list[str]:
    return [(await claim(h, c))["status"] for c in claim_ids]


def store(h: ServiceHarness) -> FileStore:
    return FileStore(h.platform.file_store_path())


async def deliver_acknowledgment(h: ServiceHarness, kind: FileKind, text: str, mcp: str = "healthnet") -> None:
    """What the gateway does with an MCP's 999/277CA: store it and publish file.received."""
    reference = store(h).put(text.encode("ascii"))
    event = new_event(FileReceived(file_id=f"file_{reference.sha256[:12]}", mcp_code=mcp, kind=kind, file=reference,
                                   received_at=NOW), subject=f"file_{reference.sha256[:12]}", source="sftp-gateway")
    await h.bus.publish([encode(event)])


# ---------------------------------------------------------------------------------------------- encounters

async def test_encounter_is_recorded_priced_and_put_on_a_draft_claim(harness: ServiceHarness) -> None:
    await testkit.seed_member(harness.runtimes["claims"], 1)
    first = await post(harness, "/v1/encounters", testkit.encounter_body(1))
    second = await post(harness, "/v1/encounters", testkit.encounter_body(1, service_date="2025-03-04",
                                                                         diagnosis_codes=["Z59.00", "Z59.41"]))
    assert first.status_code == 201 and second.status_code == 201
    one, two = first.json(), second.json()
    assert one["status"] == "recorded" and one["expected_amount"] == "400.00"
    assert two["expected_amount"] == "0.00"  # PMPM: the month is already billed
    assert one["claim_id"] == two["claim_id"] and one["authorization_id"]
    detail = await claim(harness, one["claim_id"])
    assert detail["status"] == "draft" and detail["expected_amount"] == "400.00"
    assert detail["prior_authorization_number"] == "AUTH0001"
    assert detail["diagnosis_codes"] == ["Z5900", "Z5941"]
    assert [ln["diagnosis_pointers"] for ln in detail["lines"]] == [[1], [1, 2]]
    await eventually(lambda: _has(harness, "claims.encounter.v1", "encounter.recorded", 2), within=10.0)


async def _has(h: ServiceHarness, topic: str, event_type: str, count: int) -> bool:
    return len(published(h, topic, event_type)) >= count


async def test_rejected_encounter_is_kept_with_every_reason(harness: ServiceHarness) -> None:
    response = await post(harness, "/v1/encounters", testkit.encounter_body(7, modifiers=["U2"]))
    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "rejected" and body["claim_id"] is None
    assert {r["code"] for r in body["reasons"]} == {"modifiers_not_allowed", "no_authorization", "eligibility_unknown"}
    kept = await harness.client.get(f"/v1/encounters/{body['id']}", headers=harness.headers("cbo"))
    assert kept.json()["status"] == "rejected"
    listed = await harness.client.get("/v1/encounters?status=rejected", headers=harness.headers("cbo"))
    assert [e["id"] for e in listed.json()["items"]] == [body["id"]]
    await eventually(lambda: _has(harness, "claims.encounter.v1", "encounter.rejected", 1), within=10.0)


@pytest.mark.parametrize(("change", "field", "rule"), [
    ({"member": {**testkit.member(1), "cin": "9000001A"}}, "member.cin", "pattern"),
    ({"rendering_provider": {"npi": "1234567890", "last_name": "Worker"}}, "rendering_provider.npi",
     "npi_check_digit"),
    ({"program": "cs", "hcpcs": "H0044"}, "body", "required_for_cs"),
    ({"modifiers": ["U1", "GQ", "U2", "U3", "U4"]}, "modifiers", "max_items"),
    ({"units": "0"}, "units", "gt"),
    ({"diagnosis_codes": []}, "diagnosis_codes", "min_items"),
    ({"diagnosis_codes": ["12345"]}, "diagnosis_codes[0]", "pattern"),
    ({"place_of_service": "1"}, "place_of_service", "pattern"),
    ({"service_date": "2025-02-30"}, "service_date", "date_from_datetime_parsing"),
    ({"surprise": True}, "surprise", "unknown_field"),
])
async def test_bad_input_names_field_and_rule(harness: ServiceHarness, change: dict[str, Any], field: str,
                                              rule: str) -> None:
    response = await post(harness, "/v1/encounters", {**testkit.encounter_body(1), **change})
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    errors = response.json()["errors"]
    assert any(e["field"] == field and e["rule"].startswith(rule.split("_from")[0]) for e in errors), errors
    assert "9000001A" not in response.text and "1234567890" not in response.text


@pytest.mark.parametrize(("change", "field"), [
    ({"member": {**testkit.member(1), "last_name": "王"}}, "member.last_name"),
    ({"member": {**testkit.member(1), "first_name": "Иван"}}, "member.first_name"),
    ({"member": {**testkit.member(1), "address": {**testkit.member(1)["address"], "city": "東京"}}},
     "member.address.city"),
    ({"rendering_provider": {"npi": testkit.CBO_NPI, "last_name": "Søren"}}, "rendering_provider.last_name"),
])
async def test_a_name_the_837p_cannot_write_is_refused_naming_field_and_rule(harness: ServiceHarness,
                                                                             change: dict[str, Any],
                                                                             field: str) -> None:
    response = await post(harness, "/v1/encounters", {**testkit.encounter_body(1), **change})
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    assert [(e["field"], e["rule"]) for e in response.json()["errors"]] == [(field, "x12_text")]
    assert not any(value in response.text for value in ("王", "Иван", "東京", "Søren"))  # never echoed


async def test_accented_latin_names_are_recorded_and_folded_in_the_837p(harness: ServiceHarness) -> None:
    await testkit.seed_member(harness.runtimes["claims"], 1)
    body = testkit.encounter_body(1, member={**testkit.member(1), "last_name": "Peña", "first_name": "José"})
    recorded = await post(harness, "/v1/encounters", body)
    assert recorded.status_code == 201 and recorded.json()["status"] == "recorded"
    batch = (await post(harness, "/v1/claims/batches", {"mcp_code": "healthnet"}, who="hub")).json()
    text = store(harness).get(batch["file"]["uri"]).decode()
    assert "NM1*IL*1*PENA*JOSE****MI*90000001A~" in text and validate_837p(text) == []


async def test_typographic_apostrophes_and_dashes_are_accepted_at_intake(harness: ServiceHarness) -> None:
    address = {**testkit.member(3)["address"], "line1": "12 St. Mary\u2019s Ave"}
    member = {**testkit.member(3), "last_name": "O\u2019Brien", "first_name": "Mary\u2013Kate", "address": address}
    response = await post(harness, "/v1/encounters", testkit.encounter_body(3, member=member))
    assert response.status_code == 201, response.text


async def test_batch_gives_per_item_results(harness: ServiceHarness) -> None:
    await testkit.seed_member(harness.runtimes["claims"], 2)
    items = [testkit.encounter_body(2), testkit.encounter_body(2), testkit.encounter_body(3),
             {**testkit.encounter_body(2), "member": {"cin": "bad"}}]
    response = await post(harness, "/v1/encounters", {"encounters": items})
    assert response.status_code == 200
    body = response.json()
    assert (body["recorded"], body["rejected"], body["invalid"]) == (1, 2, 1)
    statuses = [r["status"] for r in body["results"]]
    assert statuses == ["recorded", "rejected", "rejected", "invalid"]
    assert body["results"][1]["encounter"]["reasons"][0]["code"] == "duplicate_encounter"  # same request counts
    assert any(e["field"].startswith("encounters[3].member") for e in body["results"][3]["errors"])


async def test_batch_over_1000_is_refused(harness: ServiceHarness) -> None:
    response = await post(harness, "/v1/encounters", {"encounters": [{}] * 1001})
    assert response.status_code == 422 and response.json()["errors"][0]["rule"] == "max_items"


async def test_idempotency_key_and_external_id_replay(harness: ServiceHarness) -> None:
    await testkit.seed_member(harness.runtimes["claims"], 4)
    body = testkit.encounter_body(4, external_id="cbo-visit-1")
    first = await post(harness, "/v1/encounters", body, **{"Idempotency-Key": "k1"})
    again = await post(harness, "/v1/encounters", body, **{"Idempotency-Key": "k1"})
    assert again.headers.get("Idempotent-Replayed") == "true" and again.json() == first.json()
    retry = await post(harness, "/v1/encounters", body)  # no key, same external id: the first encounter
    assert retry.status_code == 200 and retry.json()["id"] == first.json()["id"]


async def test_tenancy(harness: ServiceHarness) -> None:
    await testkit.seed_member(harness.runtimes["claims"], 5)
    recorded = (await post(harness, "/v1/encounters", testkit.encounter_body(5))).json()
    other = await harness.client.get(f"/v1/claims/{recorded['claim_id']}", headers=harness.headers("cbo_b"))
    assert other.status_code == 404
    mine = await harness.client.get("/v1/claims", headers=harness.headers("cbo"))
    assert [c["id"] for c in mine.json()["items"]] == [recorded["claim_id"]]
    assert (await harness.client.get("/v1/claims", headers=harness.headers("cbo_b"))).json()["items"] == []
    mcp = await harness.client.get(f"/v1/claims/{recorded['claim_id']}", headers=harness.headers("mcp"))
    assert mcp.status_code == 200
    refused = await post(harness, "/v1/encounters", testkit.encounter_body(5), who="mcp")
    assert refused.status_code == 403
    hub_without_cbo = await post(harness, "/v1/encounters", testkit.encounter_body(5), who="hub")
    assert hub_without_cbo.status_code == 422 and hub_without_cbo.json()["errors"][0]["field"] == "cbo_organization_id"
    cbo_batch = await post(harness, "/v1/claims/batches", {"mcp_code": "healthnet"}, who="cbo")
    assert cbo_batch.status_code == 403


# ---------------------------------------------------------------------------------- batches and acks

async def _record(h: ServiceHarness, members: range, mcp: str = "healthnet", **body: Any) -> list[str]:
    claim_ids = []
    for n in members:
        await testkit.seed_member(h.runtimes["claims"], n, mcp_code=mcp)
        response = await post(h, "/v1/encounters", testkit.encounter_body(n, mcp_code=mcp, **body))
        assert response.json()["status"] == "recorded", response.json()["reasons"]
        claim_ids.append(response.json()["claim_id"])
    return claim_ids


async def test_batch_to_999_rejection_correction_277ca_replacement_and_void(harness: ServiceHarness) -> None:
    claim_ids = await _record(harness, range(10, 13))
    created = await post(harness, "/v1/claims/batches", {"mcp_code": "healthnet"}, who="hub")
    assert created.status_code == 201, created.text
    batch = created.json()
    assert batch["claims"] == 3 and batch["total_amount"] == "1200.00" and batch["interchange_control_number"] == 1
    text = store(harness).get(batch["file"]["uri"]).decode()
    assert validate_837p(text) == []
    assert "*X*005010X222A1~" in text and text.count("CLM*") == 3
    await eventually(lambda: _has(harness, "claims.claim_batch.v1", "claim_batch.created", 1), within=10.0)
    message = published(harness, "claims.claim_batch.v1", "claim_batch.created")[0]
    assert batch["file"]["sha256"].encode() in message.value
    assert set(await statuses(harness, claim_ids)) == {"batched"}

    nothing = await post(harness, "/v1/claims/batches", {"mcp_code": "healthnet"}, who="hub")
    assert nothing.status_code == 409 and nothing.json()["type"].endswith("no-claims-to-batch")

    # The MCP's 999 rejects the transaction set (our GS06 is 1): every claim in it is rejected with the reasons.
    rejected = (FIXTURES / "999" / "rejected.x12").read_text().replace("AK1*HC*7*", "AK1*HC*1*")
    await deliver_acknowledgment(harness, FileKind.X12_999, rejected)

    async def all_rejected() -> bool:
        return set(await statuses(harness, claim_ids)) == {"rejected"}

    await eventually(all_rejected, within=10.0)
    first = await claim(harness, claim_ids[0])
    assert first["rejection_reasons"][0] == "999 IK5 R: rejected"
    assert [h["action"] for h in first["history"]][-1] == "rejected_999"
    assert first["history"][-1]["actor"] == "system:999"
    batch_now = (await harness.client.get(f"/v1/claims/batches/{batch['id']}", headers=harness.headers("hub"))).json()
    assert batch_now["acknowledgment_code"] == "R"

    # Corrected, back to draft, batched again with new control numbers.
    corrected = await post(harness, f"/v1/claims/{claim_ids[0]}/corrections",
                           {"reason": "subscriber id fixed", "diagnosis_codes": ["Z59.01"],
                            "lines": [{"line_number": 1, "modifiers": ["U1", "GQ"]}]})
    assert corrected.status_code == 201, corrected.text
    assert corrected.json()["status"] == "draft" and corrected.json()["lines"][0]["modifiers"] == ["U1", "GQ"]
    bad_fix = await post(harness, f"/v1/claims/{claim_ids[1]}/corrections",
                         {"reason": "try", "lines": [{"line_number": 1, "modifiers": ["U5"]}]})
    assert bad_fix.status_code == 422 and bad_fix.json()["errors"][0]["field"] == "lines[0].modifiers"
    again = (await post(harness, "/v1/claims/batches", {"mcp_code": "healthnet"}, who="hub")).json()
    assert again["claims"] == 1 and again["interchange_control_number"] == 2 and again["group_control_number"] == 2

    # The 277CA accepts it with the payer's claim number.
    accepted = (FIXTURES / "277ca" / "rejected.x12").read_text().replace("C0000000000000000001", claim_ids[0]) \
        .replace("STC*A7:562:85", "STC*A2:20").replace("*U*400~", "*WQ*400~\nREF*1K*PCN777~") \
        .replace("SE*25*", "SE*26*")
    await deliver_acknowledgment(harness, FileKind.X12_277CA, accepted)

    async def is_accepted() -> bool:
        return (await claim(harness, claim_ids[0]))["status"] == "accepted"

    await eventually(is_accepted, within=10.0)
    assert (await claim(harness, claim_ids[0]))["payer_claim_number"] == "PCN777"

    # Replacement (7) and then a void (8) of the accepted claim: each a new claim quoting REF*F8.
    replacement = await post(harness, f"/v1/claims/{claim_ids[0]}/replacement",
                             {"reason": "units corrected", "lines": [{"line_number": 1, "units": "2"}]})
    assert replacement.status_code == 201, replacement.text
    new = replacement.json()
    assert new["frequency_code"] == "7" and new["replaces_claim_id"] == claim_ids[0] and new["status"] == "draft"
    pending = await post(harness, f"/v1/claims/{claim_ids[0]}/void", {"reason": "duplicate billing"})
    assert pending.status_code == 409  # the replacement is still on its way
    third = (await post(harness, "/v1/claims/batches", {"mcp_code": "healthnet"}, who="hub")).json()
    text = store(harness).get(third["file"]["uri"]).decode()
    assert "REF*F8*PCN777~" in text and ":B:7*" in text and validate_837p(text) == []
    not_rejected = await post(harness, f"/v1/claims/{claim_ids[1]}/replacement", {"reason": "x y z"})
    assert not_rejected.status_code == 409


async def test_partial_999_rejects_only_its_set_and_delivery_submits(harness: ServiceHarness) -> None:
    claim_ids = await _record(harness, range(20, 22))
    batch = (await post(harness, "/v1/claims/batches", {"mcp_code": "healthnet"}, who="hub")).json()
    delivered = new_event(FileDelivered(file_id="out_1", mcp_code="healthnet", kind=FileKind.X12_837P,
                                        source_id=batch["id"], delivered_at=NOW + timedelta(minutes=5)),
                          subject="out_1", source="sftp-gateway")
    await harness.bus.publish([encode(delivered)])

    async def submitted() -> bool:
        return set(await statuses(harness, claim_ids)) == {"submitted"}

    await eventually(submitted, within=10.0)
    await eventually(lambda: _has(harness, "claims.claim.v1", "claim.submitted", 2), within=10.0)
    # Both claims sit in set 0001 (one billing provider): the partial 999 accepts 0001 and rejects 0002.
    partial = (FIXTURES / "999" / "partial.x12").read_text().replace("AK1*HC*7*", "AK1*HC*1*")
    await deliver_acknowledgment(harness, FileKind.X12_999, partial)
    await eventually(lambda: _has(harness, "claims.claim_batch.v1", "claim_batch.acknowledged", 1), within=10.0)
    assert set(await statuses(harness, claim_ids)) == {"submitted"}
    # The same file again changes nothing (applied once by SHA-256).
    await deliver_acknowledgment(harness, FileKind.X12_999, partial)
    await asyncio.sleep(0.3)
    assert len(published(harness, "claims.claim_batch.v1", "claim_batch.acknowledged")) == 1


async def test_999_accepting_the_group_without_ak2_loops_moves_every_claim_on(harness: ServiceHarness) -> None:
    claim_ids = await _record(harness, range(45, 47))
    await post(harness, "/v1/claims/batches", {"mcp_code": "healthnet"}, who="hub")
    text = (FIXTURES / "999" / "accepted.x12").read_text().replace("AK1*HC*7*", "AK1*HC*1*") \
        .replace("AK2*837*0001*005010X222A1~\nIK5*A~\n", "").replace("SE*6*", "SE*4*")
    await deliver_acknowledgment(harness, FileKind.X12_999, text)

    async def submitted() -> bool:
        return set(await statuses(harness, claim_ids)) == {"submitted"}

    await eventually(submitted, within=10.0)  # the 999 proves the MCP has the file
    await eventually(lambda: _has(harness, "claims.claim_batch.v1", "claim_batch.acknowledged", 1), within=10.0)
    (message,) = published(harness, "claims.claim_batch.v1", "claim_batch.acknowledged")
    data = decode(message).data
    assert (data.code, data.sets_accepted, data.claims_rejected) == ("A", 1, 0)


async def test_999_partly_accepting_the_group_without_ak2_loops_moves_and_counts_nothing(
        harness: ServiceHarness) -> None:
    claim_ids = await _record(harness, range(48, 50))
    await post(harness, "/v1/claims/batches", {"mcp_code": "healthnet"}, who="hub")
    text = (FIXTURES / "999" / "accepted.x12").read_text().replace("AK1*HC*7*", "AK1*HC*1*") \
        .replace("AK2*837*0001*005010X222A1~\nIK5*A~\n", "").replace("SE*6*", "SE*4*") \
        .replace("AK9*A*1*1*1~", "AK9*P*1*1*0~")
    await deliver_acknowledgment(harness, FileKind.X12_999, text)
    await eventually(lambda: _has(harness, "claims.claim_batch.v1", "claim_batch.acknowledged", 1), within=10.0)
    (message,) = published(harness, "claims.claim_batch.v1", "claim_batch.acknowledged")
    data = decode(message).data
    assert (data.code, data.sets_accepted, data.claims_rejected) == ("P", 0, 0)
    assert set(await statuses(harness, claim_ids)) == {"batched"}  # they wait for the 277CA


@pytest.mark.parametrize("sets", ["none named", "set accepted"])
async def test_999_rejecting_the_whole_group_rejects_every_claim_of_the_batch(harness: ServiceHarness,
                                                                                sets: str) -> None:
    claim_ids = await _record(harness, range(25, 28))
    await post(harness, "/v1/claims/batches", {"mcp_code": "healthnet"}, who="hub")
    text = (FIXTURES / "999" / "group_rejected.x12").read_text().replace("AK1*HC*7*", "AK1*HC*1*")
    if sets == "set accepted":  # IK5 A inside a rejected group: the group's AK9 R still stands
        text = text.replace("AK9*R*1*0*0*5~", "AK2*837*0001*005010X222A1~\nIK5*A~\nAK9*R*1*1*1*5~") \
            .replace("SE*4*", "SE*6*")
    await deliver_acknowledgment(harness, FileKind.X12_999, text)

    async def all_rejected() -> bool:
        return set(await statuses(harness, claim_ids)) == {"rejected"}

    await eventually(all_rejected, within=10.0)
    detail = await claim(harness, claim_ids[0])
    assert detail["rejection_reasons"] == ["999 AK9 R: rejected",
                                           "AK9 5: number of included transaction sets does not match actual count"]
    assert detail["history"][-1]["action"] == "rejected_999"
    await eventually(lambda: _has(harness, "claims.claim.v1", "claim.rejected", 3), within=10.0)


async def change_claim(h: ServiceHarness, claim_id: str, **values: Any) -> None:
    """Rewrite stored claim fields, as rows written before today's intake rules may hold them."""
    async with h.runtimes["claims"].uow() as uow:
        row = await uow.claims.get(claim_id)
        assert row is not None
        for name, value in values.items():
            setattr(row, name, value)
        await uow.commit()


async def test_a_claim_the_837p_cannot_carry_is_rejected_alone_and_the_batch_goes_out(
        harness: ServiceHarness) -> None:
    claim_ids = await _record(harness, range(90, 94))
    await change_claim(harness, claim_ids[0], prior_authorization_number="LAC~1")  # would split the segment
    await change_claim(harness, claim_ids[1], prior_authorization_number="LAC*2025*001")  # would shift REF
    await change_claim(harness, claim_ids[2], rendering_npi="1234567890")  # fails the validator, in its own loops
    created = await post(harness, "/v1/claims/batches", {"mcp_code": "healthnet"}, who="hub")
    assert created.status_code == 201, created.text
    batch = created.json()
    assert batch["claims"] == 1
    text = store(harness).get(batch["file"]["uri"]).decode()
    assert validate_837p(text) == [] and claim_ids[3] in text and "LAC" not in text
    assert await statuses(harness, claim_ids) == ["rejected", "rejected", "rejected", "batched"]
    first = await claim(harness, claim_ids[0])
    assert first["rejection_reasons"] == ["837P: REF*G1 prior authorization number must use the X12 basic or "
                                          "extended character set, without the delimiters * : ^ ~"]
    assert first["history"][-1]["action"] == "rejected_at_batching" and first["batch_id"] is None
    third = await claim(harness, claim_ids[2])
    assert any(r.startswith("837P validation: NM1") and "npi-check-digit" in r for r in third["rejection_reasons"])
    assert "1234567890" not in str(third["rejection_reasons"])
    await eventually(lambda: _has(harness, "claims.claim.v1", "claim.rejected", 3), within=10.0)

    # The CBO corrects the number: one the 837P cannot carry is refused naming field and rule.
    refused = await post(harness, f"/v1/claims/{claim_ids[0]}/corrections",
                         {"reason": "number from the MCP portal", "prior_authorization_number": "LAC~1"})
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["field"] == "prior_authorization_number"
    assert refused.json()["errors"][0]["rule"] == "x12_reference" and "LAC~1" not in refused.text
    too_long = await post(harness, f"/v1/claims/{claim_ids[0]}/corrections",
                          {"reason": "number from the MCP portal", "prior_authorization_number": "A" * 51})
    assert too_long.status_code == 422 and too_long.json()["errors"][0]["rule"] == "x12_reference"
    fixed = await post(harness, f"/v1/claims/{claim_ids[0]}/corrections",
                       {"reason": "number from the MCP portal", "prior_authorization_number": "LAC-2025-001"})
    assert fixed.status_code == 201, fixed.text
    again = (await post(harness, "/v1/claims/batches", {"mcp_code": "healthnet"}, who="hub")).json()
    assert again["claims"] == 1
    assert "REF*G1*LAC-2025-001~" in store(harness).get(again["file"]["uri"]).decode()


async def test_a_stored_name_the_837p_cannot_write_holds_back_only_its_claim(harness: ServiceHarness) -> None:
    # A claim stored before intake refused such names: it is rejected alone, the batch goes out.
    claim_ids = await _record(harness, range(97, 99))
    stored = (await claim(harness, claim_ids[0]))["member"]
    await change_claim(harness, claim_ids[0], member={**stored, "last_name": "王"})
    batch = (await post(harness, "/v1/claims/batches", {"mcp_code": "healthnet"}, who="hub")).json()
    assert batch["claims"] == 1
    assert await statuses(harness, claim_ids) == ["rejected", "batched"]
    reasons = (await claim(harness, claim_ids[0]))["rejection_reasons"]
    assert reasons == ["837P: NM1*IL subscriber last name must be written in Latin letters: a character has no X12 "
                       "equivalent"]
    # The CBO corrects the name as the MCP holds it; the claim goes out in the next batch.
    removed = await post(harness, f"/v1/claims/{claim_ids[0]}/corrections",
                         {"reason": "name as the plan has it", "member": {"last_name": None}})
    assert removed.status_code == 422
    assert [(e["field"], e["rule"]) for e in removed.json()["errors"]] == [("member.last_name", "value_error")]
    fixed = await post(harness, f"/v1/claims/{claim_ids[0]}/corrections",
                       {"reason": "name as the plan has it", "member": {"last_name": "Wang"}})
    assert fixed.status_code == 201, fixed.text
    assert fixed.json()["status"] == "draft" and fixed.json()["member"]["last_name"] == "Wang"
    assert fixed.json()["member"]["first_name"] == stored["first_name"]  # the rest as it was
    again = (await post(harness, "/v1/claims/batches", {"mcp_code": "healthnet"}, who="hub")).json()
    assert again["claims"] == 1
    assert "NM1*IL*1*WANG*" in store(harness).get(again["file"]["uri"]).decode()


async def test_when_no_draft_can_go_the_rejections_stand_and_no_file_leaves(harness: ServiceHarness) -> None:
    (claim_id,) = await _record(harness, range(96, 97))
    await change_claim(harness, claim_id, prior_authorization_number="A" * 60)
    response = await post(harness, "/v1/claims/batches", {"mcp_code": "healthnet"}, who="hub")
    assert response.status_code == 409
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["type"].endswith("no-claims-to-batch") and "1 were rejected" in response.json()["detail"]
    detail = await claim(harness, claim_id)
    assert detail["status"] == "rejected"
    assert detail["rejection_reasons"] == ["837P: REF*G1 prior authorization number must be 1 to 50 characters"]
    assert (await harness.client.get("/v1/claims/batches", headers=harness.headers("hub"))).json() == []


async def test_an_authorization_number_the_837p_cannot_carry_refuses_the_encounter(harness: ServiceHarness) -> None:
    runtime = harness.runtimes["claims"]
    await testkit.apply_events(runtime, [testkit.eligibility_event(95),
                                         *testkit.authorization_events(95, number="LAC*2025*" + "0" * 60)])
    response = await post(harness, "/v1/encounters", testkit.encounter_body(95))
    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "rejected" and [r["code"] for r in body["reasons"]] == ["authorization_number_unusable"]
    assert "LAC" not in response.text


async def test_an_exclusion_rejects_encounters_only_within_the_programs_dates(harness: ServiceHarness) -> None:
    runtime = harness.runtimes["claims"]
    member_id = member_id_for(testkit.cin(97))
    hospice = new_event(EligibilityExcluded(
        cin=testkit.cin(97), mcp_code="healthnet", source=EligibilitySource.X12_271, as_of=date(2025, 2, 25),
        verified_at=datetime(2025, 2, 25, tzinfo=UTC), program="ecm", exclusion="hospice",
        effective=date(2025, 2, 1), effective_to=date(2025, 2, 20), reason="hospice stay"),
        subject=member_id, source="eligibility", member_id=member_id)
    await testkit.apply_events(runtime, [testkit.eligibility_event(97), *testkit.authorization_events(97), hospice])
    during = (await post(harness, "/v1/encounters", testkit.encounter_body(97, service_date="2025-02-10"))).json()
    after = (await post(harness, "/v1/encounters", testkit.encounter_body(97, service_date="2025-03-03"))).json()
    assert [r["code"] for r in during["reasons"]] == ["program_excluded"]
    assert "program_excluded" not in [r["code"] for r in after["reasons"]] and after["status"] != "rejected"


async def test_277ca_partial_accepts_and_rejects_per_claim(harness: ServiceHarness) -> None:
    claim_ids = await _record(harness, range(30, 33))
    await post(harness, "/v1/claims/batches", {"mcp_code": "healthnet"}, who="hub")
    text = (FIXTURES / "277ca" / "partial.x12").read_text()
    for fixed, real in zip(("C0000000000000000001", "C0000000000000000002", "C0000000000000000003"), claim_ids,
                           strict=True):
        text = text.replace(fixed, real)
    await deliver_acknowledgment(harness, FileKind.X12_277CA, text)

    async def answered() -> bool:
        return (await claim(harness, claim_ids[2]))["status"] == "rejected"

    await eventually(answered, within=10.0)
    assert await statuses(harness, claim_ids) == ["accepted", "rejected", "rejected"]
    reasons = (await claim(harness, claim_ids[2]))["rejection_reasons"]
    assert reasons == ["277CA A7:453 acknowledgement: rejected for invalid information - procedure code modifier(s) "
                       "for services rendered"]


async def test_another_mcps_277ca_cannot_touch_our_claims(harness: ServiceHarness) -> None:
    (claim_id,) = await _record(harness, range(40, 41))
    await post(harness, "/v1/claims/batches", {"mcp_code": "healthnet"}, who="hub")
    text = (FIXTURES / "277ca" / "rejected.x12").read_text().replace("C0000000000000000001", claim_id)
    await deliver_acknowledgment(harness, FileKind.X12_277CA, text, mcp="lacare")
    await asyncio.sleep(0.5)
    assert (await claim(harness, claim_id))["status"] == "batched"


async def test_invoice_mcp_gets_a_csv_mapping_837p_elements(harness: ServiceHarness) -> None:
    await _record(harness, range(50, 52), mcp="partnership")
    batch = (await post(harness, "/v1/claims/batches", {"mcp_code": "partnership"}, who="hub")).json()
    assert batch["file_kind"] == "invoice"
    rows = list(csv.DictReader(io.StringIO(store(harness).get(batch["file"]["uri"]).decode())))
    assert len(rows) == 2 and rows[0]["procedure_code"] == "G9008" and rows[0]["billing_provider_npi"] == "1234567893"
    assert {r["claim_total"] for r in rows} == {"350"}


async def test_control_numbers_are_per_mcp(harness: ServiceHarness) -> None:
    await _record(harness, range(60, 61))
    await _record(harness, range(61, 62), mcp="lacare")
    hn = (await post(harness, "/v1/claims/batches", {"mcp_code": "healthnet"}, who="hub")).json()
    la = (await post(harness, "/v1/claims/batches", {"mcp_code": "lacare"}, who="hub")).json()
    assert hn["interchange_control_number"] == la["interchange_control_number"] == 1
    text = store(harness).get(la["file"]["uri"]).decode()
    assert "NM1*85*2*HARBOR COMMUNITY SERVICES*****XX*1245319599~" in text  # lacare: the CBO bills
    unknown = await post(harness, "/v1/claims/batches", {"mcp_code": "molina"}, who="hub")
    assert unknown.status_code == 404


async def test_claim_filters_search_history_and_audit(harness: ServiceHarness, clock: FixedClock) -> None:
    ids = await _record(harness, range(70, 72))
    await _record(harness, range(72, 73), service_date="2025-02-10")
    by_status = (await harness.client.get("/v1/claims?status=draft&service_from=2025-03-01",
                                          headers=harness.headers("hub"))).json()
    assert sorted(c["id"] for c in by_status["items"]) == sorted(ids)
    page = (await harness.client.get("/v1/claims?limit=2", headers=harness.headers("hub"))).json()
    rest = (await harness.client.get(f"/v1/claims?limit=2&cursor={page['next_cursor']}",
                                     headers=harness.headers("hub"))).json()
    assert len(page["items"]) == 2 and len(rest["items"]) == 1 and rest["next_cursor"] is None
    search = (await post(harness, "/v1/claims/search", {"member_cin": testkit.cin(70)}, who="hub")).json()
    assert [c["id"] for c in search["items"]] == [ids[0]]
    clock.advance(timedelta(days=45))
    aged = (await harness.client.get("/v1/claims?min_age_days=40", headers=harness.headers("hub"))).json()
    assert len(aged["items"]) == 3 and aged["items"][0]["age_days"] == 45
    young = await harness.client.get("/v1/claims?max_age_days=10", headers=harness.headers("hub"))
    assert young.json()["items"] == []
    bad = await harness.client.get("/v1/claims?cursor=nonsense", headers=harness.headers("hub"))
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "query.cursor"
    detail = await claim(harness, ids[0])
    assert detail["history"][0]["action"] == "opened" and detail["member"]["cin"] == testkit.cin(70)
    async with harness.runtimes["claims"].uow() as uow:
        reads = await uow.session.scalar(select(func.count()).select_from(audit_event).where(
            audit_event.c.action == "claim.read", audit_event.c.resource_id == ids[0]))
        recorded = await uow.session.scalar(select(func.count()).select_from(audit_event).where(
            audit_event.c.action == "encounter.recorded"))
    assert reads == 1 and recorded == 3


async def test_scheduled_batch_runs_and_rearms(tmp_path: Path, clock: FixedClock) -> None:
    billing = testkit.make_billing(healthnet={"schedule": {"at": "18:00:00", "weekdays": [0, 1, 2, 3, 4]}})
    async with service_harness([definition(clock=clock, billing=billing)], tmp_path, keys=KEYS) as h:
        await _record(h, range(80, 82))
        runtime = h.runtimes["claims"]
        scheduling = runtime.background[0]
        # 2025-03-20 is a Thursday; 10:00 Pacific now, the batch is due at 18:00 Pacific (01:00 UTC next day).
        fired = await scheduling.scheduler.fire_due(datetime(2025, 3, 21, 1, 0, 1, tzinfo=UTC))  # type: ignore[attr-defined]
        assert fired == 1
        batches = (await h.client.get("/v1/claims/batches", headers=h.headers("hub"))).json()
        assert len(batches) == 1 and batches[0]["trigger"] == "schedule" and batches[0]["claims"] == 2
        async with runtime.uow() as uow:
            timer = runtime.definition.tables.timer
            due = (await uow.session.execute(select(timer.c.due_at).where(timer.c.status == "pending"))).scalars().all()
        assert [d.replace(tzinfo=UTC) for d in due] == [datetime(2025, 3, 22, 1, 0, tzinfo=UTC)]  # Friday 18:00 PDT



async def test_scheduled_batch_goes_out_without_a_bad_claim_and_always_rearms(tmp_path: Path,
                                                                              clock: FixedClock) -> None:
    billing = testkit.make_billing(healthnet={"schedule": {"at": "18:00:00", "weekdays": [0, 1, 2, 3, 4]}})
    async with service_harness([definition(clock=clock, billing=billing)], tmp_path, keys=KEYS) as h:
        claim_ids = await _record(h, range(83, 86))
        await change_claim(h, claim_ids[0], prior_authorization_number="LAC~1")
        runtime = h.runtimes["claims"]
        scheduler = runtime.background[0].scheduler  # type: ignore[attr-defined]
        timer = runtime.definition.tables.timer

        async def timers() -> list[tuple[str, datetime]]:
            async with runtime.uow() as uow:
                rows = (await uow.session.execute(select(timer.c.status, timer.c.due_at).order_by(timer.c.due_at)))
                return [(status, due.replace(tzinfo=UTC)) for status, due in rows.all()]

        # Thursday 18:00 PDT: the claim the 837P cannot carry is rejected alone, the other two go out.
        assert await scheduler.fire_due(datetime(2025, 3, 21, 1, 0, 1, tzinfo=UTC)) == 1
        batches = (await h.client.get("/v1/claims/batches", headers=h.headers("hub"))).json()
        assert len(batches) == 1 and batches[0]["claims"] == 2
        assert await statuses(h, claim_ids) == ["rejected", "batched", "batched"]

        # Friday: a run that fails outside any claim (control numbers exhausted) keeps the drafts and still arms
        # Monday's run: the timer is never left failed.
        (late,) = await _record(h, range(86, 87))
        async with runtime.uow() as uow:
            counter = await uow.batches.lock_control_numbers("healthnet")
            counter.interchange = counter.group_number = 999_999_999
            await uow.commit()
        assert await scheduler.fire_due(datetime(2025, 3, 22, 1, 0, 1, tzinfo=UTC)) == 1
        assert await statuses(h, [late]) == ["draft"]
        assert await timers() == [("fired", datetime(2025, 3, 21, 1, 0, tzinfo=UTC)),
                                  ("fired", datetime(2025, 3, 22, 1, 0, tzinfo=UTC)),
                                  ("pending", datetime(2025, 3, 25, 1, 0, tzinfo=UTC))]
