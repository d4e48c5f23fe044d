"""Denial reasons: CARC/RARC → a category a biller can act on and the suggested next action.

The codes come from an effective-dated table shipped as data (claims/domain/data/carc.csv, rarc.csv): X12
revises the code lists several times a year, so a changed meaning is a new row with a new `effective_from`
and the old row closed with `effective_to` (both inclusive, empty = open). See docs/decisions/0072.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from functools import cache
from importlib import resources
from typing import Final


class DenialCategory(StrEnum):
    """What kind of work a denial needs (the denial work queue groups by this)."""

    ELIGIBILITY = "eligibility"
    AUTHORIZATION = "authorization"
    CODING = "coding"
    DUPLICATE = "duplicate"
    TIMELY_FILING = "timely_filing"
    MISSING_INFORMATION = "missing_information"
    OTHER = "other"


class AdjustmentKind(StrEnum):
    """What a CARC means for the claim's status, whatever the amount."""

    CONTRACTUAL = "contractual"  # a write-off to the contracted rate (CO-45): never a denial
    PATIENT_RESPONSIBILITY = "patient_responsibility"  # deductible, coinsurance, co-pay
    INFORMATIONAL = "informational"  # capitation, reporting-only, bundled: not a denial on a processed claim
    DENIAL = "denial"  # the service was not paid for a reason someone must act on


# When several reasons apply, the one whose fix makes the others moot decides: a duplicate or an ineligible
# member cannot be cured by fixing codes, and a late claim cannot be cured by adding information.
CATEGORY_PRECEDENCE: Final = (
    DenialCategory.DUPLICATE,
    DenialCategory.ELIGIBILITY,
    DenialCategory.TIMELY_FILING,
    DenialCategory.AUTHORIZATION,
    DenialCategory.CODING,
    DenialCategory.MISSING_INFORMATION,
    DenialCategory.OTHER,
)
DEFAULT_NEXT_ACTION: Final[Mapping[DenialCategory, str]] = {
    DenialCategory.ELIGIBILITY: "Verify Medi-Cal eligibility and MCP enrollment on the date of service (270/271); "
                                "bill the right plan or write off.",
    DenialCategory.AUTHORIZATION: "Check the MCP authorization for the member, service and date; add it in REF*G1 "
                                  "and resubmit (frequency 7 with REF*F8) or request one.",
    DenialCategory.CODING: "Check codes and modifiers against the DHCS coding options for the date of service; "
                           "correct and resubmit (frequency 7 with REF*F8).",
    DenialCategory.DUPLICATE: "Do not resubmit; find the original claim's payment by payer claim number.",
    DenialCategory.TIMELY_FILING: "Appeal only with proof of timely submission (999/277CA); otherwise write off.",
    DenialCategory.MISSING_INFORMATION: "Add the missing information and resubmit (frequency 7 with REF*F8).",
    DenialCategory.OTHER: "Review the codes with the MCP before reworking the claim.",
}
_KNOWN_GROUPS: Final = frozenset({"CO", "OA", "PI", "PR"})


class CodeTableError(ValueError):
    """A code table row is malformed or overlaps another row of the same code; names the file and line."""


@dataclass(frozen=True, slots=True)
class CodeEntry:
    """One row of the CARC or RARC table, in force from `effective_from` to `effective_to` (inclusive)."""

    code: str
    category: DenialCategory | None  # None: an alert that does not classify (e.g. MA18)
    description: str
    next_action: str
    effective_from: date | None = None
    effective_to: date | None = None
    kind: AdjustmentKind | None = None  # CARC only
    defer_to_remark: bool = False  # CARC only: a generic code (16, 96, 125, A1...) whose RARC says more
    marker: str = "practice"

    def in_force_on(self, on: date) -> bool:
        """True when `on` falls inside the row's effective period."""
        if self.effective_from is not None and on < self.effective_from:
            return False
        return self.effective_to is None or on <= self.effective_to


@dataclass(frozen=True, slots=True)
class DenialReason:
    """The classification of one denied claim or line."""

    category: DenialCategory
    next_action: str
    deciding_code: str  # e.g. "CO-197" or "N290": the code whose category and action were chosen
    codes: tuple[str, ...]  # every CARC (as GROUP-CODE) and RARC considered, in file order
    unknown_codes: tuple[str, ...] = ()  # codes not in force in the table on the date: update the table

    def as_dict(self) -> dict[str, object]:
        """JSON-ready data."""
        return {"category": self.category.value, "next_action": self.next_action,
                "deciding_code": self.deciding_code, "codes": list(self.codes),
                "unknown_codes": list(self.unknown_codes)}


