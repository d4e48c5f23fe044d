"""Interchange (ISA/IEA), functional group (GS/GE) and transaction set (ST/SE) envelopes: build and read."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from shared.x12.segments import Delimiters, Segment, X12SyntaxError, detect_delimiters, iter_segments, render

STANDARD_DELIMITERS = Delimiters()


@dataclass(frozen=True)
class Party:
    """An interchange sender or receiver: ISA qualifier + id (padded to 15), and the GS application code."""

    qualifier: str
    id: str
    application_code: str


@dataclass
class TransactionSet:
    """The segments between ST and SE (both included)."""

    control_number: str
    implementation: str
    segments: list[Segment] = field(default_factory=list)

    @property
    def code(self) -> str:
        return self.segments[0].get(1) if self.segments else ""


@dataclass
class FunctionalGroup:
    gs: Segment
    transactions: list[TransactionSet] = field(default_factory=list)

    @property
    def version(self) -> str:
        """GS08, e.g. 005010X222A1."""
        return self.gs.get(8)

    @property
    def functional_code(self) -> str:
        return self.gs.get(1)


@dataclass
class Interchange:
    """A parsed interchange with its delimiters."""

    isa: Segment
    delimiters: Delimiters
    groups: list[FunctionalGroup] = field(default_factory=list)

    @property
    def control_number(self) -> str:
        return self.isa.get(13)

    @property
    def sender_id(self) -> str:
        return self.isa.get(6).strip()

    @property
    def receiver_id(self) -> str:
        return self.isa.get(8).strip()


def parse_interchange(text: str) -> Interchange:
    """Split an interchange into groups and transaction sets, checking control numbers and counts.

    Raises X12SyntaxError naming the segment position and rule; element values are never quoted.
    """
    delimiters = detect_delimiters(text)
    interchange: Interchange | None = None
    group: FunctionalGroup | None = None
    transaction: TransactionSet | None = None
    closed = False
    for segment in iter_segments(text, delimiters):
        sid = segment.id
        if closed:
            raise X12SyntaxError("segment after IEA", position=segment.position, segment_id=sid)
        if sid == "ISA":
            if interchange is not None:
                raise X12SyntaxError("a second ISA inside the interchange", position=segment.position,
                                     segment_id=sid)
            interchange = Interchange(isa=segment, delimiters=delimiters)
            continue
        if interchange is None:
            raise X12SyntaxError("segment before ISA", position=segment.position, segment_id=sid)
        if transaction is not None:
            transaction.segments.append(segment)
            if sid == "SE":
                if segment.get(2) != transaction.control_number:
                    raise X12SyntaxError("SE02 does not match ST02", position=segment.position, segment_id=sid)
                if segment.get(1) != str(len(transaction.segments)):
                    raise X12SyntaxError(f"SE01 says {segment.get(1)} segments, the set has "
                                         f"{len(transaction.segments)}", position=segment.position, segment_id=sid)
                assert group is not None
                group.transactions.append(transaction)
                transaction = None
            elif sid in ("ST", "GS", "GE", "IEA"):
                raise X12SyntaxError(f"{sid} inside a transaction set (missing SE)", position=segment.position,
                                     segment_id=sid)
            continue
        if sid == "GS":
            if group is not None:
                raise X12SyntaxError("GS inside a group (missing GE)", position=segment.position, segment_id=sid)
            group = FunctionalGroup(gs=segment)
        elif sid == "ST":
            if group is None:
                raise X12SyntaxError("ST outside a functional group", position=segment.position, segment_id=sid)
            transaction = TransactionSet(control_number=segment.get(2), implementation=segment.get(3),
                                         segments=[segment])
        elif sid == "GE":
            if group is None:
                raise X12SyntaxError("GE without GS", position=segment.position, segment_id=sid)
            if segment.get(2) != group.gs.get(6):
                raise X12SyntaxError("GE02 does not match GS06", position=segment.position, segment_id=sid)
            if segment.get(1) != str(len(group.transactions)):
                raise X12SyntaxError("GE01 does not match the number of transaction sets",
                                     position=segment.position, segment_id=sid)
            interchange.groups.append(group)
            group = None
        elif sid == "IEA":
            if group is not None:
                raise X12SyntaxError("IEA before GE", position=segment.position, segment_id=sid)
            if segment.get(2) != interchange.control_number:
                raise X12SyntaxError("IEA02 does not match ISA13", position=segment.position, segment_id=sid)
            if segment.get(1) != str(len(interchange.groups)):
                raise X12SyntaxError("IEA01 does not match the number of groups", position=segment.position,
                                     segment_id=sid)
            closed = True
        else:
            raise X12SyntaxError("segment outside a transaction set", position=segment.position, segment_id=sid)
    if interchange is None:
        raise X12SyntaxError("no ISA segment")
    if transaction is not None:
        raise X12SyntaxError("transaction set without SE", segment_id="ST")
    if not closed:
        raise X12SyntaxError("interchange without IEA", segment_id="IEA")
    return interchange


@dataclass(frozen=True)
class EnvelopeSpec:
    """What an outbound interchange needs besides its transaction sets."""

    sender: Party
    receiver: Party
    interchange_control_number: int
    group_control_number: int
    functional_code: str  # HC (837), HS (270), HB (271), HP (835), FA (999)
    version: str  # GS08, e.g. 005010X222A1
    created: datetime
    usage: str = "P"  # ISA15: P production, T test
    acknowledgment_requested: str = "0"


def build_interchange(spec: EnvelopeSpec, transactions: Sequence[Sequence[Sequence[str | Sequence[str]]]],
                      delimiters: Delimiters = STANDARD_DELIMITERS, *, first_st: int = 1,
                      line_breaks: bool = False, st03: bool = True) -> str:
    """An interchange with one functional group holding the given transaction sets.

    Each transaction set is given as its segments *between* ST and SE (as element lists); ST/SE/GS/GE/ISA/IEA,
    control numbers and counts are added here. ISA fields are padded to their fixed widths. `st03=False` leaves
    ST03 out for the guides that mark it "not used" (e.g. the 835, 005010X221A1).
    """
    nl = "\n" if line_breaks else ""
    bodies = (("".join(render(elements, delimiters) + nl for elements in body), len(body)) for body in transactions)
    return _enveloped(spec, bodies, delimiters, first_st=first_st, line_breaks=line_breaks, st03=st03)


def build_interchange_rendered(spec: EnvelopeSpec, transactions: Iterable[Sequence[str]],
                               delimiters: Delimiters = STANDARD_DELIMITERS, *, first_st: int = 1,
                               line_breaks: bool = False, st03: bool = True) -> str:
    """`build_interchange` for transaction sets whose segments a builder already rendered as text.

    Each segment comes without its terminator, written with `delimiters` from cleaned values. A terminator inside
    a segment raises ValueError (a shifted segment never leaves); trailing empty elements are dropped, as
    `render` drops them. For large files: no element lists, and a generator of sets is consumed one set at a
    time.
    """
    nl = "\n" if line_breaks else ""
    element, segment = delimiters.element, delimiters.segment
    terminator = segment + nl

    def bodies() -> Iterator[tuple[str, int]]:
        for segments in transactions:
            if not segments:
                yield "", 0
                continue
            text = segment.join(segments)
            if text.count(segment) != len(segments) - 1:
                raise ValueError("a segment contains the segment terminator")
            if element + segment in text or text.endswith(element):
                # Rare: drop trailing empty elements as render() does.
                segments = [part.rstrip(element) for part in segments]
                text = segment.join(segments)
            yield (terminator.join(segments) + terminator if nl else text + segment), len(segments)

    return _enveloped(spec, bodies(), delimiters, first_st=first_st, line_breaks=line_breaks, st03=st03)


def _enveloped(spec: EnvelopeSpec, bodies: Iterable[tuple[str, int]], d: Delimiters, *, first_st: int,
               line_breaks: bool, st03: bool) -> str:
    # bodies: each transaction set's rendered segments between ST and SE, and how many there are.
    if not 1 <= spec.interchange_control_number <= 999_999_999:
        raise ValueError("ISA13 must be 1..999999999")
    nl = "\n" if line_breaks else ""
    isa = render([
        "ISA", "00", " " * 10, "00", " " * 10,
        spec.sender.qualifier.ljust(2), spec.sender.id.ljust(15)[:15],
        spec.receiver.qualifier.ljust(2), spec.receiver.id.ljust(15)[:15],
        spec.created.strftime("%y%m%d"), spec.created.strftime("%H%M"), d.repetition, "00501",
        f"{spec.interchange_control_number:09d}", spec.acknowledgment_requested, spec.usage, d.component,
    ], d)
    out = [isa + nl]
    gcn = str(spec.group_control_number)
    out.append(render(["GS", spec.functional_code, spec.sender.application_code, spec.receiver.application_code,
                       spec.created.strftime("%Y%m%d"), spec.created.strftime("%H%M"), gcn, "X", spec.version],
                      d) + nl)
    st_code = _transaction_code(spec.functional_code)
    count = 0
    for index, (body, segments) in enumerate(bodies):
        control = f"{first_st + index:04d}"
        out.append(render(["ST", st_code, control, spec.version] if st03 else ["ST", st_code, control], d) + nl)
        out.append(body)
        out.append(render(["SE", str(segments + 2), control], d) + nl)
        count += 1
    out.append(render(["GE", str(count), gcn], d) + nl)
    out.append(render(["IEA", "1", f"{spec.interchange_control_number:09d}"], d) + nl)
    return "".join(out)


_CODES = {"HC": "837", "HS": "270", "HB": "271", "HP": "835", "FA": "999", "HN": "277", "HR": "276", "HI": "278"}


def _transaction_code(functional_code: str) -> str:
    try:
        return _CODES[functional_code]
    except KeyError:
        raise ValueError(f"unknown functional identifier code {functional_code!r}") from None
