"""Steps of the CalAIM flows as each party performs them: the CBO over REST, the MCP over SFTP, the hub's billing
staff over REST. Scenarios compose these steps and put faults between them."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from harness import CBO_A_NPI, Accountant, Cluster, Tenants, all_pages, eventually, get_json, lacare_mif, referral_body
from payer import PickedUp837, build_277ca, build_999, read_837

from shared.reference.calendar import PACIFIC

_control = itertools.count(700)
_file_seq = itertools.count(1)


def california_today() -> date:
    """Today in California: service dates, periods and "in the future" are California dates for CalHub. Between
    midnight UTC and midnight Pacific the UTC date is already tomorrow's."""
    return datetime.now(PACIFIC).date()


def california_month() -> str:
    """This month in California as a MIF period (CCYYMM)."""
    return f"{california_today():%Y%m}"


def next_control() -> int:
    """A fresh interchange control number for the MCP's files (unique per partner, as X12 requires)."""
    return next(_control)


@dataclass
class Onboarded:
    """A member whose referral was approved: the ids every later step needs."""

    member: dict[str, Any]
    referral_id: str
    authorization_id: str
    correlation_id: str
    member_id: str


async def submit_referral(cluster: Cluster, tenants: Tenants, member: Mapping[str, Any], *,
                          idempotency_key: str | None = None, instance: int = 0) -> dict[str, Any]:
    """CBO A refers the member to L.A. Care for ECM and asks to serve them itself."""
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
    async with cluster.client("referrals", tenants.cbo_a.key, instance=instance, headers=headers) as client:
        response = await client.post("/v1/referrals", json=referral_body(member, cbo_id=tenants.cbo_a.organization_id))
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def referral(cluster: Cluster, tenants: Tenants, referral_id: str) -> dict[str, Any]:
    async with cluster.client("referrals", tenants.hub.key) as client:
        body: dict[str, Any] = await get_json(client, f"/v1/referrals/{referral_id}")
        return body


async def wait_referral_status(cluster: Cluster, tenants: Tenants, referral_id: str, *statuses: str,
                               within: float = 60.0) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        body = await referral(cluster, tenants, referral_id)
        return body if body["status"] in statuses else None

    return await eventually(probe, within=within, what=f"referral {referral_id} in {statuses}")


async def authorizations(cluster: Cluster, tenants: Tenants, **filters: Any) -> list[dict[str, Any]]:
    async with cluster.client("authorizations", tenants.hub.key) as client:
        return await all_pages(client, "/v1/authorizations", **filters)


async def authorization(cluster: Cluster, tenants: Tenants, authorization_id: str) -> dict[str, Any]:
    async with cluster.client("authorizations", tenants.hub.key) as client:
        body: dict[str, Any] = await get_json(client, f"/v1/authorizations/{authorization_id}")
        return body


async def wait_authorization(cluster: Cluster, tenants: Tenants, authorization_id: str, *statuses: str,
                             within: float = 60.0) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        body = await authorization(cluster, tenants, authorization_id)
        return body if body["status"] in statuses else None

    return await eventually(probe, within=within, what=f"authorization {authorization_id} in {statuses}")


async def correlation_of(cluster: Cluster, tenants: Tenants, referral_id: str, *, within: float = 60.0) -> str:
    """The lineage id of a referral's flow, from the ops journal (referral.received starts it)."""
    async def probe() -> str | None:
        async with cluster.client("ops", tenants.hub.key) as ops:
            body = await get_json(ops, "/v1/ops/timeline", referral_id=referral_id)
        for entry in body["items"]:
            if entry["event_type"] == "referral.received":
                return str(entry["correlation_id"])
        return None

    return await eventually(probe, within=within, what=f"referral {referral_id} journaled")


async def files(cluster: Cluster, tenants: Tenants, **filters: Any) -> list[dict[str, Any]]:
    async with cluster.client("sftp-gateway", tenants.hub.key) as client:
        return await all_pages(client, "/v1/files", **filters)


