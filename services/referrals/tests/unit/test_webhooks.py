"""Webhooks: signatures, URL rules, backoff, and delivery to a real HTTP receiver (uvicorn on a free port)
that fails three times and then succeeds; the delivery log and re-send."""

from __future__ import annotations

import asyncio
import json
import socket
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from referrals.testkit import approved, make_referral, publish, requested
from sqlalchemy import MetaData, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from shared.testing.app import ServiceHarness
from shared.testing.polling import eventually
from shared.webhooks import (
    DELIVERY_ID_HEADER,
    SIGNATURE_HEADER,
    Audience,
    HttpxWebhookSender,
    WebhookBackground,
    WebhookDeliverer,
    WebhookPolicy,
    WebhookTables,
    check_url,
    define_webhook_tables,
    enqueue_webhook,
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


@pytest.mark.parametrize(("timeout_seconds", "claim_size", "hold_seconds"), [
    (10.0, 40, 120),  # an attempt holds a slot up to 2 x 10 s (+5 s to record): 4 rounds of 10 in 2 minutes
    (13.0, 30, 120),  # 5 rounds of 2 x 13 s would outlive the claim
    (30.0, 10, 120),  # one round only
    (60.0, 10, 125),  # not even one round: the claim holds for one
])
def test_a_claim_takes_no_more_than_can_be_sent_before_it_expires(timeout_seconds: float, claim_size: int,
                                                                  hold_seconds: int) -> None:
    policy = WebhookPolicy(timeout_seconds=timeout_seconds, batch_size=50, concurrency=10,
                           claim_timeout=timedelta(minutes=2))
    assert policy.claim_size() == claim_size
    assert policy.claim_hold() == timedelta(seconds=hold_seconds)
    assert WebhookPolicy(batch_size=5, concurrency=10).claim_size() == 5


@dataclass
class FakeSender:
    """A receiver that answers every POST with `status`; records the delivery id of each."""

    status: int = 200
    posts: list[str] = field(default_factory=list)

    async def post(self, url: str, body: bytes, headers: Mapping[str, str], timeout_seconds: float) -> int:
        self.posts.append(headers[DELIVERY_ID_HEADER])
        return self.status

    async def close(self) -> None:
        return None


@dataclass
class WebhookStore:
    sessions: async_sessionmaker[AsyncSession]
    tables: WebhookTables

    async def subscribe(self, subscription_id: str, organization_id: str) -> None:
        async with self.sessions() as session, session.begin():
            await session.execute(insert(self.tables.subscription).values(
                id=subscription_id, organization_id=organization_id, organization_kind="cbo",
                organization_code=None, url=f"https://{subscription_id}.example.org/hooks", secret="whsec_test",
                event_types=["referral.status_changed"], description=None, active=True,
                created_at=datetime.now(UTC), disabled_at=None))

    async def queue(self, organization_id: str, count: int) -> None:
        async with self.sessions() as session, session.begin():
            for number in range(count):
                await enqueue_webhook(session, self.tables, event_id=uuid.uuid4(),
                                      event_type="referral.status_changed", subject=f"ref_{number}", data={},
                                      audience=Audience.of([organization_id]), occurred_at=datetime.now(UTC))

    async def deliveries(self, subscription_id: str) -> list[tuple[str, int, str | None]]:
        d = self.tables.delivery
        async with self.sessions() as session:
            rows = (await session.execute(select(d.c.status, d.c.attempts, d.c.last_error)
                                          .where(d.c.subscription_id == subscription_id)
                                          .order_by(d.c.subject))).all()
        return [tuple(r) for r in rows]

    async def active(self, subscription_id: str) -> bool:
        sub = self.tables.subscription
        async with self.sessions() as session:
            return bool(await session.scalar(select(sub.c.active).where(sub.c.id == subscription_id)))


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[WebhookStore]:
    metadata = MetaData()
    tables = define_webhook_tables(metadata)
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'webhooks.db'}")
    async with engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
    try:
        yield WebhookStore(async_sessionmaker(engine, expire_on_commit=False), tables)
    finally:
        await engine.dispose()


