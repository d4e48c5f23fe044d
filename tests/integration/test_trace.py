"""One referral is one trace: the HTTP request and every consumer hop it causes share the trace id
(traceparent rides in the envelope and the Kafka headers, through each service's outbox)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from referrals.testkit import make_referral

from calhub.services import definition_of
from shared.testing.app import make_caller, service_harness

SCOPES = ["referrals:read", "referrals:write", "authorizations:read", "sftp-gateway:read", "ops", "admin"]


def recording_exporter() -> InMemorySpanExporter:
    """Attach an in-memory exporter to this process's tracer provider (installing one if none is)."""
    exporter = InMemorySpanExporter()
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        trace.set_tracer_provider(TracerProvider())
        provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


def consumer_span(spans: tuple[ReadableSpan, ...], group: str, event_type: str) -> ReadableSpan | None:
    for span in spans:
        attributes = span.attributes or {}
        if attributes.get("messaging.consumer.group.name") == group and \
                attributes.get("calhub.event_type") == event_type:
            return span
    return None


async def test_a_referral_and_every_hop_it_causes_share_one_trace(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SFTP_GATEWAY_SFTP_PORT", "0")
    exporter = recording_exporter()
    services = [definition_of(name) for name in ("referrals", "authorizations", "sftp-gateway")]
    hub = make_caller("hub", "org_trace_hub", scopes=SCOPES)
    async with service_harness(services, tmp_path, keys={"hub": hub}) as harness:
        response = await harness.client.post("/v1/referrals", json=make_referral(cin="90000777A"),
                                              headers=harness.headers("hub"))
        assert response.status_code == 201, response.text
        hops = [("referrals", "referral.received"), ("authorizations", "referral.routed"),
                ("sftp-gateway", "authorization.requested"), ("referrals", "authorization.requested")]
        async with asyncio.timeout(30):
            while not all(consumer_span(exporter.get_finished_spans(), g, t) for g, t in hops
                          if g != "referrals" or t != "referral.received"):
                await asyncio.sleep(0.1)
    spans = exporter.get_finished_spans()
    servers = [s for s in spans if s.kind == trace.SpanKind.SERVER and s.name == "POST /v1/referrals"]
    assert len(servers) == 1, "one server span per request (FastAPI's own telemetry must stay off)"
    trace_id = servers[0].context.trace_id
    for group, event_type in hops:
        span = consumer_span(spans, group, event_type)
        if span is None:
            continue  # referrals may not consume its own referral.received; the others are required above
        assert span.context.trace_id == trace_id, (group, event_type)
        assert span.parent is not None
    # No PHI in any span: no raw URL, and the synthetic CIN and surname appear in no attribute or name.
    for span in spans:
        attributes = dict(span.attributes or {})
        assert not {"url.path", "url.query", "url.full"} & set(attributes), span.name
        text = f"{span.name} {attributes}"
        assert "90000777A" not in text and "Testperson" not in text
