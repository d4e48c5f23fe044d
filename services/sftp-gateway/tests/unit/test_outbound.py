"""Outbound: 837P/270 deliveries, referral files, RTF/OTF generation from events (closed-loop fields), PGP,
and the expected-file calendar."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import gnupg
import pytest
from gateway_testing import HN_MIF_HEADER, Gateway, hn_mif, hn_mif_row, running_gateway, wait_for, x12

from shared.bus.message import encode
from shared.contracts.authorizations import (
    AuthorizationApproved,
    AuthorizationClosed,
    AuthorizationOrigin,
    AuthorizationRequested,
    AuthorizationSuspended,
)
from shared.contracts.claims import ClaimBatchCreated, EncounterRecorded
from shared.contracts.eligibility import EligibilityBatchCreated
from shared.contracts.referrals import ReferralStatus, ReferralStatusChanged
from shared.contracts.values import Address, MemberDemographics, Program, ServiceRequested, Urgency
from shared.envelope import new_event
from shared.reference.calendar import PACIFIC

FILE_TOPIC = "sftp-gateway.file.v1"


async def publish(gateway: Gateway, *data: Any) -> None:
    messages = [encode(new_event(d, subject=getattr(d, "authorization_id", None) or getattr(d, "batch_id", None)
                                 or getattr(d, "referral_id", None) or d.encounter_id, source="test"))
                for d in data]
    await gateway.harness.bus.publish(messages)


def member(n: int = 1) -> MemberDemographics:
    return MemberDemographics(cin=f"{90000000 + n:08d}A", last_name="Testperson", first_name=f"Member{n}",
                              birth_date=date(1980, 1, 15), phone="5555550101",
                              address=Address(line1="1 Main St", city="Los Angeles", zip="90001"))


def requested(n: int, mcp: str, **changes: Any) -> AuthorizationRequested:
    values: dict[str, Any] = dict(
        authorization_id=f"auth_{n}", referral_id=f"ref_{n}", member=member(n), mcp_code=mcp,
        service=ServiceRequested(program=Program.ECM, pof_codes=("1a",)), urgency=Urgency.STANDARD,
        origin=AuthorizationOrigin.REFERRAL, requested_at=datetime(2026, 9, 28, 17, tzinfo=UTC),
        decision_due=datetime(2026, 10, 5, 23, tzinfo=UTC), calendar="us-ca-state")
    values.update(changes)
    return AuthorizationRequested(**values)


def rows_of(content: bytes, delimiter: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(content.decode()), delimiter=delimiter))


async def test_claim_and_eligibility_batches_are_delivered_once(gateway: Gateway) -> None:
    claim_file = gateway.ports.files.put(x12("HC", "005010X222A1", [["BHT", "0019", "00", "B1"]]))
    eligibility_file = gateway.ports.files.put(x12("HS", "005010X279A1", [["BHT", "0022", "13", "E1"]]))
    batch = ClaimBatchCreated(batch_id="batch_1", mcp_code="healthnet", claims=2, total_amount=Decimal("700.00"),
                              file=claim_file, created_at=datetime.now(UTC))
    await publish(gateway, batch, batch, EligibilityBatchCreated(batch_id="elig_1", mcp_code="lacare", members=1,
                                                                  file=eligibility_file, created_at=datetime.now(UTC)))
    await wait_for(lambda: _delivered(gateway, 2))
    healthnet = gateway.outbound("healthnet")
    [name] = [n for n in healthnet if n.startswith("HN_837P_")]
    assert name.endswith("_batch_1.x12") and healthnet[name] == gateway.ports.files.get(claim_file)
    assert [n for n in gateway.outbound("lacare") if n.startswith("LACARE_270_")]
    kinds = sorted(e.data.kind for e in gateway.events(FILE_TOPIC, "file.delivered"))
    assert kinds == ["270", "837p"]


async def _delivered(gateway: Gateway, count: int) -> bool:
    await gateway.settle()
    return len(gateway.events(FILE_TOPIC, "file.delivered")) >= count


async def test_authorization_requests_become_referral_files_for_sftp_mcps(gateway: Gateway) -> None:
    await publish(gateway, requested(1, "lacare"), requested(2, "healthnet"))  # healthnet takes referrals by API
    await wait_for(lambda: _delivered(gateway, 1))
    [(name, content)] = [(n, c) for n, c in gateway.outbound("lacare").items() if "REFERRAL" in n]
    assert name.startswith("LAC_ECM_REFERRAL_") and name.endswith("_001.txt")
    [row] = rows_of(content, "|")
    assert (row["REFERRAL_ID"], row["CIN"], row["DOB"], row["POF_CODES"], row["SERVICE"]) == (
        "auth_1", "90000001A", "19800115", "1a", "ecm")
    assert not [n for n in gateway.outbound("healthnet") if "REFERRAL" in n]


async def test_rtf_and_otf_reflect_the_events_including_closed_loop_fields(gateway: Gateway) -> None:
    october = datetime(2026, 10, 20, 18, tzinfo=UTC)
    await publish(
        gateway, requested(1, "healthnet"), requested(2, "healthnet"),
        AuthorizationApproved(authorization_id="auth_1", referral_id="ref_1", mcp_code="healthnet",
                              service=ServiceRequested(program=Program.ECM, pof_codes=("1a",)),
                              decided_at=datetime(2026, 9, 30, tzinfo=UTC), period_start=date(2026, 10, 1),
                              period_end=date(2027, 9, 30), mcp_authorization_number="HN-A-1"),
        AuthorizationApproved(authorization_id="auth_2", referral_id="ref_2", mcp_code="healthnet",
                              service=ServiceRequested(program=Program.ECM, pof_codes=("1a",)),
                              decided_at=datetime(2026, 9, 30, tzinfo=UTC), period_start=date(2026, 10, 1),
                              period_end=date(2027, 9, 30)),
        AuthorizationClosed(authorization_id="auth_2", mcp_code="healthnet", reason="member_moved",
                            effective=date(2026, 10, 25)),
        ReferralStatusChanged(referral_id="ref_1", status=ReferralStatus.IN_SERVICE,
                              previous_status=ReferralStatus.ACCEPTED, changed_at=october, mcp_code="healthnet"),
        ReferralStatusChanged(referral_id="ref_2", status=ReferralStatus.CLOSED, changed_at=october,
                              reason="member_declined_services", mcp_code="healthnet"),
        # An older status change arriving late does not overwrite the newer one.
        ReferralStatusChanged(referral_id="ref_2", status=ReferralStatus.ACCEPTED,
                              changed_at=october - timedelta(days=5), mcp_code="healthnet"),
        *[EncounterRecorded(encounter_id=f"enc_{i}", cbo_organization_id="org_cbo", mcp_code="healthnet",
                            authorization_id="auth_1", program=Program.ECM, service_date=date(2026, 10, d),
                            hcpcs="G9012", modifiers=mods, units=Decimal("2"), outreach_attempt=outreach)
          for i, (d, mods, outreach) in enumerate([(2, ("U8",), True), (6, ("U8", "GQ"), True), (9, ("U2",), False),
                                                   (14, ("U2", "GQ"), False)])])
    await wait_for(lambda: _encounters(gateway, 4))
    answer, content = await gateway.generate("healthnet", "rtf", "2026-10")
    assert answer["rows"] == 2
    rows = {r["Member_CIN"]: r for r in rows_of(content, ",")}
    one, two = rows["90000001A"], rows["90000002A"]
    assert (one["ECM_Status"], one["ECM_Enrollment_Start_Date"], one["In_Person_Contacts"],
            one["Telephonic_Video_Contacts"], one["Date_Most_Recent_Encounter"]) == ("E", "10/01/2026", "1", "1",
                                                                                     "10/14/2026")
    assert (one["Referral_Status"], one["Referral_Status_Update_Date"], one["Referral_Loop_Closure_Reason"]) == (
        "in_service", "10/20/2026", "")
    assert (two["ECM_Status"], two["Discontinuation_Date"], two["Discontinuation_Reason"]) == (
        "T", "10/25/2026", "member_moved")
    assert (two["Referral_Status"], two["Referral_Loop_Closure_Reason"]) == ("closed", "member_declined_services")
    assert answer["file"]["name"].startswith("HN_ECM_RTF_202610_")
    otf = await gateway.client.post("/v1/files/generate", headers=gateway.headers(),
                                    json={"mcp_code": "healthnet", "kind": "otf", "reporting_period": "2026-10"})
    otf_rows = rows_of(gateway.ports.files.get("store://sha256/" + otf.json()["file"]["sha256"]), ",")
    assert [(r["Outreach_Date"], r["Outreach_Method"], r["Outreach_Successful"], r["Outreach_Minutes"])
            for r in otf_rows] == [("10/02/2026", "IP", "Y", "30"), ("10/06/2026", "PH", "Y", "30")]


async def test_rtf_reports_the_mifs_homelessness_flag_and_a_suspension_in_the_mcps_code(gateway: Gateway) -> None:
    homeless = hn_mif_row(1).replace(",5555550001,N,", ",5555550001,Y,")
    await gateway.upload("healthnet", "HN_ECM_MIF_202610.csv",
                         f"{HN_MIF_HEADER}\r\n{homeless}\r\n{hn_mif_row(2)}\r\n".encode())
    await publish(gateway, requested(1, "healthnet"), requested(2, "healthnet"), requested(3, "healthnet"),
                  *[AuthorizationApproved(authorization_id=f"auth_{n}", referral_id=f"ref_{n}", mcp_code="healthnet",
                                          service=ServiceRequested(program=Program.ECM, pof_codes=("1a",)),
                                          decided_at=datetime(2026, 9, 30, tzinfo=UTC),
                                          period_start=date(2026, 10, 1), period_end=date(2027, 9, 30))
                    for n in (1, 2, 3)],
                  AuthorizationSuspended(authorization_id="auth_1", mcp_code="healthnet", reason="member_jailed",
                                         effective=date(2026, 10, 20)))

    async def ready() -> bool:
        async with gateway.runtime.uow() as uow:
            one = await uow.projections.authorization("auth_1")
            views = await uow.projections.authorizations("healthnet")
            flags = await uow.projections.homelessness("healthnet")
        return (one is not None and one.status == "suspended" and len(views) == 3
                and all(v.period_start for v in views) and len(flags) == 2)

    await wait_for(ready)
    _, content = await gateway.generate("healthnet", "rtf", "2026-10")
    rows = {r["Member_CIN"]: r for r in rows_of(content, ",")}
    assert {cin: (r["ECM_Status"], r["Homeless_Indicator"]) for cin, r in rows.items()} == {
        "90000001A": ("S", "Y"), "90000002A": ("E", "N"), "90000003A": ("E", "")}


async def _encounters(gateway: Gateway, count: int) -> bool:
    """Every projection of the test's events is in (they arrive on several partitions, in any order)."""
    async with gateway.runtime.uow() as uow:
        encounters = await uow.projections.encounters("healthnet", date(2030, 1, 1))
        closed = await uow.projections.authorization("auth_2")
        approved = await uow.projections.authorization("auth_1")
        loops = await uow.projections.referral_loops(["ref_1", "ref_2"])
    return (len(encounters) >= count and closed is not None and closed.status == "closed"
            and approved is not None and approved.status == "approved" and len(loops) == 2
            and loops["ref_2"].status == "closed")


