"""X12 270 eligibility inquiry (005010X279A1): build a batch per MCP, read one back, check it against the guide.

Shape CalHub sends (one functional group HS, transaction sets of at most `max_per_transaction` members):
    ST*270 / BHT*0022*13*<set ref: its first check id>*CCYYMMDD*HHMM
    HL*1**20*1 / NM1*PR*2*<MCP name>*****PI*<payer id>                       2000A/2100A the MCP
    HL*2*1*21*1 / NM1*1P*2*<hub name>*****XX*<hub NPI>                       2000B/2100B the hub
    HL*n*2*22*0 / TRN*1*<check id>*<originator> / NM1*IL*1*<last>*<first>*<middle>***MI*<CIN>
    DMG*D8*<birth date>[*<gender>] / DTP*291*D8*<date asked about> / EQ*30  2000C/2100C/2110C the member
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from eligibility.x12 import codes
from eligibility.x12.loops import (
    Issue,
    Level,
    LevelParts,
    build_levels,
    check_allowed,
    check_bht,
    check_dtp,
    check_nm1,
    parse_d8,
    parse_period,
    split_level,
    walk,
)
from shared.collector import collector_paused
from shared.reference.identifiers import cin_problem, npi_problem
from shared.x12.envelope import EnvelopeSpec, TransactionSet, build_interchange, parse_interchange
from shared.x12.segments import Delimiters, Segment, X12SyntaxError

# [unconfirmed] Payers commonly cap a batch 270 at 99 members per information receiver; configurable per MCP.
DEFAULT_MAX_PER_TRANSACTION = 99
_FORBIDDEN = str.maketrans({c: " " for c in "*~:^|\r\n"})

LOOP_SEGMENTS_270 = {
    "2000A": frozenset(),
    "2100A": frozenset({"NM1"}),
    "2000B": frozenset(),
    "2100B": frozenset({"NM1", "REF", "N3", "N4", "PRV"}),
    "2000C": frozenset({"TRN"}),
    "2100C": frozenset({"NM1", "REF", "N3", "N4", "PRV", "DMG", "INS", "HI", "DTP"}),
    "2110C": frozenset({"EQ", "AMT", "III", "REF", "DTP"}),
}


@dataclass(frozen=True, slots=True)
class Entity:
    """The MCP (information source) or the hub (information receiver) as NM1 names it."""

    name: str
    id_qualifier: str  # PI payer id, XX NPI, …
    id: str


@dataclass(frozen=True, slots=True)
class SubscriberInquiry:
    """One member to ask about. `trace` (TRN02) comes back in the 271 and ties the answer to the check."""

    trace: str
    cin: str
    last_name: str
    first_name: str
    birth_date: date | None
    service_date: date
    middle_name: str | None = None
    gender: str | None = None
    service_types: tuple[str, ...] = (codes.SERVICE_TYPE_PLAN_COVERAGE,)


@dataclass(frozen=True, slots=True)
class InquiryBatch:
    """What one 270 interchange asks one MCP."""

    reference: str  # the batch id (not sent: each transaction set has its own BHT03, see `transaction_sets`)
    created: datetime
    source: Entity
    receiver: Entity
    originator_id: str  # TRN03: "1" + the hub's EIN, or "9" + another 9-character id
    subscribers: Sequence[SubscriberInquiry]
    max_per_transaction: int = DEFAULT_MAX_PER_TRANSACTION


def clean(value: str) -> str:
    """An element value safe to send: ASCII upper case (accents dropped), no delimiter characters, single spaces.
    """
    # X12's basic character set is upper-case ASCII; "Peña" goes out as "PENA", as payers store it.
    ascii_text = unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode("ascii")
    return " ".join(ascii_text.translate(_FORBIDDEN).upper().split())


def _subscriber_segments(hl_number: int, subscriber: SubscriberInquiry,
                         originator_id: str) -> list[list[str]]:
    segments: list[list[str]] = [
        ["HL", str(hl_number), "2", codes.LEVEL_SUBSCRIBER, "0"],
        ["TRN", codes.TRN_CURRENT, subscriber.trace, originator_id],
        ["NM1", "IL", "1", clean(subscriber.last_name), clean(subscriber.first_name),
         clean(subscriber.middle_name or ""), "", "", "MI", subscriber.cin],
    ]
    if subscriber.birth_date is not None:
        dmg = ["DMG", "D8", subscriber.birth_date.strftime("%Y%m%d")]
        if subscriber.gender in codes.GENDER_CODES:
            dmg.append(subscriber.gender)
        segments.append(dmg)
    segments.append(["DTP", "291", "D8", subscriber.service_date.strftime("%Y%m%d")])
    # One EQ per service type: X279A1 lets EQ01 repeat, but not every payer reads repetitions.
    segments.extend(["EQ", service_type] for service_type in subscriber.service_types)
    return segments


def transaction_sets(batch: InquiryBatch) -> list[tuple[str, list[SubscriberInquiry]]]:
    """The batch's members split into transaction sets, each with its BHT03: the trace (check id) of its first
    member. A check goes out once, so the reference is unique to its set and the same whenever it is computed;
    the 271 echoes BHT03, so a rejection of a whole set (AAA in 2000A, 2100A or 2100B) names that set's checks
    and no other's. Raises ValueError for an empty batch or a chunk size below 1."""
    if batch.max_per_transaction < 1:
        raise ValueError("max_per_transaction must be at least 1")
    if not batch.subscribers:
        raise ValueError("a 270 needs at least one member")
    members = list(batch.subscribers)
    chunks = [members[start:start + batch.max_per_transaction]
              for start in range(0, len(members), batch.max_per_transaction)]
    return [(chunk[0].trace, chunk) for chunk in chunks]


