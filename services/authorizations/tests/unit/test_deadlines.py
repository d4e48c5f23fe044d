"""Decision deadlines, table-driven: weekends, every 2026-2027 California state holiday, observances that
are business days, DST switch days, year ends, expedited at 23:59, and the 14-day cap winning."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from authorizations.domain.deadlines import (
    DeadlineBasis,
    decision_due,
    escalation_at,
    next_escalation,
    pend_extension,
)
from authorizations.domain.policy import AuthorizationPolicy, McpTerms, Terms

from shared.contracts.values import Program, ServiceRequested, Urgency
from shared.reference.calendar import BusinessCalendar, CalendarSpec

LA = ZoneInfo("America/Los_Angeles")
ECM = ServiceRequested(program=Program.ECM, pof_codes=("1a",))
END = time(23, 59, 59, 999999)


def terms(policy: AuthorizationPolicy | None = None, mcp: str = "lacare", on: date = date(2026, 3, 2)) -> Terms:
    return (policy or AuthorizationPolicy()).terms_for(mcp, on)


def at(day: date, hour: int = 10, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=LA)


def end_of(day: date) -> datetime:
    return datetime.combine(day, END, tzinfo=LA)


STANDARD = [
    # (case, received (Pacific), due date (Pacific, end of day))
    ("monday morning", at(date(2026, 3, 2), 9), date(2026, 3, 9)),
    ("friday afternoon skips the weekend", at(date(2026, 3, 6), 16), date(2026, 3, 13)),
    ("saturday receipt counts from monday", at(date(2026, 3, 7)), date(2026, 3, 13)),
    ("sunday receipt counts from monday", at(date(2026, 3, 8)), date(2026, 3, 13)),
    ("receipt at 23:59 still does not count its own day", at(date(2026, 3, 2), 23, 59), date(2026, 3, 9)),
    ("receipt at 00:01", at(date(2026, 3, 3), 0, 1), date(2026, 3, 10)),
    # Every weekday closure of California state offices in 2026 and 2027, received the business day before.
    ("new year's day 2026", at(date(2025, 12, 31)), date(2026, 1, 8)),
    ("martin luther king jr. day 2026", at(date(2026, 1, 16)), date(2026, 1, 26)),
    ("presidents' day 2026", at(date(2026, 2, 13)), date(2026, 2, 23)),
    ("cesar chavez day 2026", at(date(2026, 3, 30)), date(2026, 4, 7)),
    ("memorial day 2026", at(date(2026, 5, 22)), date(2026, 6, 1)),
    ("labor day 2026", at(date(2026, 9, 4)), date(2026, 9, 14)),
    ("veterans day 2026", at(date(2026, 11, 10)), date(2026, 11, 18)),
    ("thanksgiving and the day after 2026", at(date(2026, 11, 25)), date(2026, 12, 4)),
    ("christmas 2026 then new year's day 2027", at(date(2026, 12, 24)), date(2027, 1, 4)),
    ("new year's day 2027 (dec 31 receipt)", at(date(2026, 12, 31)), date(2027, 1, 8)),
    ("martin luther king jr. day 2027", at(date(2027, 1, 15)), date(2027, 1, 25)),
    ("presidents' day 2027", at(date(2027, 2, 12)), date(2027, 2, 22)),
    ("cesar chavez day 2027", at(date(2027, 3, 30)), date(2027, 4, 7)),
    ("memorial day 2027", at(date(2027, 5, 28)), date(2027, 6, 7)),
    ("independence day 2027 observed monday", at(date(2027, 7, 2)), date(2027, 7, 12)),
    ("labor day 2027", at(date(2027, 9, 3)), date(2027, 9, 13)),
    ("veterans day 2027", at(date(2027, 11, 10)), date(2027, 11, 18)),
    ("thanksgiving and the day after 2027", at(date(2027, 11, 24)), date(2027, 12, 3)),
    # Days the package lists that state offices work: business days under the default calendar.
    ("independence day 2026 on saturday is not moved to friday", at(date(2026, 7, 2)), date(2026, 7, 9)),
    ("juneteenth 2026 is a business day", at(date(2026, 6, 18)), date(2026, 6, 25)),
    ("diwali 2027 is a business day", at(date(2027, 10, 28)), date(2027, 11, 4)),
    ("christmas 2027 on saturday closes no weekday", at(date(2027, 12, 23)), date(2027, 12, 30)),
    ("dec 31 2027 into a year starting on saturday", at(date(2027, 12, 31)), date(2028, 1, 7)),
    # DST: 2026-03-08 spring forward, 2026-11-01 fall back; the deadline is the end of the Pacific day.
    ("friday before spring forward", at(date(2026, 3, 6)), date(2026, 3, 13)),
    ("on the fall-back sunday", at(date(2026, 11, 1), 1, 30), date(2026, 11, 6)),
]


@pytest.mark.parametrize(("case", "received", "due"), STANDARD, ids=[c[0] for c in STANDARD])
def test_standard_deadline_is_the_end_of_the_fifth_business_day(case: str, received: datetime, due: date) -> None:
    deadline = decision_due(received, Urgency.STANDARD, ECM, terms())
    assert deadline.due == end_of(due).astimezone(UTC)
    assert deadline.due.tzinfo == UTC
    assert deadline.basis is DeadlineBasis.STANDARD_BUSINESS_DAYS
    assert deadline.calendar == "us-ca-state"


def test_the_table_covers_every_state_office_closure_of_2026_and_2027() -> None:
    closed = {d for y in (2026, 2027) for d in BusinessCalendar().closed_days(y)}
    assert closed == {
        date(2026, 1, 1), date(2026, 1, 19), date(2026, 2, 16), date(2026, 3, 31), date(2026, 5, 25),
        date(2026, 9, 7), date(2026, 11, 11), date(2026, 11, 26), date(2026, 11, 27), date(2026, 12, 25),
        date(2027, 1, 1), date(2027, 1, 18), date(2027, 2, 15), date(2027, 3, 31), date(2027, 5, 31),
        date(2027, 7, 5), date(2027, 9, 6), date(2027, 11, 11), date(2027, 11, 25), date(2027, 11, 26)}


def test_deadline_due_on_a_dst_day_is_the_local_end_of_day() -> None:
    due = decision_due(at(date(2026, 3, 2)), Urgency.STANDARD, ECM, terms()).due
    assert due == datetime(2026, 3, 10, 6, 59, 59, 999999, tzinfo=UTC)  # Mar 9 23:59:59.999999 PDT (UTC-7)
    winter = decision_due(at(date(2026, 10, 26)), Urgency.STANDARD, ECM, terms()).due
    assert winter == datetime(2026, 11, 3, 7, 59, 59, 999999, tzinfo=UTC)  # Nov 2 23:59:59.999999 PST


EXPEDITED = [
    ("at 23:59 on dec 31", datetime(2026, 12, 31, 23, 59, tzinfo=LA), datetime(2027, 1, 4, 7, 59, tzinfo=UTC)),
    ("across spring forward: 72 elapsed hours", datetime(2026, 3, 7, 12, 0, tzinfo=LA),
     datetime(2026, 3, 10, 20, 0, tzinfo=UTC)),
    ("across fall back", datetime(2026, 10, 31, 12, 0, tzinfo=LA), datetime(2026, 11, 3, 19, 0, tzinfo=UTC)),
    ("over a holiday weekend: hours, not business days", datetime(2026, 11, 25, 17, 0, tzinfo=LA),
     datetime(2026, 11, 29, 1, 0, tzinfo=UTC)),
]


@pytest.mark.parametrize(("case", "received", "due"), EXPEDITED, ids=[c[0] for c in EXPEDITED])
def test_expedited_deadline_is_72_elapsed_hours(case: str, received: datetime, due: datetime) -> None:
    deadline = decision_due(received, Urgency.EXPEDITED, ECM, terms())
    assert deadline.due == due
    assert deadline.basis is DeadlineBasis.EXPEDITED_HOURS
    assert deadline.expedited_by_rule is False


def test_expedited_at_2359_lands_at_2359_three_days_later_in_pacific_time() -> None:
    deadline = decision_due(datetime(2026, 12, 31, 23, 59, tzinfo=LA), Urgency.EXPEDITED, ECM, terms())
    assert deadline.due.astimezone(LA) == datetime(2027, 1, 3, 23, 59, tzinfo=LA)


ALWAYS = [
    ("recuperative_care", False, True),
    ("short_term_post_hospitalization_housing", False, True),
    ("sobering_centers", False, True),
    ("medically_tailored_meals", True, True),
    ("medically_tailored_meals", False, False),
    ("housing_deposits", False, False),
]


@pytest.mark.parametrize(("cs_code", "after_acute", "expedited"), ALWAYS)
def test_always_expedited_community_supports_ignore_the_referrals_urgency(cs_code: str, after_acute: bool,
                                                                          expedited: bool) -> None:
    service = ServiceRequested(program=Program.CS, cs_code=cs_code, after_acute_care=after_acute)
    deadline = decision_due(at(date(2026, 3, 2)), Urgency.STANDARD, service, terms())
    assert (deadline.urgency is Urgency.EXPEDITED) is expedited
    assert deadline.expedited_by_rule is expedited
    if expedited:
        assert deadline.due == at(date(2026, 3, 5)).astimezone(UTC)


def test_the_14_day_cap_wins_over_5_business_days_in_an_mcp_winter_shutdown() -> None:
    shutdown = CalendarSpec(name="lacare-2026-winter-shutdown", extra_closed_days=frozenset(
        date(2026, 12, d) for d in (21, 22, 23, 24, 28, 29, 30, 31)))
    policy = AuthorizationPolicy(calendars=(shutdown,), mcps={"lacare": (McpTerms(calendar=shutdown.name),)})
    deadline = decision_due(at(date(2026, 12, 18)), Urgency.STANDARD, ECM, terms(policy, on=date(2026, 12, 18)))
    assert deadline.basis is DeadlineBasis.CALENDAR_DAY_CAP
    assert deadline.due == end_of(date(2027, 1, 1)).astimezone(UTC)  # 5 business days would be 2027-01-08
    assert deadline.calendar == "lacare-2026-winter-shutdown"


def test_a_shorter_contractual_cap_wins_over_5_business_days() -> None:
    policy = AuthorizationPolicy(mcps={"lacare": (McpTerms(standard_max_calendar_days=7),)})
    deadline = decision_due(at(date(2026, 11, 25)), Urgency.STANDARD, ECM, terms(policy, on=date(2026, 11, 25)))
    assert (deadline.basis, deadline.due) == (DeadlineBasis.CALENDAR_DAY_CAP, end_of(date(2026, 12, 2)).astimezone(UTC))


def test_an_mcp_calendar_closed_on_an_observance_pushes_the_deadline() -> None:
    spec = CalendarSpec(name="healthnet-closes-juneteenth", extra_closed_days=frozenset({date(2026, 6, 19)}))
    policy = AuthorizationPolicy(calendars=(spec,), mcps={"healthnet": (McpTerms(calendar=spec.name),)})
    deadline = decision_due(at(date(2026, 6, 18)), Urgency.STANDARD, ECM,
                            terms(policy, "healthnet", date(2026, 6, 18)))
    assert deadline.due == end_of(date(2026, 6, 26)).astimezone(UTC)
    assert deadline.calendar == "healthnet-closes-juneteenth"


def test_terms_are_effective_dated() -> None:
    policy = AuthorizationPolicy(mcps={"lacare": (
        McpTerms(effective_to=date(2026, 6, 30)),
        McpTerms(effective_from=date(2026, 7, 1), standard_business_days=3),
    )})
    before = decision_due(at(date(2026, 6, 29)), Urgency.STANDARD, ECM, terms(policy, on=date(2026, 6, 29)))
    after = decision_due(at(date(2026, 7, 6)), Urgency.STANDARD, ECM, terms(policy, on=date(2026, 7, 6)))
    assert before.due == end_of(date(2026, 7, 6)).astimezone(UTC)  # 5 business days; Jul 3 is worked
    assert after.due == end_of(date(2026, 7, 9)).astimezone(UTC)  # 3 business days


def test_naive_receipt_time_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        decision_due(datetime(2026, 3, 2, 9), Urgency.STANDARD, ECM, terms())


ESCALATIONS = [
    # (due date, escalation, fires at end of this Pacific day, then +1 microsecond)
    (date(2026, 3, 9), 1, date(2026, 3, 9)),
    (date(2026, 3, 9), 2, date(2026, 3, 10)),
    (date(2026, 3, 27), 2, date(2026, 3, 30)),  # Friday: the next business day is Monday
    (date(2026, 3, 27), 3, date(2026, 4, 1)),  # Tuesday Mar 31 is Cesar Chavez Day
    (date(2026, 12, 24), 2, date(2026, 12, 28)),
]


@pytest.mark.parametrize(("due", "n", "fires"), ESCALATIONS)
def test_standard_escalations_repeat_each_following_business_day(due: date, n: int, fires: date) -> None:
    at_ = escalation_at(end_of(due), n, Urgency.STANDARD, terms())
    assert at_ == end_of(fires).astimezone(UTC) + timedelta(microseconds=1)


def test_escalations_stop_at_the_maximum_and_expedited_ones_repeat_every_24_hours() -> None:
    due = datetime(2026, 3, 5, 17, 0, tzinfo=UTC)
    assert escalation_at(due, 3, Urgency.EXPEDITED, terms()) == due + timedelta(hours=48, microseconds=1)
    assert escalation_at(due, 10, Urgency.STANDARD, terms()) is not None
    assert escalation_at(due, 11, Urgency.STANDARD, terms()) is None
    with pytest.raises(ValueError):
        escalation_at(due, 0, Urgency.STANDARD, terms())


def test_pending_extends_a_standard_deadline_by_14_days_once_and_never_an_expedited_one() -> None:
    due = end_of(date(2026, 3, 9))
    pended = at(date(2026, 3, 5))
    assert pend_extension(due, Urgency.STANDARD, terms(), pended_at=pended) == end_of(date(2026, 3, 23)).astimezone(UTC)
    assert pend_extension(due, Urgency.EXPEDITED, terms(), pended_at=pended) is None
    strict = AuthorizationPolicy(mcps={"lacare": (McpTerms(pend_extension_days=0),)})
    assert pend_extension(due, Urgency.STANDARD, terms(strict), pended_at=pended) is None


def test_a_pend_after_the_deadline_extends_nothing() -> None:
    due = end_of(date(2026, 3, 9))
    assert pend_extension(due, Urgency.STANDARD, terms(), pended_at=due) is not None  # the last instant still counts
    assert pend_extension(due, Urgency.STANDARD, terms(), pended_at=due + timedelta(microseconds=1)) is None
    assert pend_extension(due, Urgency.STANDARD, terms(), pended_at=at(date(2026, 3, 16))) is None


def test_escalation_numbering_continues_per_deadline() -> None:
    due, extended = end_of(date(2026, 3, 9)), end_of(date(2026, 3, 23))
    assert next_escalation([], due) == 1
    assert next_escalation([(due, 1), (due, 2), (due, 3)], due) == 4  # resumed after a suspension
    assert next_escalation([(due, 1), (due, 2)], extended) == 1  # a pend's new deadline starts again
    assert next_escalation([(due, 1), (extended, 1), (extended, 2)], extended.astimezone(UTC)) == 3
