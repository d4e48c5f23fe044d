"""How claims folds authorization.* events into its coverage projection, whatever order they arrive in.

Events of one authorization normally arrive in the order they were written, but a dead letter replayed later
(or a consumer reading two partitions) delivers them in another. The fold is built so every order ends in the
same projection (docs/decisions/0125-projections-converge-whatever-the-order.md): the status only moves forward
along the lifecycle, and suspensions are rebuilt from the set of dated suspensions and resumptions known so far,
never from a running state that depends on which came first. An authorization approved twice (approved, then
approved as modified) takes its period from the newest decision, not from the approval that arrived last.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Final

from shared.ordering import ForwardLifecycle, newest_decision_wins

ONE_DAY: Final = timedelta(days=1)

# Progress along an authorization's lifecycle. A status only moves to a higher rank: a late `requested` never
# undoes a decision, a late `approved` never reopens an authorization that ended. `approved` outranks `denied`
# because an overturned denial is approved afterwards, while an approval is never denied later (the MCP
# discontinues it instead: `closed`).
_LIFECYCLE: Final = ForwardLifecycle({"requested": 0, "denied": 1, "approved": 2, "expired": 3, "closed": 3})

# A suspension interval as stored: [first day suspended, last day suspended]; None at the end while it runs,
# None at the start for a resumption whose suspension has not arrived yet (it suspends nothing on its own).
Interval = list[date | None]


def next_status(current: str | None, incoming: str) -> str:
    """The projected status once an event with status `incoming` is applied (never moves backwards).

    Raises KeyError for a status the lifecycle does not know.
    """
    return _LIFECYCLE.next(current, incoming)


def approval_supersedes(decided_at: datetime, standing: datetime | None) -> bool:
    """Whether an approval decided at `decided_at` sets the period (and what comes with it) over the approval that
    set it, decided at `standing`: the newest decision wins whatever order the two arrive in."""
    return newest_decision_wins(decided_at, standing)


def with_suspension(suspensions: Sequence[Interval], start: date) -> list[Interval]:
    """The suspension intervals once a suspension from `start` is known (the same one twice changes nothing)."""
    return _intervals(_marks(suspensions) | {(start, _SUSPENDED)})


def with_resumption(suspensions: Sequence[Interval], effective: date) -> list[Interval]:
    """The suspension intervals once a resumption from `effective` is known (the same one twice changes nothing)."""
    return _intervals(_marks(suspensions) | {(effective, _RESUMED)})


def suspended_days(suspensions: Sequence[Interval]) -> tuple[tuple[date, date | None], ...]:
    """The intervals that suspend coverage (a resumption still waiting for its suspension suspends nothing)."""
    return tuple((i[0], i[1]) for i in suspensions if i[0] is not None)


# A mark is one dated end of a suspension: (day, kind).
_RESUMED, _SUSPENDED = 0, 1
Mark = tuple[date, int]


def _marks(intervals: Sequence[Interval]) -> set[Mark]:
    """The dated marks the intervals were built from (the exact inverse of `_intervals`)."""
    marks: set[Mark] = set()
    for first, last in intervals:
        if first is not None:
            marks.add((first, _SUSPENDED))
        if last is not None:
            marks.add((last + ONE_DAY, _RESUMED))
    return marks


def _intervals(marks: set[Mark]) -> list[Interval]:
    """Pair the marks in date order: a resumption ends the latest suspension still running; one with nothing
    running waits for its suspension ([None, last day]). A function of the set alone, hence of no order."""
    running: list[date] = []
    intervals: list[Interval] = []
    for day in sorted({d for d, _ in marks}):
        resumed, suspended = (day, _RESUMED) in marks, (day, _SUSPENDED) in marks
        if resumed and running:  # resumed from `day`, and perhaps suspended again from the same day
            intervals.append([running.pop(), day - ONE_DAY])
            resumed = False
        if suspended:
            running.append(day)
        if resumed:
            # Nothing ran before today: a suspension and resumption on one day suspend no day at all.
            intervals.append([running.pop() if suspended else None, day - ONE_DAY])
    intervals.extend([day, None] for day in running)
    return sorted(intervals, key=lambda i: (i[0] or date.min, i[1] or date.max))