def transaction_bodies(batch: InquiryBatch) -> list[list[list[str]]]:
    """The segments between ST and SE of each transaction set of the batch (members split into chunks)."""
    bodies: list[list[list[str]]] = []
    for reference, chunk in transaction_sets(batch):
        body: list[list[str]] = [
            ["BHT", "0022", "13", reference, batch.created.strftime("%Y%m%d"), batch.created.strftime("%H%M")],
            ["HL", "1", "", codes.LEVEL_INFORMATION_SOURCE, "1"],
            ["NM1", "PR", "2", clean(batch.source.name), "", "", "", "", batch.source.id_qualifier,
             batch.source.id],
            ["HL", "2", "1", codes.LEVEL_INFORMATION_RECEIVER, "1"],
            ["NM1", "1P", "2", clean(batch.receiver.name), "", "", "", "", batch.receiver.id_qualifier,
             batch.receiver.id],
        ]
        for offset, subscriber in enumerate(chunk):
            body.extend(_subscriber_segments(3 + offset, subscriber, batch.originator_id))
        bodies.append(body)
    return bodies


def build_270(envelope: EnvelopeSpec, batch: InquiryBatch, *, line_breaks: bool = False,
              delimiters: Delimiters | None = None) -> str:
    """The 270 interchange for a batch. Raises ValueError for an empty batch or an envelope for another set."""
    if envelope.functional_code != codes.INQUIRY_FUNCTIONAL_CODE or envelope.version != codes.IMPLEMENTATION:
        raise ValueError("a 270 envelope needs GS01 HS and version 005010X279A1")
    with collector_paused():
        bodies: list[Any] = transaction_bodies(batch)
        if delimiters is None:
            return build_interchange(envelope, bodies, line_breaks=line_breaks)
        return build_interchange(envelope, bodies, delimiters, line_breaks=line_breaks)


# ------------------------------------------------------------------------------------------- validation


def _check_transaction(transaction: TransactionSet, gs_version: str, issues: list[Issue]) -> list[Level]:
    st = transaction.segments[0]
    if st.get(1) != "270":
        issues.append(Issue(st.position, "ST", "st_code", "ST01 must be 270"))
    if st.get(3) != codes.IMPLEMENTATION or gs_version != codes.IMPLEMENTATION:
        issues.append(Issue(st.position, "ST", "implementation", "ST03 and GS08 must be 005010X279A1"))
    body = transaction.segments[1:-1]
    check_bht(body[0] if body else None, codes.BHT02_INQUIRY, issues)
    header, roots = build_levels(body[1:], issues)
    for stray in header:
        issues.append(Issue(stray.position, stray.id, "segment_not_in_loop", f"{stray.id} is not used before HL"))
    if not roots:
        issues.append(Issue(st.position, "HL", "loop_2000a_required", "a 270 needs an information source HL 20"))
    for level in walk(roots):
        _check_level(level, issues)
    return roots


