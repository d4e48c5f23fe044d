"""California state business days and deadline arithmetic in Pacific time."""

from __future__ import annotations

from datetime import UTC, date, datetime

import holidays
import pytest
from pydantic import ValidationError

from shared.reference.calendar import (
    OPEN_STATE_OBSERVANCES,
    PACIFIC,
    STATE_OFFICE_HOLIDAYS,
    US_CA_STATE,
    BusinessCalendar,
    CalendarSpec,
    add_business_days,
    is_business_day,
    state_office_closures,
)


def pacific(year: int, month: int, day: int, hour: int = 10, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=PACIFIC)


def end_of(year: int, month: int, day: int) -> datetime:
    return datetime(year, month, day, 23, 59, 59, 999999, tzinfo=PACIFIC)


CLOSED_2026 = {
    date(2026, 1, 1): "New Year's Day",
    date(2026, 1, 19): "Martin Luther King Jr. Day",
    date(2026, 2, 16): "Presidents' Day",
    date(2026, 3, 31): "Cesar Chavez Day",
    date(2026, 5, 25): "Memorial Day",
    # July 4 is a Saturday: state offices do not close on Friday July 3 (holiday credit instead).
    date(2026, 9, 7): "Labor Day",
    date(2026, 11, 11): "Veterans Day",
    date(2026, 11, 26): "Thanksgiving Day",
    date(2026, 11, 27): "Day After Thanksgiving",
    date(2026, 12, 25): "Christmas Day",
}
CLOSED_2027 = {
    date(2027, 1, 1): "New Year's Day",
    date(2027, 1, 18): "Martin Luther King Jr. Day",
    date(2027, 2, 15): "Presidents' Day",
    date(2027, 3, 31): "Cesar Chavez Day",
    date(2027, 5, 31): "Memorial Day",
    date(2027, 7, 5): "Independence Day (observed)",  # July 4 is a Sunday
    date(2027, 9, 6): "Labor Day",
    date(2027, 11, 11): "Veterans Day",
    date(2027, 11, 25): "Thanksgiving Day",
    date(2027, 11, 26): "Day After Thanksgiving",
    # Christmas 2027 and New Year's Day 2028 are Saturdays: Dec 24 and Dec 31 stay business days.
}


@pytest.mark.parametrize(("year", "closed"), [(2026, CLOSED_2026), (2027, CLOSED_2027)])
def test_state_office_closures(year: int, closed: dict[date, str]) -> None:
    assert dict(state_office_closures(year)) == closed
    assert BusinessCalendar().closed_days(year) == closed


@pytest.mark.parametrize(
    ("year", "published"),
    [
        # CalHR 2024 state holidays: Cesar Chavez Day (Sunday) observed Monday April 1.
        (
            2024,
            [
                "01-01",
                "01-15",
                "02-19",
                "04-01",
                "05-27",
                "07-04",
                "09-02",
                "11-11",
                "11-28",
                "11-29",
                "12-25",
            ],
        ),
        # Secretary of State 2021: July 4 (Sunday) observed Monday; Christmas on a Saturday not moved.
        (2021, ["01-01", "01-18", "02-15", "03-31", "05-31", "07-05", "09-06", "11-11", "11-25", "11-26"]),
        # 2017: New Year's Day (Sunday) observed Monday; Veterans Day (Saturday) observed Friday November 10.
        (
            2017,
            [
                "01-02",
                "01-16",
                "02-20",
                "03-31",
                "05-29",
                "07-04",
                "09-04",
                "11-10",
                "11-23",
                "11-24",
                "12-25",
            ],
        ),
    ],
)
def test_closures_match_published_state_holiday_lists(year: int, published: list[str]) -> None:
    assert [day.strftime("%m-%d") for day in state_office_closures(year)] == published


