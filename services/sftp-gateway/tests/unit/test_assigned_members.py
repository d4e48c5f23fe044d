"""Members the MCP assigns to the hub (a MIF row, no referral, no authorization.requested) reach the RTF: their
approval carries the member, the assignment opens the authorization, and a later period change does not move it."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from gateway_testing import Gateway, wait_for
from sftp_gateway.domain.profile import parse_profile
from sftp_gateway.domain.projection import authorization_changes
from sftp_gateway.domain.returns import AuthorizationView, MemberOnFile, build_rtf_rows

from shared.bus.message import encode
from shared.contracts.authorizations import AuthorizationApproved, AuthorizationClosed, AuthorizationOrigin
from shared.contracts.values import Address, MemberDemographics, Program, ServiceRequested
from shared.envelope import new_event

PROFILE = parse_profile((Path(__file__).resolve().parents[2] / "sftp_gateway/profiles/healthnet.yaml").read_text())
ASSIGNED_AT = datetime(2026, 10, 12, 17, tzinfo=UTC)  # the MIF row was applied on 12 October
ECM = ServiceRequested(program=Program.ECM, pof_codes=("1a", "3"))


def make_assigned_view(**changes: Any) -> AuthorizationView:
    values: dict[str, Any] = dict(
        authorization_id="auth_assigned", mcp_code="healthnet", program="ecm", status="approved",
        requested_at=ASSIGNED_AT, referral_id=None, pof_codes=("1a", "3"), period_start=date(2026, 10, 1),
        period_end=date(2027, 9, 30), mcp_authorization_number="HN-AUTH-5",
        member=MemberOnFile(cin="90000005A", last_name="Testperson", first_name="Member5",
                            birth_date=date(1980, 1, 15), address_line1="1 Main St", city="Los Angeles",
                            state="CA", zip="90001"))
    values.update(changes)
    return AuthorizationView(**values)


def test_an_assigned_member_without_a_referral_gets_an_rtf_row_with_enrollment_status() -> None:
    [row] = build_rtf_rows("2026-10", PROFILE, [make_assigned_view()], {}, {}, date(2026, 11, 5))
    assert (row["cin"], row["last_name"], row["city"]) == ("90000005A", "Testperson", "Los Angeles")
    assert (row["ecm_status"], row["enrollment_start"], row["enrollment_end"]) == (
        "enrolled", date(2026, 10, 1), date(2027, 9, 30))
    assert (row["pof_indicator"], row["pof_codes"]) == (True, ("1a", "3"))
    assert (row["in_person_contacts"], row["telephonic_contacts"], row["latest_encounter_date"]) == (0, 0, None)
    assert "referral_status" not in row  # no referral: no closed-loop fields to report


def test_an_assignment_is_reported_from_the_month_it_was_made() -> None:
    assert build_rtf_rows("2026-09", PROFILE, [make_assigned_view()], {}, {}, date(2026, 10, 5)) == []
    [row] = build_rtf_rows("2026-11", PROFILE, [make_assigned_view()], {}, {}, date(2026, 12, 5))
    assert row["ecm_status"] == "enrolled"


def test_the_authorization_keeps_the_earliest_opening_whichever_event_is_newer() -> None:
    stored = {"status": "approved", "updated_at": ASSIGNED_AT, "requested_at": ASSIGNED_AT}
    later = ASSIGNED_AT + timedelta(days=40)  # a period change: a newer approval, decided later
    assert "requested_at" not in authorization_changes(stored, {"status": "approved", "requested_at": later}, later)
    replayed = {"status": "approved", "updated_at": later, "requested_at": later}  # the change arrived first
    assert authorization_changes(replayed, {"status": "approved", "requested_at": ASSIGNED_AT}, ASSIGNED_AT) == {
        "requested_at": ASSIGNED_AT}


# ------------------------------------------------------------------------------------ through the service

def make_member(n: int) -> MemberDemographics:
    return MemberDemographics(cin=f"{90000000 + n:08d}A", last_name="Testperson", first_name=f"Member{n}",
                              birth_date=date(1980, 1, 15), phone="5555550105",
                              address=Address(line1="1 Main St", city="Los Angeles", zip="90001"))


def make_assignment(n: int, *, decided_at: datetime = ASSIGNED_AT, period_end: date = date(2027, 9, 30),
                    with_member: bool = True) -> AuthorizationApproved:
    return AuthorizationApproved(
        authorization_id=f"auth_{n}", mcp_code="healthnet", service=ECM, decided_at=decided_at,
        period_start=date(2026, 10, 1), period_end=period_end, mcp_authorization_number=f"HN-AUTH-{n}",
        origin=AuthorizationOrigin.MCP_ASSIGNMENT, assigned_provider_npi="1234567893",
        member=make_member(n) if with_member else None)


async def publish(gateway: Gateway, *events: tuple[AuthorizationApproved | AuthorizationClosed, datetime]) -> None:
    await gateway.harness.bus.publish([encode(new_event(d, subject=d.authorization_id, source="authorizations",
                                                        time=at)) for d, at in events])


async def test_members_assigned_by_the_mcp_appear_on_the_rtf(gateway: Gateway) -> None:
    changed_at = ASSIGNED_AT + timedelta(days=10)
    closed = AuthorizationClosed(authorization_id="auth_6", mcp_code="healthnet", reason="discontinued_by_mcp",
                                 effective=date(2026, 10, 28))
    await publish(
        gateway,
        (make_assignment(5), ASSIGNED_AT),
        # The MCP shortened member 5's period in a later MIF: a newer approval of the same assignment.
        (make_assignment(5, decided_at=changed_at, period_end=date(2027, 3, 31)), changed_at),
        # Member 6's discontinuation is told before its assignment (a replayed dead letter).
        (closed, ASSIGNED_AT + timedelta(days=16)), (make_assignment(6), ASSIGNED_AT),
        # An approval written before approvals carried the member: nothing to report it with.
        (make_assignment(7, with_member=False), ASSIGNED_AT))

    async def projected() -> bool:
        async with gateway.runtime.uow() as uow:
            five, six, seven = [await uow.projections.authorization(f"auth_{n}") for n in (5, 6, 7)]
        return (five is not None and five.period_end == date(2027, 3, 31) and six is not None
                and six.cin is not None and six.status == "closed" and seven is not None)

    await wait_for(projected)
    _, content = await gateway.generate("healthnet", "rtf", "2026-10")
    rows = {r["Member_CIN"]: r for r in csv.DictReader(io.StringIO(content.decode()))}
    assert sorted(rows) == ["90000005A", "90000006A"]
    five, six = rows["90000005A"], rows["90000006A"]
    assert (five["Member_Last_Name"], five["ECM_Status"], five["ECM_Enrollment_Start_Date"],
            five["ECM_Enrollment_End_Date"], five["POF"], five["Referral_Status"]) == (
        "Testperson", "E", "10/01/2026", "03/31/2027", "1a;3", "")
    assert (six["ECM_Status"], six["Discontinuation_Date"], six["Discontinuation_Reason"]) == (
        "T", "10/28/2026", "discontinued_by_mcp")
