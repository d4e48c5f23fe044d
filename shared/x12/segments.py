"""Reading and writing X12 segments with the delimiters an interchange declares in its ISA."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

ISA_LENGTH = 106  # ISA is fixed width: 105 characters plus the segment terminator


class X12SyntaxError(ValueError):
    """The bytes are not well-formed X12; `position` is the 1-based segment number (0: the envelope)."""

    def __init__(self, message: str, *, position: int = 0, segment_id: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.position = position
        self.segment_id = segment_id

    def as_dict(self) -> dict[str, object]:
        """The error as JSON-ready data (no element values: they may carry PHI)."""
        return {"position": self.position, "segment": self.segment_id, "message": self.message}


@dataclass(frozen=True, slots=True)
class Delimiters:
    """Element, repetition (ISA11), component (ISA16) and segment separators."""

    element: str = "*"
    repetition: str = "^"
    component: str = ":"
    segment: str = "~"


def detect_delimiters(text: str) -> Delimiters:
    """Read the separators from the ISA segment; raises X12SyntaxError if there is no valid ISA."""
    start = text.lstrip("\ufeff \r\n\t")
    if not start.startswith("ISA"):
        raise X12SyntaxError("the interchange must start with an ISA segment")
    if len(start) < ISA_LENGTH:
        raise X12SyntaxError("the ISA segment is shorter than 106 characters")
    element = start[3]
    fields = start[:ISA_LENGTH].split(element)
    if len(fields) != 17:
        raise X12SyntaxError(f"ISA must have 16 elements, found {len(fields) - 1}", segment_id="ISA", position=1)
    return Delimiters(element=element, repetition=start[82], component=start[104], segment=start[105])


@dataclass(frozen=True, slots=True)
class Segment:
    """One segment: its id and its elements (element 1 is `elements[1]`; `elements[0]` is the id)."""

    elements: tuple[str, ...]
    position: int

    @property
    def id(self) -> str:
        return self.elements[0]

    def get(self, index: int, default: str = "") -> str:
        """Element `index` (1-based, as in the implementation guides), or `default` when absent."""
        return self.elements[index] if index < len(self.elements) else default

    def components(self, index: int, delimiters: Delimiters) -> list[str]:
        """The components of a composite element (e.g. SV1-1 `HC:G9008:U1`)."""
        return self.get(index).split(delimiters.component)

    def __len__(self) -> int:
        return len(self.elements) - 1


def iter_segments(text: str, delimiters: Delimiters | None = None) -> Iterator[Segment]:
    """Split an interchange into segments; line breaks after terminators are tolerated."""
    delimiters = delimiters or detect_delimiters(text)
    body = text.lstrip("\ufeff \r\n\t")
    for position, raw in enumerate(body.split(delimiters.segment), start=1):
        raw = raw.strip("\r\n")
        if not raw.strip():
            continue
        yield Segment(tuple(raw.split(delimiters.element)), position)


def render(elements: Sequence[str | Sequence[str]], delimiters: Delimiters) -> str:
    """One segment as text; trailing empty elements are dropped (5010 forbids them); composites joined."""
    parts = [e if isinstance(e, str) else delimiters.component.join(e).rstrip(delimiters.component)
             for e in elements]
    for part in parts:
        if delimiters.element in part or delimiters.segment in part:
            # Builders clean their values; this is the second line of defence against a shifted segment.
            raise ValueError("an element value contains the element separator or segment terminator")
    while len(parts) > 1 and parts[-1] == "":
        parts.pop()
    return delimiters.element.join(parts) + delimiters.segment
