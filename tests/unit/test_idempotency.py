"""Idempotency-Key: a retried POST replays the first response; a reused key with another body is refused."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import Response
from pydantic import BaseModel
from sqlalchemy import Column, MetaData, String, Table, func, insert, select

from shared.auth import AuthenticatedCaller, Caller, StaticAuthenticator, install_authenticator
from shared.idempotency import (
    IdempotencyKey,
    hash_request,
    idempotent,
    purge_idempotency_records,
    request_hash,
)
from shared.problems import Problem, install_problem_handlers
from shared.testing.database import ServiceDatabase, service_database, sqlite_url

CBO = Caller(organization_id="org_cbo1", organization_kind="cbo", organization_code=None, key_id="k1",
             scopes=frozenset({"referrals:write"}))
OTHER_CBO = Caller(organization_id="org_cbo2", organization_kind="cbo", organization_code=None, key_id="k2",
                   scopes=frozenset({"referrals:write"}))
TABLES: dict[str, Table] = {}


def add_referral_table(metadata: MetaData) -> None:
    TABLES["referral"] = Table("referral", metadata, Column("id", String, primary_key=True),
                               Column("organization_id", String, nullable=False))


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[ServiceDatabase]:
    async with service_database(sqlite_url(tmp_path), extend=add_referral_table) as database:
        yield database


async def referral_count(db: ServiceDatabase) -> int:
    async with db.sessions() as session:
        return int((await session.execute(select(func.count()).select_from(TABLES["referral"]))).scalar_one())


async def submit(db: ServiceDatabase, caller: Caller, key: str | None, body: bytes, referral_id: str, *,
                 fail: bool = False, pause: asyncio.Event | None = None) -> Any:
    """One request's unit of work: write a referral and its idempotency record, then commit."""
    async with db.sessions() as session:

        async def produce() -> tuple[int, dict[str, str]]:
            await session.execute(insert(TABLES["referral"]).values(id=referral_id,
                                                                    organization_id=caller.organization_id))
            if pause is not None:
                await pause.wait()
            if fail:
                raise Problem(422, "validation-failed", "Request validation failed")
            return 201, {"referral_id": referral_id}

        try:
            result = await idempotent(session, db.tables, caller, key,
                                      request_hash("POST", "/v1/referrals", body), produce)
            await session.commit()
        finally:
            await session.rollback()
        return result


async def test_a_retry_with_the_same_key_replays_the_first_response(db: ServiceDatabase) -> None:
    first = await submit(db, CBO, "key-1", b'{"cin": "x"}', "ref_1")
    again = await submit(db, CBO, "key-1", b'{ "cin" : "x" }', "ref_2")  # same JSON, other whitespace
    assert (first.status_code, first.json(), first.replayed) == (201, {"referral_id": "ref_1"}, False)
    assert (again.status_code, again.body, again.replayed) == (201, first.body, True)
    assert again.to_response().headers["Idempotent-Replayed"] == "true"
    assert await referral_count(db) == 1


async def test_the_same_key_with_another_body_is_a_422(db: ServiceDatabase) -> None:
    await submit(db, CBO, "key-1", b'{"cin": "x"}', "ref_1")
    with pytest.raises(Problem) as refused:
        await submit(db, CBO, "key-1", b'{"cin": "y"}', "ref_2")
    assert refused.value.status == 422
    assert refused.value.errors is not None and refused.value.errors[0].rule == "idempotency_key_reuse"
    assert await referral_count(db) == 1


@pytest.mark.parametrize("key", ["", "   ", "k" * 256])
async def test_empty_or_overlong_keys_are_a_400(db: ServiceDatabase, key: str) -> None:
    with pytest.raises(Problem) as refused:
        await submit(db, CBO, key, b"{}", "ref_1")
    assert refused.value.status == 400
    assert await referral_count(db) == 0


async def test_keys_are_per_organization(db: ServiceDatabase) -> None:
    await submit(db, CBO, "key-1", b"{}", "ref_1")
    other = await submit(db, OTHER_CBO, "key-1", b"{}", "ref_2")
    assert other.replayed is False
    assert await referral_count(db) == 2


async def test_without_a_key_the_work_runs_every_time(db: ServiceDatabase) -> None:
    await submit(db, CBO, None, b"{}", "ref_1")
    await submit(db, CBO, None, b"{}", "ref_2")
    assert await referral_count(db) == 2


