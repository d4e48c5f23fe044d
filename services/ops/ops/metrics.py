"""Prometheus gauges ops computes: lag, stalled consumers, dead letters, outbox and scheduler backlogs, service
readiness and the SLA boards. Labels are group, topic, service and MCP code only: never PHI.

Gauges are read from the snapshot of the last monitor cycle (a collector cannot query a database at scrape time
without blocking the event loop), so they are at most one alert interval old.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import REGISTRY
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector


@dataclass
class Snapshot:
    """What the last monitor cycle measured."""

    lag: dict[tuple[str, str], int] = field(default_factory=dict)
    stalled: dict[tuple[str, str], bool] = field(default_factory=dict)
    dead_letters_pending: dict[tuple[str, str], int] = field(default_factory=dict)
    dead_letter_topic_depth: dict[str, int] = field(default_factory=dict)
    outbox_backlog: dict[str, int] = field(default_factory=dict)
    scheduler_backlog: dict[str, int] = field(default_factory=dict)
    service_ready: dict[str, bool] = field(default_factory=dict)
    decisions_overdue: dict[str, int] = field(default_factory=dict)
    decisions_due_soon: dict[str, int] = field(default_factory=dict)
    authorizations_expiring: dict[str, int] = field(default_factory=dict)
    claims_outstanding_over_30: dict[str, int] = field(default_factory=dict)
    alerts_firing: int = 0


class OpsCollector(Collector):
    """Renders the latest snapshot as gauges."""

    def __init__(self) -> None:
        self.snapshot = Snapshot()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """The gauges of the latest snapshot."""
        s = self.snapshot
        pairs = (
            ("calhub_consumer_lag", "Messages not yet committed by a consumer group", s.lag),
            ("calhub_consumer_stalled", "1 when a group has lag and committed nothing lately",
             {k: int(v) for k, v in s.stalled.items()}),
            ("calhub_dead_letters_pending", "Dead letters awaiting replay or discard, by group and original topic",
             s.dead_letters_pending),
        )
        pair_values: Any
        for name, doc, pair_values in pairs:
            gauge = GaugeMetricFamily(name, doc, labels=["group", "topic"])
            for (group, topic), value in sorted(pair_values.items()):
                gauge.add_metric([group, topic], value)
            yield gauge
        singles = (
            ("calhub_dead_letter_topic_messages", "Messages in a dead-letter topic (broker view)", "topic",
             s.dead_letter_topic_depth),
            ("calhub_outbox_backlog", "Events committed but not yet published, by service", "service",
             s.outbox_backlog),
            ("calhub_scheduler_backlog", "Durable timers due and not yet fired, by service", "service",
             s.scheduler_backlog),
            ("calhub_service_ready", "1 when the service reports ready", "service",
             {k: int(v) for k, v in s.service_ready.items()}),
            ("calhub_authorization_decisions_overdue", "Authorization decisions past their deadline", "mcp_code",
             s.decisions_overdue),
            ("calhub_authorization_decisions_due_soon", "Authorization decisions due soon", "mcp_code",
             s.decisions_due_soon),
            ("calhub_authorizations_expiring", "Approved authorizations ending within the board window", "mcp_code",
             s.authorizations_expiring),
            ("calhub_claims_outstanding_over_30_days", "Submitted claims unpaid after 30 days", "mcp_code",
             s.claims_outstanding_over_30),
        )
        for name, doc, label, values in singles:
            gauge = GaugeMetricFamily(name, doc, labels=[label])
            for key, value in sorted(values.items()):
                gauge.add_metric([key], value)
            yield gauge
        yield GaugeMetricFamily("calhub_ops_alerts_firing", "Alert keys firing now", value=s.alerts_firing)


_collector: OpsCollector | None = None


def collector() -> OpsCollector:
    """The process-wide collector, registered on the default registry on first use."""
    global _collector
    if _collector is None:
        _collector = OpsCollector()
        REGISTRY.register(_collector)
    return _collector
