"""Validation of X12 files against the 5010 implementation guides (pyx12 4.0) plus rules pyx12 does not check.

pyx12 walks the TR3 maps (837P X222A1, 999 X231A1, 277CA X214): loops, usage, lengths, code lists, dates.
It does not check NPI check digits, the 9-digit billing-provider ZIP (X222A1 2010AA N403) or that CLM02 is the
sum of the SV102 line charges, so `claim_rules` adds those. Issues never carry element values: pyx12's own
messages quote them (a birth date, a CIN), so messages are rebuilt from the error code and element name, and
pyx12's logger is kept from propagating.
"""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import pyx12.params
import pyx12.x12n_document

from claims.x12.x837p import IMPLEMENTATION
from shared.reference.identifiers import npi_problem
from shared.x12.segments import X12SyntaxError, detect_delimiters

# IK304 segment syntax error codes (999 TR3) as pyx12 reports them.
SEGMENT_ERRORS = {
    "1": "unrecognized segment id",
    "2": "unexpected segment",
    "3": "required segment or loop missing",
    "4": "loop occurs over maximum times",
    "5": "segment exceeds maximum use",
    "6": "segment not in defined transaction set",
    "7": "segment not in proper sequence",
    "8": "segment has data element errors",
    "I4": "implementation 'not used' segment present",
    "I6": "implementation dependent segment missing",
    "I7": "implementation loop occurs under minimum times",
    "I8": "implementation segment below minimum use",
    "I9": "implementation dependent 'not used' segment present",
}
# IK403 data element syntax error codes.
ELEMENT_ERRORS = {
    "1": "required data element missing",
    "2": "conditional required data element missing",
    "3": "too many data elements",
    "4": "data element too short",
    "5": "data element too long",
    "6": "invalid character in data element",
    "7": "invalid code value",
    "8": "invalid date",
    "9": "invalid time",
    "10": "exclusion condition violated",
    "12": "too many repetitions",
    "13": "too many components",
    "I10": "implementation 'not used' data element present",
    "I11": "implementation too few repetitions",
    "I12": "implementation pattern match failure",
    "I13": "implementation dependent 'not used' data element present",
    "I6": "code value not used in implementation",
    "I9": "implementation dependent data element missing",
}
_PARENTHESIZED = re.compile(r"\([^)]*\)")
_QUOTED = re.compile(r"\"[^\"]*\"|'[^']*'")
_REFDES = re.compile(r"^[A-Z0-9]{2,3}[0-9]{2}(-[0-9]+)?$|^[0-9]{4}[A-Z]{0,2}$")


