"""`calhub x12 validate|parse` for the sets the claims service owns, keyed by ST01 (see calhub/x12_tool.py).

837: pyx12 against 005010X222A1 plus CalHub's rules (NPI check digits, 9-digit billing ZIP, CLM02 = ΣSV102).
999 and 277: pyx12 against X231A1 / X214, then our parser. Parse output carries ids, codes and amounts only.
The remittance module adds "835" to TOOLS below.
"""

from __future__ import annotations

from typing import Any

from claims.x12.validation import ValidationIssue, claim_rules, guide_issues
from claims.x12.x277ca import ClaimAcknowledgmentError, parse_277ca
from claims.x12.x999 import AcknowledgmentError, parse_999
from shared.x12.envelope import parse_interchange
from shared.x12.segments import X12SyntaxError


def _issues(items: list[ValidationIssue]) -> list[dict[str, Any]]:
    return [issue.as_dict() for issue in items]


class Professional837Tool:
    """837P: validate with the guide and our rules; parse to claims with totals (no member data)."""

    def validate(self, text: str) -> list[dict[str, Any]]:
        """Errors as {position, segment, rule, message}; empty when valid."""
        return _issues(guide_issues(text) + claim_rules(text))

    def parse(self, text: str) -> dict[str, Any]:
        """Claims per transaction set: CLM01, CLM02, frequency, line count and codes."""
        interchange = parse_interchange(text)
        component = interchange.delimiters.component
        sets: list[dict[str, Any]] = []
        for group in interchange.groups:
            for transaction in group.transactions:
                claims: list[dict[str, Any]] = []
                for seg in transaction.segments:
                    if seg.id == "CLM":
                        composite = seg.get(5).split(component)
                        claims.append({"claim_id": seg.get(1), "total": seg.get(2),
                                       "place_of_service": composite[0],
                                       "frequency_code": composite[2] if len(composite) > 2 else "", "lines": []})
                    elif seg.id == "REF" and claims and seg.get(1) in ("G1", "F8"):
                        claims[-1]["prior_authorization" if seg.get(1) == "G1" else "payer_claim_number"] = seg.get(2)
                    elif seg.id == "SV1" and claims:
                        procedure = seg.get(1).split(component)
                        claims[-1]["lines"].append({"procedure_code": procedure[1] if len(procedure) > 1 else "",
                                                    "modifiers": procedure[2:], "charge": seg.get(2),
                                                    "units": seg.get(4)})
                sets.append({"control_number": transaction.control_number,
                             "implementation": transaction.implementation, "claims": claims})
        return {"transaction": "837P", "interchange_control_number": interchange.control_number,
                "group_control_number": interchange.groups[0].gs.get(6) if interchange.groups else None,
                "version": interchange.groups[0].version if interchange.groups else None,
                "transaction_sets": sets}


class Acknowledgment999Tool:
    """999: validate with the guide and our parser; parse to the acknowledged sets with reasons."""

    def validate(self, text: str) -> list[dict[str, Any]]:
        """Errors as {position, segment, rule, message}; empty when valid."""
        issues = _issues(guide_issues(text))
        try:
            parse_999(text)
        except (X12SyntaxError, AcknowledgmentError) as exc:
            issues.append({"position": getattr(exc, "position", 0), "segment": getattr(exc, "segment_id", None),
                           "rule": "999-structure", "message": str(exc)})
        return issues

    def parse(self, text: str) -> dict[str, Any]:
        """Each acknowledged group with its sets' codes and reasons."""
        return {"transaction": "999", "acknowledgments": [ack.as_dict() for ack in parse_999(text)]}


class ClaimAcknowledgment277Tool:
    """277CA: validate with the guide and our parser; parse to per-claim outcomes."""

    def validate(self, text: str) -> list[dict[str, Any]]:
        """Errors as {position, segment, rule, message}; empty when valid."""
        issues = _issues(guide_issues(text))
        try:
            parse_277ca(text)
        except (X12SyntaxError, ClaimAcknowledgmentError) as exc:
            issues.append({"position": getattr(exc, "position", 0), "segment": getattr(exc, "segment_id", None),
                           "rule": "277ca-structure", "message": str(exc)})
        return issues

    def parse(self, text: str) -> dict[str, Any]:
        """Per-claim outcome (accepted / rejected / informational), reasons and payer claim numbers."""
        return {"transaction": "277CA", **parse_277ca(text).as_dict()}


TOOLS: dict[str, Any] = {
    "837": Professional837Tool(),
    "999": Acknowledgment999Tool(),
    "277": ClaimAcknowledgment277Tool(),
    # "835": added by the remittance module (claims/x12/x835.py).
}
