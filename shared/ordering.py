"""Order-independent projections (docs/decisions/0125): a service that folds another service's events into its
own view must end in the same state whatever order they arrive in (a replayed dead letter, two partitions).

Two rules recur: a status only moves forward along its lifecycle, and of two decisions on one thing the newest
stands, however they arrive. Each service keeps its own lifecycle (its statuses and their ranks).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime


class ForwardLifecycle:
    """A lifecycle whose projected status never moves backwards: each status has a rank, equal ranks are
    alternatives (the first to arrive stays)."""

    def __init__(self, ranks: Mapping[str, int]) -> None:
        self.ranks = dict(ranks)

    def next(self, current: str | None, incoming: str) -> str:
        """The status once an event carrying `incoming` is applied to `current` (None: nothing projected yet).

        Raises KeyError for a status the lifecycle does not know (once there is a status to compare with).
        """
        if current is None:
            return incoming
        return incoming if self.ranks[incoming] > self.ranks[current] else current


def newest_decision_wins(decided_at: datetime, standing: datetime | None) -> bool:
    """Whether a decision made at `decided_at` replaces the one standing, made at `standing` (None: none applied
    yet, or one projected before decision times were kept). Equal times: the later arrival wins, as it did
    before decision times were kept."""
    return standing is None or decided_at >= standing
