"""What the hub reports to an MCP in files: the monthly RTF, the OTF and referral files, as canonical rows.

Built from the gateway's own projections of authorization, referral and encounter events (never from another
service's tables). Each function is pure: give it the snapshots, get canonical rows for `render_table`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sftp_gateway.domain.calendar import period_bounds
from sftp_gateway.domain.profile import Profile
from shared.reference.calendar import PACIFIC

# Telephonic or video contact: the GQ modifier (CALAIM.md billing codes: U1+GQ, U2+GQ, U8+GQ).
TELEHEALTH_MODIFIER = "GQ"


@dataclass(frozen=True)
class MemberOnFile:
    """The member details the gateway keeps from authorization.requested (PHI: stays in the database)."""

    cin: str
    last_name: str
    first_name: str
    birth_date: date
    middle_name: str | None = None
    sex: str | None = None
    phone: str | None = None
    address_line1: str | None = None
    address_line2: str | None = None
    city: str | None = None
    state: str | None = None
    zip: str | None = None


@dataclass(frozen=True)
class AuthorizationView:
    """The gateway's projection of one authorization."""

    authorization_id: str
    mcp_code: str
    program: str
    status: str  # requested | approved | denied | pended | closed | expired | suspended
    requested_at: datetime
    member: MemberOnFile
    referral_id: str | None = None
    cs_code: str | None = None
    pof_codes: tuple[str, ...] = ()
    urgency: str | None = None
    decision_due: datetime | None = None
    period_start: date | None = None
    period_end: date | None = None
    ended_on: date | None = None
    end_reason: str | None = None
    mcp_authorization_number: str | None = None


@dataclass(frozen=True)
class ReferralLoopView:
    """The latest closed-loop state of a referral."""

    referral_id: str
    status: str
    changed_at: datetime
    closure_reason: str | None = None


@dataclass(frozen=True)
class EncounterView:
    """An encounter as billed (encounter.recorded)."""

    encounter_id: str
    authorization_id: str | None
    program: str
    service_date: date
    hcpcs: str
    modifiers: tuple[str, ...]
    units: Decimal
    outreach_attempt: bool


@dataclass(frozen=True)
class ReturnOptions:
    """Rules for closed-loop fields: from when they are reported and which services are exempt."""

    closed_loop_from: date = date(2025, 7, 1)  # [rule] closed-loop referral reporting on the RTF
    closed_loop_exempt: frozenset[str] = frozenset()  # CS codes, e.g. sobering centers [rule]


def _local_date(moment: datetime) -> date:
    return moment.astimezone(PACIFIC).date()


def ecm_status(auth: AuthorizationView, month_end: date) -> str:
    """The canonical ECM status of an authorization at the end of the month (profiles map it to labels)."""
    if auth.status in ("requested", "pended"):
        return "pending"
    if auth.status == "denied":
        return "denied"
    if auth.status == "closed" and auth.ended_on is not None and auth.ended_on <= month_end:
        return "discontinued"
    if auth.status == "expired":
        return "expired"
    if auth.status == "suspended":
        return "suspended"
    return "enrolled"


def _active_in(auth: AuthorizationView, start: date, end: date) -> bool:
    if auth.period_start is None:
        return False
    finish = auth.ended_on or auth.period_end or end
    return auth.period_start <= end and finish >= start


def _closed_loop_applies(auth: AuthorizationView, start: date, options: ReturnOptions) -> bool:
    return start >= options.closed_loop_from.replace(day=1) and (auth.cs_code not in options.closed_loop_exempt)


def build_rtf_rows(period: str, profile: Profile, authorizations: Iterable[AuthorizationView],
                   loops: Mapping[str, ReferralLoopView], encounters: Mapping[str, Sequence[EncounterView]],
                   produced_on: date, options: ReturnOptions = ReturnOptions(),
                   homelessness: Mapping[str, bool] | None = None) -> list[dict[str, Any]]:
    """One RTF row per authorization that was active, requested or moved its referral loop in the period.

    ECM rows always; a Community Supports authorization only for its closed-loop referral fields. Rows are
    ordered by member CIN then authorization id so two runs over the same events give the same file.
    `homelessness` is the newest homelessness flag known per CIN (the MCP's own MIF or referral file); a
    member missing from it is reported empty (unknown), never as not homeless.
    """
    homelessness = homelessness or {}
    start, end = period_bounds(period)
    rows: list[tuple[str, str, dict[str, Any]]] = []
    for auth in authorizations:
        loop = loops.get(auth.referral_id) if auth.referral_id else None
        loop_reported = loop is not None and _closed_loop_applies(auth, start, options)
        loop_in_period = loop_reported and loop is not None and start <= _local_date(loop.changed_at) <= end
        requested_in = start <= _local_date(auth.requested_at) <= end
        if auth.program == "ecm":
            if not (_active_in(auth, start, end) or requested_in or loop_in_period):
                continue
        elif not loop_in_period:
            continue
        if _local_date(auth.requested_at) > end:
            continue
        seen = [e for e in encounters.get(auth.authorization_id, ()) if not e.outreach_attempt]
        in_month = [e for e in seen if start <= e.service_date <= end]
        up_to_end = [e.service_date for e in seen if e.service_date <= end]
        telephonic = sum(1 for e in in_month if TELEHEALTH_MODIFIER in e.modifiers)
        member = auth.member
        status = ecm_status(auth, end) if auth.program == "ecm" else None
        discontinued = status == "discontinued"
        row: dict[str, Any] = {
            "mcp_id": profile.mcp_id or profile.mcp_code, "mcp_name": profile.name,
            "cin": member.cin, "last_name": member.last_name, "first_name": member.first_name,
            "homeless": homelessness.get(member.cin),
            "address_line1": member.address_line1, "address_line2": member.address_line2, "city": member.city,
            "state": member.state, "zip": member.zip, "phone": member.phone,
            "pof_indicator": bool(auth.pof_codes) if auth.program == "ecm" else None,
            "pof_codes": auth.pof_codes or None,
            "ecm_status": status,
            "enrollment_start": auth.period_start if auth.program == "ecm" else None,
            "enrollment_end": (auth.ended_on or auth.period_end) if auth.program == "ecm" else None,
            "latest_encounter_date": max(up_to_end) if up_to_end else None,
            "discontinuation_date": auth.ended_on if discontinued else None,
            "discontinuation_reason": auth.end_reason if discontinued else None,
            "discontinuation_reason_code": auth.end_reason if discontinued else None,
            "in_person_contacts": len(in_month) - telephonic if auth.program == "ecm" else None,
            "telephonic_contacts": telephonic if auth.program == "ecm" else None,
            "file_production_date": produced_on, "reporting_period": period,
            "provider_name": profile.provider.name or None, "provider_npi": profile.provider.npi or None,
            "provider_tin": profile.provider.tin or None, "provider_phone": profile.provider.phone or None,
        }
        if loop_reported and loop is not None:
            row["referral_status"] = loop.status
            row["referral_status_date"] = _local_date(loop.changed_at)
            row["referral_closure_reason"] = loop.closure_reason if loop.status in ("closed", "declined",
                                                                                   "withdrawn") else None
        rows.append((member.cin, auth.authorization_id, row))
    return [row for _, _, row in sorted(rows, key=lambda item: (item[0], item[1]))]