@pytest.mark.parametrize("batch_size", [1, 50])
async def test_a_410_stops_every_pending_delivery_of_that_subscription(store: WebhookStore, batch_size: int
                                                                        ) -> None:
    await store.subscribe("whs_gone", "org_a")
    await store.subscribe("whs_live", "org_b")
    await store.queue("org_a", 3)
    await store.queue("org_b", 2)
    gone, live = FakeSender(status=410), FakeSender(status=200)

    class Router:
        async def post(self, url: str, body: bytes, headers: Mapping[str, str], timeout_seconds: float) -> int:
            sender = gone if "whs_gone" in url else live
            return await sender.post(url, body, headers, timeout_seconds)

        async def close(self) -> None:
            return None

    deliverer = WebhookDeliverer(store.sessions, store.tables, Router(),
                                 WebhookPolicy(batch_size=batch_size, concurrency=1))
    await deliverer.deliver_due()
    assert len(gone.posts) == 1  # the answer that said so; nothing more to the disabled endpoint
    assert not await store.active("whs_gone")
    assert sorted(await store.deliveries("whs_gone")) == [
        ("failed", 0, "subscription_disabled"), ("failed", 0, "subscription_disabled"), ("failed", 1, "http_410")]
    assert len(live.posts) == 2 and await store.deliveries("whs_live") == [("delivered", 1, None)] * 2


async def test_after_a_410_no_new_post_starts_only_those_already_in_flight_land(store: WebhookStore) -> None:
    await store.subscribe("whs_gone", "org_a")
    await store.queue("org_a", 8)

    class SlowGone(FakeSender):
        async def post(self, url: str, body: bytes, headers: Mapping[str, str], timeout_seconds: float) -> int:
            self.posts.append(headers[DELIVERY_ID_HEADER])
            await asyncio.sleep(0.05)  # the first three are sent together, before any answer
            return 410

    sender = SlowGone()
    await WebhookDeliverer(store.sessions, store.tables, sender, WebhookPolicy(concurrency=3)).deliver_due()
    assert len(sender.posts) == 3  # an HTTP request already sent cannot be recalled; none starts after the 410
    assert sorted(s for s, _, _ in await store.deliveries("whs_gone")) == ["failed"] * 8


async def test_pending_deliveries_of_a_disabled_subscription_are_not_sent(store: WebhookStore) -> None:
    await store.subscribe("whs_off", "org_a")
    await store.queue("org_a", 2)
    async with store.sessions() as session, session.begin():
        await session.execute(update(store.tables.subscription).values(active=False))
    sender = FakeSender()
    deliverer = WebhookDeliverer(store.sessions, store.tables, sender)
    assert await deliverer.deliver_due() == 0
    assert sender.posts == []
    # Left pending (disabled by an earlier version, or queued meanwhile): failed at start, out of the backlog.
    assert (await deliverer.backlog())["webhooks_pending"] == 2
    await WebhookBackground(deliverer).start()
    try:
        assert await deliverer.backlog() == {"webhooks_pending": 0, "webhooks_failed": 2}
        assert await store.deliveries("whs_off") == [("failed", 0, "subscription_disabled")] * 2
    finally:
        await deliverer.stop()


async def test_a_backlog_larger_than_one_claim_is_sent_claim_by_claim(store: WebhookStore) -> None:
    await store.subscribe("whs_a", "org_a")
    await store.queue("org_a", 25)
    sender = FakeSender()
    policy = WebhookPolicy(timeout_seconds=30.0, concurrency=10)  # claims of 10
    assert await WebhookDeliverer(store.sessions, store.tables, sender, policy).deliver_due() == 25
    assert len(set(sender.posts)) == 25


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
