"""The authorizations a member is served under, as eligibility tracks them from authorization.* events: an
active one puts the member in the MCP's monthly re-check and in the ECM/CHW same-period rule.

Events of one authorization can arrive out of order (a dead letter replayed after the events that followed it),
so the tracked status only moves forward along the lifecycle (docs/decisions/0125-projections-converge-whatever-
the-order.md): a late `requested` never takes an approved member out of the re-check, a late approval never
brings back one whose authorization ended. Of two approvals of one authorization (approved, then approved as
modified) the newest decision's period is kept, whichever arrives last.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from shared.ordering import ForwardLifecycle, newest_decision_wins

# `active` outranks `denied`: an overturned denial is approved afterwards, an approval is never denied later.
_LIFECYCLE: Final = ForwardLifecycle({"requested": 0, "denied": 1, "active": 2, "expired": 3, "closed": 3})


def tracked_status(current: str | None, incoming: str) -> str:
    """The status to keep once an event with status `incoming` arrives (never backwards along the lifecycle).

    Raises KeyError for a status the lifecycle does not know.
    """
    return _LIFECYCLE.next(current, incoming)


def period_supersedes(decided_at: datetime, standing: datetime | None) -> bool:
    """Whether the period of an approval decided at `decided_at` replaces the one kept, decided at `standing`:
    the newest decision wins whatever order the two arrive in."""
    return newest_decision_wins(decided_at, standing)