def _optional_date(text: str, where: str) -> date | None:
    text = text.strip()
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise CodeTableError(f"{where}: not an ISO date") from None


def _rows(text: str, name: str, columns: set[str]) -> list[tuple[str, dict[str, str]]]:
    reader = csv.DictReader(io.StringIO(text))
    missing = columns - set(reader.fieldnames or ())
    if missing:
        raise CodeTableError(f"{name}: missing columns {sorted(missing)}")
    return [(f"{name} line {reader.line_num}", row) for row in reader]


def _index(entries: list[tuple[str, CodeEntry]]) -> dict[str, tuple[CodeEntry, ...]]:
    by_code: dict[str, list[CodeEntry]] = {}
    for where, entry in entries:
        for other in by_code.get(entry.code, []):
            starts_before = (entry.effective_from is None or other.effective_to is None
                             or entry.effective_from <= other.effective_to)
            ends_after = (other.effective_from is None or entry.effective_to is None
                          or other.effective_from <= entry.effective_to)
            if starts_before and ends_after:
                raise CodeTableError(f"{where}: code {entry.code} overlaps an earlier row of the same code")
        by_code.setdefault(entry.code, []).append(entry)
    return {code: tuple(rows) for code, rows in by_code.items()}


class CodeTable:
    """The CARC and RARC tables, looked up by code and date."""

    def __init__(self, carcs: Mapping[str, tuple[CodeEntry, ...]], rarcs: Mapping[str, tuple[CodeEntry, ...]]):
        self._carcs = dict(carcs)
        self._rarcs = dict(rarcs)
        # adjustment_kind runs for every CAS of a month-end file: remember answers per (code, date).
        self._kinds: dict[tuple[str, date], AdjustmentKind] = {}

    @classmethod
    def from_csv(cls, carc_text: str, rarc_text: str) -> CodeTable:
        """Build a table from CSV text (columns as in data/carc.csv, data/rarc.csv). Raises CodeTableError."""
        carcs: list[tuple[str, CodeEntry]] = []
        for where, row in _rows(carc_text, "carc.csv", {"code", "kind", "category", "defer_to_remark",
                                                        "description", "next_action", "effective_from",
                                                        "effective_to", "marker"}):
            carcs.append((where, _entry(row, where, carc=True)))
        rarcs: list[tuple[str, CodeEntry]] = []
        for where, row in _rows(rarc_text, "rarc.csv", {"code", "category", "description", "next_action",
                                                        "effective_from", "effective_to", "marker"}):
            rarcs.append((where, _entry(row, where, carc=False)))
        return cls(_index(carcs), _index(rarcs))

    def carc(self, code: str, on: date) -> CodeEntry | None:
        """The CARC row in force on `on`, or None when the code is unknown or not in force then."""
        return next((e for e in self._carcs.get(code, ()) if e.in_force_on(on)), None)

    def rarc(self, code: str, on: date) -> CodeEntry | None:
        """The RARC row in force on `on`, or None when the code is unknown or not in force then."""
        return next((e for e in self._rarcs.get(code, ()) if e.in_force_on(on)), None)

    def adjustment_kind(self, reason: str, on: date) -> AdjustmentKind:
        """What a CARC means for status; an unknown code counts as a denial so that someone looks at it."""
        known = self._kinds.get((reason, on))
        if known is None:
            entry = self.carc(reason, on)
            known = entry.kind if entry is not None and entry.kind is not None else AdjustmentKind.DENIAL
            self._kinds[(reason, on)] = known
        return known


