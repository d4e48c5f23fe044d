"""The expected-file calendar: when each MCP file is due, which window an arrival counts for, and order.

Deadlines are the end of the due day in Pacific time (CalAIM's timezone), moved to the next business day
(California state calendar, shared.reference.calendar) when the profile says so.
"""

from __future__ import annotations

import calendar as month_calendar
from datetime import date, datetime, timedelta

from sftp_gateway.domain.profile import Expectation
from shared.reference.calendar import DEFAULT_CALENDAR, END_OF_DAY, PACIFIC, BusinessCalendar

_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def _clamp(year: int, month: int, day: int) -> date:
    # "By the 29th" in February means the last day of February.
    return date(year, month, min(day, month_calendar.monthrange(year, month)[1]))


def _due_days_in_month(expectation: Expectation, year: int, month: int) -> list[date]:
    if expectation.monthly_by_day is not None:
        return [_clamp(year, month, expectation.monthly_by_day)]
    assert expectation.days_of_month is not None
    return sorted({_clamp(year, month, d) for d in expectation.days_of_month})


def _rolled(day: date, expectation: Expectation, business: BusinessCalendar) -> date:
    if not expectation.roll_to_business_day:
        return day
    while not business.is_business_day(day):
        day += timedelta(days=1)
    return day


def _end_of(day: date) -> datetime:
    return datetime.combine(day, END_OF_DAY, tzinfo=PACIFIC)


def due_days(expectation: Expectation, start: date, end: date,
             business: BusinessCalendar = DEFAULT_CALENDAR) -> list[date]:
    """Every (rolled) due day of an expectation from `start` to `end`, both inclusive, in order."""
    days: set[date] = set()
    if expectation.weekly_on is not None:
        target = _WEEKDAYS.index(expectation.weekly_on)
        day = start - timedelta(days=7)
        day += timedelta(days=(target - day.weekday()) % 7)
        while day <= end + timedelta(days=7):
            days.add(_rolled(day, expectation, business))
            day += timedelta(days=7)
    else:
        year, month = start.year, start.month - 1
        if month == 0:
            year, month = year - 1, 12
        while date(year, month, 1) <= end:
            for day in _due_days_in_month(expectation, year, month):
                days.add(_rolled(day, expectation, business))
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return sorted(d for d in days if start <= d <= end)


def next_deadline(expectation: Expectation, after: datetime,
                  business: BusinessCalendar = DEFAULT_CALENDAR) -> datetime:
    """The first deadline (end of a due day, Pacific) strictly after `after` (aware)."""
    local = after.astimezone(PACIFIC).date()
    for day in due_days(expectation, local, local + timedelta(days=70), business):
        deadline = _end_of(day)
        if deadline > after:
            return deadline
    raise ValueError("no deadline within 70 days")  # cannot happen with a valid expectation


def previous_deadline(expectation: Expectation, deadline: datetime,
                      business: BusinessCalendar = DEFAULT_CALENDAR) -> datetime:
    """The deadline before `deadline`: the window an arrival counts for is (previous, deadline]."""
    local = deadline.astimezone(PACIFIC).date()
    days = [d for d in due_days(expectation, local - timedelta(days=70), local, business) if _end_of(d) < deadline]
    if not days:
        return deadline - timedelta(days=31)
    return _end_of(days[-1])


def is_out_of_order(period: str | None, latest_period: str | None) -> bool:
    """True when a file's reporting period (YYYY-MM) is older than one already received for the same kind."""
    return period is not None and latest_period is not None and period < latest_period


def previous_month(moment: datetime) -> str:
    """The reporting period (YYYY-MM) before the Pacific month of `moment`: what a monthly file reports on."""
    local = moment.astimezone(PACIFIC).date()
    first = local.replace(day=1) - timedelta(days=1)
    return f"{first.year:04d}-{first.month:02d}"


def period_bounds(period: str) -> tuple[date, date]:
    """First and last day of a reporting period (YYYY-MM); raises ValueError if malformed."""
    year, month = (int(part) for part in period.split("-"))
    return date(year, month, 1), _clamp(year, month, 31)


def monthly_run_at(day_of_month: int, hour: int, after: datetime) -> datetime:
    """The next instant after `after` that is `day_of_month` at `hour`:00 Pacific (monthly generation)."""
    local = after.astimezone(PACIFIC)
    year, month = local.year, local.month
    for _ in range(3):
        candidate = datetime(year, month, day_of_month, hour, tzinfo=PACIFIC)
        if candidate > after:
            return candidate
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    raise ValueError("no run within three months")


def daily_run_at(hour: int, after: datetime) -> datetime:
    """The next `hour`:00 Pacific strictly after `after`."""
    local = after.astimezone(PACIFIC)
    candidate = datetime(local.year, local.month, local.day, hour, tzinfo=PACIFIC)
    while candidate <= after:
        candidate = datetime.combine(candidate.date() + timedelta(days=1), candidate.timetz())
    return candidate
