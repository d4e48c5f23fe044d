"""Alert rules: a threshold on a board or flow metric, evaluated per key (an MCP, a consumer group and topic, a
service), that notifies once when its condition starts and once when it clears.

Pure. Each key of a rule is in one of three states: ok (no row), pending (breaching, but not yet for the rule's
`for_minutes`) and firing. Only the moves pending → firing and firing → ok produce a transition, so a condition
that stays true, however often it is evaluated, is one alert, and a flapping one is held back by `for_minutes`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum

from ops.domain.boards import Boards
from ops.domain.lag import ConsumerPosition


class Metric(StrEnum):
    """What a rule can watch. Keys are MCP codes, `<group>/<topic>`, `<service>` or `<group>/<topic>` of a DLQ."""

    DECISIONS_OVERDUE = "decisions_overdue"
    DECISIONS_DUE_SOON = "decisions_due_soon"
    AUTHORIZATIONS_EXPIRING = "authorizations_expiring"
    CLAIMS_OUTSTANDING_OVER_30 = "claims_outstanding_over_30"
    CLAIMS_OUTSTANDING_OVER_90 = "claims_outstanding_over_90"
    TIMELY_PAYMENT_30 = "timely_payment_share_30"
    TIMELY_PAYMENT_90 = "timely_payment_share_90"
    FILES_QUARANTINED = "files_quarantined"
    FILES_LATE = "files_late"
    CONSUMER_LAG = "consumer_lag"
    CONSUMER_STALLED = "consumer_stalled"
    OUTBOX_BACKLOG = "outbox_backlog"
    DEAD_LETTERS_PENDING = "dead_letters_pending"


class Comparator(StrEnum):
    """How the observed value is compared with the threshold."""

    ABOVE = "above"
    BELOW = "below"


@dataclass(frozen=True)
class MetricSpec:
    """How a metric reads: its label, what its keys are, and the usual comparator."""

    label: str
    key: str
    comparator: Comparator


METRICS: Mapping[Metric, MetricSpec] = {
    Metric.DECISIONS_OVERDUE: MetricSpec("Authorization decisions overdue", "MCP", Comparator.ABOVE),
    Metric.DECISIONS_DUE_SOON: MetricSpec("Authorization decisions due soon", "MCP", Comparator.ABOVE),
    Metric.AUTHORIZATIONS_EXPIRING: MetricSpec("Authorizations expiring", "MCP", Comparator.ABOVE),
    Metric.CLAIMS_OUTSTANDING_OVER_30: MetricSpec("Claims unpaid after 30 days", "MCP", Comparator.ABOVE),
    Metric.CLAIMS_OUTSTANDING_OVER_90: MetricSpec("Claims unpaid after 90 days", "MCP", Comparator.ABOVE),
    Metric.TIMELY_PAYMENT_30: MetricSpec("Share of claims paid within 30 days", "MCP", Comparator.BELOW),
    Metric.TIMELY_PAYMENT_90: MetricSpec("Share of claims paid within 90 days", "MCP", Comparator.BELOW),
    Metric.FILES_QUARANTINED: MetricSpec("Files quarantined (board window)", "MCP", Comparator.ABOVE),
    Metric.FILES_LATE: MetricSpec("Expected files late", "MCP/kind", Comparator.ABOVE),
    Metric.CONSUMER_LAG: MetricSpec("Consumer lag (messages)", "group/topic", Comparator.ABOVE),
    Metric.CONSUMER_STALLED: MetricSpec("Consumer stalled (lag not moving)", "group/topic", Comparator.ABOVE),
    Metric.OUTBOX_BACKLOG: MetricSpec("Outbox backlog (events)", "service", Comparator.ABOVE),
    Metric.DEAD_LETTERS_PENDING: MetricSpec("Dead letters pending", "group/topic", Comparator.ABOVE),
}


class AlertStatus(StrEnum):
    """A key's state under a rule (ok keys have no stored state)."""

    PENDING = "pending"
    FIRING = "firing"


class TransitionKind(StrEnum):
    """What an alert notification says."""

    FIRING = "firing"
    RESOLVED = "resolved"


@dataclass(frozen=True)
class AlertRule:
    """A threshold on a metric, optionally for one key (an MCP code, a group, a service) only."""

    id: str
    name: str
    metric: Metric
    comparator: Comparator
    threshold: Decimal
    scope: str | None = None
    for_minutes: int = 0
    enabled: bool = True

    def breached_by(self, value: Decimal) -> bool:
        """True if the value is on the wrong side of the threshold."""
        return value > self.threshold if self.comparator is Comparator.ABOVE else value < self.threshold

    def watches(self, key: str) -> bool:
        """True if the rule applies to this key: every key, or those equal to or starting with `<scope>/`."""
        return self.scope is None or key == self.scope or key.startswith(self.scope + "/")