async def test_monthly_rtf_runs_on_the_profile_schedule(gateway: Gateway) -> None:
    scheduler = next(p for p in gateway.runtime.background if type(p).__name__ == "SchedulerPart").scheduler
    fired = await scheduler.fire_due(datetime(2026, 12, 5, 7, tzinfo=PACIFIC))  # after Dec 5 06:00 Pacific
    assert fired >= 2
    await gateway.settle()
    names = sorted(gateway.outbound("healthnet"))
    assert any(n.startswith("HN_ECM_RTF_202611_") for n in names) and any(n.startswith("HN_ECM_OTF_202611_")
                                                                          for n in names)


async def test_missing_mif_raises_file_late_and_an_arrived_one_does_not(gateway: Gateway) -> None:
    scheduler = next(p for p in gateway.runtime.background if type(p).__name__ == "SchedulerPart").scheduler
    async with gateway.runtime.uow() as uow:
        timer = uow.tables.timer
        from sqlalchemy import select

        rows = (await uow.session.execute(select(timer.c.subject, timer.c.due_at).where(
            timer.c.kind == "calendar.expected", timer.c.status == "pending"))).all()
    due = {r.subject: r.due_at.replace(tzinfo=UTC) for r in rows}
    assert "healthnet:mif:0" in due and "lacare:other:1" in due
    await gateway.upload("lacare", "LAC_AUTH_STATUS_20261115.txt", b"status file")
    await scheduler.fire_due(max(due.values()) + timedelta(minutes=1))
    await gateway.settle()
    late = {(e.data.mcp_code, e.data.kind) for e in gateway.events(FILE_TOPIC, "file.late")}
    assert ("healthnet", "mif") in late and ("molina", "mif") in late
    assert ("lacare", "other") not in late  # the status file arrived in its window


