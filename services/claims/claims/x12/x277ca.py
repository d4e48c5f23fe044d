"""X12 277CA claim acknowledgment, 005010X214: per claim, did the MCP take it into adjudication?

HL levels: 20 information source (payer), 21 information receiver (the hub as submitter), 19 billing provider,
PT patient = one claim. At PT level TRN02 echoes our CLM01, STC01 carries category:status:entity, and REF*1K
the payer's claim control number (which a frequency 7/8 claim must quote in REF*F8).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from shared.x12.envelope import parse_interchange

IMPLEMENTATION = "005010X214"
# Claim status category codes (code source 507). A1/A2 accepted, A3/A7 rejected (FILES.md); A4 not found,
# A6/A8 rejections too; A5 split claim is accepted; A0 (forwarded) changes nothing.
CATEGORIES = {
    "A0": "acknowledgement: forwarded",
    "A1": "acknowledgement: receipt",
    "A2": "acknowledgement: accepted into adjudication",
    "A3": "acknowledgement: returned as unprocessable claim",
    "A4": "acknowledgement: not found",
    "A5": "acknowledgement: split claim",
    "A6": "acknowledgement: rejected for missing information",
    "A7": "acknowledgement: rejected for invalid information",
    "A8": "acknowledgement: rejected for relational field in error",
}
ACCEPTED_CATEGORIES = frozenset({"A1", "A2", "A5"})
REJECTED_CATEGORIES = frozenset({"A3", "A4", "A6", "A7", "A8"})
# A few claim status codes (code source 508) seen on CalAIM rejections; others are reported by number.
STATUS_CODES = {
    "19": "entity acknowledges receipt of claim/encounter",
    "20": "accepted for processing",
    "21": "missing or invalid information",
    "187": "date(s) of service",
    "453": "procedure code modifier(s) for services rendered",
    "454": "procedure code for services rendered",
    "562": "entity's National Provider Identifier (NPI)",
}
# Entity identifier codes (STC01-3).
ENTITIES = {"85": "billing provider", "82": "rendering provider", "IL": "subscriber", "QC": "patient",
            "PR": "payer", "41": "submitter", "40": "receiver"}


class ClaimAcknowledgmentError(ValueError):
    """The file is not a 277CA this parser understands (names the rule, never a value)."""


@dataclass(frozen=True)
class ClaimStatus:
    """One STC composite: category, status code and entity."""

    category: str
    status: str
    entity: str = ""

    def describe(self) -> str:
        """`A7:562:85 acknowledgement: rejected for invalid information - entity's NPI (billing provider)`."""
        code = ":".join(part for part in (self.category, self.status, self.entity) if part)
        text = f"277CA {code} {CATEGORIES.get(self.category, 'unknown category')}"
        if self.status:
            text += f" - {STATUS_CODES.get(self.status, 'status code ' + self.status)}"
        if self.entity:
            text += f" ({ENTITIES.get(self.entity, 'entity ' + self.entity)})"
        return text


@dataclass
class ClaimAcknowledgment:
    """The PT-level answer about one claim."""

    claim_id: str
    statuses: list[ClaimStatus] = field(default_factory=list)
    payer_claim_number: str | None = None
    status_date: date | None = None
    charge: Decimal | None = None

    @property
    def outcome(self) -> str:
        """rejected if any status rejects, accepted if one accepts, else informational."""
        categories = {s.category for s in self.statuses}
        if categories & REJECTED_CATEGORIES:
            return "rejected"
        if categories & ACCEPTED_CATEGORIES:
            return "accepted"
        return "informational"

    def reasons(self) -> list[str]:
        """Each status, described."""
        return [status.describe() for status in self.statuses]


@dataclass
class ClaimAcknowledgmentFile:
    """A 277CA: provider-level statuses and one entry per claim."""

    reference: str
    claims: list[ClaimAcknowledgment] = field(default_factory=list)
    provider_statuses: list[ClaimStatus] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (claim ids, codes and amounts; no member data)."""
        return {
            "reference": self.reference,
            "provider_statuses": [s.describe() for s in self.provider_statuses],
            "claims": [{"claim_id": c.claim_id, "outcome": c.outcome, "reasons": c.reasons(),
                        "payer_claim_number": c.payer_claim_number,
                        "status_date": c.status_date.isoformat() if c.status_date else None,
                        "charge": str(c.charge) if c.charge is not None else None} for c in self.claims],
        }


def _date(value: str) -> date | None:
    try:
        return datetime.strptime(value, "%Y%m%d").date()
    except ValueError:
        return None


def _amount(value: str) -> Decimal | None:
    try:
        return Decimal(value) if value else None
    except InvalidOperation:
        return None


def parse_277ca(text: str) -> ClaimAcknowledgmentFile:
    """The claims a 277CA answers, with their statuses. Raises X12SyntaxError or ClaimAcknowledgmentError."""
    interchange = parse_interchange(text)
    component = interchange.delimiters.component
    result: ClaimAcknowledgmentFile | None = None
    for group in interchange.groups:
        if group.functional_code != "HN":
            raise ClaimAcknowledgmentError("a 277CA travels in a functional group with GS01 HN")
        for transaction in group.transactions:
            if transaction.code != "277":
                raise ClaimAcknowledgmentError("not a 277 transaction set")
            level = ""
            current: ClaimAcknowledgment | None = None
            for seg in transaction.segments:
                sid = seg.id
                if sid == "BHT":
                    if result is None:
                        result = ClaimAcknowledgmentFile(reference=seg.get(3))
                elif sid == "HL":
                    level = seg.get(3)
                    current = None
                elif sid == "TRN" and level == "PT":
                    if result is None:
                        raise ClaimAcknowledgmentError("BHT missing before the first HL")
                    current = ClaimAcknowledgment(claim_id=seg.get(2))
                    result.claims.append(current)
                elif sid == "STC":
                    parts = seg.get(1).split(component)
                    status = ClaimStatus(parts[0], parts[1] if len(parts) > 1 else "",
                                         parts[2] if len(parts) > 2 else "")
                    if status.category not in CATEGORIES and not status.category.startswith(("A", "E", "D")):
                        raise ClaimAcknowledgmentError("STC01-1 is not a claim status category code")
                    if level == "PT" and current is not None:
                        current.statuses.append(status)
                        current.status_date = current.status_date or _date(seg.get(2))
                        current.charge = current.charge if current.charge is not None else _amount(seg.get(4))
                    elif level == "19" and result is not None:
                        result.provider_statuses.append(status)
                elif sid == "REF" and seg.get(1) == "1K" and level == "PT" and current is not None:
                    current.payer_claim_number = seg.get(2)
    if result is None:
        raise ClaimAcknowledgmentError("no 277CA transaction found")
    for claim in result.claims:
        if not claim.claim_id:
            raise ClaimAcknowledgmentError("a patient-level TRN02 (our CLM01) is empty")
        if not claim.statuses:
            raise ClaimAcknowledgmentError("a claim in the 277CA has no STC status")
    return result
