"""RTF, OTF and referral-file rows from the gateway's projections, including the closed-loop referral fields."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
import yaml
from sftp_gateway.domain.profile import Layout, ProfileError, Quoting, parse_profile
from sftp_gateway.domain.records import RECORDS, RTF_ECM_STATUSES, WRITTEN_CODES
from sftp_gateway.domain.returns import (
    AuthorizationView,
    EncounterView,
    MemberOnFile,
    ReferralLoopView,
    ReturnOptions,
    build_otf_rows,
    build_referral_rows,
    build_rtf_rows,
)
from sftp_gateway.domain.tabular import parse_table, render_table, unmapped_codes

from shared.contracts.gateway import FileKind

PACKAGED = Path(__file__).resolve().parents[2] / "sftp_gateway/profiles"
PROFILE = parse_profile((PACKAGED / "healthnet.yaml").read_text())
PROFILES = {p.mcp_code: p for p in (parse_profile(f.read_text()) for f in sorted(PACKAGED.glob("*.yaml")))}
MEMBER = MemberOnFile(cin="90000001A", last_name="Testperson", first_name="Ana", birth_date=date(1980, 1, 15),
                      address_line1="1 Main St", city="Los Angeles", state="CA", zip="90001")
OPTIONS = ReturnOptions(closed_loop_exempt=frozenset({"sobering_centers"}))


def auth(authorization_id: str = "auth_1", **changes: object) -> AuthorizationView:
    values: dict[str, object] = dict(
        authorization_id=authorization_id, mcp_code="healthnet", program="ecm", status="approved",
        requested_at=datetime(2026, 9, 20, 17, tzinfo=UTC), member=MEMBER, referral_id="ref_1", pof_codes=("1a",),
        period_start=date(2026, 10, 1), period_end=date(2027, 9, 30))
    values.update(changes)
    return AuthorizationView(**values)  # type: ignore[arg-type]


def encounter(n: int, day: date, *, modifiers: tuple[str, ...] = ("U2",), outreach: bool = False,
              authorization_id: str | None = "auth_1") -> EncounterView:
    return EncounterView(encounter_id=f"enc_{n}", authorization_id=authorization_id, program="ecm", service_date=day,
                         hcpcs="G9012", modifiers=modifiers, units=Decimal("2"), outreach_attempt=outreach)


LOOP = ReferralLoopView(referral_id="ref_1", status="closed", changed_at=datetime(2026, 10, 20, 18, tzinfo=UTC),
                        closure_reason="member_declined_services")


def test_rtf_row_carries_enrollment_contacts_and_closed_loop_fields() -> None:
    encounters = {"auth_1": [encounter(1, date(2026, 10, 3)), encounter(2, date(2026, 10, 9), modifiers=("U2", "GQ")),
                             encounter(3, date(2026, 10, 28)), encounter(4, date(2026, 11, 2)),
                             encounter(5, date(2026, 10, 1), outreach=True)]}
    [row] = build_rtf_rows("2026-10", PROFILE, [auth()], {"ref_1": LOOP}, encounters, date(2026, 11, 5), OPTIONS)
    assert row["cin"] == "90000001A" and row["ecm_status"] == "enrolled"
    assert (row["enrollment_start"], row["enrollment_end"]) == (date(2026, 10, 1), date(2027, 9, 30))
    assert (row["in_person_contacts"], row["telephonic_contacts"]) == (2, 1)
    assert row["latest_encounter_date"] == date(2026, 10, 28)  # November's encounter is after the period
    assert (row["referral_status"], row["referral_status_date"], row["referral_closure_reason"]) == (
        "closed", date(2026, 10, 20), "member_declined_services")
    assert row["mcp_id"] == "HN-CA-ECM" and row["provider_npi"] == "1234567893"


def test_rtf_discontinued_member_and_rows_outside_the_period() -> None:
    closed = auth("auth_2", status="closed", ended_on=date(2026, 10, 15), end_reason="moved_out_of_county",
                  referral_id=None, member=MemberOnFile(cin="90000002A", last_name="Testperson", first_name="Bo",
                                                         birth_date=date(1975, 5, 5)))
    later = auth("auth_3", period_start=date(2026, 12, 1), requested_at=datetime(2026, 11, 20, tzinfo=UTC),
                 referral_id=None)
    rows = build_rtf_rows("2026-10", PROFILE, [closed, later], {}, {}, date(2026, 11, 5), OPTIONS)
    assert [r["cin"] for r in rows] == ["90000002A"]
    assert (rows[0]["ecm_status"], rows[0]["discontinuation_date"], rows[0]["discontinuation_reason"]) == (
        "discontinued", date(2026, 10, 15), "moved_out_of_county")
    assert "referral_status" not in rows[0]


def test_closed_loop_fields_only_from_july_2025_and_never_for_sobering_centers() -> None:
    old = auth(requested_at=datetime(2025, 5, 2, tzinfo=UTC), period_start=date(2025, 5, 10))
    early_loop = ReferralLoopView("ref_1", "accepted", datetime(2025, 6, 3, 18, tzinfo=UTC))
    [row] = build_rtf_rows("2025-06", PROFILE, [old], {"ref_1": early_loop}, {}, date(2025, 7, 5), OPTIONS)
    assert "referral_status" not in row
    sobering = auth("auth_9", program="cs", cs_code="sobering_centers")
    assert build_rtf_rows("2026-10", PROFILE, [sobering], {"ref_1": LOOP}, {}, date(2026, 11, 5), OPTIONS) == []
    housing = auth("auth_8", program="cs", cs_code="housing_transition_navigation")
    [cs_row] = build_rtf_rows("2026-10", PROFILE, [housing], {"ref_1": LOOP}, {}, date(2026, 11, 5), OPTIONS)
    assert cs_row["referral_status"] == "closed" and cs_row["ecm_status"] is None


def test_otf_rows_mark_success_by_later_engagement_and_count_unattributed() -> None:
    encounters = [encounter(1, date(2026, 10, 2), modifiers=("U8",), outreach=True),
                  encounter(2, date(2026, 10, 6), modifiers=("U8", "GQ"), outreach=True),
                  encounter(3, date(2026, 10, 7)),
                  encounter(4, date(2026, 10, 8), modifiers=("U8",), outreach=True),
                  encounter(5, date(2026, 10, 9), outreach=True, authorization_id=None)]
    result = build_otf_rows("2026-10", PROFILE, 15, {"auth_1": auth()}, encounters, date(2026, 11, 5))
    assert [(r["outreach_date"], r["outreach_method"], r["outreach_successful"], r["outreach_minutes"])
            for r in result.rows] == [(date(2026, 10, 2), "in_person", True, 30),
                                      (date(2026, 10, 6), "phone", True, 30),
                                      (date(2026, 10, 8), "in_person", False, 30)]
    assert result.unattributed == 1


def test_referral_rows_carry_the_request() -> None:
    request = auth(status="requested", program="cs", cs_code="recuperative_care", urgency="expedited",
                   decision_due=datetime(2026, 9, 23, 17, tzinfo=UTC), period_start=None, period_end=None)
    [row] = build_referral_rows(PROFILE, [request])
    assert (row["referral_id"], row["requested_service"], row["urgency"], row["decision_due"]) == (
        "auth_1", "recuperative_care", "expedited", date(2026, 9, 23))
    assert row["birth_date"] == date(1980, 1, 15)


def test_profile_fixture_is_the_packaged_one() -> None:
    assert yaml.safe_load((Path(__file__).resolve().parents[2] / "sftp_gateway/profiles/healthnet.yaml")
                          .read_text())["mcp_code"] == PROFILE.mcp_code


# Every delimiter an MCP layout uses, a quote and a line break, in the member's own details.
AWKWARD = MemberOnFile(cin="90000002A", last_name='Testperson, "Jr" | Sr', first_name="Ana\tMaria",
                       birth_date=date(1980, 1, 15), address_line1="100 Main St | Apt 4; rear\r\nBuilding 2",
                       city="Los Angeles", state="CA", zip="90001", phone="555-555-0101")


def generated_rows(mcp: str, kind: FileKind) -> list[dict[str, object]]:
    profile = PROFILES[mcp]
    authorization = auth(mcp_code=mcp, member=AWKWARD)
    outreach = [encounter(1, date(2026, 10, 2), modifiers=("U8",), outreach=True), encounter(2, date(2026, 10, 7))]
    if kind is FileKind.RTF:
        return build_rtf_rows("2026-10", profile, [authorization], {"ref_1": LOOP},
                              {"auth_1": outreach}, date(2026, 11, 5), OPTIONS)
    if kind is FileKind.OTF:
        return build_otf_rows("2026-10", profile, 15, {"auth_1": authorization}, outreach, date(2026, 11, 5)).rows
    return build_referral_rows(profile, [auth(mcp_code=mcp, member=AWKWARD, status="requested")])


@pytest.mark.parametrize(("mcp", "kind"), [(mcp, kind) for mcp, profile in PROFILES.items()
                                           for kind in (FileKind.RTF, FileKind.OTF, FileKind.REFERRAL)
                                           if kind in profile.layouts])
def test_every_generated_file_parses_back_with_its_own_layout(mcp: str, kind: FileKind) -> None:
    layout = PROFILES[mcp].layouts[kind]
    rows = generated_rows(mcp, kind)
    assert rows
    back = parse_table(render_table(rows, layout, RECORDS[kind]), layout, RECORDS[kind])
    assert back.problems == []
    assert len(back.rows) == len(rows)
    for row, parsed in zip(rows, back.rows, strict=True):
        for canonical in layout.columns.values():
            value = row.get(canonical)
            if value is None or value == "":
                continue
            if isinstance(value, str):
                # Unquoted layouts cannot carry a delimiter or line break: those become single spaces.
                value = " ".join(value.replace(layout.delimiter, " ").split()) if layout.quoting is Quoting.NONE \
                    and any(c in value for c in (layout.delimiter, "\r", "\n")) else value.strip()
            assert parsed.values.get(canonical) == value, canonical


# Coded columns: every status the gateway writes has the MCP's code, a profile missing one is refused at load, a
# row with a code the layout cannot translate is held back, and the homelessness flag is reported.

# (authorization status, ended_on) -> the canonical ECM status it stands at on the October 2026 RTF.
STATUSES = {
    "requested": "pending", "approved": "enrolled", "denied": "denied", "closed": "discontinued",
    "expired": "expired", "suspended": "suspended",
}
# What each packaged profile writes for a suspended authorization (L.A. Care maps no statuses: its words).
SUSPENDED_CODE = {"healthnet": "S", "lacare": "suspended"}
WITH_RTF = sorted(mcp for mcp, profile in PROFILES.items() if FileKind.RTF in profile.layouts)


def rtf_rows(mcp: str, status: str, **homelessness: bool) -> list[dict[str, object]]:
    ended = date(2026, 10, 25) if status in ("closed", "expired") else None
    return build_rtf_rows("2026-10", PROFILES[mcp], [auth(mcp_code=mcp, status=status, ended_on=ended)],
                          {"ref_1": LOOP}, {"auth_1": [encounter(1, date(2026, 10, 7))]}, date(2026, 11, 5), OPTIONS,
                          homelessness)


def cells(content: bytes, layout: Layout) -> list[dict[str, str]]:
    lines = content.decode(layout.encoding).splitlines()[1:]
    return [dict(zip(layout.columns, line.split(layout.delimiter), strict=True)) for line in lines] \
        if layout.delimiter == "|" else _csv(content, layout)


def _csv(content: bytes, layout: Layout) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(content.decode(layout.encoding)), delimiter=layout.delimiter))


def test_every_status_the_rtf_builder_writes_is_a_known_canonical_status() -> None:
    assert {rtf_rows("healthnet", s)[0]["ecm_status"] for s in STATUSES} == RTF_ECM_STATUSES


@pytest.mark.parametrize("mcp", WITH_RTF)
def test_rtf_for_a_suspended_authorization_writes_the_mcps_code(mcp: str) -> None:
    layout = PROFILES[mcp].layouts[FileKind.RTF]
    rows = rtf_rows(mcp, "suspended")
    assert unmapped_codes(rows, layout) == []
    [written] = cells(render_table(rows, layout, RECORDS[FileKind.RTF]), layout)
    assert written[layout.column_for("ecm_status") or ""] == SUSPENDED_CODE[mcp]


@pytest.mark.parametrize(("mcp", "status"), [(m, s) for m in WITH_RTF for s in STATUSES])
def test_every_generated_rtf_parses_back_and_its_coded_columns_hold_allowed_codes(mcp: str, status: str) -> None:
    layout = PROFILES[mcp].layouts[FileKind.RTF]
    rows = rtf_rows(mcp, status, **{MEMBER.cin: True})
    content = render_table(rows, layout, RECORDS[FileKind.RTF])
    back = parse_table(content, layout, RECORDS[FileKind.RTF])
    assert back.problems == [] and len(back.rows) == 1
    assert back.rows[0].values["ecm_status"] == STATUSES[status]
    [written] = cells(content, layout)
    for field, mapping in layout.value_maps.items():
        column = layout.column_for(field)
        if column is not None and written[column]:
            assert written[column] in mapping, (field, written[column])


@pytest.mark.parametrize("mcp", sorted(m for m, p in PROFILES.items() if FileKind.OTF in p.layouts))
def test_every_generated_otf_holds_allowed_outreach_codes(mcp: str) -> None:
    layout = PROFILES[mcp].layouts[FileKind.OTF]
    outreach = [encounter(1, date(2026, 10, 2), modifiers=("U8",), outreach=True),
                encounter(2, date(2026, 10, 3), modifiers=("U8", "GQ"), outreach=True)]
    rows = build_otf_rows("2026-10", PROFILES[mcp], 15, {"auth_1": auth(mcp_code=mcp)}, outreach,
                          date(2026, 11, 5)).rows
    assert unmapped_codes(rows, layout) == []


@pytest.mark.parametrize(("kind", "field"), [(k, f) for k, fields in WRITTEN_CODES.items() for f in fields])
def test_a_profile_that_maps_a_coded_field_partially_is_refused_at_load(kind: FileKind, field: str) -> None:
    data = yaml.safe_load((PACKAGED / "healthnet.yaml").read_text())
    mapping = data["layouts"][kind.value].setdefault("value_maps", {}).setdefault(field, {})
    dropped = sorted(WRITTEN_CODES[kind][field])[0]
    mapping.clear()
    mapping.update({f"C{i}": v for i, v in enumerate(sorted(WRITTEN_CODES[kind][field])) if v != dropped})
    with pytest.raises(ProfileError) as refused:
        parse_profile(yaml.safe_dump(data), "healthnet.yaml")
    message = str(refused.value)
    column = next(c for c, f in data["layouts"][kind.value]["columns"].items() if f == field)
    assert "healthnet" in message and column in message and dropped in message


def test_a_row_whose_status_has_no_code_is_reported_not_written_as_the_word() -> None:
    layout = PROFILES["healthnet"].layouts[FileKind.RTF].model_copy(
        update={"value_maps": {"ecm_status": {"E": "enrolled"}}})
    rows = rtf_rows("healthnet", "approved") + rtf_rows("healthnet", "suspended")
    [problem] = unmapped_codes(rows, layout)
    assert (problem.row, problem.column, problem.field, problem.rule) == (2, "ECM_Status", "ecm_status",
                                                                          "unmapped-code")


@pytest.mark.parametrize("mcp", [m for m in WITH_RTF
                                 if "homeless" in PROFILES[m].layouts[FileKind.RTF].columns.values()])
def test_homelessness_flag_is_reported_and_empty_only_when_unknown(mcp: str) -> None:
    layout = PROFILES[mcp].layouts[FileKind.RTF]
    column = layout.column_for("homeless") or ""
    for known, expected in (({MEMBER.cin: True}, "Y"), ({MEMBER.cin: False}, "N"), ({}, "")):
        [written] = cells(render_table(rtf_rows(mcp, "approved", **known), layout, RECORDS[FileKind.RTF]), layout)
        assert written[column] == expected
