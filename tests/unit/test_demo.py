"""`calhub run --demo` seeds the whole CalAIM cycle through the services' own paths, and a restart on the same data
directory doubles nothing. Runs the embedded app (SQLite, in-process bus) with the demo hook, twice."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from calhub.demo import credentials_path, seed_demo
from calhub.embedded import create_embedded_app
from shared.settings import PlatformSettings
from shared.testing.polling import eventually

DEMO_CINS = ("90000101A", "90000102B", "90000103C", "90000104D", "90000105E")


async def items(client: httpx.AsyncClient, path: str, **params: Any) -> list[dict[str, Any]]:
    response = await client.get(path, params={"limit": 200, **params})
    assert response.status_code == 200, f"{path}: {response.status_code} {response.text[:300]}"
    body = response.json()
    return body if isinstance(body, list) else list(body["items"])


async def snapshot(client: httpx.AsyncClient) -> dict[str, Any]:
    """Everything the demo creates, as the public API shows it to the hub."""
    eligibility = {}
    for cin in DEMO_CINS:
        response = await client.get(f"/v1/members/{cin}/eligibility")
        assert response.status_code in (200, 404), f"{cin}: {response.status_code} {response.text[:300]}"
        if response.status_code == 200:  # 404 until the member's first fact arrives
            eligibility[cin] = response.json()
    return {
        "referrals": await items(client, "/v1/referrals"),
        "authorizations": await items(client, "/v1/authorizations"),
        "overdue": await items(client, "/v1/authorizations", overdue="true"),
        "exceptions": await items(client, "/v1/authorization-exceptions"),
        "encounters": await items(client, "/v1/encounters"),
        "claims": await items(client, "/v1/claims"),
        "batches": await items(client, "/v1/claims/batches"),
        "files": await items(client, "/v1/files"),
        "eligibility": eligibility,
    }


async def settled(client: httpx.AsyncClient) -> dict[str, Any] | None:
    """The snapshot once the whole cycle has run, every hop back has landed (see `assert_cycle`) and nothing
    more arrives: the counts must hold still for a second (some files follow the checked ones by a hop)."""
    state = await snapshot(client)
    assert_cycle(state)
    await asyncio.sleep(1.0)
    later = await snapshot(client)
    assert counts(later) == counts(state), "the demo is still moving"
    return later


def assert_cycle(state: dict[str, Any]) -> None:
    """What the demo must show once settled. Every part arrives over its own hop, so tests poll until all hold."""
    assert len(state["eligibility"]) == len(DEMO_CINS), sorted(state["eligibility"])
    by_program = {r["program"]: r for r in state["referrals"]}
    assert sorted(by_program) == ["chw", "cs", "ecm"], sorted(by_program)
    assert by_program["ecm"]["status"] in ("accepted", "in_service")
    assert by_program["chw"]["status"] == "declined"
    assert by_program["cs"]["status"] == "requested"  # routed once eligibility told referrals the member's plan

    auths = state["authorizations"]
    approved = [a for a in auths if a["status"] == "approved" and a["origin"] == "referral"]
    assert [(a["mcp_code"], a["mcp_authorization_number"]) for a in approved] == [("lacare", "LAC-DEMO-0101")]
    assert [(a["mcp_code"], a["program"]) for a in auths if a["status"] == "denied"] == [("healthnet", "chw")]
    assert [(a["mcp_code"], a["status"]) for a in state["overdue"]] == [("lacare", "requested")]
    assert state["overdue"][0]["overdue"] is True
    assigned = [a for a in auths if a["origin"] == "mcp_assignment"]
    assert [(a["status"], a["mcp_authorization_number"]) for a in assigned] == [("approved", "LAC-DEMO-0105")]
    assert [e["reason"] for e in state["exceptions"]] == ["unknown_provider"]

    encounters = sorted((e["status"], tuple(r["code"] for r in e.get("reasons", []))) for e in state["encounters"])
    assert encounters == [("recorded", ()), ("recorded", ()), ("recorded", ()), ("rejected", ("no_authorization",))]
    assert [(c["mcp_code"], c["status"]) for c in state["claims"]] == [("lacare", "submitted")]
    assert [(b["mcp_code"], b["status"]) for b in state["batches"]] == [("lacare", "delivered")]

    files = sorted((f["direction"], f["kind"], f["status"]) for f in state["files"])
    assert ("inbound", "mif", "processed") in files
    assert ("outbound", "837p", "delivered") in files
    assert ("outbound", "referral", "delivered") in files
    mif = next(f for f in state["files"] if f["kind"] == "mif" and f["status"] == "processed")
    assert (mif["mcp_code"], mif["rows_accepted"], mif["rows_rejected"]) == ("lacare", 2, 0)

    for cin, answer in state["eligibility"].items():
        plans = {s["mcp_code"] for s in answer["spans"]}
        assert plans == ({"healthnet"} if cin == "90000103C" else {"lacare"}), cin
    assert {s["source"] for s in state["eligibility"]["90000105E"]["spans"]} == {"mif"}


def counts(state: dict[str, Any]) -> dict[str, int]:
    return {key: len(value) for key, value in state.items()} | {
        "spans": sum(len(e["spans"]) for e in state["eligibility"].values())}


async def run_demo(data_dir: Path, check: Callable[[httpx.AsyncClient], Awaitable[dict[str, Any]]]
                   ) -> dict[str, Any]:
    """Start the embedded app with the demo hook, run `check` with the hub's key, stop the app."""
    platform = PlatformSettings(mode="embedded", data_dir=data_dir)
    app = create_embedded_app(platform, on_started=[seed_demo(platform, base_url="http://calhub.test")])
    async with app.router.lifespan_context(app):
        credentials = json.loads(credentials_path(platform).read_text())
        hub = next(c["api_key"] for c in credentials if c["kind"] == "hub")
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://calhub.test",
                                     headers={"Authorization": f"Bearer {hub}"}) as client:
            result = await check(client)
        demo_parts = [p for p in app.state.runtimes["claims"].background if type(p).__name__ == "DemoBilling"]
        assert [p.status for p in demo_parts] == ["done"]
    return result


@pytest.fixture(autouse=True)
def _no_sftp_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SFTP_GATEWAY_SFTP_PORT", "0")  # any free port: tests run in parallel


async def test_demo_seeds_the_whole_cycle_once(tmp_path: Path) -> None:
    async def first(client: httpx.AsyncClient) -> dict[str, Any]:
        state: dict[str, Any] = await eventually(lambda: settled(client), within=90, interval=0.25,
                                                 what="the demo cycle", retry_on=(AssertionError,))
        return state

    state = await run_demo(tmp_path, first)

    # A restart on the same data directory: the seeds find their work done and create nothing.
    async def second(client: httpx.AsyncClient) -> dict[str, Any]:
        await asyncio.sleep(3)  # let anything a second seeding would publish travel through the bus
        again: dict[str, Any] = await eventually(lambda: settled(client), within=90, interval=0.25,
                                                 what="the demo again", retry_on=(AssertionError,))
        return again

    again = await run_demo(tmp_path, second)
    assert counts(again) == counts(state)
    def statuses(snapshot: dict[str, Any]) -> dict[str, str]:
        return {a["id"]: a["status"] for a in snapshot["authorizations"]}

    assert statuses(again) == statuses(state)
    assert sorted(f["id"] for f in again["files"]) == sorted(f["id"] for f in state["files"])
