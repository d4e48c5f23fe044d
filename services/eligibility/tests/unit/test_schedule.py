"""The monthly calendar: run times in Pacific time, periods and batch keys."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

import pytest
from eligibility.domain.schedule import (
    AuthorizedPeriod,
    MonthlySchedule,
    batch_key,
    members_to_recheck,
    parse_period,
    period_of,
)


@pytest.mark.parametrize(("schedule", "after", "expected"), [
    (MonthlySchedule(1, time(6)), datetime(2026, 3, 2, tzinfo=UTC), datetime(2026, 4, 1, 13, tzinfo=UTC)),  # PDT
    (MonthlySchedule(1, time(6)), datetime(2026, 1, 15, tzinfo=UTC), datetime(2026, 2, 1, 14, tzinfo=UTC)),  # PST
    (MonthlySchedule(15, time(6)), datetime(2026, 3, 2, tzinfo=UTC), datetime(2026, 3, 15, 13, tzinfo=UTC)),
    (MonthlySchedule(31, time(6)), datetime(2026, 2, 1, tzinfo=UTC), datetime(2026, 2, 28, 14, tzinfo=UTC)),
    (MonthlySchedule(1, time(6)), datetime(2026, 12, 5, tzinfo=UTC), datetime(2027, 1, 1, 14, tzinfo=UTC)),
    # Exactly at a run time: the next one is a month later (never the same run twice).
    (MonthlySchedule(1, time(6)), datetime(2026, 4, 1, 13, tzinfo=UTC), datetime(2026, 5, 1, 13, tzinfo=UTC)),
])
def test_next_run(schedule: MonthlySchedule, after: datetime, expected: datetime) -> None:
    assert schedule.next_run(after) == expected


def test_period_is_the_pacific_month() -> None:
    assert period_of(datetime(2026, 4, 1, 5, tzinfo=UTC)) == "2026-03"  # still 31 March in California
    assert period_of(datetime(2026, 4, 1, 13, tzinfo=UTC)) == "2026-04"


def test_batch_key_and_period_parsing() -> None:
    assert batch_key("lacare", "2026-04") == "monthly:lacare:2026-04"
    assert parse_period("2026-04") == date(2026, 4, 1)
    for bad in ("2026-4", "202604", "2026-13"):
        with pytest.raises(ValueError):
            parse_period(bad)
    with pytest.raises(ValueError):
        MonthlySchedule(0)
    with pytest.raises(ValueError):
        MonthlySchedule().next_run(datetime(2026, 1, 1))


def test_members_to_recheck_are_open_authorizations_of_the_mcp_on_the_date() -> None:
    periods = [AuthorizedPeriod("m1", "lacare", date(2026, 1, 1), date(2026, 12, 31)),
               AuthorizedPeriod("m1", "lacare", date(2026, 3, 1), date(2026, 8, 31)),
               AuthorizedPeriod("m2", "lacare", date(2026, 1, 1), date(2026, 2, 28)),
               AuthorizedPeriod("m3", "healthnet", date(2026, 1, 1), date(2026, 12, 31)),
               AuthorizedPeriod("m4", "lacare", date(2026, 1, 1), date(2026, 12, 31), open=False)]
    assert members_to_recheck(periods, "lacare", date(2026, 4, 1)) == ["m1"]