@dataclass(frozen=True)
class ValidationIssue:
    """One problem in a file: where (1-based segment position), which segment, which rule, and why."""

    position: int
    segment: str | None
    rule: str
    message: str
    # 1-based position of the segment in the whole file, when `position` counts within its transaction set (as
    # pyx12 reports it); 0 when `position` already is the file position.
    in_file: int = 0

    @property
    def file_position(self) -> int:
        """1-based position of the segment in the whole file (0: the file as a whole)."""
        return self.in_file or self.position

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, as `calhub x12 validate` prints it."""
        return {"position": self.position, "segment": self.segment, "rule": self.rule, "message": self.message}


def _without_values(text: str) -> str:
    # Keep reference designators and loop ids such as (DMG02) or (2010BB); drop every other quoted value.
    def keep(match: re.Match[str]) -> str:
        inner = match.group(0)[1:-1]
        return match.group(0) if _REFDES.match(inner) else ""

    return " ".join(_PARENTHESIZED.sub(keep, text).split())


def _pyx12_issues(document: dict[str, Any]) -> list[ValidationIssue]:
    issues: list[ValidationIssue] = []

    def envelope(node: dict[str, Any], segment: str) -> None:
        for error in node.get("errors", []):
            code = str(error.get("err_cde", ""))
            text = _without_values(_QUOTED.sub("", str(error.get("err_str", ""))))
            issues.append(ValidationIssue(int(node.get("cur_line") or 0), segment, f"x12-{segment.lower()}-{code}",
                                          text or "envelope error"))

    for isa in document.get("interchanges", []):
        envelope(isa, "ISA")
        for group in isa.get("groups", []):
            envelope(group, "GS")
            for transaction in group.get("transactions", []):
                envelope(transaction, "ST")
                for seg in transaction.get("segments", []):
                    position = int(seg.get("seg_count") or seg.get("cur_line") or 0)
                    in_file = int(seg.get("cur_line") or 0)
                    seg_id = seg.get("seg_id")
                    for error in seg.get("errors", []):
                        code = str(error.get("err_cde", ""))
                        loop = _without_values(str(error.get("err_str", "")))
                        meaning = SEGMENT_ERRORS.get(code, "segment error")
                        issues.append(ValidationIssue(position, seg_id, f"ik304-{code}",
                                                      f"{meaning}: {loop}" if loop else meaning, in_file))
                    for element in seg.get("elements", []):
                        where = f"{element.get('name')} ({element.get('ele_ref_num')})"
                        for error in element.get("errors", []):
                            code = str(error.get("err_cde", ""))
                            meaning = ELEMENT_ERRORS.get(code, "data element error")
                            issues.append(ValidationIssue(position, seg_id, f"ik403-{code}", f"{where}: {meaning}",
                                                          in_file))
    return issues


def _quiet_pyx12() -> None:
    # pyx12 logs each error with the offending value (a birth date, a CIN): never let that reach our handlers.
    logger = logging.getLogger("pyx12")
    logger.propagate = False
    if not any(isinstance(h, logging.NullHandler) for h in logger.handlers):
        logger.addHandler(logging.NullHandler())


def guide_issues(text: str) -> list[ValidationIssue]:
    """Run pyx12 4.0 over an interchange (837P, 999, 277CA, 835...) and return its findings, value-free."""
    _quiet_pyx12()
    params = pyx12.params.params()
    errors_json = io.StringIO()
    try:
        valid = pyx12.x12n_document.x12n_document(params, io.StringIO(text), io.StringIO(), None, None,
                                                  errors_json)
    except Exception as exc:  # noqa: BLE001 - pyx12 raises EngineError/X12Error for unreadable input
        return [ValidationIssue(0, None, "x12-unreadable", f"the validator could not read the file "
                                f"({type(exc).__name__})")]
    raw = errors_json.getvalue()
    issues = _pyx12_issues(json.loads(raw)) if raw else []
    if not valid and not issues:
        issues.append(ValidationIssue(0, None, "x12-invalid", "the validator rejected the file"))
    return issues


def _decimal(value: str) -> Decimal | None:
    try:
        return Decimal(value)
    except InvalidOperation:
        return None


def claim_rules(text: str) -> list[ValidationIssue]:
    """CalHub's 837P rules beyond the guide maps: GS08 version, NPI check digits, 9-digit billing ZIP,
    CLM02 = ΣSV102, REF*F8 on replacements and voids.

    One streaming pass over the segments (a 50,000-claim file has a million of them); envelope structure and
    counts are the guide validator's job (`guide_issues`).
    """
    try:
        delimiters = detect_delimiters(text)
    except X12SyntaxError as exc:
        return [ValidationIssue(exc.position, exc.segment_id, "x12-syntax", exc.message)]
    body = text.lstrip("\ufeff \r\n\t")
    line_breaks = "\n" in body or "\r" in body  # line breaks after terminators are tolerated
    scan = _ClaimScan(delimiters.component)
    for raws in _segment_chunks(body, delimiters.segment):
        scan.feed([raw.strip("\r\n") for raw in raws] if line_breaks else raws, delimiters.element)
    scan.close_claim()
    return scan.issues


def _segment_chunks(body: str, terminator: str, size: int = 1 << 20) -> Iterator[list[str]]:
    # body.split(terminator), a megabyte at a time: a 20 MB file never becomes a million strings at once.
    start, end = 0, len(body)
    while start < end:
        cut = body.find(terminator, start + size)
        if cut < 0:
            yield body[start:].split(terminator)
            return
        yield body[start:cut].split(terminator)
        start = cut + len(terminator)


# Frequent segments no rule looks at (they neither carry a checked value nor open or close a claim or an
# entity): skipped without being split.
_PASSED_OVER = frozenset({"SBR", "N3", "DMG", "HI", "PRV", "LX", "DTP", "BHT", "PER"})


class _ClaimScan:
    """State of the streaming rule check: the current NM1 entity and the open claim."""

    def __init__(self, component: str) -> None:
        self.component = component
        self.issues: list[ValidationIssue] = []
        self.entity: str | None = None
        self.claim: tuple[int, str, str] | None = None  # (position, CLM02, frequency)
        self.line_total = Decimal("0")
        self.has_f8 = False
        self._npi_problems: dict[str, str | None] = {}  # a batch names the same few NPIs on every claim
        self.position = 0  # segments seen so far (1-based positions in issues)

    def close_claim(self) -> None:
        if self.claim is None:
            return
        position, total_text, frequency = self.claim
        total = _decimal(total_text)
        if total is None or total != self.line_total:
            self.issues.append(ValidationIssue(position, "CLM", "clm02-sum",
                                               "CLM02 must equal the sum of the claim's SV102 line charges"))
        if frequency in ("7", "8") and not self.has_f8:
            self.issues.append(ValidationIssue(position, "CLM", "ref-f8-required",
                                               "a replacement (7) or void (8) claim needs REF*F8 payer claim number"))
        self.claim, self.line_total, self.has_f8 = None, Decimal("0"), False

    def feed(self, raws: list[str], element: str) -> None:
        """Check segments in file order; empty ones (after the last terminator) do not count as positions."""
        position = self.position
        passed_over = _PASSED_OVER
        for raw in raws:
            if not raw:
                continue
            position += 1
            cut = raw.find(element)
            if (raw if cut < 0 else raw[:cut]) in passed_over:
                continue
            self.segment(raw.split(element), position)
        self.position = position

    def segment(self, elements: list[str], position: int) -> None:
        sid = elements[0]
        count = len(elements)
        if sid == "NM1":
            entity = self.entity = elements[1] if count > 1 else ""
            if count > 8 and elements[8] == "XX":
                npi = elements[9] if count > 9 else ""
                if npi in self._npi_problems:
                    problem = self._npi_problems[npi]
                else:
                    problem = self._npi_problems[npi] = npi_problem(npi)
                if problem is not None:
                    self.issues.append(ValidationIssue(position, "NM1", "npi-check-digit",
                                                       f"NM109 NPI of entity {entity} {problem}"))
        elif sid == "SV1":
            amount = _decimal(elements[2] if count > 2 else "")
            if amount is None:
                self.issues.append(ValidationIssue(position, "SV1", "sv102-amount", "SV102 is not a number"))
            else:
                self.line_total += amount
        elif sid == "N4":
            if self.entity == "85":
                zip_code = elements[3] if count > 3 else ""
                if not (len(zip_code) == 9 and zip_code.isdigit()):
                    self.issues.append(ValidationIssue(position, "N4", "billing-zip-9",
                                                       "the billing provider's N403 must be a 9-digit ZIP+4"))
        elif sid == "CLM":
            self.close_claim()
            composite = (elements[5] if count > 5 else "").split(self.component)
            self.claim = (position, elements[2] if count > 2 else "", composite[2] if len(composite) > 2 else "")
        elif sid == "REF":
            if count > 1 and elements[1] == "F8" and self.claim is not None:
                self.has_f8 = True
        elif sid in ("HL", "SE", "ST"):
            self.close_claim()
            self.entity = None
        elif sid == "GS" and (elements[8] if count > 8 else "") != IMPLEMENTATION:
            self.issues.append(ValidationIssue(position, "GS", "gs08-version", f"GS08 must be {IMPLEMENTATION}"))


def claims_at(text: str, positions: Collection[int]) -> dict[int, str]:
    """The claim (CLM01) whose loops hold each of these 1-based segment positions of an 837P: from its subscriber
    HL (2000B, HL03 = 22) up to the next HL or SE. Positions outside every claim (envelope, header, billing
    provider) are left out, and so is the payer name loop (2010BB, NM1*PR up to the next NM1 or CLM): each
    claim carries it, but it is written from the MCP's billing profile, so its issues are the configuration's."""
    wanted = set(positions)
    found: dict[int, str] = {}
    try:
        delimiters = detect_delimiters(text)
    except X12SyntaxError:
        return found
    element = delimiters.element
    body = text.lstrip("\ufeff \r\n\t")
    line_breaks = "\n" in body or "\r" in body
    position = 0
    in_claim = False
    in_payer = False  # inside 2010BB
    claim_id: str | None = None
    held: list[int] = []  # wanted positions in the current claim's loops

    def close() -> None:
        if claim_id is not None:
            found.update((p, claim_id) for p in held)
        held.clear()

    for raws in _segment_chunks(body, delimiters.segment):
        for raw in raws:
            if line_breaks:
                raw = raw.strip("\r\n")
            if not raw:
                continue
            position += 1
            cut = raw.find(element)
            sid = raw if cut < 0 else raw[:cut]
            if sid in ("HL", "SE"):
                close()
                claim_id = None
                in_payer = False
                parts = raw.split(element)
                in_claim = sid == "HL" and len(parts) > 3 and parts[3] == "22"
            elif in_claim and sid == "CLM":
                in_payer = False
                parts = raw.split(element)
                claim_id = parts[1] if len(parts) > 1 else None
            elif in_claim and sid == "NM1":
                in_payer = raw.split(element, 2)[1:2] == ["PR"]
            if in_claim and not in_payer and position in wanted:
                held.append(position)
    close()
    return found


def validate_837p(text: str, *, with_guide: bool = True) -> list[ValidationIssue]:
    """Every issue of an 837P interchange: pyx12 against X222A1, then CalHub's own rules. Empty: valid."""
    issues = guide_issues(text) if with_guide else []
    return issues + claim_rules(text)
