"""Tracing and metrics: W3C trace context carried in envelopes and Kafka headers, Prometheus counters."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram

_propagator = TraceContextTextMapPropagator()
tracer = trace.get_tracer("calhub")


def current_traceparent() -> str | None:
    """The W3C traceparent of the active span, or None when no span is recording."""
    carrier: dict[str, str] = {}
    _propagator.inject(carrier)
    return carrier.get("traceparent")


def context_from_traceparent(traceparent: str | None) -> otel_context.Context:
    """An OpenTelemetry context whose parent is the given traceparent (or the empty context)."""
    if not traceparent:
        return otel_context.Context()
    return _propagator.extract({"traceparent": traceparent})


@contextmanager
def consumer_span(envelope: Any, group: str) -> Iterator[trace.Span]:
    """A CONSUMER span for handling one event, child of the producer's span. Attributes carry no PHI."""
    parent = context_from_traceparent(envelope.traceparent)
    with tracer.start_as_current_span(
        f"{envelope.type} process",
        context=parent,
        kind=trace.SpanKind.CONSUMER,
        attributes={
            "messaging.system": "kafka",
            "messaging.operation.type": "process",
            "messaging.destination.name": envelope.topic,
            "messaging.consumer.group.name": group,
            "messaging.message.id": str(envelope.id),
            "calhub.event_type": envelope.type,
            "calhub.correlation_id": str(envelope.correlation_id),
        },
    ) as span:
        yield span


class BusMetrics:
    """Counters for consumers and the outbox; labels are topic, group and event type only (never PHI)."""

    _default: BusMetrics | None = None

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.events_handled = Counter("calhub_events_handled_total", "Events handled by a consumer group",
                                      ["group", "event_type"], registry=registry)
        self.events_duplicate = Counter("calhub_events_duplicate_total",
                                        "Redelivered events skipped by the inbox", ["group", "event_type"],
                                        registry=registry)
        self.events_unknown = Counter("calhub_events_unknown_type_total",
                                      "Events of a type this build does not know, skipped",
                                      ["group", "topic"], registry=registry)
        self.outbox_published = Counter("calhub_outbox_published_total", "Events published by the outbox relay",
                                        ["service"], registry=registry)
        self.relay_batch_seconds = Histogram("calhub_outbox_publish_seconds", "Outbox relay publish latency",
                                             ["service"], registry=registry)

    @classmethod
    def default(cls) -> BusMetrics:
        """The process-wide metrics, registered on first use."""
        if cls._default is None:
            cls._default = cls()
        return cls._default

    def handled(self, group: str, event_type: str) -> None:
        self.events_handled.labels(group, event_type).inc()

    def duplicate(self, group: str, event_type: str) -> None:
        self.events_duplicate.labels(group, event_type).inc()

    def unknown_event(self, group: str, topic: str) -> None:
        self.events_unknown.labels(group, topic).inc()
