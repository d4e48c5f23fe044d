"""The HL hierarchy of a 270/271 and its loops (2000A…2120C), plus the findings the checks report.

Both transaction sets share one shape: HL 20 (the MCP) > HL 21 (the hub) > HL 22 (the member), each HL
followed by its name loop (NM1…) and, for members, one benefit loop per EQ (270) or EB (271). Findings name
segment positions and rules, never element values: those are PHI.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date

from eligibility.x12.codes import LEVEL_LOOPS, LEVEL_PARENTS
from shared.x12.segments import Segment


@dataclass(frozen=True, slots=True)
class Issue:
    """One broken rule: where (segment position, id and loop) and which rule, in words without values."""

    position: int
    segment: str
    rule: str
    message: str
    loop: str | None = None

    def as_dict(self) -> dict[str, object]:
        """JSON-ready: the shape `calhub x12 validate` prints."""
        return {"position": self.position, "segment": self.segment, "loop": self.loop, "rule": self.rule,
                "message": self.message}


class X279Invalid(ValueError):
    """A 270/271 broke implementation-guide rules; `issues` lists every one found."""

    def __init__(self, issues: Sequence[Issue]) -> None:
        first = issues[0] if issues else None
        where = f" (first at segment {first.position} {first.segment}: {first.rule})" if first else ""
        super().__init__(f"{len(issues)} X12 rule violation(s){where}")
        self.issues = list(issues)


@dataclass
class Level:
    """One HL loop (2000A/B/C/D) with the segments that follow its HL up to the next HL."""

    loop: str
    hl: Segment
    segments: list[Segment] = field(default_factory=list)
    children: list[Level] = field(default_factory=list)
    _parts: dict[str, LevelParts] = field(default_factory=dict, repr=False)

    @property
    def code(self) -> str:
        """HL03, the hierarchical level code."""
        return self.hl.get(3)


@dataclass
class BenefitLoop:
    """A 2110C/D loop (one EQ or EB and what follows it) and its 2120 loops (entities between LS and LE)."""

    segments: list[Segment] = field(default_factory=list)
    related: list[list[Segment]] = field(default_factory=list)

    @property
    def lead(self) -> Segment:
        """The EQ or EB that opens the loop."""
        return self.segments[0]


@dataclass
class LevelParts:
    """A level's segments split into its header (before NM1), its name loop (21x0) and its benefit loops."""

    header: list[Segment] = field(default_factory=list)
    name: list[Segment] = field(default_factory=list)
    benefits: list[BenefitLoop] = field(default_factory=list)
    stray: list[Segment] = field(default_factory=list)  # LE without LS and the like

    def first(self, segment_id: str) -> Segment | None:
        """The first segment with this id in the name loop, or None."""
        return next((s for s in self.name if s.id == segment_id), None)


def build_levels(body: Sequence[Segment], issues: list[Issue]) -> tuple[list[Segment], list[Level]]:
    """Split a transaction's segments (after ST, before SE) into header segments and the HL tree.

    Structural problems (numbering, parents, level order, child codes) are added to `issues`.
    """
    header: list[Segment] = []
    roots: list[Level] = []
    by_id: dict[str, Level] = {}
    current: Level | None = None
    expected = 1
    for segment in body:
        if segment.id != "HL":
            if current is None:
                header.append(segment)
            else:
                current.segments.append(segment)
            continue
        number, parent_id, code = segment.get(1), segment.get(2), segment.get(3)
        loop = LEVEL_LOOPS.get(code)
        if loop is None:
            issues.append(Issue(segment.position, "HL", "hl_level_code",
                                "HL03 must be 20, 21, 22 or 23 in a 270/271"))
            loop = "2000?"
        if number != str(expected):
            issues.append(Issue(segment.position, "HL", "hl_numbering",
                                "HL01 must number the HL segments 1, 2, 3… in order", loop))
        expected += 1
        level = Level(loop=loop, hl=segment)
        want_parent = LEVEL_PARENTS.get(code)
        if want_parent is None:
            if parent_id:
                issues.append(Issue(segment.position, "HL", "hl_parent",
                                    "HL02 must be empty for the information source level", loop))
            roots.append(level)
        else:
            parent = by_id.get(parent_id)
            if parent is None:
                issues.append(Issue(segment.position, "HL", "hl_parent",
                                    "HL02 must name an earlier HL01", loop))
            elif parent.code != want_parent:
                issues.append(Issue(segment.position, "HL", "hl_parent_level",
                                    f"the parent of an HL {code} must be an HL {want_parent}", loop))
            else:
                parent.children.append(level)
        if number:
            by_id[number] = level
        current = level
    _check_child_codes(roots, issues)
    return header, roots


def _check_child_codes(levels: Iterable[Level], issues: list[Issue]) -> None:
    for level in levels:
        child_code = level.hl.get(4)
        has_children = bool(level.children)
        if child_code not in ("0", "1"):
            issues.append(Issue(level.hl.position, "HL", "hl_child_code", "HL04 must be 0 or 1", level.loop))
        elif (child_code == "1") != has_children:
            issues.append(Issue(level.hl.position, "HL", "hl_child_code",
                                "HL04 must be 1 when child levels follow and 0 when none do", level.loop))
        _check_child_codes(level.children, issues)


