"""The states of an authorization and which moves between them are allowed."""

from __future__ import annotations

from enum import StrEnum


class AuthorizationStatus(StrEnum):
    """Where an authorization stands."""

    REQUESTED = "requested"  # open with the MCP, decision clock running
    PENDED = "pended"  # the MCP asked for information; open
    APPROVED = "approved"  # a period of service is authorized (possibly presumptively)
    DENIED = "denied"
    SUSPENDED = "suspended"  # eligibility lost; the previous status is kept for resumption
    CLOSED = "closed"  # ended early: plan changed, discontinued
    EXPIRED = "expired"  # the approved period ended


OPEN = frozenset({AuthorizationStatus.REQUESTED, AuthorizationStatus.PENDED})
# Statuses an eligibility loss suspends and a plan change closes.
LIVE = frozenset({AuthorizationStatus.REQUESTED, AuthorizationStatus.PENDED, AuthorizationStatus.APPROVED})
FINAL = frozenset({AuthorizationStatus.DENIED, AuthorizationStatus.CLOSED, AuthorizationStatus.EXPIRED})


class DecisionKind(StrEnum):
    """What an MCP decided about a request."""

    APPROVED = "approved"
    APPROVED_AS_MODIFIED = "approved_as_modified"
    DENIED = "denied"
    PENDED = "pended"


class TransitionRefused(ValueError):
    """The authorization's status does not allow this change; `rule` names why (no PHI)."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message)
        self.rule = rule


def check_decidable(status: AuthorizationStatus, presumptive: bool, decision: DecisionKind) -> None:
    """Raise TransitionRefused unless an MCP decision may be recorded on an authorization in `status`.

    Open requests take any decision; a presumptive approval still awaits the MCP's confirming approval or
    denial (it cannot be pended: the member is already being served).
    """
    if status in OPEN:
        return
    if status is AuthorizationStatus.APPROVED and presumptive and decision is not DecisionKind.PENDED:
        return
    raise TransitionRefused("decision_on_closed_request",
                            f"an authorization that is {status.value} takes no MCP decision")
