"""MCP routing and the closed-loop status machine, table-driven."""

from __future__ import annotations

import pytest
from referrals.domain.routing import NeedsPlan, Routed, decide_route
from referrals.domain.status import ClosureReason, closure_reason_for, decide_move, is_open

from shared.contracts.referrals import ReferralStatus as S
from shared.contracts.referrals import RoutingBasis


@pytest.mark.parametrize(("named", "known", "expected"), [
    ("lacare", "healthnet", Routed("lacare", RoutingBasis.REFERRAL)),  # the referral's plan wins
    (None, "healthnet", Routed("healthnet", RoutingBasis.ELIGIBILITY)),
    (None, None, NeedsPlan()),
    ("", None, NeedsPlan()),
])
def test_route(named: str | None, known: str | None, expected: Routed | NeedsPlan) -> None:
    assert decide_route(named_mcp=named, known_plan=known) == expected


@pytest.mark.parametrize(("current", "target", "changes"), [
    (S.RECEIVED, S.ROUTED, True),
    (S.RECEIVED, S.NEEDS_PLAN, True),
    (S.NEEDS_PLAN, S.ROUTED, True),
    (S.ROUTED, S.REQUESTED, True),
    (S.REQUESTED, S.ACCEPTED, True),
    (S.REQUESTED, S.DECLINED, True),
    (S.ACCEPTED, S.IN_SERVICE, True),
    (S.REQUESTED, S.IN_SERVICE, True),  # presumptive authorization: the encounter came first
    (S.IN_SERVICE, S.CLOSED, True),
    (S.ACCEPTED, S.CLOSED, True),
    (S.IN_SERVICE, S.ACCEPTED, False),  # a late approval never moves the loop backwards
    (S.ACCEPTED, S.REQUESTED, False),
    (S.REQUESTED, S.ROUTED, False),
    (S.ROUTED, S.ROUTED, False),
    (S.DECLINED, S.ACCEPTED, True),  # an overturned denial
    (S.DECLINED, S.IN_SERVICE, False),
    (S.DECLINED, S.WITHDRAWN, False),
    (S.CLOSED, S.ACCEPTED, False),
    (S.WITHDRAWN, S.REQUESTED, False),
    (S.IN_SERVICE, S.WITHDRAWN, True),
    (S.NEEDS_PLAN, S.WITHDRAWN, True),
    (S.CLOSED, S.WITHDRAWN, False),
])
def test_moves(current: S, target: S, changes: bool) -> None:
    move = decide_move(current, target)
    assert move.changes is changes
    assert (move.ignored_because is None) is changes


@pytest.mark.parametrize(("status", "open_"), [
    (S.RECEIVED, True), (S.NEEDS_PLAN, True), (S.ROUTED, True), (S.REQUESTED, True), (S.ACCEPTED, True),
    (S.IN_SERVICE, True), (S.DECLINED, False), (S.CLOSED, False), (S.WITHDRAWN, False),
])
def test_open_statuses_block_duplicates(status: S, open_: bool) -> None:
    assert is_open(status) is open_


def test_closure_reasons_for_loop_closing_moves() -> None:
    assert closure_reason_for(S.DECLINED) is ClosureReason.AUTHORIZATION_DENIED
    assert closure_reason_for(S.WITHDRAWN) is ClosureReason.WITHDRAWN_BY_REFERRER
    assert closure_reason_for(S.ACCEPTED) is None
