"""The closed-loop status of a referral: which moves are allowed, and the RTF's closure reasons.

Flow: received → routed | needs_plan → routed → requested → accepted | declined → in_service → closed;
withdrawn by the referrer from any open status. Events come from several topics with no order between them
(an encounter can be consumed before the approval that preceded it), so a move never goes backwards: a late
event is kept on the timeline and changes nothing. One exception: an overturned denial of a reauthorization
reopens a loop that only the end of the authorization it continues had closed (`decide_reopen`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from shared.contracts.referrals import ReferralStatus

S = ReferralStatus

# Progress along the loop; a referral only moves to a higher rank (with the exceptions below).
_RANK: Final[dict[ReferralStatus, int]] = {
    S.RECEIVED: 0, S.NEEDS_PLAN: 1, S.ROUTED: 2, S.REQUESTED: 3, S.ACCEPTED: 4, S.DECLINED: 4,
    S.IN_SERVICE: 5, S.CLOSED: 6, S.WITHDRAWN: 6,
}
TERMINAL: Final = frozenset({S.CLOSED, S.WITHDRAWN})
# Open: the referral still blocks a second one for the same member and service (409 duplicate).
OPEN: Final = frozenset({S.RECEIVED, S.NEEDS_PLAN, S.ROUTED, S.REQUESTED, S.ACCEPTED, S.IN_SERVICE})


class ClosureReason(StrEnum):
    """CalHub's codes for the RTF 'Reason for Referral Loop Closure' (mapped to each MCP's list by profile)."""

    AUTHORIZATION_DENIED = "authorization_denied"
    MEMBER_CONNECTED = "member_connected_to_services"
    AUTHORIZATION_EXPIRED = "authorization_expired"
    AUTHORIZATION_CLOSED = "authorization_closed"
    WITHDRAWN_BY_REFERRER = "withdrawn_by_referrer"


@dataclass(frozen=True, slots=True)
class Move:
    """The outcome of asking a referral to move: whether it changes, and why not if it does not."""

    changes: bool
    ignored_because: str | None = None


def is_open(status: ReferralStatus) -> bool:
    """True while the referral blocks a duplicate for the same member and service."""
    return status in OPEN


def decide_move(current: ReferralStatus, target: ReferralStatus) -> Move:
    """Whether a referral in `current` moves to `target` (never backwards, never out of a terminal status)."""
    if current == target:
        return Move(False, "already_in_status")
    if current in TERMINAL:
        return Move(False, "referral_is_terminal")
    if target is S.WITHDRAWN:
        # The referrer may withdraw until the loop is closed, even while services run (member moved away).
        return Move(current is not S.DECLINED, None if current is not S.DECLINED else "referral_is_declined")
    if current is S.DECLINED:
        # Only an overturned denial (appeal, MCP re-decision) reopens a declined referral.
        return Move(target is S.ACCEPTED, None if target is S.ACCEPTED else "referral_is_declined")
    if target is S.CLOSED:
        return Move(True)
    if _RANK[target] <= _RANK[current]:
        return Move(False, "status_already_past")
    if target is S.ROUTED and current not in (S.RECEIVED, S.NEEDS_PLAN):
        return Move(False, "status_already_past")
    return Move(True)


def decide_reopen(current: ReferralStatus, target: ReferralStatus) -> Move:
    """Whether a loop closed by the end of the authorization a denied reauthorization would have continued reopens
    to `target` once that denial is overturned (only closed → accepted | in_service; the caller checks why the loop
    closed)."""
    if current is not S.CLOSED:
        return Move(False, "referral_is_not_closed")
    if target not in (S.ACCEPTED, S.IN_SERVICE):
        return Move(False, "status_does_not_reopen")
    return Move(True)


def closure_reason_for(target: ReferralStatus) -> ClosureReason | None:
    """The closure reason a move to `target` records by default (None: the loop stays open)."""
    return {
        S.DECLINED: ClosureReason.AUTHORIZATION_DENIED,
        S.IN_SERVICE: ClosureReason.MEMBER_CONNECTED,
        S.WITHDRAWN: ClosureReason.WITHDRAWN_BY_REFERRER,
    }.get(target)
