"""Business days for CalAIM deadlines: the days California state offices close, in Pacific time.

Counting rule (docs/decisions/0003-reference-data.md): the day of receipt never counts, whatever the hour;
day 1 is the first business day after the Pacific calendar day of receipt, and a deadline of n business days
ends at the last instant (23:59:59.999999 Pacific) of the n-th business day. Overdue means `now > deadline`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, time, timedelta
from functools import cache
from types import MappingProxyType
from typing import Final, Literal
from zoneinfo import ZoneInfo

import holidays
from pydantic import BaseModel, ConfigDict, model_validator

US_CA_STATE: Final = "us-ca-state"
PACIFIC = ZoneInfo("America/Los_Angeles")
END_OF_DAY = time(23, 59, 59, 999999)
# Before 2010 California state offices also closed on Lincoln's Birthday and Columbus Day; CalHub's deadlines
# start in 2022 (CalAIM), so earlier years are refused rather than computed wrong.
FIRST_YEAR = 2010
LAST_YEAR = 2100

# [rule] The paid state holidays on which California state offices close (Gov. Code 19853; CalHR list),
# named as the `holidays` package spells them for US / subdivision CA / category public / language en_US.
STATE_OFFICE_HOLIDAYS = (
    "New Year's Day",
    "Martin Luther King Jr. Day",
    "Presidents' Day",
    "Cesar Chavez Day",
    "Memorial Day",
    "Independence Day",
    "Labor Day",
    "Veterans Day",
    "Thanksgiving Day",
    "Day After Thanksgiving",
    "Christmas Day",
)
# Days the package lists for CA on which state offices stay open: commemorations, or days state employees
# may elect to take off (Juneteenth; Diwali since 2026, AB 268). An MCP closed on one adds it as a closed day.
OPEN_STATE_OBSERVANCES = (
    "Susan B. Anthony Day",
    "Juneteenth National Independence Day",
    "Diwali",
)
# [rule] CalHR: a holiday on Sunday is observed the following Monday; on Saturday it is not moved (employees
# get holiday credit, offices are closed anyway), except Veterans Day, observed the preceding Friday.
_SATURDAY_MOVES_TO_FRIDAY = frozenset({"Veterans Day"})
_SATURDAY, _SUNDAY = 5, 6


def _observed_day(day: date, name: str) -> date | None:
    if day.weekday() == _SUNDAY:
        return day + timedelta(days=1)
    if day.weekday() == _SATURDAY:
        return day - timedelta(days=1) if name in _SATURDAY_MOVES_TO_FRIDAY else None
    return day


@cache
def state_office_closures(year: int) -> Mapping[date, str]:
    """The weekdays of a year on which California state offices close, with the holiday's name.

    Raises ValueError outside FIRST_YEAR..LAST_YEAR, or if the `holidays` package no longer names a holiday.
    """
    if not FIRST_YEAR <= year <= LAST_YEAR:
        raise ValueError(f"no state holiday data for {year} (supported {FIRST_YEAR}-{LAST_YEAR})")
    listed = holidays.country_holidays(
        "US", subdiv="CA", years=year, categories=("public",), observed=False, language="en_US"
    )
    closures: dict[date, str] = {}
    found: set[str] = set()
    for day in sorted(listed):
        for name in listed.get_list(day):
            if name not in STATE_OFFICE_HOLIDAYS:
                continue
            found.add(name)
            observed = _observed_day(day, name)
            if observed is not None:
                label = name if observed == day else f"{name} (observed)"
                closures[observed] = f"{closures[observed]}; {label}" if observed in closures else label
    missing = set(STATE_OFFICE_HOLIDAYS) - found
    if missing:
        # A renamed holiday would silently turn into a business day: refuse instead.
        raise ValueError(f"the holidays package no longer lists {sorted(missing)} for CA in {year}")
    return MappingProxyType(closures)  # cached: callers must not be able to change it


class CalendarSpec(BaseModel):
    """A named business calendar: a base calendar plus closed days added and holidays worked.

    The name is what a deadline records, so a calendar that changes its base must carry its own name.
    """

    model_config = ConfigDict(frozen=True)

    name: str = US_CA_STATE
    base: Literal["us-ca-state"] = US_CA_STATE
    extra_closed_days: frozenset[date] = frozenset()  # e.g. an MCP's own closure on a Friday before a holiday
    removed_days: frozenset[date] = frozenset()  # base holidays this calendar treats as business days

    @model_validator(mode="after")
    def _is_consistent(self) -> CalendarSpec:
        if not self.name.strip():
            raise ValueError("a calendar needs a name")
        if (self.extra_closed_days or self.removed_days) and self.name == self.base:
            raise ValueError(f"a calendar that changes {self.base!r} needs its own name")
        if self.extra_closed_days & self.removed_days:
            raise ValueError("a day cannot be both added and removed")
        for day in self.removed_days:
            if day not in state_office_closures(day.year):
                raise ValueError(f"{day.isoformat()} is not a {self.base} holiday, so it cannot be removed")
        return self


class BusinessCalendar:
    """Business days under one named calendar spec, in Pacific time (America/Los_Angeles)."""

    def __init__(self, spec: CalendarSpec | None = None) -> None:
        self._spec = spec or CalendarSpec()

    @property
    def calendar_name(self) -> str:
        """The calendar's name, to record beside every deadline computed with it."""
        return self._spec.name

    @property
    def timezone(self) -> ZoneInfo:
        """The timezone business days are counted in."""
        return PACIFIC

    def closed_days(self, year: int) -> dict[date, str]:
        """The weekdays of a year this calendar treats as closed, with why. Raises ValueError (see years)."""
        closed = {
            day: name
            for day, name in state_office_closures(year).items()
            if day not in self._spec.removed_days
        }
        closed.update({day: "extra closed day" for day in self._spec.extra_closed_days if day.year == year})
        return dict(sorted(closed.items()))

    def local_date(self, moment: datetime) -> date:
        """The Pacific calendar date of an aware instant. Raises ValueError for a naive datetime."""
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise ValueError("a timezone-aware datetime is required")
        return moment.astimezone(PACIFIC).date()

    def is_business_day(self, day: date) -> bool:
        """True unless the date is a weekend or closed day (an aware datetime counts by its Pacific date)."""
        if isinstance(day, datetime):
            day = self.local_date(day)
        if day.weekday() in (_SATURDAY, _SUNDAY) or day in self._spec.extra_closed_days:
            return False
        return day in self._spec.removed_days or day not in state_office_closures(day.year)

    def business_day_after(self, day: date, n: int) -> date:
        """The n-th business day after `day` (which itself never counts). Raises ValueError if n < 1."""
        if n < 1:
            raise ValueError("count at least one business day")
        counted = 0
        while counted < n:
            day += timedelta(days=1)
            if self.is_business_day(day):
                counted += 1
        return day

    def add_business_days(self, start: datetime, n: int) -> datetime:
        """The end (23:59:59.999999 Pacific) of the n-th business day after the Pacific date of `start`.

        Raises ValueError for a naive `start` or n < 1.
        """
        due = self.business_day_after(self.local_date(start), n)
        return datetime.combine(due, END_OF_DAY, tzinfo=PACIFIC)

    def add_calendar_days(self, start: datetime, n: int) -> datetime:
        """The end (23:59:59.999999 Pacific) of the n-th calendar day after the Pacific date of `start`.

        For caps such as "never more than 14 calendar days". Raises ValueError for a naive `start` or n < 1.
        """
        if n < 1:
            raise ValueError("count at least one calendar day")
        due = self.local_date(start) + timedelta(days=n)
        return datetime.combine(due, END_OF_DAY, tzinfo=PACIFIC)


DEFAULT_CALENDAR = BusinessCalendar()


def is_business_day(day: date) -> bool:
    """True when `day` is a business day under the default 'us-ca-state' calendar."""
    return DEFAULT_CALENDAR.is_business_day(day)


def add_business_days(start: datetime, n: int) -> datetime:
    """End of the n-th 'us-ca-state' business day after `start`. Raises ValueError (naive, n < 1)."""
    return DEFAULT_CALENDAR.add_business_days(start, n)
