"""The traceparent CalHub stamps on events is the W3C header the OpenTelemetry propagator would write."""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from shared.telemetry import context_from_traceparent, current_traceparent


def propagated() -> str | None:
    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier)
    return carrier.get("traceparent")


def test_no_span_no_traceparent() -> None:
    assert current_traceparent() is None
    assert propagated() is None


def test_a_sampled_and_an_unsampled_span_give_what_the_propagator_gives() -> None:
    for sampler, sampled in ((ALWAYS_ON, 1), (ALWAYS_OFF, 0)):
        tracer = TracerProvider(sampler=sampler).get_tracer("test")
        with tracer.start_as_current_span("request"):
            made = current_traceparent()
            assert made == propagated()
            assert made is not None and made.startswith("00-")
            assert int(made.rsplit("-", 1)[1], 16) & 1 == sampled  # the sampled bit of the trace flags


def test_a_continued_trace_keeps_its_trace_id() -> None:
    incoming = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("consume", context=context_from_traceparent(incoming)):
        made = current_traceparent()
    assert made is not None and made.split("-")[1] == "0af7651916cd43dd8448eb211c80319c"
    assert made.split("-")[2] != "b7ad6b7169203331"  # our own span, child of the incoming one
    assert trace.get_current_span().get_span_context().is_valid is False


async def test_a_request_continues_the_trace_its_traceparent_header_names() -> None:
    import httpx
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from shared.telemetry import TracingMiddleware

    async def echo(request: Request) -> PlainTextResponse:
        return PlainTextResponse(current_traceparent() or "")

    app = TracingMiddleware(Starlette(routes=[Route("/echo", echo)]))
    incoming = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        continued = await client.get("/echo", headers={"TraceParent": incoming, "X-Other": "ignored"})
        fresh = await client.get("/echo")
    assert continued.text.split("-")[1] == "0af7651916cd43dd8448eb211c80319c"
    assert continued.headers["traceparent"].split("-")[1] == "0af7651916cd43dd8448eb211c80319c"
    assert "0af7651916cd43dd8448eb211c80319c" not in fresh.text
