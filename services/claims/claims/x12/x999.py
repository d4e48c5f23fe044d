"""X12 999 implementation acknowledgment, 005010X231A1: which of our 837P transaction sets the MCP took.

AK1 names our functional group (GS06), AK2/IK5 each transaction set (ST02) with its code, IK3/IK4 the
segment and element errors, AK9 the group: A accepted, E accepted with errors, P partially accepted, R (or
M, W, X) rejected, with AK905-AK909 saying why. IK4-04 copies the bad value from our file (it may be PHI) and
is never kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from claims.x12.validation import ELEMENT_ERRORS, SEGMENT_ERRORS
from shared.x12.envelope import parse_interchange

IMPLEMENTATION = "005010X231A1"
ACCEPTED_CODES = frozenset({"A", "E"})  # E: accepted, errors noted (the claims go on to adjudication)
# AK901 codes that reject the whole functional group, whatever its sets' IK5 say (999 TR3 AK9).
GROUP_REJECTED_CODES = frozenset({"M", "R", "W", "X"})
# IK5-01 / AK9-01 codes (999 TR3).
ACK_CODES = {
    "A": "accepted",
    "E": "accepted with errors",
    "M": "rejected, message authentication code failed",
    "P": "partially accepted",
    "R": "rejected",
    "W": "rejected, assurance failed validity tests",
    "X": "rejected, content could not be analyzed",
}
# IK502-IK506 transaction set syntax error codes.
SET_ERRORS = {
    "1": "transaction set not supported",
    "2": "transaction set trailer missing",
    "3": "transaction set control number in header and trailer do not match",
    "4": "number of included segments does not match actual count",
    "5": "one or more segments in error",
    "6": "missing or invalid transaction set identifier",
    "7": "missing or invalid transaction set control number",
    "23": "transaction set control number not unique within the functional group",
    "I5": "implementation one or more segments in error",
    "I6": "implementation convention not supported",
}
# AK905-AK909 functional group syntax error codes.
GROUP_ERRORS = {
    "1": "functional group not supported",
    "2": "functional group version not supported",
    "3": "functional group trailer missing",
    "4": "group control number in the functional group header and trailer do not agree",
    "5": "number of included transaction sets does not match actual count",
    "6": "group control number violates syntax",
    "19": "functional group control number not unique within interchange",
}


class AcknowledgmentError(ValueError):
    """The file is not an acknowledgment this parser understands (names the rule, never a value)."""


@dataclass(frozen=True)
class SegmentError:
    """IK3 (and its IK4s): where in our transaction set the MCP found a problem."""

    segment_id: str
    position: str
    loop: str
    code: str
    elements: tuple[tuple[str, str], ...] = ()  # (IK401 position, IK403 code)

    def describe(self) -> str:
        """A reason line an EDI analyst can act on, without the offending value."""
        text = f"{self.segment_id} at segment {self.position}"
        if self.loop:
            text += f" (loop {self.loop})"
        text += f": {SEGMENT_ERRORS.get(self.code, 'segment error ' + self.code)}"
        for element, code in self.elements:
            text += f"; element {element}: {ELEMENT_ERRORS.get(code, 'error ' + code)}"
        return text


@dataclass
class SetAcknowledgment:
    """AK2 + IK5: the fate of one of our transaction sets."""

    control_number: str
    transaction_code: str
    code: str = ""
    set_errors: tuple[str, ...] = ()
    segment_errors: list[SegmentError] = field(default_factory=list)

    @property
    def accepted(self) -> bool:
        """True for IK5 A or E: the claims in the set go on to adjudication."""
        return self.code in ACCEPTED_CODES

    def reasons(self) -> list[str]:
        """Why the set was rejected or noted, one line per error."""
        lines = [f"999 IK5 {self.code}: {ACK_CODES.get(self.code, 'unknown code')}"]
        lines += [f"IK5 {c}: {SET_ERRORS.get(c, 'error ' + c)}" for c in self.set_errors]
        lines += [error.describe() for error in self.segment_errors]
        return lines


@dataclass
class FunctionalAcknowledgment:
    """One 999 transaction: the group it answers (AK1) and each set's fate (AK2..IK5), AK9 summary."""

    functional_code: str
    group_control_number: str
    version: str
    code: str = ""
    sets_included: int = 0
    sets_received: int = 0
    sets_accepted: int = 0
    group_errors: tuple[str, ...] = ()  # AK905-AK909
    sets: list[SetAcknowledgment] = field(default_factory=list)

    @property
    def rejected(self) -> bool:
        """True for AK9 M, R, W or X: the MCP took none of the group's transaction sets."""
        return self.code in GROUP_REJECTED_CODES

    def reasons(self) -> list[str]:
        """Why the group was rejected, one line per AK9 error."""
        lines = [f"999 AK9 {self.code}: {ACK_CODES.get(self.code, 'unknown code')}"]
        lines += [f"AK9 {c}: {GROUP_ERRORS.get(c, 'error ' + c)}" for c in self.group_errors]
        return lines

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (no element values)."""
        return {
            "functional_code": self.functional_code, "group_control_number": self.group_control_number,
            "version": self.version, "code": self.code, "meaning": ACK_CODES.get(self.code, "unknown"),
            "sets_included": self.sets_included, "sets_received": self.sets_received,
            "sets_accepted": self.sets_accepted, "group_errors": list(self.group_errors),
            "sets": [{"control_number": s.control_number, "transaction_code": s.transaction_code,
                      "code": s.code, "accepted": s.accepted, "reasons": s.reasons()} for s in self.sets],
        }


def _int(value: str) -> int:
    return int(value) if value.isdigit() else 0


def parse_999(text: str) -> list[FunctionalAcknowledgment]:
    """Every 999 transaction in an interchange. Raises X12SyntaxError (envelope) or AcknowledgmentError."""
    interchange = parse_interchange(text)
    result: list[FunctionalAcknowledgment] = []
    for group in interchange.groups:
        if group.functional_code != "FA":
            raise AcknowledgmentError("a 999 travels in a functional group with GS01 FA")
        for transaction in group.transactions:
            if transaction.code != "999":
                raise AcknowledgmentError("not a 999 transaction set")
            ack: FunctionalAcknowledgment | None = None
            current: SetAcknowledgment | None = None
            for seg in transaction.segments:
                sid = seg.id
                if sid == "AK1":
                    ack = FunctionalAcknowledgment(functional_code=seg.get(1), group_control_number=seg.get(2),
                                                   version=seg.get(3))
                elif ack is None and sid not in ("ST", "SE"):
                    raise AcknowledgmentError("a 999 starts with AK1")
                elif sid == "AK2" and ack is not None:
                    current = SetAcknowledgment(control_number=seg.get(2), transaction_code=seg.get(1))
                    ack.sets.append(current)
                elif sid == "IK3" and current is not None:
                    current.segment_errors.append(SegmentError(seg.get(1), seg.get(2), seg.get(3), seg.get(4)))
                elif sid == "IK4" and current is not None and current.segment_errors:
                    last = current.segment_errors[-1]
                    position = seg.get(1).split(interchange.delimiters.component)[0]
                    current.segment_errors[-1] = SegmentError(
                        last.segment_id, last.position, last.loop, last.code,
                        (*last.elements, (position, seg.get(3))))
                elif sid == "IK5" and current is not None:
                    current.code = seg.get(1)
                    current.set_errors = tuple(e for e in seg.elements[2:7] if e)
                    current = None
                elif sid == "AK9" and ack is not None:
                    ack.code = seg.get(1)
                    ack.sets_included, ack.sets_received = _int(seg.get(2)), _int(seg.get(3))
                    ack.sets_accepted = _int(seg.get(4))
                    ack.group_errors = tuple(e for e in seg.elements[5:10] if e)
            if ack is None:
                raise AcknowledgmentError("a 999 starts with AK1")
            if ack.code not in ACK_CODES:
                raise AcknowledgmentError("AK9-01 is missing or not a 999 acknowledgment code")
            for set_ack in ack.sets:
                if set_ack.code not in ACK_CODES:
                    raise AcknowledgmentError("an AK2 loop has no valid IK5-01 code")
            result.append(ack)
    return result
