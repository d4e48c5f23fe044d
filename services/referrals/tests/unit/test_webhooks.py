"""Webhooks: signatures, URL rules, backoff, and delivery to a real HTTP receiver (uvicorn on a free port)
that fails three times and then succeeds; the delivery log and re-send."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
import pytest
import uvicorn
from referrals.testkit import approved, make_referral, publish, requested
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from shared.testing.app import ServiceHarness
from shared.testing.polling import eventually
from shared.webhooks import (
    SIGNATURE_HEADER,
    HttpxWebhookSender,
    WebhookPolicy,
    check_url,
    signature_header,
    verify_signature,
)

# Intake on PostgreSQL is a different code path (one statement): these run on both databases.
ON_BOTH_DATABASES = pytest.mark.parametrize(
    "harness", ["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)], indirect=True)



def test_a_signature_verifies_only_for_its_secret_body_and_time() -> None:
    header = signature_header("whsec_a", 1_800_000_000, b'{"x":1}')
    assert verify_signature("whsec_a", header, b'{"x":1}', now=1_800_000_010)
    assert not verify_signature("whsec_b", header, b'{"x":1}', now=1_800_000_010)
    assert not verify_signature("whsec_a", header, b'{"x":2}', now=1_800_000_010)
    assert not verify_signature("whsec_a", header, b'{"x":1}', now=1_800_000_000 + 301)  # replayed later
    assert not verify_signature("whsec_a", "garbage", b'{"x":1}', now=1_800_000_000)


@pytest.mark.parametrize("header", [
    "t=\u00b2,v1=ab",  # a digit to str.isdigit(), not to int()
    "t=1" + "0" * 5000 + ",v1=ab",  # more digits than int() converts
    "t=1800000000,v1=\u00e9\u00e9",  # compare_digest refuses non-ASCII str
    "t=-1800000000,v1=ab",
    "t=,v1=",
])
def test_a_malformed_signature_header_is_refused_not_raised(header: str) -> None:
    assert verify_signature("whsec_a", header, b'{"x":1}', now=1_800_000_000) is False


@pytest.mark.parametrize(("url", "allow_http", "rules"), [
    ("https://ehr.example.org/hooks", False, set()),
    ("http://ehr.example.org/hooks", False, {"https_required"}),
    ("http://127.0.0.1:8080/hooks", True, set()),
    ("https://user:pw@ehr.example.org/", False, {"no_credentials"}),
    ("https:///nohost", False, {"host_required"}),
    ("ftp://ehr.example.org/", True, {"https_required"}),
])
def test_callback_urls(url: str, allow_http: bool, rules: set[str]) -> None:
    assert {e.rule for e in check_url(url, allow_http=allow_http)} == rules


def test_backoff_doubles_and_is_capped() -> None:
    policy = WebhookPolicy(initial_backoff=timedelta(seconds=30), max_backoff=timedelta(minutes=5))
    assert [policy.backoff(n).total_seconds() for n in (1, 2, 3, 4, 5, 6)] == [30, 60, 120, 240, 300, 300]


@dataclass
class Receiver:
    """A real HTTP endpoint: answers 500 to the first `failures` requests, then 200; records everything."""

    failures: int = 0
    calls: list[tuple[int, dict[str, str], bytes]] = field(default_factory=list)
    callers: list[str] = field(default_factory=list)  # the `who` query parameter of each call
    url: str = ""

    async def hook(self, request: Request) -> Response:
        body = await request.body()
        status = 500 if len(self.calls) < self.failures else 200
        self.calls.append((status, dict(request.headers), body))
        self.callers.append(request.query_params.get("who", ""))
        return Response(status_code=status)

    def successes(self) -> list[tuple[int, dict[str, str], bytes]]:
        return [c for c in self.calls if c[0] == 200]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    found = Receiver()
    port = free_port()
    app = Starlette(routes=[Route("/hooks", found.hook, methods=["POST"])])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="off"))
    task = asyncio.create_task(server.serve())
    for _ in range(1000):
        if server.started:
            break
        await asyncio.sleep(0.01)
    found.url = f"http://127.0.0.1:{port}/hooks"
    try:
        yield found
    finally:
        server.should_exit = True
        await task


async def subscribe(h: ServiceHarness, key: str, url: str) -> dict[str, Any]:
    response = await h.client.post("/v1/webhooks/referrals/subscriptions", json={"url": url},
                                   headers=h.headers(key))
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    assert body["secret"].startswith("whsec_")
    return body


@ON_BOTH_DATABASES
async def test_a_receiver_that_fails_three_times_then_succeeds_gets_the_event_once(
        harness: ServiceHarness, receiver: Receiver) -> None:
    receiver.failures = 3
    subscription = await subscribe(harness, "cbo_a", receiver.url)
    referral = (await harness.client.post("/v1/referrals", json=make_referral(),
                                          headers=harness.headers("cbo_a"))).json()

    async def delivered() -> Any:
        return receiver.successes() or None

    await eventually(delivered, within=10.0, interval=0.02)
    await asyncio.sleep(0.3)  # several poll intervals: nothing more may arrive
    assert [c[0] for c in receiver.calls] == [500, 500, 500, 200]
    _, headers, body = receiver.successes()[0]
    assert verify_signature(subscription["secret"], headers[SIGNATURE_HEADER.lower()], body)
    event = json.loads(body)
    assert event["type"] == "referral.status_changed"
    assert event["data"]["referral_id"] == referral["id"] and event["data"]["status"] == "routed"
    assert event["data"]["status_date"] and "member" not in event["data"]
    assert "90000001A" not in body.decode() and "Testperson" not in body.decode()  # no PHI leaves in webhooks
    # Every attempt carried the same event id (receivers deduplicate on it) and a fresh signature.
    assert {c[1]["calhub-event-id"] for c in receiver.calls} == {event["id"]}

    log = (await harness.client.get("/v1/webhooks/referrals/deliveries", headers=harness.headers("cbo_a"))).json()
    [delivery] = log["items"]
    assert delivery["status"] == "delivered" and delivery["attempts"] == 4
    detail = (await harness.client.get(f"/v1/webhooks/referrals/deliveries/{delivery['id']}",
                                       headers=harness.headers("cbo_a"))).json()
    assert [a["status_code"] for a in detail["attempt_log"]] == [500, 500, 500, 200]

    resent = await harness.client.post(f"/v1/webhooks/referrals/deliveries/{delivery['id']}/resend",
                                       headers=harness.headers("cbo_a"))
    assert resent.status_code == 202

    async def twice() -> Any:
        return len(receiver.successes()) == 2 or None

    await eventually(twice, within=10.0, interval=0.02)
    assert receiver.successes()[1][2] == body  # the same body, signed again


@ON_BOTH_DATABASES
async def test_every_status_change_is_delivered_only_to_those_who_may_see_it(
        harness: ServiceHarness, receiver: Receiver) -> None:
    await subscribe(harness, "cbo_a", receiver.url + "?who=a")
    await subscribe(harness, "cbo_b", receiver.url + "?who=b")
    await subscribe(harness, "hub", receiver.url + "?who=hub")
    rid = (await harness.client.post("/v1/referrals", json=make_referral(),
                                     headers=harness.headers("cbo_a"))).json()["id"]
    await publish(harness.bus, requested(rid, "auth_w"), approved(rid, "auth_w"))

    def statuses(who: str) -> list[str]:
        return sorted(json.loads(c[2])["data"]["status"] for c, w in zip(receiver.calls, receiver.callers,
                                                                         strict=True) if w == who)

    async def all_arrived() -> Any:
        return len(receiver.calls) == 6 or None  # 3 changes x (cbo_a, hub)

    await eventually(all_arrived, within=10.0, interval=0.02)
    await asyncio.sleep(0.2)
    assert len(receiver.calls) == 6
    assert statuses("a") == statuses("hub") == ["accepted", "requested", "routed"]
    assert statuses("b") == []
    # cbo_b may not see the referral: its subscription got nothing; cbo_b's delivery log is empty.
    log_b = (await harness.client.get("/v1/webhooks/referrals/deliveries", headers=harness.headers("cbo_b"))).json()
    assert log_b["items"] == []
    log_a = (await harness.client.get("/v1/webhooks/referrals/deliveries", headers=harness.headers("cbo_a"))).json()
    assert len(log_a["items"]) == 3


async def test_subscriptions_are_validated_and_private(harness: ServiceHarness, monkeypatch: pytest.MonkeyPatch
                                                       ) -> None:
    bad = await harness.client.post("/v1/webhooks/referrals/subscriptions",
                                    json={"url": "ftp://x.example.org/", "event_types": ["referral.eaten"]},
                                    headers=harness.headers("cbo_a"))
    assert bad.status_code == 422
    assert {(e["field"], e["rule"]) for e in bad.json()["errors"]} == {("url", "https_required"),
                                                                        ("event_types[0]", "enum")}
    mine = await subscribe(harness, "cbo_a", "https://ehr.example.org/hooks")
    listed_b = (await harness.client.get("/v1/webhooks/referrals/subscriptions", headers=harness.headers("cbo_b")))
    assert listed_b.json() == []
    listed_a = (await harness.client.get("/v1/webhooks/referrals/subscriptions",
                                         headers=harness.headers("cbo_a"))).json()
    assert [s["id"] for s in listed_a] == [mine["id"]] and listed_a[0]["secret"] is None
    assert (await harness.client.delete(f"/v1/webhooks/referrals/subscriptions/{mine['id']}",
                                        headers=harness.headers("cbo_b"))).status_code == 404
    rotated = await harness.client.post(f"/v1/webhooks/referrals/subscriptions/{mine['id']}/rotate-secret",
                                        headers=harness.headers("cbo_a"))
    assert rotated.status_code == 200 and rotated.json()["secret"] != mine["secret"]
    assert (await harness.client.delete(f"/v1/webhooks/referrals/subscriptions/{mine['id']}",
                                        headers=harness.headers("cbo_a"))).status_code == 204


async def test_the_httpx_sender_reports_transport_failures() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    sender = HttpxWebhookSender(httpx.AsyncClient(transport=httpx.MockTransport(refuse)))
    with pytest.raises(httpx.ConnectError):
        await sender.post("https://ehr.example.org/hooks", b"{}", {}, 1.0)