def _check_level(level: Level, issues: list[Issue]) -> None:
    code = level.code
    if code == codes.LEVEL_INFORMATION_SOURCE:
        parts = split_level(level, "EQ")
        check_allowed(parts.header, LOOP_SEGMENTS_270["2000A"], "2000A", issues)
        check_allowed(parts.name, LOOP_SEGMENTS_270["2100A"], "2100A", issues)
        check_nm1(parts.first("NM1"), loop="2100A", entities=codes.NM101_SOURCE, qualifiers=codes.NM108_SOURCE,
                  person=False, issues=issues, near=level.hl.position)
        _no_benefits(parts, "2000A", issues)
        if not level.children:
            issues.append(Issue(level.hl.position, "HL", "loop_2000b_required",
                                "an information source needs at least one information receiver (HL 21)", "2000A"))
    elif code == codes.LEVEL_INFORMATION_RECEIVER:
        parts = split_level(level, "EQ")
        check_allowed(parts.header, LOOP_SEGMENTS_270["2000B"], "2000B", issues)
        check_allowed(parts.name, LOOP_SEGMENTS_270["2100B"], "2100B", issues)
        nm1 = parts.first("NM1")
        check_nm1(nm1, loop="2100B", entities=codes.NM101_RECEIVER, qualifiers=codes.NM108_RECEIVER,
                  person=False, issues=issues, near=level.hl.position)
        if nm1 is not None and nm1.get(8) == "XX" and npi_problem(nm1.get(9)) is not None:
            issues.append(Issue(nm1.position, "NM1", "npi_check_digit",
                                "NM109 must be a valid NPI when NM108 is XX", "2100B"))
        _no_benefits(parts, "2000B", issues)
        if not level.children:
            issues.append(Issue(level.hl.position, "HL", "loop_2000c_required",
                                "an information receiver needs at least one subscriber (HL 22)", "2000B"))
    elif code in (codes.LEVEL_SUBSCRIBER, codes.LEVEL_DEPENDENT):
        _check_member(level, issues)


def _no_benefits(parts: LevelParts, loop: str, issues: list[Issue]) -> None:
    for benefit in parts.benefits:
        issues.append(Issue(benefit.lead.position, "EQ", "segment_not_in_loop", f"EQ is not used in loop {loop}",
                            loop))


def _check_member(level: Level, issues: list[Issue]) -> None:
    suffix = "C" if level.code == codes.LEVEL_SUBSCRIBER else "D"
    parts = split_level(level, "EQ")
    check_allowed(parts.header, LOOP_SEGMENTS_270["2000C"], f"2000{suffix}", issues)
    check_allowed(parts.name, LOOP_SEGMENTS_270["2100C"], f"2100{suffix}", issues)
    traces = [s for s in parts.header if s.id == "TRN"]
    if len(traces) > 2:
        issues.append(Issue(traces[2].position, "TRN", "trn_repeat", "a 270 member loop carries at most 2 TRN",
                            f"2000{suffix}"))
    for trn in traces:
        if trn.get(1) != codes.TRN_CURRENT:
            issues.append(Issue(trn.position, "TRN", "trn_type", "TRN01 must be 1 in a 270", f"2000{suffix}"))
        if not trn.get(2) or len(trn.get(2)) > 50:
            issues.append(Issue(trn.position, "TRN", "trn_reference", "TRN02 must be 1-50 characters",
                                f"2000{suffix}"))
        if len(trn.get(3)) != 10:
            issues.append(Issue(trn.position, "TRN", "trn_originator",
                                "TRN03 must be 10 characters ('1' + EIN or '9' + an assigned id)",
                                f"2000{suffix}"))
    nm1 = parts.first("NM1")
    check_nm1(nm1, loop=f"2100{suffix}", entities=frozenset({"IL"}) if suffix == "C" else frozenset({"03"}),
              qualifiers=codes.NM108_SUBSCRIBER, person=True, issues=issues, near=level.hl.position)
    if nm1 is not None and suffix == "C":
        if nm1.get(8) != "MI" or not nm1.get(9):
            issues.append(Issue(nm1.position, "NM1", "member_id_required",
                                "Medi-Cal inquiries identify the member by NM108 MI and the CIN in NM109",
                                "2100C"))
        elif cin_problem(nm1.get(9)) is not None:
            issues.append(Issue(nm1.position, "NM1", "cin_format",
                                "NM109 must be a CIN: 8 digits then a capital letter", "2100C"))
        if not nm1.get(3):
            issues.append(Issue(nm1.position, "NM1", "nm1_name", "NM103 (last name) is required", "2100C"))
    for segment in parts.name:
        if segment.id == "DMG":
            if segment.get(1) != "D8" or parse_d8(segment.get(2)) is None:
                issues.append(Issue(segment.position, "DMG", "dmg_birth_date",
                                    "DMG01 must be D8 and DMG02 a CCYYMMDD birth date", f"2100{suffix}"))
            if segment.get(3) and segment.get(3) not in codes.GENDER_CODES:
                issues.append(Issue(segment.position, "DMG", "dmg_gender", "DMG03 must be F, M or U",
                                    f"2100{suffix}"))
        elif segment.id == "DTP":
            check_dtp(segment, codes.DTP_SUBSCRIBER_270, f"2100{suffix}", issues)
    if suffix == "C" and level.hl.get(4) == "0" and not parts.benefits:
        issues.append(Issue(level.hl.position, "HL", "loop_2110c_required",
                            "a member inquiry needs at least one EQ (loop 2110C)", "2110C"))
    for benefit in parts.benefits:
        check_allowed(benefit.segments, LOOP_SEGMENTS_270["2110C"], f"2110{suffix}", issues)
        eq = benefit.lead
        service_types = [code for code in eq.get(1).split("^") if code]
        if not service_types and not eq.get(2):
            issues.append(Issue(eq.position, "EQ", "eq_service", "EQ01 (service type) or EQ02 (procedure) is required",
                                f"2110{suffix}"))
        for service_type in service_types:
            if service_type not in codes.SERVICE_TYPES:
                issues.append(Issue(eq.position, "EQ", "service_type_code",
                                    "EQ01 is not a 5010 service type code", f"2110{suffix}"))
        for segment in benefit.segments[1:]:
            if segment.id == "DTP":
                check_dtp(segment, codes.DTP_SUBSCRIBER_270, f"2110{suffix}", issues)