@dataclass(frozen=True)
class OtfResult:
    """OTF rows, and how many outreach encounters could not be attributed to a member (no authorization)."""

    rows: list[dict[str, Any]]
    unattributed: int


def build_otf_rows(period: str, profile: Profile, minutes_per_unit: int,
                   authorizations: Mapping[str, AuthorizationView],
                   encounters: Iterable[EncounterView], produced_on: date) -> OtfResult:
    """One OTF row per outreach attempt in the period; successful when the member was engaged afterwards.

    "Successful" is derived: a non-outreach encounter under the same authorization on or after the attempt
    (the events carry no explicit flag) [unconfirmed; documented in docs/decisions/0082].
    """
    start, end = period_bounds(period)
    by_auth: dict[str, list[EncounterView]] = {}
    all_encounters = list(encounters)
    for encounter in all_encounters:
        if encounter.authorization_id:
            by_auth.setdefault(encounter.authorization_id, []).append(encounter)
    rows: list[tuple[str, date, str, dict[str, Any]]] = []
    unattributed = 0
    for encounter in all_encounters:
        if not encounter.outreach_attempt or not (start <= encounter.service_date <= end):
            continue
        auth = authorizations.get(encounter.authorization_id or "")
        if auth is None:
            unattributed += 1
            continue
        engaged = any(not e.outreach_attempt and e.service_date >= encounter.service_date
                      for e in by_auth.get(auth.authorization_id, ()))
        minutes = (encounter.units * minutes_per_unit).quantize(Decimal(1), rounding=ROUND_HALF_UP)
        member = auth.member
        row = {
            "mcp_id": profile.mcp_id or profile.mcp_code, "mcp_name": profile.name,
            "provider_name": profile.provider.name or None, "provider_npi": profile.provider.npi or None,
            "provider_tin": profile.provider.tin or None, "provider_type": profile.provider.provider_type,
            "last_name": member.last_name, "first_name": member.first_name, "cin": member.cin,
            "outreach_date": encounter.service_date,
            "outreach_method": "phone" if TELEHEALTH_MODIFIER in encounter.modifiers else "in_person",
            "outreach_successful": engaged, "outreach_minutes": int(minutes), "reporting_period": period,
        }
        rows.append((member.cin, encounter.service_date, encounter.encounter_id, row))
    rows.sort(key=lambda item: (item[0], item[1], item[2]))
    return OtfResult(rows=[row for *_, row in rows], unattributed=unattributed)


def build_referral_rows(profile: Profile, requests: Iterable[AuthorizationView]) -> list[dict[str, Any]]:
    """One referral-file row per open authorization request (the request the MCP must decide)."""
    rows = []
    for auth in sorted(requests, key=lambda a: (a.requested_at, a.authorization_id)):
        member = auth.member
        rows.append({
            "referral_id": auth.authorization_id, "referral_date": _local_date(auth.requested_at),
            "referring_entity_name": profile.provider.name or None,
            "referring_entity_type": profile.provider.provider_type,
            "referring_npi": profile.provider.npi or None, "referring_phone": profile.provider.phone or None,
            "cin": member.cin, "last_name": member.last_name, "first_name": member.first_name,
            "middle_name": member.middle_name, "birth_date": member.birth_date, "sex": member.sex,
            "address_line1": member.address_line1, "address_line2": member.address_line2, "city": member.city,
            "state": member.state, "zip": member.zip, "phone": member.phone,
            "pof_codes": auth.pof_codes or None,
            "requested_service": auth.cs_code if auth.program == "cs" else auth.program,
            "urgency": auth.urgency,
            "decision_due": _local_date(auth.decision_due) if auth.decision_due else None,
        })
    return rows