@dataclass(frozen=True)
class KeyState:
    """The stored state of one key under one rule."""

    status: AlertStatus
    since: datetime
    value: Decimal | None = None


@dataclass(frozen=True)
class Transition:
    """A notification to send: a condition started (firing) or cleared (resolved)."""

    rule_id: str
    key: str
    kind: TransitionKind
    value: Decimal | None
    threshold: Decimal
    at: datetime


@dataclass(frozen=True)
class Evaluation:
    """A rule's states after an evaluation, and the notifications it produced."""

    states: dict[str, KeyState]
    transitions: list[Transition]


def evaluate(rule: AlertRule, observed: Mapping[str, Decimal], states: Mapping[str, KeyState],
             now: datetime) -> Evaluation:
    """Evaluate a rule against this round's observations (key → value) and the keys' previous states.

    A key missing from the observations counts as not breaching (its condition cannot be shown): a firing key
    resolves, a pending one is dropped. A disabled rule resolves everything it was firing.
    """
    hold = timedelta(minutes=rule.for_minutes)
    new: dict[str, KeyState] = {}
    transitions: list[Transition] = []
    keys = set(states) | {k for k in observed if rule.watches(k)}
    for key in sorted(keys):
        value = observed.get(key) if rule.watches(key) else None
        previous = states.get(key)
        breaching = rule.enabled and value is not None and rule.breached_by(value)
        if breaching:
            assert value is not None
            if previous is None:
                previous = KeyState(AlertStatus.PENDING, now, value)
            if previous.status is AlertStatus.PENDING and now - previous.since >= hold:
                new[key] = KeyState(AlertStatus.FIRING, now, value)
                transitions.append(Transition(rule.id, key, TransitionKind.FIRING, value, rule.threshold, now))
            else:
                new[key] = KeyState(previous.status, previous.since, value)
        elif previous is not None and previous.status is AlertStatus.FIRING:
            transitions.append(Transition(rule.id, key, TransitionKind.RESOLVED, value, rule.threshold, now))
    return Evaluation(new, transitions)


def observe(boards: Boards, positions: Sequence[ConsumerPosition], outbox_backlogs: Mapping[str, int],
            dead_letters: Sequence[tuple[str, str, int]], now: datetime, stall_after: timedelta,
            ) -> dict[Metric, dict[str, Decimal]]:
    """This round's value of every metric, per key (MCP code, `<group>/<topic>`, service, `<mcp>/<kind>`).

    Timely-payment shares are percentages (0-100) so that thresholds read like the standard (90, 99).
    """
    values: dict[Metric, dict[str, Decimal]] = {metric: {} for metric in Metric}
    for mcp, decisions in boards.decisions.items():
        values[Metric.DECISIONS_OVERDUE][mcp] = Decimal(len(decisions.overdue))
        values[Metric.DECISIONS_DUE_SOON][mcp] = Decimal(len(decisions.due_soon))
    for mcp, items in boards.expiring.items():
        values[Metric.AUTHORIZATIONS_EXPIRING][mcp] = Decimal(len(items))
    for mcp, standing in boards.claims.items():
        values[Metric.CLAIMS_OUTSTANDING_OVER_30][mcp] = Decimal(standing.outstanding_over_30)
        values[Metric.CLAIMS_OUTSTANDING_OVER_90][mcp] = Decimal(standing.outstanding_over_90)
        for window, metric in ((30, Metric.TIMELY_PAYMENT_30), (90, Metric.TIMELY_PAYMENT_90)):
            share = standing.timely.share(window)
            if share is not None:
                values[metric][mcp] = (Decimal(str(share)) * 100).quantize(Decimal("0.01"))
    for mcp, files in boards.files.items():
        values[Metric.FILES_QUARANTINED][mcp] = Decimal(files.quarantined)
        for kind in files.late_now:
            values[Metric.FILES_LATE][f"{mcp}/{kind}"] = Decimal(1)
    for position in positions:
        key = f"{position.group}/{position.topic}"
        values[Metric.CONSUMER_LAG][key] = Decimal(position.lag)
        values[Metric.CONSUMER_STALLED][key] = Decimal(int(position.stalled(now, stall_after)))
    for service, backlog in outbox_backlogs.items():
        values[Metric.OUTBOX_BACKLOG][service] = Decimal(backlog)
    for group, topic, count in dead_letters:
        values[Metric.DEAD_LETTERS_PENDING][f"{group}/{topic}"] = Decimal(count)
    return values