async def test_a_quarantined_mif_does_not_count_as_arrived(gateway: Gateway) -> None:
    missing_columns = b"Member_CIN,Member_Last_Name\r\n90000001A,Testperson\r\n"
    await gateway.upload("healthnet", "HN_ECM_MIF_202610.csv", missing_columns)
    [quarantined] = gateway.events(FILE_TOPIC, "file.quarantined")
    assert quarantined.data.kind == "mif"
    now = datetime.now(UTC)
    async with gateway.runtime.uow() as uow:
        assert await uow.files.arrivals("healthnet", "mif", now - timedelta(days=1), now + timedelta(days=1)) == 0
    scheduler = next(p for p in gateway.runtime.background if type(p).__name__ == "SchedulerPart").scheduler
    await scheduler.fire_due(now + timedelta(days=62))
    await gateway.settle()
    assert ("healthnet", "mif") in {(e.data.mcp_code, e.data.kind) for e in gateway.events(FILE_TOPIC, "file.late")}


async def test_pgp_round_trip(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """The MCP encrypts to the hub's key; the hub encrypts to the MCP's key (throwaway keys)."""
    mcp_home = tmp_path / "mcp-gnupg"
    mcp_home.mkdir(mode=0o700)
    mcp_gpg = gnupg.GPG(gnupghome=str(mcp_home))
    mcp_key = mcp_gpg.gen_key(mcp_gpg.gen_key_input(key_type="RSA", key_length=2048,
                                                    name_email="edi@molina.example.test", no_protection=True))
    mcp_public = mcp_gpg.export_keys(mcp_key.fingerprint)

    def encrypt_outbound(mcp: str, data: dict[str, Any]) -> None:
        if mcp == "molina":
            data["pgp"] = {"inbound_required": True, "outbound_encrypt": True, "recipient": mcp_key.fingerprint,
                           "public_key": mcp_public}

    async with running_gateway(tmp_path, monkeypatch, change=encrypt_outbound) as gateway:
        hub_gpg = gnupg.GPG(gnupghome=str(gateway.ports.pgp.home))
        hub_key = hub_gpg.gen_key(hub_gpg.gen_key_input(key_type="RSA", key_length=2048,
                                                        name_email="hub@example.test", no_protection=True))
        mcp_gpg.import_keys(hub_gpg.export_keys(hub_key.fingerprint))
        mif = (b"member_cin\tlast_name\tfirst_name\tdate_of_birth\tecm_status\tperiod\n"
               b"90000001A\tTestperson\tAna\t1980-01-15\tActive\t2026-10\n")
        encrypted = bytes(mcp_gpg.encrypt(mif, [hub_key.fingerprint], always_trust=True, armor=True).data)
        assert encrypted.startswith(b"-----BEGIN PGP MESSAGE-----")
        await gateway.upload("molina", "MOL_ECM_MIF_2026-10.tsv.asc", encrypted)
        [row] = gateway.events("sftp-gateway.member_information.v1")
        assert row.data.member.cin == "90000001A"
        [file] = await gateway.files(direction="inbound")
        assert file["encrypted"] and file["content_sha256"] != file["sha256"]
        plain = await gateway.client.get(f"/v1/files/{file['id']}/content", headers=gateway.headers())
        assert plain.content == mif
        # Plaintext refused for an MCP whose profile requires encryption.
        await gateway.upload("molina", "MOL_ECM_MIF_2026-11.tsv", mif.replace(b"2026-10", b"2026-11"))
        [quarantined] = gateway.events(FILE_TOPIC, "file.quarantined")
        assert quarantined.data.reason == "encryption_required"
        # Garbage that claims to be encrypted.
        await gateway.upload("molina", "MOL_ECM_MIF_2026-12.tsv.pgp", b"\x85\x01\x0cnot really pgp")
        reasons = [e.data.reason for e in gateway.events(FILE_TOPIC, "file.quarantined")]
        assert sorted(reasons) == ["decrypt_failed", "encryption_required"]
        # Outbound: a 270 for Molina is encrypted to Molina's key; Molina downloads and decrypts it.
        inquiry = x12("HS", "005010X279A1", [["BHT", "0022", "13", "E1"]])
        await publish(gateway, EligibilityBatchCreated(batch_id="elig_9", mcp_code="molina", members=1,
                                                       file=gateway.ports.files.put(inquiry),
                                                       created_at=datetime.now(UTC)))
        await wait_for(lambda: _delivered(gateway, 1))
        [name] = [n for n in gateway.outbound("molina") if n.startswith("MOLINA_270_")]
        assert name.endswith(".pgp")
        async with gateway.session("molina") as sftp, sftp.open(f"/outbound/{name}", "rb") as handle:
            downloaded = await handle.read()
        assert downloaded != inquiry
        assert bytes(mcp_gpg.decrypt(downloaded).data) == inquiry


async def test_hn_upload_counts_for_its_window(gateway: Gateway) -> None:
    await gateway.upload("healthnet", "HN_ECM_MIF_202610.csv", hn_mif(1))
    async with gateway.runtime.uow() as uow:
        now = datetime.now(UTC)
        assert await uow.files.arrivals("healthnet", "mif", now - timedelta(days=1), now + timedelta(days=1)) == 1
