"""X12 271 eligibility response (005010X279A1): check it against the guide, then read it into typed answers.

`read_271` refuses a file with any rule broken (X279Invalid listing them all), so a caller applies either every
answer of a file or none.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from eligibility.x12 import codes
from eligibility.x12.loops import (
    BenefitLoop,
    Issue,
    Level,
    X279Invalid,
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
from shared.x12.envelope import Interchange, TransactionSet, parse_interchange
from shared.x12.segments import Segment, X12SyntaxError

LOOP_SEGMENTS_271 = {
    "2000A": frozenset({"AAA"}),
    "2100A": frozenset({"NM1", "PER", "AAA"}),
    "2000B": frozenset(),
    "2100B": frozenset({"NM1", "REF", "N3", "N4", "AAA", "PRV"}),
    "2000C": frozenset({"TRN"}),
    "2100C": frozenset({"NM1", "REF", "N3", "N4", "AAA", "PRV", "DMG", "INS", "HI", "DTP", "MPI"}),
    "2110C": frozenset({"EB", "HSD", "REF", "DTP", "AAA", "MSG", "III", "LS", "LE"}),
    "2120C": frozenset({"NM1", "N3", "N4", "PER", "PRV"}),
}


@dataclass(frozen=True, slots=True)
class Period:
    """A date or a range from a DTP: `end` None for a single date."""

    qualifier: str
    start: date
    end: date | None


@dataclass(frozen=True, slots=True)
class Rejection:
    """An AAA segment: the loop it sits in, AAA03 reject reason and AAA04 follow-up."""

    loop: str
    position: int
    valid_request: bool
    reason_code: str
    follow_up_code: str | None


@dataclass(frozen=True, slots=True)
class RelatedEntity:
    """A 2120C entity inside LS…LE (e.g. the other payer EB*R names)."""

    entity_code: str
    name: str
    id_qualifier: str
    id: str


@dataclass(frozen=True, slots=True)
class Benefit:
    """One EB loop (2110C)."""

    position: int
    code: str  # EB01
    coverage_level: str  # EB02
    service_types: tuple[str, ...]  # EB03 (repeating)
    insurance_type: str  # EB04
    description: str  # EB05 plan coverage description
    periods: tuple[Period, ...]
    messages: tuple[str, ...]
    related: tuple[RelatedEntity, ...]
    rejections: tuple[Rejection, ...]


@dataclass(frozen=True, slots=True)
class Trace:
    """A TRN of loop 2000C: TRN01 2 = a trace of the 270 echoed back, 1 = one the MCP (or a clearinghouse) adds;
    TRN02 the reference; TRN03 the originator's id (ours: the hub's originator id the 270 sent)."""

    type: str
    reference: str
    originator: str


@dataclass(frozen=True, slots=True)
class SubscriberAnswer:
    """The answer about one member (2000C/2100C/2110C)."""

    position: int
    traces: tuple[Trace, ...]
    member_id: str
    last_name: str
    first_name: str
    middle_name: str | None
    birth_date: date | None
    gender: str | None
    periods: tuple[Period, ...]
    rejections: tuple[Rejection, ...]
    benefits: tuple[Benefit, ...]


@dataclass(frozen=True, slots=True)
class ReceiverAnswer:
    """Loop 2000B: the hub as the MCP names it, any rejection of the hub, and the members answered."""

    name: str
    id_qualifier: str
    id: str
    rejections: tuple[Rejection, ...]
    subscribers: tuple[SubscriberAnswer, ...]


@dataclass(frozen=True, slots=True)
class SourceAnswer:
    """Loop 2000A: the MCP answering, any rejection at its level, and the receivers."""

    name: str
    id_qualifier: str
    id: str
    rejections: tuple[Rejection, ...]
    receivers: tuple[ReceiverAnswer, ...]


@dataclass(frozen=True, slots=True)
class ResponseTransaction:
    """One 271 transaction set; `reference` is BHT03, the 270 transaction set's reference echoed back."""

    control_number: str
    reference: str
    sources: tuple[SourceAnswer, ...]


