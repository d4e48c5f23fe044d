"""The two rules of order-independent projections (shared.ordering), checked over every arrival order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import reduce
from itertools import permutations

import pytest

from shared.ordering import ForwardLifecycle, newest_decision_wins

LIFECYCLE = ForwardLifecycle({"requested": 0, "denied": 1, "approved": 2, "expired": 3, "closed": 3})


@pytest.mark.parametrize("arrivals", list(permutations(["requested", "approved", "closed"])))
def test_a_status_ends_at_the_furthest_point_whatever_the_order(arrivals: tuple[str, ...]) -> None:
    assert reduce(LIFECYCLE.next, arrivals, None) == "closed"


def test_equal_ranks_keep_the_first_and_unknown_statuses_are_refused() -> None:
    assert LIFECYCLE.next("expired", "closed") == "expired"
    assert LIFECYCLE.next(None, "approved") == "approved"
    with pytest.raises(KeyError):
        LIFECYCLE.next("approved", "reopened")


def test_the_newest_decision_stands_whichever_arrives_last() -> None:
    first = datetime(2026, 11, 2, 16, 0, tzinfo=UTC)
    modified = first + timedelta(days=3)
    assert newest_decision_wins(first, None)
    assert newest_decision_wins(modified, first)
    assert not newest_decision_wins(first, modified)
    assert newest_decision_wins(first, first)  # same instant: the later arrival, as before decision times
