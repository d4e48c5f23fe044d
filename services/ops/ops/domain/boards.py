"""SLA boards: what is overdue, due soon, expiring, aging or late, per MCP. Pure functions over projected rows.

Days are Pacific calendar days (CalAIM's timezone). The timely-payment share follows the MCP payment standard
(90% of clean claims paid within 30 days of receipt, 99% within 90): a claim counts as timely when paid within
the window, as late when paid after it or still unpaid past it; claims still inside the window are not counted
yet, because they can still go either way.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from ops.domain.projections import AWAITING_DECISION, OUTSTANDING, AuthorizationStatus, ClaimStatus
from shared.reference.calendar import PACIFIC

NO_MCP = "(unknown)"
AGING_BUCKETS = ("0-30", "31-60", "61-90", "over 90")


def pacific_date(moment: datetime) -> date:
    """The Pacific calendar date of an instant."""
    return moment.astimezone(PACIFIC).date()


@dataclass(frozen=True)
class AuthorizationRow:
    """The fields of an authorization the boards read."""

    authorization_id: str
    mcp_code: str | None
    status: str
    referral_id: str | None = None
    decision_due: datetime | None = None
    clock_stopped: bool = False
    period_end: date | None = None
    escalations: int = 0


@dataclass(frozen=True)
class ClaimRow:
    """The fields of a claim the boards read."""

    claim_id: str
    mcp_code: str | None
    status: str
    submitted_at: datetime | None = None
    paid_on: date | None = None


@dataclass(frozen=True)
class DueItem:
    """One authorization on the decision board."""

    authorization_id: str
    referral_id: str | None
    decision_due: datetime
    hours: float  # hours past due (overdue) or left (due soon)
    escalations: int = 0


@dataclass
class DecisionCounts:
    """Decisions overdue and due soon for one MCP."""

    overdue: list[DueItem] = field(default_factory=list)
    due_soon: list[DueItem] = field(default_factory=list)


def decision_board(rows: Iterable[AuthorizationRow], now: datetime, due_soon: timedelta,
                   ) -> dict[str, DecisionCounts]:
    """Per MCP: requests awaiting a decision past their deadline, and those due within `due_soon`.

    A pend that stopped the clock is not overdue: the MCP is waiting for information it asked for.
    """
    board: dict[str, DecisionCounts] = defaultdict(DecisionCounts)
    for row in rows:
        if row.status not in AWAITING_DECISION or row.decision_due is None or row.clock_stopped:
            continue
        mcp = row.mcp_code or NO_MCP
        delta = (row.decision_due - now).total_seconds() / 3600
        item = DueItem(row.authorization_id, row.referral_id, row.decision_due, round(abs(delta), 1),
                       row.escalations)
        if row.decision_due < now:
            board[mcp].overdue.append(item)
        elif row.decision_due <= now + due_soon:
            board[mcp].due_soon.append(item)
    for counts in board.values():
        counts.overdue.sort(key=lambda i: i.decision_due)
        counts.due_soon.sort(key=lambda i: i.decision_due)
    return dict(sorted(board.items()))


@dataclass(frozen=True)
class ExpiringItem:
    """One approved authorization whose period ends soon."""

    authorization_id: str
    referral_id: str | None
    period_end: date
    days_left: int


def expiring_board(rows: Iterable[AuthorizationRow], today: date, within_days: int,
                   ) -> dict[str, list[ExpiringItem]]:
    """Per MCP: approved authorizations whose period ends between today and `within_days` from today."""
    board: dict[str, list[ExpiringItem]] = defaultdict(list)
    last = today + timedelta(days=within_days)
    for row in rows:
        if row.status != AuthorizationStatus.APPROVED or row.period_end is None:
            continue
        if today <= row.period_end <= last:
            board[row.mcp_code or NO_MCP].append(
                ExpiringItem(row.authorization_id, row.referral_id, row.period_end, (row.period_end - today).days))
    for items in board.values():
        items.sort(key=lambda i: i.period_end)
    return dict(sorted(board.items()))


def aging_bucket(days: int) -> str:
    """The aging bucket of a claim outstanding for `days` days."""
    if days <= 30:
        return AGING_BUCKETS[0]
    if days <= 60:
        return AGING_BUCKETS[1]
    if days <= 90:
        return AGING_BUCKETS[2]
    return AGING_BUCKETS[3]


@dataclass
class TimelyPayment:
    """Timely-payment standing of one MCP."""

    paid_within_30: int = 0
    late_30: int = 0
    paid_within_90: int = 0
    late_90: int = 0

    def share(self, window: int) -> float | None:
        """Share of decided claims paid within the window (30 or 90 days); None while none is decided."""
        timely, late = (self.paid_within_30, self.late_30) if window == 30 else (self.paid_within_90, self.late_90)
        return None if timely + late == 0 else round(timely / (timely + late), 4)


@dataclass
class ClaimsStanding:
    """Aging of outstanding claims and timely payment, for one MCP."""

    aging: dict[str, int] = field(default_factory=lambda: dict.fromkeys(AGING_BUCKETS, 0))
    outstanding: int = 0
    outstanding_over_30: int = 0
    outstanding_over_90: int = 0
    timely: TimelyPayment = field(default_factory=TimelyPayment)

    def meets(self, window: int, target: float) -> bool | None:
        """Whether the MCP meets the standard for a window; None while nothing is decided."""
        share = self.timely.share(window)
        return None if share is None else share >= target


def claims_board(rows: Iterable[ClaimRow], today: date) -> dict[str, ClaimsStanding]:
    """Per MCP: outstanding claims by age since submission, and the timely-payment counts."""
    board: dict[str, ClaimsStanding] = defaultdict(ClaimsStanding)
    for row in rows:
        if row.submitted_at is None:
            continue
        standing = board[row.mcp_code or NO_MCP]
        submitted = pacific_date(row.submitted_at)
        status = row.status
        if status in OUTSTANDING:
            age = max(0, (today - submitted).days)
            standing.aging[aging_bucket(age)] += 1
            standing.outstanding += 1
            standing.outstanding_over_30 += age > 30
            standing.outstanding_over_90 += age > 90
            standing.timely.late_30 += age > 30
            standing.timely.late_90 += age > 90
        elif status == ClaimStatus.PAID and row.paid_on is not None:
            took = max(0, (row.paid_on - submitted).days)
            standing.timely.paid_within_30 += took <= 30
            standing.timely.late_30 += took > 30
            standing.timely.paid_within_90 += took <= 90
            standing.timely.late_90 += took > 90
    return dict(sorted(board.items()))


@dataclass
class FileCounts:
    """Files received, quarantined and late for one MCP."""

    received: int = 0
    quarantined: int = 0
    late_now: list[str] = field(default_factory=list)  # file kinds whose expected file is late and not yet in


def file_board(counts: Iterable[tuple[str | None, str, int]],
               expectations: Iterable[tuple[str, str, datetime | None, datetime | None]]) -> dict[str, FileCounts]:
    """Per MCP: counts of file.received / file.quarantined events, and the kinds late now.

    `counts` are (mcp code, event type, count); `expectations` (mcp code, kind, last received, last late): a kind
    is late while its last file.late is newer than its last file.received.
    """
    board: dict[str, FileCounts] = defaultdict(FileCounts)
    for mcp, event_type, count in counts:
        entry = board[mcp or NO_MCP]
        if event_type == "file.received":
            entry.received += count
        elif event_type == "file.quarantined":
            entry.quarantined += count
    for mcp, kind, received_at, late_at in expectations:
        if late_is_open(received_at, late_at):
            board[mcp].late_now.append(kind)
    for entry in board.values():
        entry.late_now.sort()
    return dict(sorted(board.items()))


def late_is_open(received_at: datetime | None, late_at: datetime | None) -> bool:
    """True while a late file has not arrived since it was reported late."""
    return late_at is not None and (received_at is None or received_at < late_at)


def mcp_totals(board: Mapping[str, DecisionCounts]) -> dict[str, tuple[int, int]]:
    """(overdue, due soon) counts per MCP of a decision board."""
    return {mcp: (len(c.overdue), len(c.due_soon)) for mcp, c in board.items()}


@dataclass
class Boards:
    """Every SLA board at one instant."""

    generated_at: datetime
    decisions: dict[str, DecisionCounts]
    expiring: dict[str, list[ExpiringItem]]
    claims: dict[str, ClaimsStanding]
    files: dict[str, FileCounts]
    due_soon_hours: int
    expiring_within_days: int
    files_window_days: int
    target_30: float
    target_90: float

    def mcps(self) -> list[str]:
        """Every MCP on any board, sorted."""
        return sorted(set(self.decisions) | set(self.expiring) | set(self.claims) | set(self.files))