@dataclass(frozen=True, slots=True)
class Response271:
    """A whole 271 interchange."""

    interchange_control_number: str
    sender_id: str
    receiver_id: str
    transactions: tuple[ResponseTransaction, ...] = field(default=())

    def subscribers(self) -> list[SubscriberAnswer]:
        """Every member answered, in file order."""
        return [s for t in self.transactions for src in t.sources for r in src.receivers for s in r.subscribers]


# ------------------------------------------------------------------------------------------- validation


def _check_aaa(segment: Segment, loop: str, issues: list[Issue]) -> None:
    if segment.get(1) not in codes.AAA01_VALUES:
        issues.append(Issue(segment.position, "AAA", "aaa_valid_request", "AAA01 must be Y or N", loop))
    allowed = codes.AAA03_BY_LOOP.get(loop, frozenset())
    if segment.get(3) not in allowed:
        issues.append(Issue(segment.position, "AAA", "aaa_reject_reason",
                            f"AAA03 is not a reject reason loop {loop} uses", loop))
    if segment.get(4) not in codes.FOLLOW_UP:
        issues.append(Issue(segment.position, "AAA", "aaa_follow_up",
                            "AAA04 must be one of C, N, P, R, S, W, X, Y", loop))


def _check_benefit(benefit: BenefitLoop, suffix: str, issues: list[Issue]) -> None:
    loop = f"2110{suffix}"
    eb = benefit.lead
    check_allowed(benefit.segments, LOOP_SEGMENTS_271["2110C"], loop, issues)
    if eb.get(1) not in codes.EB01:
        issues.append(Issue(eb.position, "EB", "eb01_code", "EB01 is not an X279A1 eligibility or benefit code",
                            loop))
    for service_type in (code for code in eb.get(3).split("^") if code):
        if service_type not in codes.SERVICE_TYPES:
            issues.append(Issue(eb.position, "EB", "service_type_code", "EB03 is not a 5010 service type code",
                                loop))
    if eb.get(4) and eb.get(4) not in codes.INSURANCE_TYPES:
        issues.append(Issue(eb.position, "EB", "insurance_type_code", "EB04 is not an insurance type code", loop))
    for segment in benefit.segments[1:]:
        if segment.id == "DTP":
            check_dtp(segment, codes.DTP_2110C_271, loop, issues)
        elif segment.id == "AAA":
            _check_aaa(segment, "2110C", issues)
        elif segment.id == "LS" and segment.get(1) != "2120":
            issues.append(Issue(segment.position, "LS", "ls_loop", "LS01 must be 2120", loop))
        elif segment.id == "LE" and segment.get(1) != "2120":
            issues.append(Issue(segment.position, "LE", "le_loop", "LE01 must be 2120", loop))
    for related in benefit.related:
        check_allowed(related, LOOP_SEGMENTS_271["2120C"], f"2120{suffix}", issues)
        if not related or related[0].id != "NM1":
            near = related[0].position if related else eb.position
            issues.append(Issue(near, "NM1", "nm1_required", f"loop 2120{suffix} starts with NM1", f"2120{suffix}"))
    opened = sum(1 for s in benefit.segments if s.id == "LS")
    closed = sum(1 for s in benefit.segments if s.id == "LE")
    if opened != closed:
        issues.append(Issue(eb.position, "LS", "ls_le_pair", "every LS needs its LE", loop))


