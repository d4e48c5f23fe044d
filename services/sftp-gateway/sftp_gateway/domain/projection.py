"""How the gateway folds authorization.* events into the projection its referral files and RTFs are built from,
whatever order they arrive in (docs/decisions/0125-projections-converge-whatever-the-order.md).

The producer's event time orders one authorization's events: the newest event sets the status; an older one
arriving late (a replayed dead letter) only fills in facts still missing, such as the approved period of an
authorization whose closure came first. A decision that arrives before its request is kept, and the request
that follows fills in the member without turning the decision back into an open request.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

# The columns that say where an authorization stands, as of the event that last set them.
STANDING = frozenset({"status", "updated_at"})


def authorization_changes(stored: Mapping[str, Any] | None, values: Mapping[str, Any],
                          at: datetime) -> dict[str, Any]:
    """The columns to write for an event of time `at` carrying `values` (status included) about an
    authorization stored as `stored` (None: not seen yet). Raises nothing."""
    given = {k: v for k, v in values.items() if v is not None}
    if stored is None:
        return {**given, "updated_at": at}
    known = stored.get("updated_at")
    if known is None or at >= known:
        return {**given, "updated_at": at}
    # Older than what is known: keep the standing, add only the facts the newer events did not give.
    return {k: v for k, v in given.items() if k not in STANDING and stored.get(k) in (None, [], "")}
