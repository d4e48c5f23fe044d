"""The automatic reauthorization rule: reauthorize a member who is still eligible and engaged; otherwise
hand the decision to the care team."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum


class ReauthOutcome(StrEnum):
    """What the expiry of an authorization leads to."""

    REQUESTED = "requested"  # a reauthorization request went to the MCP
    TASK = "task"  # the care team decides


class TaskReason(StrEnum):
    """Why no automatic reauthorization was requested."""

    NOT_ELIGIBLE = "not_eligible"
    NOT_ENGAGED = "not_engaged"
    ELIGIBILITY_UNKNOWN = "eligibility_unknown"
    NOT_REAUTHORIZABLE = "not_reauthorizable"  # a capped CS stay: a new referral, not a reauthorization


@dataclass(frozen=True)
class Eligibility:
    """The member's latest known enrollment, from eligibility events."""

    eligible: bool
    mcp_code: str | None


@dataclass(frozen=True)
class ReauthDecision:
    """The outcome and, for a task, why."""

    outcome: ReauthOutcome
    reason: TaskReason | None = None


def decide_reauthorization(*, mcp_code: str, eligibility: Eligibility | None, last_encounter: date | None,
                           today: date, engagement_window_days: int, unknown_is_eligible: bool,
                           reauthorizable: bool = True) -> ReauthDecision:
    """Reauthorize when eligible with the same MCP and engaged (an encounter within the window), else a task."""
    if not reauthorizable:
        return ReauthDecision(ReauthOutcome.TASK, TaskReason.NOT_REAUTHORIZABLE)
    if eligibility is None:
        if not unknown_is_eligible:
            return ReauthDecision(ReauthOutcome.TASK, TaskReason.ELIGIBILITY_UNKNOWN)
    elif not eligibility.eligible or eligibility.mcp_code not in (None, mcp_code):
        return ReauthDecision(ReauthOutcome.TASK, TaskReason.NOT_ELIGIBLE)
    if last_encounter is None or (today - last_encounter).days > engagement_window_days:
        return ReauthDecision(ReauthOutcome.TASK, TaskReason.NOT_ENGAGED)
    return ReauthDecision(ReauthOutcome.REQUESTED)