def _check_level(level: Level, issues: list[Issue]) -> None:
    code = level.code
    parts = split_level(level, "EB")
    for stray in parts.stray:
        issues.append(Issue(stray.position, stray.id, "ls_le_pair", "LE without LS", level.loop))
    if code == codes.LEVEL_INFORMATION_SOURCE:
        check_allowed(parts.header, LOOP_SEGMENTS_271["2000A"], "2000A", issues)
        check_allowed(parts.name, LOOP_SEGMENTS_271["2100A"], "2100A", issues)
        for segment in parts.header + parts.name:
            if segment.id == "AAA":
                _check_aaa(segment, "2000A" if segment in parts.header else "2100A", issues)
        check_nm1(parts.first("NM1"), loop="2100A", entities=codes.NM101_SOURCE, qualifiers=codes.NM108_SOURCE,
                  person=False, issues=issues, near=level.hl.position)
    elif code == codes.LEVEL_INFORMATION_RECEIVER:
        check_allowed(parts.header, LOOP_SEGMENTS_271["2000B"], "2000B", issues)
        check_allowed(parts.name, LOOP_SEGMENTS_271["2100B"], "2100B", issues)
        for segment in parts.name:
            if segment.id == "AAA":
                _check_aaa(segment, "2100B", issues)
        check_nm1(parts.first("NM1"), loop="2100B", entities=codes.NM101_RECEIVER,
                  qualifiers=codes.NM108_RECEIVER, person=False, issues=issues, near=level.hl.position)
    else:
        suffix = "C" if code == codes.LEVEL_SUBSCRIBER else "D"
        check_allowed(parts.header, LOOP_SEGMENTS_271["2000C"], f"2000{suffix}", issues)
        check_allowed(parts.name, LOOP_SEGMENTS_271["2100C"], f"2100{suffix}", issues)
        traces = [s for s in parts.header if s.id == "TRN"]
        if len(traces) > 3:
            issues.append(Issue(traces[3].position, "TRN", "trn_repeat",
                                "a 271 member loop carries at most 3 TRN", f"2000{suffix}"))
        for trn in traces:
            if trn.get(1) not in (codes.TRN_REFERENCED, codes.TRN_CURRENT):
                issues.append(Issue(trn.position, "TRN", "trn_type", "TRN01 must be 1 or 2 in a 271",
                                    f"2000{suffix}"))
            if not trn.get(2):
                issues.append(Issue(trn.position, "TRN", "trn_reference", "TRN02 is required", f"2000{suffix}"))
        nm1 = parts.first("NM1")
        check_nm1(nm1, loop=f"2100{suffix}", entities=frozenset({"IL"}) if suffix == "C" else frozenset({"03"}),
                  qualifiers=codes.NM108_SUBSCRIBER, person=True, issues=issues, near=level.hl.position)
        rejected = False
        for segment in parts.name:
            if segment.id == "AAA":
                rejected = True
                _check_aaa(segment, "2100C", issues)
            elif segment.id == "DTP":
                check_dtp(segment, codes.DTP_2100C_271, f"2100{suffix}", issues)
            elif segment.id == "DMG" and segment.get(2) and parse_d8(segment.get(2)) is None:
                issues.append(Issue(segment.position, "DMG", "dmg_birth_date", "DMG02 must be a CCYYMMDD date",
                                    f"2100{suffix}"))
        if suffix == "C" and nm1 is not None and not rejected and not parts.benefits and not level.children:
            issues.append(Issue(level.hl.position, "HL", "loop_2110c_required",
                                "a member answered without an AAA rejection needs at least one EB (loop 2110C)",
                                "2110C"))
        for benefit in parts.benefits:
            _check_benefit(benefit, suffix, issues)


def _check_transaction(transaction: TransactionSet, gs_version: str, issues: list[Issue]) -> list[Level]:
    st = transaction.segments[0]
    if st.get(1) != "271":
        issues.append(Issue(st.position, "ST", "st_code", "ST01 must be 271"))
    if st.get(3) != codes.IMPLEMENTATION or gs_version != codes.IMPLEMENTATION:
        issues.append(Issue(st.position, "ST", "implementation", "ST03 and GS08 must be 005010X279A1"))
    body = transaction.segments[1:-1]
    check_bht(body[0] if body else None, codes.BHT02_RESPONSE, issues)
    header, roots = build_levels(body[1:], issues)
    for stray in header:
        issues.append(Issue(stray.position, stray.id, "segment_not_in_loop", f"{stray.id} is not used before HL"))
    if not roots:
        issues.append(Issue(st.position, "HL", "loop_2000a_required", "a 271 needs an information source HL 20"))
    for level in walk(roots):
        _check_level(level, issues)
    return roots


