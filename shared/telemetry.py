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
_TRACE_CONTEXT_HEADERS = frozenset({b"traceparent", b"tracestate"})
tracer = trace.get_tracer("calhub")


def current_traceparent() -> str | None:
    """The W3C traceparent of the active span, or None when there is no valid span.

    Formatted here as the W3C propagator formats it (version 00): every event made in a request asks, and the
    propagator's inject (a carrier, a setter, the tracestate) cost several times more."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"


def context_from_traceparent(traceparent: str | None) -> otel_context.Context:
    """An OpenTelemetry context whose parent is the given traceparent (or the empty context)."""
    if not traceparent:
        return otel_context.Context()
    return _propagator.extract({"traceparent": traceparent})


@contextmanager
def consumer_span(envelope: Any, group: str) -> Iterator[trace.Span]:
    """A CONSUMER span for handling one event, child of the producer's span. Attributes carry no PHI."""
    parent = context_from_traceparent(envelope.traceparent)
    # Exceptions are not recorded as span events: their messages can quote input values (PHI). The status and
    # the error type are set instead.
    with tracer.start_as_current_span(
        f"{envelope.type} process",
        context=parent,
        kind=trace.SpanKind.CONSUMER,
        record_exception=False,
        set_status_on_exception=False,
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
        try:
            yield span
        except Exception as exc:
            span.set_status(trace.Status(trace.StatusCode.ERROR))
            span.set_attribute("error.type", type(exc).__name__)
            raise


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


def configure_tracing(service_name: str, otlp_endpoint: str | None = None) -> None:
    """Install a tracer provider for this process (once); export over OTLP/HTTP when an endpoint is set."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        return
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    if otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{otlp_endpoint}/v1/traces")))
    trace.set_tracer_provider(provider)


class TracingMiddleware:
    """ASGI middleware: a SERVER span per HTTP request, continuing an incoming W3C traceparent.

    The span is named by method and route template, never by the raw path or query (they can carry a CIN).
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # Only the two trace-context headers are read (ASGI names are lower-case bytes): decoding every header of
        # every request into a dict cost more than the span.
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])
                   if k in _TRACE_CONTEXT_HEADERS}
        parent = _propagator.extract(headers)
        method = scope.get("method", "GET")
        with tracer.start_as_current_span(f"{method}", context=parent, kind=trace.SpanKind.SERVER,
                                          attributes={"http.request.method": method}) as span:
            status_holder: dict[str, int] = {}

            async def send_with_status(message: dict[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    status_holder["status"] = int(message["status"])
                    span.set_attribute("http.response.status_code", status_holder["status"])
                    carrier: dict[str, str] = {}
                    _propagator.inject(carrier)
                    if "traceparent" in carrier:
                        message.setdefault("headers", [])
                        message["headers"] = [*message["headers"], (b"traceparent", carrier["traceparent"].encode())]
                await send(message)

            try:
                await self.app(scope, receive, send_with_status)
            finally:
                route = scope.get("route")
                template = getattr(route, "path", None)
                if template:
                    span.update_name(f"{method} {template}")
                    span.set_attribute("http.route", template)
                if status_holder.get("status", 500) >= 500:
                    span.set_status(trace.Status(trace.StatusCode.ERROR))
