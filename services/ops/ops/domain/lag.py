"""Consumer lag and stalled consumers, from end offsets and committed offsets. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta


def lag_of(end_offsets: Mapping[int, int], committed: Mapping[int, int]) -> int:
    """Messages not yet committed by a group on a topic: Σ over partitions of max(0, end − committed)."""
    return sum(max(0, end - committed.get(partition, 0)) for partition, end in end_offsets.items())


@dataclass(frozen=True)
class ConsumerPosition:
    """Where a group stands on a topic, and when it last moved."""

    group: str
    topic: str
    committed_total: int
    end_total: int
    lag: int
    last_progress_at: datetime
    sampled_at: datetime

    def stalled(self, now: datetime, after: timedelta) -> bool:
        """True if messages wait and the group has committed nothing for at least `after`."""
        return self.lag > 0 and now - self.last_progress_at >= after


def advance(previous: ConsumerPosition | None, group: str, topic: str, end_offsets: Mapping[int, int],
            committed: Mapping[int, int], now: datetime) -> ConsumerPosition:
    """The new position of a group on a topic after a sample.

    Progress means the committed total moved, or nothing is waiting: an idle consumer with no lag is never
    stalled, however long it has been quiet.
    """
    committed_total = sum(committed.get(p, 0) for p in end_offsets) if end_offsets else sum(committed.values())
    end_total = sum(end_offsets.values())
    lag = lag_of(end_offsets, committed)
    moved = previous is None or committed_total != previous.committed_total or lag == 0
    # A shrinking log (a recreated topic, a restarted in-process bus) is a fresh start, not progress lost.
    if previous is not None and end_total < previous.end_total:
        moved = True
    last_progress = now if moved or previous is None else previous.last_progress_at
    return ConsumerPosition(group, topic, committed_total, end_total, lag, last_progress, now)
