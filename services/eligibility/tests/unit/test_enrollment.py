"""Change detection: each real change is announced once; repeated or older facts announce nothing."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from eligibility.domain.enrollment import (
    ChangeKind,
    MemberState,
    Observation,
    ProgramFlag,
    Source,
    Span,
    Status,
    apply,
)

AT = datetime(2026, 3, 2, 17, tzinfo=UTC)


def active(mcp: str, as_of: date, start: date | None = None, end: date | None = None,
           source: Source = Source.X12_271) -> Observation:
    return Observation(True, mcp, as_of, source, AT, span_start=start, span_end=end)


def inactive(mcp: str | None, as_of: date, end: date | None = None) -> Observation:
    return Observation(False, mcp, as_of, Source.X12_271, AT, span_end=end, reason="inactive")


def run(*observations: Observation) -> tuple[MemberState, list[list[ChangeKind]]]:
    state = MemberState()
    kinds = []
    for observation in observations:
        outcome = apply(state, observation)
        state = outcome.state
        kinds.append([c.kind for c in outcome.changes])
    return state, kinds


MAR1, MAR2, FEB1, FEB28 = date(2026, 3, 1), date(2026, 3, 2), date(2026, 2, 1), date(2026, 2, 28)


@pytest.mark.parametrize(("observations", "expected"), [
    ([active("lacare", FEB1)], [[ChangeKind.VERIFIED]]),
    ([active("lacare", FEB1), active("lacare", MAR2)], [[ChangeKind.VERIFIED], []]),
    ([active("lacare", FEB1), inactive("lacare", MAR2, FEB28)], [[ChangeKind.VERIFIED], [ChangeKind.LOST]]),
    ([active("lacare", FEB1), inactive("lacare", MAR2, FEB28), inactive("lacare", MAR2, FEB28)],
     [[ChangeKind.VERIFIED], [ChangeKind.LOST], []]),
    ([active("lacare", FEB1), inactive("lacare", MAR2, FEB28), active("lacare", FEB1, source=Source.MIF)],
     [[ChangeKind.VERIFIED], [ChangeKind.LOST], []]),  # an older MIF row does not undo the loss
    ([active("lacare", FEB1), inactive("lacare", MAR1), active("lacare", MAR2)],
     [[ChangeKind.VERIFIED], [ChangeKind.LOST], [ChangeKind.REGAINED]]),
    ([active("lacare", FEB1), active("healthnet", MAR2, start=MAR1)],
     [[ChangeKind.VERIFIED], [ChangeKind.PLAN_CHANGED]]),
    ([active("lacare", FEB1), inactive("healthnet", MAR2)], [[ChangeKind.VERIFIED], []]),  # not with them: fine
    ([inactive("lacare", MAR2, FEB28)], [[]]),  # first seen without coverage: nothing was lost
    ([active("lacare", MAR2, end=FEB28)], [[]]),  # "active" with an end in the past is an inactive fact
])
def test_changes(observations: list[Observation], expected: list[list[ChangeKind]]) -> None:
    assert run(*observations)[1] == expected


def test_lost_effective_is_the_day_after_coverage_ended() -> None:
    state = apply(MemberState(), active("lacare", FEB1)).state
    outcome = apply(state, inactive("lacare", MAR2, FEB28))
    (change,) = outcome.changes
    assert (change.kind, change.mcp_code, change.effective) == (ChangeKind.LOST, "lacare", MAR1)
    assert outcome.state.status is Status.NOT_ENROLLED
    assert outcome.state.spans == (Span("lacare", FEB1, FEB28, Source.X12_271),)


def test_plan_change_closes_the_old_span_the_day_before() -> None:
    state, _ = run(active("lacare", FEB1, start=date(2025, 1, 1)), active("healthnet", MAR2, start=MAR1))
    assert [(s.mcp_code, s.start, s.end) for s in state.spans] == [
        ("lacare", date(2025, 1, 1), FEB28), ("healthnet", MAR1, None)]
    assert state.span_on(FEB28).mcp_code == "lacare" and state.span_on(MAR2).mcp_code == "healthnet"


def test_older_fact_adds_history_without_reopening() -> None:
    state, _ = run(active("lacare", FEB1), inactive("lacare", MAR2, FEB28), active("lacare", date(2026, 1, 15),
                                                                                   start=date(2026, 1, 1)))
    # The January fact proves 1-15 January only: history is added, the gap stays unknown, nothing reopens.
    assert [(s.start, s.end) for s in state.spans] == [(date(2026, 1, 1), date(2026, 1, 15)), (FEB1, FEB28)]
    assert state.status is Status.NOT_ENROLLED


def test_new_excluding_program_is_announced_once() -> None:
    hospice = ProgramFlag("hospice", date(2026, 2, 15), None, Source.X12_271)
    with_hospice = Observation(True, "lacare", MAR2, Source.X12_271, AT, programs=(hospice,))
    state, kinds = run(active("lacare", FEB1), with_hospice, with_hospice)
    assert kinds == [[ChangeKind.VERIFIED], [ChangeKind.EXCLUDED], []]
    assert state.programs_on(MAR2) == frozenset({"hospice"})


def test_program_stay_over_before_the_fact_is_history_not_an_exclusion() -> None:
    # A 271 of March 2026 reporting a hospice stay of early 2024: true then, nothing to exclude now.
    over = ProgramFlag("hospice", date(2024, 1, 1), date(2024, 3, 31), Source.X12_271)
    outcome = apply(MemberState(), Observation(True, "lacare", MAR2, Source.X12_271, AT, programs=(over,)))
    assert [c.kind for c in outcome.changes] == [ChangeKind.VERIFIED]
    assert outcome.state.programs_on(MAR2) == frozenset()
    assert outcome.state.programs_on(date(2024, 2, 1)) == frozenset({"hospice"})  # kept as history


@pytest.mark.parametrize(("end", "as_of"), [(date(2026, 6, 30), MAR2), (MAR2, MAR2), (None, MAR2),
                                            (date(2026, 2, 20), date(2026, 2, 20))])
def test_exclusion_ends_when_the_program_ends(end: date | None, as_of: date) -> None:
    hospice = ProgramFlag("hospice", date(2026, 2, 15), end, Source.X12_271)
    outcome = apply(MemberState(), Observation(True, None, as_of, Source.X12_271, AT, programs=(hospice,)))
    (change,) = outcome.changes
    assert (change.kind, change.effective, change.effective_to) == (ChangeKind.EXCLUDED, date(2026, 2, 15), end)


def test_older_fact_with_a_stay_over_by_the_newest_fact_is_not_an_exclusion() -> None:
    state = apply(MemberState(), active("lacare", MAR2)).state
    over = ProgramFlag("hospice", date(2026, 1, 1), date(2026, 1, 31), Source.X12_271)
    outcome = apply(state, Observation(True, "lacare", date(2026, 1, 15), Source.MIF, AT, programs=(over,)))
    assert outcome.stale and outcome.changes == []


def test_program_that_may_run_beside_ecm_is_not_an_exclusion() -> None:
    ihss = ProgramFlag("ihss", FEB1)
    outcome = apply(MemberState(), Observation(True, None, FEB1, Source.MANUAL, AT, programs=(ihss,)))
    assert outcome.changes == [] and outcome.state.programs_on(FEB1) == frozenset({"ihss"})
    assert outcome.state.status is Status.UNKNOWN  # a program flag says nothing about enrollment


def test_unknown_program_code_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown program code"):
        apply(MemberState(), Observation(True, None, FEB1, Source.MANUAL, AT, programs=(ProgramFlag("x", FEB1),)))