async def test_a_failed_request_stores_nothing_and_a_retry_runs_again(db: ServiceDatabase) -> None:
    with pytest.raises(Problem):
        await submit(db, CBO, "key-1", b"{}", "ref_1", fail=True)
    assert await referral_count(db) == 0
    retried = await submit(db, CBO, "key-1", b"{}", "ref_1")
    assert retried.replayed is False and retried.status_code == 201
    assert await referral_count(db) == 1


async def test_concurrent_duplicates_do_the_work_once(db: ServiceDatabase) -> None:
    pause = asyncio.Event()
    first = asyncio.create_task(submit(db, CBO, "key-1", b"{}", "ref_1", pause=pause))
    await asyncio.sleep(0.05)  # the first holds the write lock with its record inserted
    second = asyncio.create_task(submit(db, CBO, "key-1", b"{}", "ref_2"))
    await asyncio.sleep(0.05)
    pause.set()
    results = await asyncio.gather(first, second)
    assert [r.replayed for r in results] == [False, True]
    assert results[1].json() == {"referral_id": "ref_1"}
    assert await referral_count(db) == 1


async def test_a_record_left_in_progress_answers_409(db: ServiceDatabase) -> None:
    async with db.sessions() as session:
        await session.execute(insert(db.tables.idempotency_record).values(
            organization_id=CBO.organization_id, key="key-1",
            request_hash=request_hash("POST", "/v1/referrals", b"{}"), status_code=0, response_body=b"",
            response_headers={}, created_at=datetime.now(UTC)))
        await session.commit()
    with pytest.raises(Problem) as refused:
        await submit(db, CBO, "key-1", b"{}", "ref_1")
    assert refused.value.status == 409
    assert refused.value.headers["Retry-After"] == "1"


async def test_old_records_are_purged(db: ServiceDatabase) -> None:
    await submit(db, CBO, "key-1", b"{}", "ref_1")
    async with db.sessions() as session:
        assert await purge_idempotency_records(session, db.tables,
                                               older_than=datetime.now(UTC) - timedelta(hours=1)) == 0
        assert await purge_idempotency_records(session, db.tables,
                                               older_than=datetime.now(UTC) + timedelta(seconds=1)) == 1
        await session.commit()


# ----------------------------------------------------------------------------------------- over HTTP

class ReferralIn(BaseModel):
    service: str


def make_app(db: ServiceDatabase) -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)
    install_authenticator(app, StaticAuthenticator({"cbo-key": CBO}))

    @app.post("/v1/referrals", status_code=201)
    async def create(body: ReferralIn, request: Request, caller: AuthenticatedCaller,
                     key: IdempotencyKey) -> Response:
        async with db.sessions() as session:
            count = (await session.execute(select(func.count()).select_from(TABLES["referral"]))).scalar_one()

            async def produce() -> tuple[int, dict[str, str], dict[str, str]]:
                referral_id = f"ref_{count + 1}"
                await session.execute(insert(TABLES["referral"]).values(id=referral_id,
                                                                        organization_id=caller.organization_id))
                return 201, {"referral_id": referral_id, "service": body.service}, {
                    "Location": f"/v1/referrals/{referral_id}"}

            result = await idempotent(session, db.tables, caller, key, await hash_request(request), produce)
            await session.commit()
        return result.to_response()

    return app


async def test_the_http_round_trip_replays_status_body_and_headers(db: ServiceDatabase) -> None:
    transport = httpx.ASGITransport(app=make_app(db))
    headers = {"X-API-Key": "cbo-key", "Idempotency-Key": "8e1c-retry"}
    async with httpx.AsyncClient(transport=transport, base_url="http://calhub.test") as http:
        first = await http.post("/v1/referrals", json={"service": "ECM"}, headers=headers)
        again = await http.post("/v1/referrals", json={"service": "ECM"}, headers=headers)
        reused = await http.post("/v1/referrals", json={"service": "CHW"}, headers=headers)
        too_long = await http.post("/v1/referrals", json={"service": "ECM"},
                                   headers={"X-API-Key": "cbo-key", "Idempotency-Key": "k" * 256})
    assert first.status_code == again.status_code == 201
    assert first.content == again.content
    assert again.headers["location"] == first.headers["location"] == "/v1/referrals/ref_1"
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert reused.status_code == 422
    assert reused.json()["errors"][0]["rule"] == "idempotency_key_reuse"
    assert too_long.status_code == 400
    assert too_long.headers["content-type"] == "application/problem+json"
    assert await referral_count(db) == 1