def _checked(text: str) -> tuple[Interchange | None, list[tuple[TransactionSet, list[Level]]], list[Issue]]:
    """One pass over the file: the interchange, each 271 with its HL tree, and every broken rule."""
    try:
        interchange = parse_interchange(text)
    except X12SyntaxError as exc:
        return None, [], [Issue(exc.position, exc.segment_id or "ISA", "envelope", exc.message)]
    issues: list[Issue] = []
    transactions: list[tuple[TransactionSet, list[Level]]] = []
    for group in interchange.groups:
        if group.functional_code != codes.RESPONSE_FUNCTIONAL_CODE:
            issues.append(Issue(group.gs.position, "GS", "functional_code", "GS01 must be HB for a 271"))
        for transaction in group.transactions:
            if transaction.code != "271":
                issues.append(Issue(transaction.segments[0].position, "ST", "st_code",
                                    "a 271 interchange carries only 271 transaction sets"))
                continue
            transactions.append((transaction, _check_transaction(transaction, group.version, issues)))
    if not any(group.transactions for group in interchange.groups):
        issues.append(Issue(0, "ST", "transaction_required", "the interchange holds no transaction set"))
    return interchange, transactions, sorted(issues, key=lambda issue: issue.position)


def validate_271(text: str) -> list[Issue]:
    """Every implementation-guide rule a 271 breaks (envelope first); empty when valid."""
    with collector_paused():
        return _checked(text)[2]


# --------------------------------------------------------------------------------------------- reading


def _rejection(segment: Segment, loop: str) -> Rejection:
    return Rejection(loop=loop, position=segment.position, valid_request=segment.get(1) == "Y",
                     reason_code=segment.get(3), follow_up_code=segment.get(4) or None)


def _period(segment: Segment) -> Period | None:
    parsed = parse_period(segment.get(2), segment.get(3))
    if parsed is None:
        return None
    return Period(segment.get(1), parsed[0], parsed[1])


def _benefit(loop: BenefitLoop) -> Benefit:
    eb = loop.lead
    periods = tuple(p for p in (_period(s) for s in loop.segments if s.id == "DTP") if p is not None)
    related = tuple(RelatedEntity(entity_code=group[0].get(1), name=group[0].get(3), id_qualifier=group[0].get(8),
                                  id=group[0].get(9))
                    for group in loop.related if group and group[0].id == "NM1")
    return Benefit(position=eb.position, code=eb.get(1), coverage_level=eb.get(2),
                   service_types=tuple(code for code in eb.get(3).split("^") if code),
                   insurance_type=eb.get(4), description=eb.get(5),
                   periods=periods, messages=tuple(s.get(1) for s in loop.segments if s.id == "MSG"),
                   related=related,
                   rejections=tuple(_rejection(s, "2110C") for s in loop.segments if s.id == "AAA"))


def _subscriber(level: Level) -> SubscriberAnswer:
    parts = split_level(level, "EB")
    nm1 = parts.first("NM1") or Segment(("NM1",), level.hl.position)
    dmg = parts.first("DMG")
    return SubscriberAnswer(
        position=level.hl.position,
        traces=tuple(Trace(s.get(1), s.get(2), s.get(3)) for s in parts.header if s.id == "TRN"),
        member_id=nm1.get(9), last_name=nm1.get(3), first_name=nm1.get(4), middle_name=nm1.get(5) or None,
        birth_date=parse_d8(dmg.get(2)) if dmg is not None else None,
        gender=(dmg.get(3) or None) if dmg is not None else None,
        periods=tuple(p for p in (_period(s) for s in parts.name if s.id == "DTP") if p is not None),
        rejections=tuple(_rejection(s, "2100C") for s in parts.name if s.id == "AAA"),
        benefits=tuple(_benefit(b) for b in parts.benefits),
    )


def _named(level: Level) -> tuple[Segment, list[Rejection]]:
    parts = split_level(level, "EB")
    nm1 = parts.first("NM1") or Segment(("NM1",), level.hl.position)
    loop = "2100A" if level.code == codes.LEVEL_INFORMATION_SOURCE else "2100B"
    rejections = [_rejection(s, "2000A") for s in parts.header if s.id == "AAA"]
    rejections += [_rejection(s, loop) for s in parts.name if s.id == "AAA"]
    return nm1, rejections


