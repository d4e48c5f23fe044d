"""Alert rules notify once when a condition starts and once when it clears; lag and stalls (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from ops.domain.alerts import AlertRule, AlertStatus, Comparator, KeyState, Metric, TransitionKind, evaluate, observe
from ops.domain.boards import Boards, ClaimsStanding, DecisionCounts, DueItem, FileCounts
from ops.domain.lag import advance, lag_of

T = datetime(2026, 3, 2, 17, 0, tzinfo=UTC)


def rule(**overrides: object) -> AlertRule:
    values: dict = {"id": "alr_1", "name": "overdue", "metric": Metric.DECISIONS_OVERDUE,
                    "comparator": Comparator.ABOVE, "threshold": Decimal(0)}
    values.update(overrides)
    return AlertRule(**values)


def run(r: AlertRule, rounds: list[dict[str, int]], step: timedelta = timedelta(minutes=1)):
    states: dict[str, KeyState] = {}
    kinds = []
    for index, observed in enumerate(rounds):
        result = evaluate(r, {k: Decimal(v) for k, v in observed.items()}, states, T + index * step)
        states = result.states
        kinds.append([(t.key, t.kind.value) for t in result.transitions])
    return kinds, states


def test_one_notification_when_a_condition_starts_and_one_when_it_clears() -> None:
    kinds, states = run(rule(), [{"lacare": 0}, {"lacare": 2}, {"lacare": 3}, {"lacare": 5}, {"lacare": 0},
                                 {"lacare": 0}])
    assert kinds == [[], [("lacare", "firing")], [], [], [("lacare", "resolved")], []]
    assert states == {}


def test_for_minutes_holds_back_a_flapping_condition() -> None:
    kinds, _ = run(rule(for_minutes=3), [{"x": 1}, {"x": 0}, {"x": 1}, {"x": 1}, {"x": 1}, {"x": 1}])
    assert kinds == [[], [], [], [], [], [("x", "firing")]]


def test_a_key_that_disappears_resolves_and_a_disabled_rule_resolves_everything() -> None:
    kinds, states = run(rule(), [{"a": 1, "b": 1}, {"b": 1}])
    assert kinds == [[("a", "firing"), ("b", "firing")], [("a", "resolved")]]
    result = evaluate(rule(enabled=False), {"b": Decimal(1)}, states, T)
    assert [(t.key, t.kind) for t in result.transitions] == [("b", TransitionKind.RESOLVED)] and not result.states


def test_below_comparator_and_scope() -> None:
    r = rule(metric=Metric.TIMELY_PAYMENT_30, comparator=Comparator.BELOW, threshold=Decimal(90), scope="lacare")
    result = evaluate(r, {"lacare": Decimal("85.5"), "healthnet": Decimal(10)}, {}, T)
    assert [(t.key, t.kind.value, t.value) for t in result.transitions] == [("lacare", "firing", Decimal("85.5"))]
    assert rule(scope="ops").watches("ops/claims.claim.v1") and not rule(scope="ops").watches("opsx/t")


def test_pending_state_survives_between_rounds() -> None:
    r = rule(for_minutes=10)
    first = evaluate(r, {"x": Decimal(1)}, {}, T)
    assert first.states["x"].status is AlertStatus.PENDING and not first.transitions
    second = evaluate(r, {"x": Decimal(2)}, first.states, T + timedelta(minutes=10))
    assert second.states["x"].status is AlertStatus.FIRING and len(second.transitions) == 1


def test_observe_reads_every_board_and_position() -> None:
    standing = ClaimsStanding()
    standing.outstanding_over_30 = 2
    standing.timely.paid_within_30, standing.timely.late_30 = 9, 1
    boards = Boards(generated_at=T, decisions={"lacare": DecisionCounts(overdue=[DueItem("a", None, T, 1.0)])},
                    expiring={}, claims={"lacare": standing}, files={"lacare": FileCounts(1, 2, ["mif"])},
                    due_soon_hours=24, expiring_within_days=30, files_window_days=30, target_30=.9, target_90=.99)
    stalled = advance(None, "claims", "t", {0: 10}, {0: 4}, T - timedelta(hours=1))
    values = observe(boards, [stalled], {"claims": 7}, [("claims", "t", 3)], T, timedelta(minutes=10))
    assert values[Metric.DECISIONS_OVERDUE] == {"lacare": 1}
    assert values[Metric.TIMELY_PAYMENT_30] == {"lacare": Decimal("90.00")}
    assert values[Metric.FILES_LATE] == {"lacare/mif": 1} and values[Metric.FILES_QUARANTINED] == {"lacare": 2}
    assert values[Metric.CONSUMER_LAG] == {"claims/t": 6} and values[Metric.CONSUMER_STALLED] == {"claims/t": 1}
    assert values[Metric.OUTBOX_BACKLOG] == {"claims": 7} and values[Metric.DEAD_LETTERS_PENDING] == {"claims/t": 3}


@pytest.mark.parametrize(("end", "committed", "lag"), [({0: 10, 1: 5}, {0: 10, 1: 5}, 0),
                                                       ({0: 10, 1: 5}, {0: 4}, 11),
                                                       ({0: 3}, {0: 7}, 0), ({}, {}, 0)])
def test_lag_is_end_minus_committed_per_partition(end: dict, committed: dict, lag: int) -> None:
    assert lag_of(end, committed) == lag


def test_a_consumer_is_stalled_only_when_messages_wait_and_nothing_moves() -> None:
    stall = timedelta(minutes=10)
    first = advance(None, "g", "t", {0: 10}, {0: 5}, T)
    still = advance(first, "g", "t", {0: 12}, {0: 5}, T + timedelta(minutes=11))
    assert still.stalled(T + timedelta(minutes=11), stall) and still.last_progress_at == T
    moving = advance(still, "g", "t", {0: 12}, {0: 6}, T + timedelta(minutes=12))
    assert not moving.stalled(T + timedelta(minutes=12), stall)
    idle = advance(None, "g", "t", {0: 5}, {0: 5}, T)
    assert not advance(idle, "g", "t", {0: 5}, {0: 5}, T + timedelta(days=1)).stalled(T + timedelta(days=1), stall)
    restarted = advance(still, "g", "t", {0: 1}, {0: 0}, T + timedelta(minutes=30))
    assert restarted.last_progress_at == T + timedelta(minutes=30)
