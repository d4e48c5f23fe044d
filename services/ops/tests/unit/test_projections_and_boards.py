"""Projections fold events in any order into rows; boards classify rows per MCP (pure, no database)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from ops.domain.boards import (
    AuthorizationRow,
    ClaimRow,
    aging_bucket,
    claims_board,
    decision_board,
    expiring_board,
    file_board,
    late_is_open,
)
from ops.domain.projections import Change, Projection, changes_for, merge

T = datetime(2026, 3, 2, 17, 0, tzinfo=UTC)


def fold(*events: tuple[str, datetime, dict]) -> dict:
    row: dict | None = None
    for event_type, at, data in events:
        for change in changes_for(event_type, at, data):
            row = merge(row, change)
    assert row is not None
    return row


def test_requested_then_approved_is_approved_with_its_period() -> None:
    row = fold(("authorization.requested", T, {"authorization_id": "a1", "mcp_code": "lacare",
                                               "requested_at": T.isoformat(),
                                               "decision_due": (T + timedelta(days=5)).isoformat()}),
               ("authorization.approved", T + timedelta(days=1), {"authorization_id": "a1", "mcp_code": "lacare",
                                                                  "decided_at": T.isoformat(),
                                                                  "period_start": "2026-03-03",
                                                                  "period_end": "2027-03-02"}))
    assert row["status"] == "approved" and row["decision"] == "approved"
    assert row["period_end"] == date(2027, 3, 2) and row["decision_due"] == T + timedelta(days=5)


def test_an_old_event_arriving_late_never_moves_the_status_back() -> None:
    approved = ("authorization.approved", T + timedelta(days=1), {"authorization_id": "a1", "mcp_code": "lacare",
                                                                  "decided_at": T.isoformat(),
                                                                  "period_start": "2026-03-03",
                                                                  "period_end": "2027-03-02"})
    requested = ("authorization.requested", T, {"authorization_id": "a1", "mcp_code": "lacare",
                                                "requested_at": T.isoformat(),
                                                "decision_due": (T + timedelta(days=5)).isoformat()})
    row = fold(approved, requested)  # a replayed dead letter brings the request after the approval
    assert row["status"] == "approved"
    assert row["requested_at"] == T  # the older event still fills what was missing


def test_of_two_approvals_arriving_behind_a_suspension_the_later_decision_sets_the_period() -> None:
    def approved(decided: datetime, end: str) -> tuple[str, datetime, dict]:
        return ("authorization.approved", decided, {"authorization_id": "a1", "mcp_code": "lacare",
                                                    "decided_at": decided.isoformat(), "period_start": "2026-03-03",
                                                    "period_end": end})

    suspended = ("authorization.suspended", T + timedelta(days=9), {"authorization_id": "a1", "mcp_code": "lacare",
                                                                    "reason": "eligibility lost",
                                                                    "effective": "2026-03-11"})
    first, modified = approved(T + timedelta(days=1), "2027-03-02"), approved(T + timedelta(days=5), "2026-09-02")
    for told in ((suspended, first, modified), (suspended, modified, first), (first, modified, suspended)):
        row = fold(*told)
        assert (row["status"], row["period_end"]) == ("suspended", date(2026, 9, 2)), told
        assert row["decided_at"] == T + timedelta(days=5)


def test_escalations_only_grow_and_pends_can_stop_the_clock() -> None:
    row = fold(("authorization.requested", T, {"authorization_id": "a1", "decision_due": T.isoformat()}),
               ("authorization.decision_overdue", T + timedelta(hours=1), {"authorization_id": "a1", "escalation": 2}),
               ("authorization.decision_overdue", T + timedelta(hours=2), {"authorization_id": "a1", "escalation": 1}),
               ("authorization.pended", T + timedelta(hours=3), {"authorization_id": "a1", "clock_stopped": True,
                                                                "decided_at": T.isoformat()}))
    assert row["escalations"] == 2 and row["status"] == "pended" and row["clock_stopped"] is True
    assert "decided_at" not in row  # a pend is not a decision


def test_claims_and_files_project_and_unrelated_events_do_not() -> None:
    row = fold(("claim.submitted", T, {"claim_id": "c1", "mcp_code": "lacare", "submitted_at": T.isoformat()}),
               ("claim.paid", T + timedelta(days=20), {"claim_id": "c1", "paid_on": "2026-03-20",
                                                       "paid_amount": "350.00"}))
    assert row["status"] == "paid" and row["paid_on"] == date(2026, 3, 20) and row["submitted_at"] == T
    assert changes_for("referral.received", T, {"referral_id": "r"}) == []
    assert changes_for("claim.paid", T, {"no_claim_id": True}) == []
    assert changes_for(None, T, {"claim_id": "c"}) == []
    late = merge(None, Change(Projection.FILE, ("lacare", "mif"), T, {"last_late_at": T}))
    later_receipt = merge(late, Change(Projection.FILE, ("lacare", "mif"), T + timedelta(hours=1),
                                       {"last_received_at": T + timedelta(hours=1)}))
    older_late = merge(later_receipt, Change(Projection.FILE, ("lacare", "mif"), T - timedelta(days=3),
                                             {"last_late_at": T - timedelta(days=3)}))
    assert older_late["last_late_at"] == T and older_late["last_received_at"] == T + timedelta(hours=1)


def auth(authorization_id: str, mcp: str, status: str = "requested", due: datetime | None = None,
         clock_stopped: bool = False, period_end: date | None = None) -> AuthorizationRow:
    return AuthorizationRow(authorization_id, mcp, status, decision_due=due, clock_stopped=clock_stopped,
                            period_end=period_end)


def test_decision_board_splits_overdue_and_due_soon_per_mcp() -> None:
    now = T
    rows = [auth("late", "lacare", due=now - timedelta(hours=2)),
            auth("soon", "lacare", due=now + timedelta(hours=5)),
            auth("later", "lacare", due=now + timedelta(days=3)),
            auth("stopped", "lacare", status="pended", due=now - timedelta(days=1), clock_stopped=True),
            auth("pended-running", "healthnet", status="pended", due=now - timedelta(days=1)),
            auth("decided", "healthnet", status="approved", due=now - timedelta(days=1))]
    board = decision_board(rows, now, timedelta(hours=24))
    assert [i.authorization_id for i in board["lacare"].overdue] == ["late"]
    assert [i.authorization_id for i in board["lacare"].due_soon] == ["soon"]
    assert board["lacare"].overdue[0].hours == 2.0
    assert [i.authorization_id for i in board["healthnet"].overdue] == ["pended-running"]


def test_expiring_board_counts_periods_ending_within_the_window() -> None:
    today = date(2026, 3, 2)
    rows = [auth("a", "lacare", "approved", period_end=today + timedelta(days=30)),
            auth("b", "lacare", "approved", period_end=today + timedelta(days=31)),
            auth("c", "lacare", "approved", period_end=today - timedelta(days=1)),
            auth("d", "lacare", "expired", period_end=today + timedelta(days=3))]
    board = expiring_board(rows, today, 30)
    assert [(i.authorization_id, i.days_left) for i in board["lacare"]] == [("a", 30)]


@pytest.mark.parametrize(("days", "bucket"), [(0, "0-30"), (30, "0-30"), (31, "31-60"), (60, "31-60"),
                                              (61, "61-90"), (90, "61-90"), (91, "over 90")])
def test_aging_buckets(days: int, bucket: str) -> None:
    assert aging_bucket(days) == bucket


def test_timely_payment_counts_late_unpaid_claims_and_ignores_claims_still_in_the_window() -> None:
    today = date(2026, 6, 30)
    submitted = datetime(2026, 3, 2, 18, 0, tzinfo=UTC)  # 2026-03-02 in Pacific time
    rows = [ClaimRow("paid-fast", "lacare", "paid", submitted, date(2026, 3, 20)),      # 18 days
            ClaimRow("paid-slow", "lacare", "paid", submitted, date(2026, 4, 20)),      # 49 days
            ClaimRow("unpaid-old", "lacare", "accepted", submitted),                     # 120 days, unpaid
            ClaimRow("unpaid-new", "lacare", "submitted", datetime(2026, 6, 20, tzinfo=UTC))]
    standing = claims_board(rows, today)["lacare"]
    assert standing.outstanding == 2 and standing.outstanding_over_30 == 1 and standing.outstanding_over_90 == 1
    assert standing.aging == {"0-30": 1, "31-60": 0, "61-90": 0, "over 90": 1}
    # 30 days: 1 timely of 3 decided (paid-slow and unpaid-old are late; unpaid-new can still make it)
    assert standing.timely.share(30) == pytest.approx(0.3333, abs=1e-4)
    # 90 days: paid-fast and paid-slow timely, unpaid-old late
    assert standing.timely.share(90) == pytest.approx(0.6667, abs=1e-4)
    assert standing.meets(30, 0.9) is False
    assert claims_board([ClaimRow("n", "x", "submitted", datetime(2026, 6, 29, tzinfo=UTC))],
                        today)["x"].timely.share(30) is None


def test_file_board_counts_and_open_late_files() -> None:
    counts = [("lacare", "file.received", 4), ("lacare", "file.quarantined", 1), (None, "file.received", 2)]
    expectations = [("lacare", "mif", T - timedelta(days=1), T), ("lacare", "835", T, T - timedelta(days=1)),
                    ("healthnet", "mif", None, T)]
    board = file_board(counts, expectations)
    assert (board["lacare"].received, board["lacare"].quarantined, board["lacare"].late_now) == (4, 1, ["mif"])
    assert board["healthnet"].late_now == ["mif"] and board["(unknown)"].received == 2
    assert late_is_open(None, None) is False
