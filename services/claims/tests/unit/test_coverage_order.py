"""The coverage fold ends in the same projection whatever order an authorization's events arrive in."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta

import pytest
from claims.domain.coverage import (
    approval_supersedes,
    next_status,
    suspended_days,
    with_resumption,
    with_suspension,
)
from claims.domain.encounters import Coverage

Event = tuple[str, date | None]


def fold(events: list[Event]) -> tuple[str | None, tuple[tuple[date, date | None], ...]]:
    status: str | None = None
    intervals: list[list[date | None]] = []
    for kind, day in events:
        if kind == "suspended":
            assert day is not None
            intervals = with_suspension(intervals, day)
        elif kind == "resumed":
            assert day is not None
            intervals = with_resumption(intervals, day)
        else:
            status = next_status(status, kind)
    return status, suspended_days(intervals)


STORIES: dict[str, list[Event]] = {
    "suspended and resumed": [("requested", None), ("approved", None), ("suspended", date(2025, 3, 1)),
                              ("resumed", date(2025, 3, 20))],
    "twice suspended": [("requested", None), ("approved", None), ("suspended", date(2025, 3, 1)),
                        ("resumed", date(2025, 3, 20)), ("suspended", date(2025, 5, 1)),
                        ("resumed", date(2025, 5, 10))],
    "suspended until it expired": [("requested", None), ("approved", None), ("suspended", date(2025, 3, 1)),
                                   ("expired", None)],
    "suspended and resumed the same day, later suspended again": [
        ("approved", None), ("suspended", date(2025, 3, 1)), ("resumed", date(2025, 3, 1)),
        ("suspended", date(2025, 4, 1)), ("resumed", date(2025, 4, 15)), ("suspended", date(2025, 4, 15))],
    "denied then overturned then closed": [("requested", None), ("denied", None), ("approved", None),
                                           ("closed", None)],
}


@pytest.mark.parametrize("name", sorted(STORIES))
def test_every_order_of_a_story_ends_in_the_projection_of_the_story_told_in_order(name: str) -> None:
    story = STORIES[name]
    expected = fold(story)
    for order in itertools.permutations(story):
        assert fold(list(order)) == expected, order


def test_a_late_request_does_not_undo_the_decision() -> None:
    assert next_status("approved", "requested") == "approved"
    assert next_status("denied", "requested") == "denied"


def test_an_approval_never_reopens_an_ended_authorization_but_overturns_a_denial() -> None:
    assert next_status("closed", "approved") == "closed"
    assert next_status("expired", "approved") == "expired"
    assert next_status("denied", "approved") == "approved"
    assert next_status("approved", "denied") == "approved"


def test_a_suspension_that_arrives_before_the_approval_still_refuses_its_days() -> None:
    _, suspensions = fold([("suspended", date(2025, 3, 1)), ("approved", None)])
    covered = Coverage(authorization_id="auth_1", mcp_code="lacare", program="ecm", cs_code=None, status="approved",
                       period_start=date(2025, 1, 1), period_end=date(2025, 12, 31), suspensions=suspensions)
    assert covered.covers(date(2025, 2, 28)) and not covered.covers(date(2025, 3, 1))


def test_a_resumption_waiting_for_its_suspension_suspends_nothing() -> None:
    intervals = with_resumption([], date(2025, 3, 20))
    assert suspended_days(intervals) == ()
    assert suspended_days(with_suspension(intervals, date(2025, 3, 1))) == ((date(2025, 3, 1), date(2025, 3, 19)),)


def test_the_same_suspension_or_resumption_twice_changes_nothing() -> None:
    once = with_resumption(with_suspension([], date(2025, 3, 1)), date(2025, 3, 20))
    assert with_suspension(once, date(2025, 3, 1)) == once
    assert with_resumption(once, date(2025, 3, 20)) == once


DECIDED = datetime(2025, 1, 2, 17, 0, tzinfo=UTC)


def periods_after(approvals: list[tuple[datetime, tuple[date, date]]]) -> tuple[date, date] | None:
    """The period standing once these approvals (decision time, period) are applied in this order."""
    standing: datetime | None = None
    period: tuple[date, date] | None = None
    for decided_at, approved in approvals:
        if approval_supersedes(decided_at, standing):
            standing, period = decided_at, approved
    return period


def test_the_newest_approval_sets_the_period_whatever_order_they_arrive_in() -> None:
    approved = (DECIDED, (date(2025, 1, 1), date(2025, 12, 31)))
    modified = (DECIDED + timedelta(days=40), (date(2025, 1, 1), date(2025, 6, 30)))  # approved as modified
    extended = (DECIDED + timedelta(days=90), (date(2025, 1, 1), date(2026, 3, 31)))
    for order in itertools.permutations([approved, modified, extended]):
        assert periods_after(list(order)) == extended[1], order


def test_an_approval_sets_the_period_when_none_was_decided_before() -> None:
    assert approval_supersedes(DECIDED, None)  # also a row projected before decision times were kept
    assert not approval_supersedes(DECIDED, DECIDED + timedelta(seconds=1))
    assert approval_supersedes(DECIDED, DECIDED)  # the same instant: the later-consumed one, as before
