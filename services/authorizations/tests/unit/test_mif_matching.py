"""Matching Member Information File rows: every row gets exactly one outcome, none is dropped."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from authorizations.domain.mif import Candidate, MifException, MifOutcome, match_row, row_service_key
from authorizations.domain.policy import MifDecision, service_keys
from authorizations.domain.status import AuthorizationStatus as S

T = datetime(2026, 3, 2, tzinfo=UTC)
OPEN = Candidate("auth_open", S.REQUESTED, "ecm", T)
OLDER_OPEN = Candidate("auth_older", S.PENDED, "ecm", datetime(2026, 2, 1, tzinfo=UTC))
OPEN_CS = Candidate("auth_cs", S.REQUESTED, "recuperative_care", T)
APPROVED = Candidate("auth_ok", S.APPROVED, "ecm", T, mcp_authorization_number="LAC-1",
                     period_start=date(2026, 3, 5), period_end=date(2027, 3, 4))
PRESUMPTIVE = Candidate("auth_pres", S.APPROVED, "ecm", T, presumptive=True, period_start=date(2026, 3, 2),
                        period_end=date(2027, 3, 1))
DENIED = Candidate("auth_denied", S.DENIED, "ecm", T)
# The hub recorded the MCP's approval through the API (a phone or fax decision) before the MCP's number was known.
UNNUMBERED = Candidate("auth_api", S.APPROVED, "ecm", T, period_start=date(2026, 3, 5), period_end=date(2027, 3, 4))
SUSPENDED_UNNUMBERED = Candidate("auth_api", S.SUSPENDED, "ecm", T, period_start=date(2026, 3, 5),
                                 period_end=date(2027, 3, 4))
SUSPENDED_REQUEST = Candidate("auth_susp", S.SUSPENDED, "ecm", T)  # suspended while open: no period yet
SUSPENDED_PRESUMPTIVE = Candidate("auth_susp", S.SUSPENDED, "ecm", T, presumptive=True,
                                  period_start=date(2026, 3, 2), period_end=date(2027, 3, 1))

CASES = [
    # (case, decision, service, number, start, end, candidates, outcome, authorization, reason)
    ("approval of the open request", MifDecision.APPROVED, "ecm", "LAC-9", date(2026, 3, 5), None, [OPEN],
     MifOutcome.DECISION_APPLIED, "auth_open", None),
    ("the oldest open request wins", MifDecision.APPROVED, "ecm", None, None, None, [OPEN, OLDER_OPEN],
     MifOutcome.DECISION_APPLIED, "auth_older", None),
    ("denial of the open request", MifDecision.DENIED, "ecm", None, None, None, [OPEN],
     MifOutcome.DECISION_APPLIED, "auth_open", None),
    ("pend of the open request", MifDecision.PENDED, "ecm", None, None, None, [OPEN],
     MifOutcome.DECISION_APPLIED, "auth_open", None),
    ("another service's request does not match", MifDecision.APPROVED, "ecm", "LAC-9", date(2026, 3, 5), None,
     [OPEN_CS], MifOutcome.ASSIGNMENT_CREATED, None, None),
    ("monthly repeat of a known approval", MifDecision.APPROVED, "ecm", "LAC-1", date(2026, 3, 5),
     date(2027, 3, 4), [APPROVED], MifOutcome.CONFIRMED, "auth_ok", None),
    ("repeat without dates", MifDecision.APPROVED, "ecm", "LAC-1", None, None, [APPROVED],
     MifOutcome.CONFIRMED, "auth_ok", None),
    ("repeat without a number, period covered", MifDecision.APPROVED, "ecm", None, date(2026, 4, 1), None,
     [APPROVED], MifOutcome.CONFIRMED, "auth_ok", None),
    ("same number, new end date", MifDecision.APPROVED, "ecm", "LAC-1", date(2026, 3, 5), date(2027, 6, 30),
     [APPROVED], MifOutcome.PERIOD_CHANGED, "auth_ok", None),
    ("mcp confirms a presumptive approval", MifDecision.APPROVED, "ecm", "LAC-7", date(2026, 3, 1), None,
     [PRESUMPTIVE], MifOutcome.DECISION_APPLIED, "auth_pres", None),
    ("mcp denies a presumptive approval", MifDecision.DENIED, "ecm", None, None, None, [PRESUMPTIVE],
     MifOutcome.DECISION_APPLIED, "auth_pres", None),
    ("the mcp's number for an approval recorded without one", MifDecision.APPROVED, "ecm", "LAC-1",
     date(2026, 3, 5), date(2027, 3, 4), [UNNUMBERED], MifOutcome.NUMBER_RECORDED, "auth_api", None),
    ("the mcp's number, row inside the unnumbered approval", MifDecision.APPROVED, "ecm", "LAC-1",
     date(2026, 4, 1), None, [UNNUMBERED], MifOutcome.NUMBER_RECORDED, "auth_api", None),
    ("the mcp's number for a suspended approval recorded without one", MifDecision.APPROVED, "ecm", "LAC-1",
     date(2026, 3, 5), date(2027, 3, 4), [SUSPENDED_UNNUMBERED], MifOutcome.NUMBER_RECORDED, "auth_api", None),
    ("approval of a request suspended while open", MifDecision.APPROVED, "ecm", "LAC-1", date(2026, 3, 5), None,
     [SUSPENDED_REQUEST], MifOutcome.EXCEPTION, "auth_susp", MifException.REQUEST_SUSPENDED),
    ("approval of a suspended presumptive approval", MifDecision.APPROVED, "ecm", "LAC-1", date(2026, 3, 2),
     None, [SUSPENDED_PRESUMPTIVE], MifOutcome.EXCEPTION, "auth_susp", MifException.REQUEST_SUSPENDED),
    ("denial of a request suspended while open", MifDecision.DENIED, "ecm", None, None, None,
     [SUSPENDED_REQUEST], MifOutcome.EXCEPTION, "auth_susp", MifException.REQUEST_SUSPENDED),
    ("unmatched approval is an mcp-initiated assignment", MifDecision.APPROVED, "ecm", "LAC-2", date(2026, 3, 1),
     None, [DENIED], MifOutcome.ASSIGNMENT_CREATED, None, None),
    ("unmatched approval without a start date", MifDecision.APPROVED, "ecm", "LAC-2", None, None, [],
     MifOutcome.EXCEPTION, None, MifException.MISSING_AUTHORIZATION_START),
    ("unmatched denial", MifDecision.DENIED, "ecm", None, None, None, [], MifOutcome.EXCEPTION, None,
     MifException.NO_OPEN_REQUEST),
    ("unmatched pend", MifDecision.PENDED, "ecm", None, None, None, [APPROVED], MifOutcome.EXCEPTION, None,
     MifException.NO_OPEN_REQUEST),
    ("denial of an approved number", MifDecision.DENIED, "ecm", "LAC-1", None, None, [APPROVED],
     MifOutcome.EXCEPTION, "auth_ok", MifException.DENIAL_OF_APPROVED),
    ("discontinued", MifDecision.DISCONTINUED, "ecm", "LAC-1", None, None, [APPROVED],
     MifOutcome.DISCONTINUED, "auth_ok", None),
    ("discontinued with nothing active", MifDecision.DISCONTINUED, "ecm", None, None, None, [OPEN],
     MifOutcome.EXCEPTION, None, MifException.NOTHING_TO_DISCONTINUE),
    ("unknown benefit status", None, "ecm", None, None, None, [OPEN], MifOutcome.EXCEPTION, None,
     MifException.UNKNOWN_BENEFIT_STATUS),
    ("end before start", MifDecision.APPROVED, "ecm", None, date(2026, 3, 5), date(2026, 3, 1), [OPEN],
     MifOutcome.EXCEPTION, None, MifException.INVALID_PERIOD),
]


@pytest.mark.parametrize(("case", "decision", "key", "number", "start", "end", "candidates", "outcome", "auth",
                          "reason"), CASES, ids=[c[0] for c in CASES])
def test_mif_row_outcome(case: str, decision: MifDecision | None, key: str, number: str | None, start: date | None,
                         end: date | None, candidates: list[Candidate], outcome: MifOutcome, auth: str | None,
                         reason: MifException | None) -> None:
    match = match_row(decision, key, number, start, end, candidates)
    assert (match.outcome, match.authorization_id, match.reason) == (outcome, auth, reason)


def test_row_service_comes_from_a_mapped_column_else_ecm() -> None:
    known = service_keys()
    assert row_service_key({}, known) == "ecm"
    assert row_service_key({"cs_code": "Recuperative_Care"}, known) == "recuperative_care"
    assert row_service_key({"service": "moon_boots"}, known) is None