def _entry(row: dict[str, str], where: str, *, carc: bool) -> CodeEntry:
    code = (row.get("code") or "").strip()
    if not code or not code.isalnum() or len(code) > 5:
        raise CodeTableError(f"{where}: a code is 1-5 letters or digits")
    category_text = (row.get("category") or "").strip()
    try:
        category = DenialCategory(category_text) if category_text else None
        kind = AdjustmentKind((row.get("kind") or "").strip()) if carc else None
    except ValueError:
        raise CodeTableError(f"{where}: unknown category or kind") from None
    if carc and category is None:
        raise CodeTableError(f"{where}: a CARC needs a category")
    defer = (row.get("defer_to_remark") or "no").strip()
    if defer not in ("yes", "no"):
        raise CodeTableError(f"{where}: defer_to_remark is yes or no")
    next_action = (row.get("next_action") or "").strip()
    if not next_action:
        raise CodeTableError(f"{where}: next_action is required")
    start = _optional_date(row.get("effective_from") or "", where)
    end = _optional_date(row.get("effective_to") or "", where)
    if start and end and end < start:
        raise CodeTableError(f"{where}: effective_to is before effective_from")
    return CodeEntry(code=code, category=category, description=(row.get("description") or "").strip(),
                     next_action=next_action, effective_from=start, effective_to=end, kind=kind,
                     defer_to_remark=defer == "yes", marker=(row.get("marker") or "practice").strip())


@cache
def default_code_table() -> CodeTable:
    """The packaged CARC/RARC table (read once). Raises CodeTableError if the data files are malformed."""
    folder = resources.files("claims.domain") / "data"
    return CodeTable.from_csv((folder / "carc.csv").read_text(encoding="utf-8"),
                              (folder / "rarc.csv").read_text(encoding="utf-8"))


def classify_denial(adjustments: Iterable[tuple[str, str]], remarks: Iterable[str], on: date,
                    table: CodeTable | None = None) -> DenialReason:
    """Classify a denial from its CAS (group, CARC) pairs and RARCs as in force on `on` (the 835's date).

    Contractual and patient-responsibility codes never decide while a denial code is present; a generic CARC
    (16, 96, 125, 226, 227, 252, A1) yields to the RARC's category when the RARC has one. Among the remaining
    candidates CATEGORY_PRECEDENCE decides. Codes not in the table are listed in `unknown_codes` and, when
    nothing known remains, classify as OTHER. Raises ValueError for an unknown CAS group.
    """
    table = table or default_code_table()
    codes: list[str] = []
    unknown: list[str] = []
    # (category, next action, deciding code, strength): strength 2 = denial CARC or RARC, 1 = informational,
    # 0 = contractual or patient responsibility (only decides when nothing else is there).
    candidates: list[tuple[DenialCategory, str, str, int]] = []
    deferring: list[tuple[DenialCategory, str, str, int]] = []
    for group, reason in adjustments:
        if group not in _KNOWN_GROUPS:
            raise ValueError("CAS group must be CO, OA, PI or PR")
        label = f"{group}-{reason}"
        if label in codes:
            continue
        codes.append(label)
        entry = table.carc(reason, on)
        if entry is None or entry.category is None:
            unknown.append(label)
            continue
        strength = {AdjustmentKind.DENIAL: 2, AdjustmentKind.INFORMATIONAL: 1}.get(
            entry.kind or AdjustmentKind.DENIAL, 0)
        item = (entry.category, entry.next_action, label, strength)
        (deferring if entry.defer_to_remark else candidates).append(item)
    remark_items: list[tuple[DenialCategory, str, str, int]] = []
    for remark in remarks:
        if remark in codes:
            continue
        codes.append(remark)
        entry = table.rarc(remark, on)
        if entry is None:
            unknown.append(remark)
        elif entry.category is not None:
            remark_items.append((entry.category, entry.next_action, remark, 2))
    # A generic CARC says "see the remark": the RARC's category replaces it; without one, the CARC stands.
    pool = candidates + (remark_items if remark_items else deferring)
    if not pool:
        return DenialReason(DenialCategory.OTHER, _unknown_action(unknown), unknown[0] if unknown else "",
                            tuple(codes), tuple(unknown))
    strongest = max(item[3] for item in pool)
    pool = [item for item in pool if item[3] == strongest]
    chosen = min(pool, key=lambda item: CATEGORY_PRECEDENCE.index(item[0]))
    return DenialReason(chosen[0], chosen[1] or DEFAULT_NEXT_ACTION[chosen[0]], chosen[2], tuple(codes),
                        tuple(unknown))


def _unknown_action(unknown: list[str]) -> str:
    if not unknown:
        return "The payer gave no reason code: ask the MCP for the denial reason before reworking the claim."
    return ("A code is not in CalHub's CARC/RARC table for this date: look it up in the current X12 code list, "
            "update claims/domain/data and reclassify.")
