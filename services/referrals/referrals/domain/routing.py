"""MCP routing: which plan a referral goes to, and on what basis.

Order (issue 3, ARCHITECTURE flow 1): the plan named on the referral (already checked against the county→MCP
table at intake), else the member's latest plan known from eligibility events, else no plan yet (`needs_plan`,
routed when eligibility answers).
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.contracts.referrals import RoutingBasis


@dataclass(frozen=True, slots=True)
class Routed:
    """The referral goes to `mcp_code`; `basis` says why."""

    mcp_code: str
    basis: RoutingBasis


@dataclass(frozen=True, slots=True)
class NeedsPlan:
    """No plan is known for the member yet; the referral waits for eligibility."""

    reason: str = "no plan named on the referral and none known from eligibility"


def decide_route(*, named_mcp: str | None, known_plan: str | None) -> Routed | NeedsPlan:
    """Route to the plan named on the referral, else the member's known plan, else wait for one."""
    if named_mcp:
        return Routed(named_mcp, RoutingBasis.REFERRAL)
    if known_plan:
        # Enrollment is the fact: a member's plan of record wins over the county table even when the address
        # on the referral is in a county the plan does not serve (members move before records catch up).
        return Routed(known_plan, RoutingBasis.ELIGIBILITY)
    return NeedsPlan()
