"""The monthly re-check calendar: when each MCP's 270 batch runs, which period it covers, and its batch key.

Every served member is re-checked at least monthly (CALAIM.md). A batch is identified by MCP and period
(YYYY-MM), so firing the same month twice, after a crash or a manual run, can never send a second file.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

PACIFIC = ZoneInfo("America/Los_Angeles")


@dataclass(frozen=True, slots=True)
class MonthlySchedule:
    """When an MCP's batch runs: a day of the month (clamped to the month's length) at a local time."""

    day_of_month: int = 1
    at: time = time(6, 0)

    def __post_init__(self) -> None:
        if not 1 <= self.day_of_month <= 31:
            raise ValueError("day_of_month must be 1..31")

    def run_in(self, year: int, month: int) -> datetime:
        """The run time (UTC) in a given month, in Pacific time as CalAIM deadlines are."""
        day = min(self.day_of_month, calendar.monthrange(year, month)[1])
        return datetime.combine(date(year, month, day), self.at, tzinfo=PACIFIC).astimezone(UTC)

    def next_run(self, after: datetime) -> datetime:
        """The first run strictly after `after` (timezone-aware). Raises ValueError for a naive datetime."""
        if after.tzinfo is None:
            raise ValueError("after must be timezone-aware")
        local = after.astimezone(PACIFIC)
        candidate = self.run_in(local.year, local.month)
        if candidate > after:
            return candidate
        year, month = (local.year + 1, 1) if local.month == 12 else (local.year, local.month + 1)
        return self.run_in(year, month)


def period_of(moment: datetime) -> str:
    """The YYYY-MM period a run at `moment` covers (Pacific calendar)."""
    local = moment.astimezone(PACIFIC)
    return f"{local.year:04d}-{local.month:02d}"


def parse_period(period: str) -> date:
    """The first day of a YYYY-MM period. Raises ValueError for anything else."""
    if len(period) != 7 or period[4] != "-":
        raise ValueError("a period is YYYY-MM")
    return date(int(period[:4]), int(period[5:]), 1)


def batch_key(mcp_code: str, period: str) -> str:
    """The idempotency key of a monthly batch: one per MCP and period."""
    parse_period(period)
    return f"monthly:{mcp_code}:{period}"


def realtime_batch_key(mcp_code: str, flush_id: str) -> str:
    """The idempotency key of a batch of queued real-time checks (one per flush timer)."""
    return f"realtime:{mcp_code}:{flush_id}"


@dataclass(frozen=True, slots=True)
class AuthorizedPeriod:
    """An authorization as the eligibility service tracks it: whose, with which MCP, when, and whether open."""

    member_id: str
    mcp_code: str
    start: date
    end: date
    open: bool = True


def members_to_recheck(authorizations: Iterable[AuthorizedPeriod], mcp_code: str, on: date) -> list[str]:
    """Member ids with an open authorization with the MCP covering `on` (each once, sorted)."""
    return sorted({a.member_id for a in authorizations
                   if a.open and a.mcp_code == mcp_code and a.start <= on <= a.end})
