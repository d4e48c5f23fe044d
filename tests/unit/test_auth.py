"""API keys, scopes and tenancy: who may call, what they may do, which rows they see (SQLite, no network)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated

import httpx
import pytest
from fastapi import Depends, FastAPI
from sqlalchemy import Column, MetaData, String, Table, event, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.auth import (
    AuthenticatedCaller,
    AuthStore,
    Caller,
    DatabaseAuthenticator,
    StaticAuthenticator,
    Tenant,
    TenantScope,
    audit_event_table,
    create_auth_engine,
    create_auth_schema,
    define_audit_table,
    install_authenticator,
    record_audit,
    require_scopes,
    service_scope,
)
from shared.db import session_factory
from shared.logs import phi
from shared.problems import install_problem_handlers
from shared.testing.database import service_database, sqlite_url


def make_caller(kind: str = "cbo", *, org: str = "org_cbo1", code: str | None = None,
                scopes: tuple[str, ...] = ("referrals:read",), key_id: str = "k1") -> Caller:
    return Caller(organization_id=org, organization_kind=kind, organization_code=code,  # type: ignore[arg-type]
                  key_id=key_id, scopes=frozenset(scopes))


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def auth_engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_auth_engine(sqlite_url(tmp_path, "auth"))
    await create_auth_schema(engine)
    yield engine
    await engine.dispose()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(auth_engine: AsyncEngine, clock: FakeClock) -> AuthStore:
    return AuthStore(session_factory(auth_engine), cache_ttl=30, clock=clock)


ReferralReader = Annotated[Caller, Depends(require_scopes("referrals:read"))]


def make_app(authenticator: object) -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)
    install_authenticator(app, authenticator)  # type: ignore[arg-type]

    @app.get("/v1/whoami")
    async def whoami(caller: AuthenticatedCaller) -> dict[str, str]:
        return {"organization_id": caller.organization_id, "key_id": caller.key_id}

    @app.get("/v1/referrals")
    async def referrals(caller: ReferralReader) -> dict[str, str]:
        return {"ok": caller.organization_id}

    @app.post("/v1/claims")
    async def claims(caller: Annotated[Caller, Depends(require_scopes("claims:write", "ops"))]) -> None:
        return None

    @app.get("/v1/tenant")
    async def tenant(scope: Tenant) -> dict[str, bool]:
        return {"hub": scope.caller.is_hub}

    return app


def client_for(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://calhub.test")


# ------------------------------------------------------------------------------------------- AuthStore

async def test_an_issued_key_verifies_to_its_organization_and_scopes(store: AuthStore) -> None:
    org = await store.create_organization("mcp", "Health Plan of San Joaquin", code="HPSJ", npi="1234567893")
    key_id, plaintext = await store.create_api_key(org.id, ["referrals:read", "claims:write"])
    assert org.id.startswith("org_") and plaintext.startswith(f"chk_{key_id}_")
    caller = await store.verify(plaintext)
    assert caller == Caller(organization_id=org.id, organization_kind="mcp", organization_code="HPSJ",
                            key_id=key_id, scopes=frozenset({"referrals:read", "claims:write"}))
    assert caller.has_scope("claims:read")  # write implies read
    assert not caller.has_scope("ops")


async def test_wrong_malformed_and_unknown_keys_do_not_verify(store: AuthStore) -> None:
    org = await store.create_organization("cbo", "Fresno Community Care")
    key_id, plaintext = await store.create_api_key(org.id, ["referrals:read"])
    assert await store.verify(plaintext[:-1] + ("0" if plaintext[-1] != "0" else "1")) is None
    assert await store.verify("chk_" + "0" * 32 + "_" + "1" * 64) is None
    assert await store.verify("not-a-key") is None
    assert await store.verify("") is None


async def test_a_revoked_key_stops_verifying_at_once_in_the_revoking_process(store: AuthStore) -> None:
    org = await store.create_organization("cbo", "Fresno Community Care")
    key_id, plaintext = await store.create_api_key(org.id, ["referrals:read"])
    assert await store.verify(plaintext) is not None
    assert await store.revoke_key(key_id) is True
    assert await store.verify(plaintext) is None
    assert await store.revoke_key(key_id) is False


async def test_other_processes_see_a_revocation_within_the_cache_ttl(
        auth_engine: AsyncEngine, store: AuthStore, clock: FakeClock) -> None:
    other = AuthStore(session_factory(auth_engine), cache_ttl=30, clock=clock)
    org = await store.create_organization("cbo", "Fresno Community Care")
    key_id, plaintext = await store.create_api_key(org.id, ["referrals:read"])
    assert await other.verify(plaintext) is not None
    await store.revoke_key(key_id)
    clock.now += 29
    assert await other.verify(plaintext) is not None  # cached: the documented window
    clock.now += 2
    assert await other.verify(plaintext) is None


async def test_requests_that_miss_the_cache_together_share_one_lookup(
        auth_engine: AsyncEngine, store: AuthStore, clock: FakeClock) -> None:
    """When a busy key's entry expires, the requests in flight wait for one lookup instead of each making one
    (which had stalled the process: the more lookups, the slower each, the more requests missed)."""
    org = await store.create_organization("cbo", "Fresno Community Care")
    _, plaintext = await store.create_api_key(org.id, ["referrals:read"])
    other = AuthStore(session_factory(auth_engine), cache_ttl=30, clock=clock)
    lookups = []

    def count(conn: object, cursor: object, statement: str, *args: object) -> None:
        if statement.lstrip().startswith("SELECT") and "hashed_secret" in statement:
            lookups.append(statement)

    event.listen(auth_engine.sync_engine, "before_cursor_execute", count)
    try:
        callers = await asyncio.gather(*(other.verify(plaintext) for _ in range(20)))
        assert len(lookups) == 1 and len(set(callers)) == 1 and callers[0] is not None
        clock.now += 31  # expired: again one lookup for all, and its own for another key
        wrong = plaintext[:-1] + ("0" if plaintext[-1] != "0" else "1")
        callers = await asyncio.gather(*(other.verify(plaintext) for _ in range(20)), other.verify(wrong))
        assert len(lookups) == 3 and callers[-1] is None and all(c is not None for c in callers[:-1])
    finally:
        event.remove(auth_engine.sync_engine, "before_cursor_execute", count)


async def test_a_cancelled_request_does_not_cancel_the_lookup_others_wait_for(
        auth_engine: AsyncEngine, store: AuthStore, clock: FakeClock) -> None:
    org = await store.create_organization("cbo", "Fresno Community Care")
    _, plaintext = await store.create_api_key(org.id, ["referrals:read"])
    other = AuthStore(session_factory(auth_engine), cache_ttl=30, clock=clock)
    first = asyncio.create_task(other.verify(plaintext))
    second = asyncio.create_task(other.verify(plaintext))
    await asyncio.sleep(0)
    first.cancel()
    assert await second is not None
    with pytest.raises(asyncio.CancelledError):
        await first


async def test_a_request_after_a_revocation_never_joins_a_lookup_that_started_before_it(
        store: AuthStore, monkeypatch: pytest.MonkeyPatch) -> None:
    org = await store.create_organization("cbo", "Fresno Community Care")
    key_id, plaintext = await store.create_api_key(org.id, ["referrals:read"])
    release = asyncio.Event()
    look_up = store._look_up

    async def slow_look_up(digest: str, key: str, secret: str) -> Caller | None:
        found = await look_up(digest, key, secret)  # reads the key while it is still valid...
        await release.wait()  # ...and answers only after the revocation
        return found

    monkeypatch.setattr(store, "_look_up", slow_look_up)
    before = asyncio.create_task(store.verify(plaintext))
    await asyncio.sleep(0.05)
    await store.revoke_key(key_id)
    monkeypatch.setattr(store, "_look_up", look_up)
    try:  # joining the lookup in flight would wait for it (and answer the caller it read)
        assert await asyncio.wait_for(store.verify(plaintext), 5) is None  # its own lookup
    finally:
        release.set()
    assert await before is not None  # it had read the key before the revocation
    assert await store.verify(plaintext) is None  # and what it read was not cached


async def test_key_activity_follows_revocation_within_the_cache_ttl(
        auth_engine: AsyncEngine, store: AuthStore, clock: FakeClock) -> None:
    """What a console session asks on each page: is the key it was opened with still active?"""
    other = AuthStore(session_factory(auth_engine), cache_ttl=30, clock=clock)
    org = await store.create_organization("hub", "Central Valley Hub")
    key_id, _ = await store.create_api_key(org.id, ["ops"])
    assert await store.key_active(key_id) and await other.key_active(key_id)
    assert not await store.key_active("0" * 32)
    await store.revoke_key(key_id)
    assert not await store.key_active(key_id)  # the revoking process knows at once
    clock.now += 29
    assert await other.key_active(key_id)  # the documented window elsewhere
    clock.now += 2
    assert not await other.key_active(key_id)


async def test_verification_is_cached_and_last_use_is_recorded(
        auth_engine: AsyncEngine, store: AuthStore) -> None:
    org = await store.create_organization("hub", "Central Valley Hub")
    key_id, plaintext = await store.create_api_key(org.id, ["admin"])
    await store.verify(plaintext)
    async with session_factory(auth_engine)() as session:
        from shared.auth import api_key_table

        used = (await session.execute(select(api_key_table.c.last_used_at)
                                      .where(api_key_table.c.id == key_id))).scalar_one()
    assert used is not None


async def test_admin_actions_are_audited(auth_engine: AsyncEngine, store: AuthStore) -> None:
    admin = make_caller("hub", org="org_hub", scopes=("admin",), key_id="kadmin")
    org = await store.create_organization("cbo", "Fresno Community Care", actor=admin)
    key_id, _ = await store.create_api_key(org.id, ["referrals:read"], actor=admin)
    await store.revoke_key(key_id, actor=admin)
    async with session_factory(auth_engine)() as session:
        rows = (await session.execute(select(audit_event_table).order_by(audit_event_table.c.id))).all()
    assert [(r.action, r.resource_id, r.actor_key_id) for r in rows] == [
        ("organization.created", org.id, "kadmin"), ("api_key.created", key_id, "kadmin"),
        ("api_key.revoked", key_id, "kadmin")]
    assert "Fresno" not in str([r.detail for r in rows])


async def test_organizations_are_validated(store: AuthStore) -> None:
    with pytest.raises(ValueError, match="plan code"):
        await store.create_organization("mcp", "A plan")
    with pytest.raises(ValueError, match="kind"):
        await store.create_organization("vendor", "X")  # type: ignore[arg-type]
    await store.create_organization("mcp", "A plan", code="AP")
    with pytest.raises(ValueError, match="code already in use"):
        await store.create_organization("mcp", "Another plan", code="AP")
    with pytest.raises(ValueError, match="malformed scope"):
        await store.create_api_key("org_x", ["everything"])
    with pytest.raises(LookupError):
        await store.create_api_key("org_missing", ["ops"])
    assert [o.code for o in await store.list_organizations()] == ["AP"]


async def test_the_database_authenticator_creates_sqlite_tables_on_first_use(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path, "embedded-auth")
    authenticator = DatabaseAuthenticator(url)
    try:
        assert await authenticator.verify("chk_" + "a" * 32 + "_" + "b" * 64) is None
        store = await authenticator.store()
        org = await store.create_organization("hub", "Hub")
        _, plaintext = await store.create_api_key(org.id, ["ops"])
        assert (await authenticator.verify(plaintext)) is not None
    finally:
        await authenticator.close()


# ----------------------------------------------------------------------------------- FastAPI dependencies

STATIC = StaticAuthenticator({
    "cbo-key": make_caller("cbo", scopes=("referrals:read",)),
    "writer-key": make_caller("hub", org="org_hub", scopes=("claims:write", "ops")),
})


async def test_a_missing_key_is_a_401_problem_with_a_challenge() -> None:
    async with client_for(make_app(STATIC)) as http:
        response = await http.get("/v1/whoami")
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "https://calhub.dev/problems/unauthenticated"


async def test_a_wrong_key_is_a_401_that_does_not_echo_the_key() -> None:
    async with client_for(make_app(STATIC)) as http:
        response = await http.get("/v1/whoami", headers={"Authorization": "Bearer chk_guess_SECRET123"})
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
    assert "SECRET123" not in response.text


async def test_bearer_and_x_api_key_headers_both_authenticate() -> None:
    async with client_for(make_app(STATIC)) as http:
        bearer = await http.get("/v1/whoami", headers={"Authorization": "Bearer cbo-key"})
        header = await http.get("/v1/whoami", headers={"X-API-Key": "cbo-key"})
    assert bearer.json() == header.json() == {"organization_id": "org_cbo1", "key_id": "k1"}


async def test_an_under_scoped_key_gets_a_403_naming_the_missing_scope() -> None:
    async with client_for(make_app(STATIC)) as http:
        allowed = await http.get("/v1/referrals", headers={"X-API-Key": "cbo-key"})
        refused = await http.post("/v1/claims", headers={"X-API-Key": "cbo-key"})
        writer = await http.post("/v1/claims", headers={"X-API-Key": "writer-key"})
    assert allowed.status_code == 200
    assert refused.status_code == 403
    assert refused.json()["missing_scopes"] == ["claims:write", "ops"]
    assert "claims:write" in refused.json()["detail"]
    assert writer.status_code == 200


async def test_a_revoked_key_is_refused_by_the_api(store: AuthStore) -> None:
    org = await store.create_organization("cbo", "Fresno Community Care")
    key_id, plaintext = await store.create_api_key(org.id, ["referrals:read"])
    headers = {"Authorization": f"Bearer {plaintext}"}
    async with client_for(make_app(store)) as http:
        assert (await http.get("/v1/referrals", headers=headers)).status_code == 200
        await store.revoke_key(key_id)
        assert (await http.get("/v1/referrals", headers=headers)).status_code == 401


def test_scope_names_are_checked() -> None:
    assert service_scope("claims", "write") == "claims:write"
    with pytest.raises(ValueError):
        require_scopes("claims")


# ------------------------------------------------------------------------------------------------ tenancy

async def test_tenant_filter_shows_a_cbo_its_rows_an_mcp_its_plan_and_the_hub_everything(
        tmp_path: Path) -> None:
    tables: dict[str, Table] = {}

    def extend(metadata: MetaData) -> None:
        tables["member"] = Table("member_link", metadata, Column("id", String, primary_key=True),
                                 Column("cbo_id", String), Column("mcp_code", String))

    async with service_database(sqlite_url(tmp_path), extend=extend) as db:
        member = tables["member"]
        async with db.sessions() as session:
            await session.execute(insert(member), [
                {"id": "m1", "cbo_id": "org_cbo1", "mcp_code": "HPSJ"},
                {"id": "m2", "cbo_id": "org_cbo2", "mcp_code": "HPSJ"},
                {"id": "m3", "cbo_id": "org_cbo1", "mcp_code": "KAISER"},
            ])
            await session.commit()

            async def visible(caller: Caller, *, with_mcp: bool = True) -> list[str]:
                scope = TenantScope(caller)
                statement = scope.filter(select(member.c.id).order_by(member.c.id),
                                         cbo_column=member.c.cbo_id,
                                         mcp_column=member.c.mcp_code if with_mcp else None)
                return list((await session.execute(statement)).scalars())

            assert await visible(make_caller("hub", org="org_hub")) == ["m1", "m2", "m3"]
            assert await visible(make_caller("cbo", org="org_cbo1")) == ["m1", "m3"]
            assert await visible(make_caller("mcp", org="org_hpsj", code="HPSJ")) == ["m1", "m2"]
            assert await visible(make_caller("mcp", org="org_hpsj", code="HPSJ"), with_mcp=False) == []
            assert await visible(make_caller("mcp", org="org_nocode", code=None)) == []


def test_single_row_checks_answer_404_for_other_tenants() -> None:
    scope = TenantScope(make_caller("cbo", org="org_cbo1"))
    assert scope.allows(cbo_id="org_cbo1")
    assert not scope.allows(cbo_id="org_cbo2", mcp_code="HPSJ")
    from shared.problems import Problem

    with pytest.raises(Problem) as refused:
        scope.require(cbo_id="org_cbo2", resource="referral")
    assert refused.value.status == 404 and refused.value.slug == "referral-not-found"


async def test_the_tenant_dependency_needs_authentication() -> None:
    async with client_for(make_app(STATIC)) as http:
        assert (await http.get("/v1/tenant")).status_code == 401
        assert (await http.get("/v1/tenant", headers={"X-API-Key": "writer-key"})).json() == {"hub": True}


# -------------------------------------------------------------------------------------------------- audit

async def test_audit_events_refuse_phi_in_their_detail(tmp_path: Path) -> None:
    tables: dict[str, Table] = {}
    async with service_database(sqlite_url(tmp_path),
                                extend=lambda m: tables.setdefault("audit", define_audit_table(m))) as db:
        audit = tables["audit"]
        caller = make_caller("cbo")
        async with db.sessions() as session:
            await record_audit(session, audit, action="member.read", resource_type="member",
                               resource_id="mem_1", caller=caller, detail={"fields": ["eligibility"]})
            # An id whose hex holds a date-shaped run of digits is an id (refusing it failed real postings).
            await record_audit(session, audit, action="remittance_file.posted", resource_type="remittance_file",
                               resource_id="rmf_1", caller=caller,
                               detail={"duplicate_of": "rmf_019aa3f2c20240115e7d2b9f0a1c4d5e6"})
            for detail in ({"member_name": "Maria"}, {"note": "CIN 91234567A"}, {"dob": "x"},
                           {"reason": phi("Maria")}, {"when": "1984-03-09"}):
                with pytest.raises(ValueError):
                    await record_audit(session, audit, action="member.read", resource_type="member",
                                       resource_id="mem_1", caller=caller, detail=detail)  # type: ignore[arg-type]
            await session.commit()
            rows = (await session.execute(select(audit))).all()
        assert [(r.organization_id, r.actor_key_id, r.action, r.detail) for r in rows] == [
            ("org_cbo1", "k1", "member.read", {"fields": ["eligibility"]}),
            ("org_cbo1", "k1", "remittance_file.posted", {"duplicate_of": "rmf_019aa3f2c20240115e7d2b9f0a1c4d5e6"})]