async def outbound_names(cluster: Cluster, mcp: str = "lacare") -> list[str]:
    async with cluster.sftp(mcp) as sftp:
        return sorted(n for n in await sftp.listdir("/outbound") if n not in (".", ".."))


async def read_outbound(cluster: Cluster, name: str, mcp: str = "lacare") -> str:
    async with cluster.sftp(mcp) as sftp, sftp.open(f"/outbound/{name}") as handle:
        content = await handle.read()
    return content if isinstance(content, str) else content.decode()


async def wait_referral_file_lists(cluster: Cluster, cins: Sequence[str], *, within: float = 60.0) -> str:
    """The MCP picks up the referral file(s) from /outbound until every CIN was requested; returns the text."""
    async def probe() -> str:
        texts = [await read_outbound(cluster, n) for n in await outbound_names(cluster) if "REFERRAL" in n]
        joined = "\n".join(texts)
        missing = sum(cin not in joined for cin in cins)
        if missing:
            # Counts only (no CIN in a failure message): says whether nothing or only part of it was sent.
            raise AssertionError(f"{missing} of {len(cins)} members in none of the {len(texts)} referral files")
        return joined

    return await eventually(probe, within=within, what="referral file in L.A. Care's /outbound")


async def upload_mif(cluster: Cluster, rows: Sequence[Mapping[str, Any]], *, period: str | None = None) -> str:
    """L.A. Care posts a Member Information File with these rows; returns the file name."""
    # L.A. Care names a MIF by its reporting period only; a second file of the same period is a correction
    # (not a duplicate: the gateway deduplicates by content, not by name).
    name, content = lacare_mif(rows, period or california_month())
    await cluster.upload("lacare", name, content)
    return name


def approval_row(member: Mapping[str, Any], number: str, *, start: date | None = None, months: int = 12,
                 status: str = "Authorized", npi: str = CBO_A_NPI, end: date | None = None) -> dict[str, Any]:
    """A MIF row approving ECM for the member (12 months from today unless told otherwise)."""
    begin = start or california_today()
    finish = end or (begin + timedelta(days=round(months * 30.44)) - timedelta(days=1))
    return {"member": member, "auth_number": number, "start": begin, "end": finish, "status": status, "npi": npi,
            "pof_codes": ["1a", "3"]}


async def onboard(cluster: Cluster, tenants: Tenants, members: Sequence[dict[str, Any]], *,
                  within: float = 90.0, period: str | None = None, start: date | None = None) -> list[Onboarded]:
    """Referral → authorization request → referral file picked up → MIF approval over SFTP → approved.

    The MIF is this month's and approves 12 months from today unless `period` (YYYYMM) or `start` say otherwise.
    """
    submitted = [await submit_referral(cluster, tenants, m) for m in members]
    requested = [await wait_referral_status(cluster, tenants, s["id"], "requested", within=within) for s in submitted]
    await wait_referral_file_lists(cluster, [m["cin"] for m in members], within=within)
    rows = [approval_row(m, f"LAC-{m['cin']}", start=start) for m in members]
    await upload_mif(cluster, rows, period=period)
    done = []
    for member, body in zip(members, requested, strict=True):
        auth = await wait_authorization(cluster, tenants, body["authorization_id"], "approved", within=within)
        correlation = await correlation_of(cluster, tenants, body["id"])
        done.append(Onboarded(member=member, referral_id=body["id"], authorization_id=auth["id"],
                              correlation_id=correlation, member_id=body["member_id"]))
    for item in done:
        await wait_referral_status(cluster, tenants, item.referral_id, "accepted", within=within)
    # The referrer hears "accepted" as soon as referrals has the decision; claims learns it from the same events
    # a moment later. A CBO posting an encounter in between is refused (no authorization yet): the scenarios
    # wait until every consumer has caught up, which is what "settled" means in production too.
    await Accountant(cluster, tenants).settle(within=within)
    return done