@pytest.mark.parametrize(
    "day",
    [
        date(2026, 2, 13),  # Friday before Presidents' Day; Susan B. Anthony Day (Feb 15) is a commemoration
        date(2026, 6, 19),  # Juneteenth: state employees may elect the day off, offices stay open
        date(2026, 7, 3),  # Friday before a Saturday July 4
        date(2026, 10, 12),  # Columbus Day: not a state office holiday since 2009
        date(2026, 9, 25),  # Native American Day (4th Friday of September): offices stay open
        date(2027, 10, 29),  # Diwali (AB 268, from 2026): state employees may elect the day off
        date(2027, 12, 24),
        date(2027, 12, 31),
    ],
)
def test_observances_that_do_not_close_state_offices_are_business_days(day: date) -> None:
    assert is_business_day(day)


@pytest.mark.parametrize(
    "day", [date(2026, 1, 1), date(2026, 3, 31), date(2026, 11, 27), date(2027, 7, 5), date(2026, 3, 7)]
)
def test_holidays_and_weekends_are_not_business_days(day: date) -> None:
    assert not is_business_day(day)


def test_every_ca_holiday_the_package_lists_is_classified() -> None:
    # Fails when a `holidays` upgrade adds a California holiday: decide whether state offices close on it.
    known = set(STATE_OFFICE_HOLIDAYS) | set(OPEN_STATE_OBSERVANCES)
    for year in range(2022, 2036):
        listed = holidays.country_holidays("US", subdiv="CA", years=year, observed=False, language="en_US")
        names = {name for day in listed for name in listed.get_list(day)}
        assert names <= known, (year, names - known)


@pytest.mark.parametrize(
    ("received", "n", "due"),
    [
        (pacific(2026, 3, 2), 1, end_of(2026, 3, 3)),  # Monday → Tuesday
        (pacific(2026, 3, 2, 23, 59), 1, end_of(2026, 3, 3)),  # after hours changes nothing
        (pacific(2026, 3, 2, 0, 0), 5, end_of(2026, 3, 9)),
        (pacific(2026, 3, 7), 1, end_of(2026, 3, 9)),  # received Saturday: day 1 is Monday
        (pacific(2026, 3, 30), 1, end_of(2026, 4, 1)),  # over Cesar Chavez Day (Tuesday)
        (pacific(2026, 1, 16), 1, end_of(2026, 1, 20)),  # over MLK Day
        (pacific(2026, 11, 25), 1, end_of(2026, 11, 30)),  # over Thanksgiving and the day after
        (pacific(2026, 11, 25), 5, end_of(2026, 12, 4)),
        (pacific(2026, 12, 24), 1, end_of(2026, 12, 28)),  # over Christmas
        (pacific(2026, 12, 24), 5, end_of(2027, 1, 4)),  # over Christmas and New Year's Day
        (pacific(2026, 12, 31, 16), 1, end_of(2027, 1, 4)),  # Dec 31: over the year end and New Year's Day
        (pacific(2027, 12, 30), 1, end_of(2027, 12, 31)),  # Dec 31 2027 is a business day
        (pacific(2027, 12, 30), 2, end_of(2028, 1, 3)),
        (pacific(2027, 7, 2), 1, end_of(2027, 7, 6)),  # over Independence Day observed Monday
        (pacific(2026, 7, 2), 1, end_of(2026, 7, 3)),
    ],
)
def test_add_business_days(received: datetime, n: int, due: datetime) -> None:
    assert add_business_days(received, n) == due


@pytest.mark.parametrize(
    ("received", "n", "due_utc"),
    [
        # Spring forward on Sunday 2026-03-08: received in PST, due in PDT (UTC-7).
        (pacific(2026, 3, 3), 5, datetime(2026, 3, 11, 6, 59, 59, 999999, tzinfo=UTC)),
        (pacific(2026, 3, 6, 23, 30), 1, datetime(2026, 3, 10, 6, 59, 59, 999999, tzinfo=UTC)),
        # Fall back on Sunday 2026-11-01: received in PDT, due in PST (UTC-8).
        (pacific(2026, 10, 28), 5, datetime(2026, 11, 5, 7, 59, 59, 999999, tzinfo=UTC)),
        # Both 01:30s of the repeated hour are Sunday Nov 1: due end of Monday Nov 2 (PST).
        (datetime(2026, 11, 1, 8, 30, tzinfo=UTC), 1, datetime(2026, 11, 3, 7, 59, 59, 999999, tzinfo=UTC)),
        (datetime(2026, 11, 1, 9, 30, tzinfo=UTC), 1, datetime(2026, 11, 3, 7, 59, 59, 999999, tzinfo=UTC)),
    ],
)
def test_add_business_days_across_dst_switches(received: datetime, n: int, due_utc: datetime) -> None:
    assert add_business_days(received, n) == due_utc


