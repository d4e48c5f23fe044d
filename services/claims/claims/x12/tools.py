"""`calhub x12 validate|parse` for the sets the claims service owns, keyed by ST01 (see calhub/x12_tool.py).

837: pyx12 against 005010X222A1 plus CalHub's rules (NPI check digits, 9-digit billing ZIP, CLM02 = ΣSV102).
999 and 277: pyx12 against X231A1 / X214, then our parser. 835: pyx12 against X221A1, our parser, and the
balancing rule per payment (BPR02 = ΣCLP04 − ΣPLB). Parse output carries ids, codes and amounts only.
"""

from __future__ import annotations

from typing import Any

from claims.domain.remittance import balance, claim_imbalance
from claims.x12.validation import ValidationIssue, claim_rules, guide_issues
from claims.x12.x277ca import ClaimAcknowledgmentError, parse_277ca
from claims.x12.x835 import parse_835
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


class Remittance835Tool:
    """835: validate with the guide, our parser and the balancing rules; parse to payments and claim payments."""

    def validate(self, text: str) -> list[dict[str, Any]]:
        """Errors as {position, segment, rule, message}; empty when valid and balanced."""
        issues = _issues(guide_issues(text))
        try:
            parsed = parse_835(text)
        except X12SyntaxError as exc:
            issues.append({"position": exc.position, "segment": exc.segment_id, "rule": "835-structure",
                           "message": str(exc)})
            return issues
        for remittance in parsed.remittances:
            figures = balance(remittance)
            if not figures.balanced:
                issues.append({"position": remittance.position, "segment": "BPR", "rule": "BPR02 = ΣCLP04 − ΣPLB",
                               "message": f"payment {figures.payment_amount} but claims {figures.claims_paid} "
                                          f"minus provider adjustments {figures.provider_adjustments} give "
                                          f"{figures.expected_payment}"})
            for claim in remittance.claims:
                imbalance = claim_imbalance(claim)
                if imbalance is not None:
                    issues.append({"position": claim.position, "segment": "CLP", "rule": imbalance["rule"],
                                   "message": ", ".join(f"{k} {v}" for k, v in imbalance.items() if k != "rule")})
        return issues

    def parse(self, text: str) -> dict[str, Any]:
        """Payments (trace, BPR amount, date, balance) and claim payments (CLP01, status, amounts, codes)."""
        parsed = parse_835(text)
        return {"transaction": "835", "interchange_control_number": parsed.interchange_control_number,
                "sender_id": parsed.sender_id, "payments": [{
                    "control_number": r.control_number, "trace_number": r.trace_number, "payer_id": r.originator_id,
                    "payment_amount": str(r.net_payment), "payment_method": r.payment_method,
                    "payment_date": r.payment_date.isoformat(), "balance": balance(r).as_dict(),
                    "claims": [{"claim_id": c.patient_control_number, "status": c.status, "charge": str(c.charge),
                                "paid": str(c.paid), "payer_claim_number": c.payer_claim_number,
                                "adjustments": [f"{a.group}-{a.reason} {a.amount}" for a in c.adjustments],
                                "remarks": list(c.remarks), "lines": len(c.services)} for c in r.claims],
                    "provider_adjustments": [{"reason": a.reason, "reference": a.reference, "amount": str(a.amount)}
                                             for a in r.provider_adjustments]} for r in parsed.remittances]}


TOOLS: dict[str, Any] = {
    "837": Professional837Tool(),
    "999": Acknowledgment999Tool(),
    "277": ClaimAcknowledgment277Tool(),
    "835": Remittance835Tool(),
}