def encounter_body(member: Mapping[str, Any], *, service_date: date | None = None, hcpcs: str = "G9008",
                   modifiers: Sequence[str] = ("U1",), mcp_code: str = "lacare") -> dict[str, Any]:
    """An in-person ECM encounter by CBO A's care manager."""
    return {"member": {"cin": member["cin"], "last_name": member["last_name"], "first_name": member["first_name"],
                       "birth_date": member["birth_date"], "sex": member.get("sex", "F"),
                       "address": {"line1": member["address"]["line1"], "city": member["address"]["city"],
                                   "state": "CA", "zip": member["address"]["zip"]}},
            "rendering_provider": {"npi": CBO_A_NPI, "last_name": "Worker", "first_name": "Casey"},
            "program": "ecm", "hcpcs": hcpcs, "modifiers": list(modifiers), "units": "1",
            "service_date": (service_date or california_today()).isoformat(), "place_of_service": "11",
            "diagnosis_codes": ["Z59.00"], "mcp_code": mcp_code}


async def post_encounter(cluster: Cluster, tenants: Tenants, body: Mapping[str, Any], *,
                         idempotency_key: str | None = None) -> dict[str, Any]:
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
    async with cluster.client("claims", tenants.cbo_a.key, headers=headers) as client:
        response = await client.post("/v1/encounters", json=dict(body))
    assert response.status_code in (200, 201), response.text
    result: dict[str, Any] = response.json()
    return result


async def claims(cluster: Cluster, tenants: Tenants, **filters: Any) -> list[dict[str, Any]]:
    async with cluster.client("claims", tenants.hub.key) as client:
        return await all_pages(client, "/v1/claims", **filters)


async def batch_now(cluster: Cluster, tenants: Tenants, mcp_code: str = "lacare") -> dict[str, Any]:
    """The hub's billing staff seal L.A. Care's draft claims into an 837P now."""
    async with cluster.client("claims", tenants.hub.key) as client:
        response = await client.post("/v1/claims/batches", json={"mcp_code": mcp_code})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def pick_up_837(cluster: Cluster, batch_id: str, *, within: float = 60.0) -> PickedUp837:
    """The MCP finds the batch's 837P in its /outbound folder and reads it."""
    async def probe() -> str | None:
        return next((n for n in await outbound_names(cluster) if batch_id in n), None)

    name = await eventually(probe, within=within, what=f"837P of {batch_id} in /outbound")
    return read_837(await read_outbound(cluster, name))


async def acknowledge(cluster: Cluster, batch: PickedUp837, *, rejected: frozenset[str] = frozenset(),
                      order: str = "999-first") -> None:
    """The MCP posts a 999 (accepted) and a 277CA (A2, or A7 for `rejected` claim ids) over SFTP."""
    now = datetime.now(UTC)
    sequence = next(_file_seq)
    ack999 = (f"LAC_ACK_{now:%Y%m%d}_{sequence}.999", build_999(batch, control=next_control(), now=now))
    ack277 = (f"LAC_ACK_{now:%Y%m%d}_{sequence}.277CA",
              build_277ca(batch, control=next_control(), now=now, rejected=rejected))
    for name, content in (ack999, ack277) if order == "999-first" else (ack277, ack999):
        await cluster.upload("lacare", name, content)


async def wait_claims(cluster: Cluster, tenants: Tenants, claim_ids: Sequence[str], *statuses: str,
                      within: float = 60.0) -> list[dict[str, Any]]:
    async def probe() -> list[dict[str, Any]] | None:
        found = {c["id"]: c for c in await claims(cluster, tenants)}
        picked = [found[i] for i in claim_ids if i in found]
        if len(picked) == len(claim_ids) and all(c["status"] in statuses for c in picked):
            return picked
        return None

    return await eventually(probe, within=within, what=f"claims {list(claim_ids)} in {statuses}")