@pytest.mark.parametrize(
    ("received_utc", "due"),
    [
        (datetime(2026, 12, 31, 7, 59, tzinfo=UTC), end_of(2026, 12, 31)),  # still Dec 30 in California
        (datetime(2026, 12, 31, 8, 0, tzinfo=UTC), end_of(2027, 1, 4)),  # Dec 31 in California
        (datetime(2027, 1, 1, 2, 0, tzinfo=UTC), end_of(2027, 1, 4)),  # New Year's Day in UTC, Dec 31 here
    ],
)
def test_receipt_counts_by_its_pacific_date(received_utc: datetime, due: datetime) -> None:
    assert add_business_days(received_utc, 1) == due


def test_aware_datetime_is_judged_by_its_pacific_date() -> None:
    assert not is_business_day(
        datetime(2026, 1, 2, 5, 0, tzinfo=UTC)
    )  # 21:00 on New Year's Day in California
    assert is_business_day(datetime(2026, 1, 2, 9, 0, tzinfo=UTC))


def test_naive_datetimes_and_non_positive_counts_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        add_business_days(datetime(2026, 3, 2, 10, 0), 5)
    with pytest.raises(ValueError, match="at least one"):
        add_business_days(pacific(2026, 3, 2), 0)


def test_years_without_holiday_data_are_refused() -> None:
    with pytest.raises(ValueError, match="no state holiday data"):
        is_business_day(date(2009, 2, 12))


def test_fourteen_calendar_days_cap() -> None:
    calendar = BusinessCalendar()
    assert calendar.add_calendar_days(pacific(2026, 12, 24, 18), 14) == end_of(2027, 1, 7)


def test_default_calendar_is_named_us_ca_state() -> None:
    assert BusinessCalendar().calendar_name == US_CA_STATE == "us-ca-state"
    assert BusinessCalendar().timezone.key == "America/Los_Angeles"


def test_custom_calendar_adds_closed_days_and_removes_holidays() -> None:
    spec = CalendarSpec(
        name="us-ca-state+mcp-closures",
        extra_closed_days=frozenset({date(2026, 7, 3)}),
        removed_days=frozenset({date(2026, 3, 31)}),
    )
    calendar = BusinessCalendar(spec)
    assert calendar.calendar_name == "us-ca-state+mcp-closures"
    assert not calendar.is_business_day(date(2026, 7, 3))
    assert calendar.is_business_day(date(2026, 3, 31))
    assert calendar.add_business_days(pacific(2026, 7, 2), 1) == end_of(2026, 7, 6)
    assert calendar.add_business_days(pacific(2026, 3, 30), 1) == end_of(2026, 3, 31)
    assert date(2026, 3, 31) not in calendar.closed_days(2026)
    assert calendar.closed_days(2026)[date(2026, 7, 3)] == "extra closed day"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"extra_closed_days": frozenset({date(2026, 7, 3)})}, "needs its own name"),
        ({"name": " "}, "needs a name"),
        ({"name": "x", "removed_days": frozenset({date(2026, 7, 3)})}, "not a us-ca-state holiday"),
        (
            {
                "name": "x",
                "extra_closed_days": frozenset({date(2026, 3, 31)}),
                "removed_days": frozenset({date(2026, 3, 31)}),
            },
            "both added and removed",
        ),
    ],
)
def test_inconsistent_calendar_specs_are_refused(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        CalendarSpec.model_validate(fields)
