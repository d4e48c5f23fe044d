"""How the gateway folds authorization.* events into the projection its referral files and RTFs are built from,
whatever order they arrive in (docs/decisions/0125-projections-converge-whatever-the-order.md).

The producer's event time orders one authorization's events: the newest event sets the status; an older one
arriving late (a replayed dead letter) only fills in facts still missing, such as the approved period of an
authorization whose closure came first. Between two approvals of one authorization (approved, then approved as
modified) the newest decision sets the period, even when both arrive after a newer event. A decision that arrives
before its request is kept, and the request that follows fills in the member without turning the decision back
into an open request. When the authorization was opened (requested_at) is the earliest moment any event gave.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

# The columns that say where an authorization stands, as of the event that last set them.
STANDING = frozenset({"status", "updated_at"})
# The columns an approval decides, as of the newest decision (decided_at) rather than the newest event.
DECISION = frozenset({"decided_at", "period_start", "period_end", "mcp_authorization_number"})
# The columns that keep the earliest value given, whichever event is newer: an MCP assignment is opened by its
# first approval, and a later one (a period change) must not move it past the months it was reported in.
EARLIEST = frozenset({"requested_at"})


def authorization_changes(stored: Mapping[str, Any] | None, values: Mapping[str, Any],
                          at: datetime) -> dict[str, Any]:
    """The columns to write for an event of time `at` carrying `values` (status included) about an
    authorization stored as `stored` (None: not seen yet; times in it aware). Raises nothing."""
    given = {k: v for k, v in values.items() if v is not None}
    if stored is None:
        return {**given, "updated_at": at}
    known = stored.get("updated_at")
    if known is None or at >= known:
        return _keep_earliest(stored, given, {**given, "updated_at": at})
    # Older than what is known: keep the standing, add only the facts the newer events did not give...
    changes = {k: v for k, v in given.items() if k not in STANDING and stored.get(k) in (None, [], "")}
    decided, standing = given.get("decided_at"), stored.get("decided_at")
    if "period_start" in given and decided is not None and (standing is None or decided > standing):
        # ...but an approval decided after the one kept sets the period: two approvals swapped behind a newer
        # suspension (approved, approved as modified, suspended, told backwards) keep the modified period.
        changes.update({k: v for k, v in given.items() if k in DECISION})
    return _keep_earliest(stored, given, changes)


def _keep_earliest(stored: Mapping[str, Any], given: Mapping[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    for key in EARLIEST:
        new, old = given.get(key), stored.get(key)
        if new is not None and (old is None or new < old):
            changes[key] = new
        else:
            changes.pop(key, None)
    return changes