def split_level(level: Level, benefit_id: str) -> LevelParts:
    """Split a level's segments: header until NM1, the name loop until the first `benefit_id` (EQ or EB), then
    one benefit loop per `benefit_id`, with LS…LE groups as 2120 loops. Computed once per level."""
    cached = level._parts.get(benefit_id)
    if cached is not None:
        return cached
    parts = LevelParts()
    level._parts[benefit_id] = parts
    section = "header"
    in_related = False
    for segment in level.segments:
        sid = segment.id
        if section == "header" and sid == "NM1":
            section = "name"
        if sid == benefit_id:
            section = "benefit"
            parts.benefits.append(BenefitLoop(segments=[segment]))
            in_related = False
            continue
        if section == "header":
            parts.header.append(segment)
        elif section == "name":
            parts.name.append(segment)
        else:
            loop = parts.benefits[-1]
            if sid == "LS":
                in_related = True
                loop.segments.append(segment)
                loop.related.append([])
            elif sid == "LE":
                if not in_related:
                    parts.stray.append(segment)
                else:
                    loop.segments.append(segment)
                in_related = False
            elif in_related:
                loop.related[-1].append(segment)
            else:
                loop.segments.append(segment)
    return parts


def walk(levels: Iterable[Level]) -> Iterable[Level]:
    """Every level, depth first, parents before children."""
    for level in levels:
        yield level
        yield from walk(level.children)


def parse_d8(value: str) -> date | None:
    """A CCYYMMDD date, or None when it is not one."""
    if len(value) != 8 or not value.isdigit():
        return None
    try:
        return date(int(value[:4]), int(value[4:6]), int(value[6:]))
    except ValueError:
        return None


def parse_period(qualifier: str, value: str) -> tuple[date, date | None] | None:
    """A DTP value as (start, end): D8 gives (day, None), RD8 (start, end); None when malformed."""
    if qualifier == "D8":
        day = parse_d8(value)
        return (day, None) if day is not None else None
    if qualifier == "RD8":
        start_text, _, end_text = value.partition("-")
        start, end = parse_d8(start_text), parse_d8(end_text)
        if start is None or end is None or end < start:
            return None
        return start, end
    return None


def check_dtp(segment: Segment, allowed: frozenset[str], loop: str, issues: list[Issue]) -> None:
    """DTP01 from the loop's list, DTP02 D8 or RD8 and DTP03 a real date or ordered range."""
    if segment.get(1) not in allowed:
        issues.append(Issue(segment.position, "DTP", "dtp_qualifier", "DTP01 is not a qualifier this loop uses",
                            loop))
    if segment.get(2) not in ("D8", "RD8"):
        issues.append(Issue(segment.position, "DTP", "dtp_format", "DTP02 must be D8 or RD8", loop))
    elif parse_period(segment.get(2), segment.get(3)) is None:
        issues.append(Issue(segment.position, "DTP", "dtp_date",
                            "DTP03 must be a valid CCYYMMDD date (or an ordered CCYYMMDD-CCYYMMDD range)", loop))


def check_allowed(segments: Iterable[Segment], allowed: frozenset[str], loop: str, issues: list[Issue]) -> None:
    """Report segments a loop does not use."""
    for segment in segments:
        if segment.id not in allowed:
            issues.append(Issue(segment.position, segment.id, "segment_not_in_loop",
                                f"{segment.id} is not used in loop {loop}", loop))


def check_bht(segment: Segment | None, purposes: frozenset[str], issues: list[Issue]) -> None:
    """BHT01 0022, BHT02 from `purposes`, BHT03 present, BHT04 a date, BHT05 a time."""
    if segment is None or segment.id != "BHT":
        issues.append(Issue(segment.position if segment else 0, segment.id if segment else "BHT", "bht_required",
                            "BHT must follow ST"))
        return
    if segment.get(1) != "0022":
        issues.append(Issue(segment.position, "BHT", "bht_structure", "BHT01 must be 0022"))
    if segment.get(2) not in purposes:
        issues.append(Issue(segment.position, "BHT", "bht_purpose",
                            f"BHT02 must be one of {', '.join(sorted(purposes))}"))
    if not segment.get(3):
        issues.append(Issue(segment.position, "BHT", "bht_reference", "BHT03 (reference id) is required"))
    if parse_d8(segment.get(4)) is None:
        issues.append(Issue(segment.position, "BHT", "bht_date", "BHT04 must be a CCYYMMDD date"))
    time = segment.get(5)
    if not (time.isdigit() and len(time) in (4, 6, 7, 8)):
        issues.append(Issue(segment.position, "BHT", "bht_time", "BHT05 must be an HHMM[SS[D[D]]] time"))


def check_nm1(segment: Segment | None, *, loop: str, entities: frozenset[str],
              qualifiers: frozenset[str], person: bool, issues: list[Issue], near: int) -> None:
    """The name segment of 2100A/B/C: present, entity code, entity type, id qualifier with an id."""
    if segment is None:
        issues.append(Issue(near, "NM1", "nm1_required", f"loop {loop} needs its NM1 name segment", loop))
        return
    if segment.get(1) not in entities:
        issues.append(Issue(segment.position, "NM1", "nm1_entity",
                            f"NM101 must be one of {', '.join(sorted(entities))}", loop))
    if segment.get(2) not in ("1", "2") or (person and segment.get(2) != "1"):
        issues.append(Issue(segment.position, "NM1", "nm1_entity_type",
                            "NM102 must be 1 (person)" if person else "NM102 must be 1 or 2", loop))
    if segment.get(2) == "2" and not segment.get(3):
        issues.append(Issue(segment.position, "NM1", "nm1_name", "NM103 is required for an organization", loop))
    qualifier, identifier = segment.get(8), segment.get(9)
    if qualifier and qualifier not in qualifiers:
        issues.append(Issue(segment.position, "NM1", "nm1_id_qualifier",
                            f"NM108 must be one of {', '.join(sorted(qualifiers))}", loop))
    if bool(qualifier) != bool(identifier):
        issues.append(Issue(segment.position, "NM1", "nm1_id_pair", "NM108 and NM109 are used together", loop))