def read_271(text: str) -> Response271:
    """The typed answers of a valid 271. Raises X279Invalid listing every broken rule (envelope included)."""
    with collector_paused():
        return _read(text)


def _read(text: str) -> Response271:
    interchange, checked, issues = _checked(text)
    if issues or interchange is None:
        raise X279Invalid(issues)
    transactions: list[ResponseTransaction] = []
    for transaction, roots in checked:
        sources: list[SourceAnswer] = []
        for source in roots:
            source_nm1, source_rejections = _named(source)
            receivers: list[ReceiverAnswer] = []
            for receiver in source.children:
                receiver_nm1, receiver_rejections = _named(receiver)
                subscribers = tuple(_subscriber(m) for m in receiver.children if m.code == codes.LEVEL_SUBSCRIBER)
                receivers.append(ReceiverAnswer(receiver_nm1.get(3), receiver_nm1.get(8), receiver_nm1.get(9),
                                                tuple(receiver_rejections), subscribers))
            sources.append(SourceAnswer(source_nm1.get(3), source_nm1.get(8), source_nm1.get(9),
                                        tuple(source_rejections), tuple(receivers)))
        transactions.append(ResponseTransaction(transaction.control_number, transaction.segments[1].get(3),
                                                tuple(sources)))
    return Response271(interchange.control_number, interchange.sender_id, interchange.receiver_id,
                       tuple(transactions))


def _rejection_json(rejection: Rejection) -> dict[str, Any]:
    reason = codes.reject_reason(rejection.reason_code)
    return {"loop": rejection.loop, "position": rejection.position, "reason_code": rejection.reason_code,
            "reason": reason.description, "plain_reason": reason.plain,
            "follow_up_code": rejection.follow_up_code,
            "follow_up": codes.FOLLOW_UP.get(rejection.follow_up_code or "")}


def _period_json(period: Period) -> dict[str, Any]:
    return {"qualifier": period.qualifier, "start": period.start, "end": period.end}


def response_json(response: Response271) -> dict[str, Any]:
    """A read 271 as JSON-ready data, code values spelled out for the analyst."""
    def subscriber(s: SubscriberAnswer) -> dict[str, Any]:
        return {
            "position": s.position, "member_id": s.member_id,
            "traces": [{"type": t.type, "reference": t.reference, "originator": t.originator} for t in s.traces],
            "last_name": s.last_name, "first_name": s.first_name, "middle_name": s.middle_name,
            "birth_date": s.birth_date, "gender": s.gender, "dates": [_period_json(p) for p in s.periods],
            "rejections": [_rejection_json(r) for r in s.rejections],
            "benefits": [{
                "position": b.position, "code": b.code, "meaning": codes.EB01.get(b.code),
                "coverage_level": b.coverage_level, "service_types": list(b.service_types),
                "insurance_type": b.insurance_type, "description": b.description,
                "dates": [_period_json(p) for p in b.periods], "messages": list(b.messages),
                "related": [{"entity_code": r.entity_code, "name": r.name, "id_qualifier": r.id_qualifier,
                             "id": r.id} for r in b.related],
                "rejections": [_rejection_json(r) for r in b.rejections],
            } for b in s.benefits],
        }

    return {
        "transaction_set": "271", "implementation": codes.IMPLEMENTATION,
        "interchange_control_number": response.interchange_control_number,
        "sender_id": response.sender_id, "receiver_id": response.receiver_id,
        "transactions": [{
            "control_number": t.control_number, "reference": t.reference,
            "information_sources": [{
                "name": src.name, "id_qualifier": src.id_qualifier, "id": src.id,
                "rejections": [_rejection_json(r) for r in src.rejections],
                "receivers": [{
                    "name": r.name, "id_qualifier": r.id_qualifier, "id": r.id,
                    "rejections": [_rejection_json(x) for x in r.rejections],
                    "members": [subscriber(s) for s in r.subscribers],
                } for r in src.receivers],
            } for src in t.sources],
        } for t in response.transactions],
    }