def validate_270(text: str) -> list[Issue]:
    """Every implementation-guide rule a 270 breaks (envelope first); empty when valid."""
    try:
        interchange = parse_interchange(text)
    except X12SyntaxError as exc:
        return [Issue(exc.position, exc.segment_id or "ISA", "envelope", exc.message)]
    issues: list[Issue] = []
    for group in interchange.groups:
        if group.functional_code != codes.INQUIRY_FUNCTIONAL_CODE:
            issues.append(Issue(group.gs.position, "GS", "functional_code", "GS01 must be HS for a 270"))
        for transaction in group.transactions:
            if transaction.code == "270":
                _check_transaction(transaction, group.version, issues)
    return sorted(issues, key=lambda issue: issue.position)


# --------------------------------------------------------------------------------------------- reading


def _member_json(level: Level) -> dict[str, Any]:
    parts = split_level(level, "EQ")
    nm1 = parts.first("NM1") or Segment(("NM1",), level.hl.position)
    dmg = parts.first("DMG")
    dates = [s for s in parts.name if s.id == "DTP"]
    period = parse_period(dates[0].get(2), dates[0].get(3)) if dates else None
    return {
        "loop": "2000C" if level.code == codes.LEVEL_SUBSCRIBER else "2000D",
        "position": level.hl.position,
        "traces": [s.get(2) for s in parts.header if s.id == "TRN"],
        "member_id": nm1.get(9),
        "member_id_qualifier": nm1.get(8),
        "last_name": nm1.get(3),
        "first_name": nm1.get(4),
        "middle_name": nm1.get(5) or None,
        "birth_date": parse_d8(dmg.get(2)) if dmg is not None else None,
        "gender": (dmg.get(3) or None) if dmg is not None else None,
        "service_date": period[0] if period else None,
        "service_types": [code for b in parts.benefits for code in b.lead.get(1).split("^") if code],
        "dependents": [_member_json(child) for child in level.children],
    }


def parse_270(text: str) -> dict[str, Any]:
    """A 270 as JSON-ready data (MCP, hub, members). Raises X12SyntaxError for a broken envelope."""
    interchange = parse_interchange(text)
    transactions: list[dict[str, Any]] = []
    for group in interchange.groups:
        for transaction in group.transactions:
            body = transaction.segments[1:-1]
            issues: list[Issue] = []
            _, roots = build_levels(body[1:], issues)
            bht = body[0] if body else Segment(("BHT",), 0)
            sources = []
            for source in roots:
                source_nm1 = split_level(source, "EQ").first("NM1") or Segment(("NM1",), 0)
                receivers = []
                for receiver in source.children:
                    receiver_nm1 = split_level(receiver, "EQ").first("NM1") or Segment(("NM1",), 0)
                    receivers.append({"name": receiver_nm1.get(3), "id_qualifier": receiver_nm1.get(8),
                                      "id": receiver_nm1.get(9),
                                      "members": [_member_json(m) for m in receiver.children]})
                sources.append({"name": source_nm1.get(3), "id_qualifier": source_nm1.get(8),
                                "id": source_nm1.get(9), "receivers": receivers})
            transactions.append({"control_number": transaction.control_number, "reference": bht.get(3),
                                 "purpose": bht.get(2), "date": parse_d8(bht.get(4)),
                                 "information_sources": sources})
    return {"transaction_set": "270", "implementation": codes.IMPLEMENTATION,
            "interchange_control_number": interchange.control_number, "sender_id": interchange.sender_id,
            "receiver_id": interchange.receiver_id, "transactions": transactions}
