"""Idempotency-Key for REST writes: the response is stored in the route's own transaction and replayed.

Use in a POST route, inside the unit of work that does the write:

    result = await idempotent(uow.session, uow.tables, caller, key, await hash_request(request),
                              lambda: service.submit_referral(uow, body, caller))
    await uow.commit()          # the change, its events and the stored response commit together
    return result.to_response()

The record row is claimed (INSERT ... ON CONFLICT DO NOTHING) before the work runs, so a concurrent duplicate
blocks on its primary key (PostgreSQL) or on the write lock (SQLite) until the first request commits, then
replays its response; if the first one rolls back, the duplicate does the work itself. A failed request (an
exception, including a Problem) stores nothing: its transaction rolls back with the record, and a retry
with the same key runs again.

A hot route that writes its change in one statement may instead store the answer with the change
(`record_values`, built before the write): a plain INSERT of the record, so a taken key aborts the whole write
(`IdempotencyKeyTaken`, `is_key_taken`); the route rolls back and answers `stored_response`. A concurrent
duplicate then waits on the record's primary key as above. A request that fails before writing checks
`stored_response` too, so a retry of a stored request replays whatever the rules say today.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, Header, Request, Response
from fastapi.encoders import jsonable_encoder
from sqlalchemy import delete, insert, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from shared.auth import Caller
from shared.platform_tables import PlatformTables
from shared.problems import FieldError, Problem

IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_KEY_LENGTH = 255
_IN_PROGRESS = 0  # status_code of a record whose response is not stored yet
_LOCK_NOT_AVAILABLE = "55P03"  # PostgreSQL: lock_timeout expired while waiting for the first request
_UNIQUE_VIOLATION = "23505"
KEY_CONSTRAINT = "pk_idempotency_record"  # the primary key (organization_id, key), as migrations name it

ProducedResponse = tuple[int, Any] | tuple[int, Any, Mapping[str, str]]


@dataclass(frozen=True)
class IdempotentResponse:
    """The response of an idempotent request: freshly produced, or replayed from the stored record."""

    status_code: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    replayed: bool = False

    def json(self) -> Any:
        """The body decoded as JSON (None for an empty body)."""
        return json.loads(self.body) if self.body else None

    def to_response(self) -> Response:
        """A response with the stored status, body and headers; `Idempotent-Replayed: true` when replayed."""
        headers = {k: v for k, v in self.headers.items() if k.lower() != "content-type"}
        if self.replayed:
            headers[REPLAYED_HEADER] = "true"
        media_type = self.headers.get("content-type", "application/json")
        return Response(content=self.body, status_code=self.status_code, headers=headers,
                        media_type=media_type)


_KEY_DESCRIPTION = "Client-chosen key (1-255 chars) that makes a retry of this request return the first response."


def validate_idempotency_key(key: str | None) -> str | None:
    """The key if usable (None if absent); raises a 400 problem if empty or longer than 255 characters."""
    if key is None:
        return None
    if not key.strip() or len(key) > MAX_KEY_LENGTH:
        raise Problem(400, "invalid-idempotency-key", "Invalid Idempotency-Key",
                      f"The {IDEMPOTENCY_HEADER} header must be 1 to {MAX_KEY_LENGTH} characters.",
                      errors=[FieldError(field=f"header.{IDEMPOTENCY_HEADER}", rule="length",
                                         message=f"Must be 1 to {MAX_KEY_LENGTH} characters.")])
    return key


async def idempotency_key(
    key: Annotated[str | None, Header(alias=IDEMPOTENCY_HEADER, description=_KEY_DESCRIPTION)] = None,
) -> str | None:
    """FastAPI dependency: the request's Idempotency-Key header (None if absent); 400 problem if invalid."""
    return validate_idempotency_key(key)


IdempotencyKey = Annotated[str | None, Depends(idempotency_key)]


def idempotency_key_of(request: Request) -> str | None:
    """What `IdempotencyKey` gives, read from the request directly (a route too hot for FastAPI's dependency
    resolution); the route documents the header with `IDEMPOTENCY_KEY_PARAMETER` in `openapi_extra`."""
    return validate_idempotency_key(request.headers.get(IDEMPOTENCY_HEADER))


# The OpenAPI parameter `IdempotencyKey` documents.
IDEMPOTENCY_KEY_PARAMETER: dict[str, Any] = {
    "name": IDEMPOTENCY_HEADER, "in": "header", "required": False,
    "description": _KEY_DESCRIPTION,
    "schema": {"anyOf": [{"type": "string"}, {"type": "null"}], "description": _KEY_DESCRIPTION,
               "title": IDEMPOTENCY_HEADER},
}


def request_hash(method: str, path: str, body: bytes) -> str:
    """SHA-256 hex of method, path and body; a JSON body is canonicalised (key order, whitespace)."""
    if body:
        try:
            return json_request_hash(method, path, json.loads(body))
        except (ValueError, UnicodeDecodeError):
            pass
    return _digest(method, path, body)


def json_request_hash(method: str, path: str, document: Any) -> str:
    """`request_hash` of a JSON body the route has already parsed (the same value, without parsing it again)."""
    return _digest(method, path, json.dumps(document, sort_keys=True, separators=(",", ":"),
                                            ensure_ascii=False).encode())


def _digest(method: str, path: str, canonical: bytes) -> str:
    digest = hashlib.sha256()
    digest.update(method.upper().encode() + b"\n" + path.encode() + b"\n")
    digest.update(canonical)
    return digest.hexdigest()


async def hash_request(request: Request) -> str:
    """`request_hash` of a Starlette request (its body is cached, so reading it again is free)."""
    return request_hash(request.method, request.url.path, await request.body())


def _encode(status: int, body: Any) -> bytes:
    if status in (204, 304) or body is None:
        return b""
    if isinstance(body, bytes):
        return body
    # The same rendering as FastAPI's JSONResponse, so a replay is byte-identical to the first answer.
    return json.dumps(jsonable_encoder(body), ensure_ascii=False, allow_nan=False, indent=None,
                      separators=(",", ":")).encode()


def _replay(row: Any, fingerprint: str) -> IdempotentResponse:
    if row.request_hash != fingerprint:
        raise Problem(422, "idempotency-key-reuse", "Idempotency-Key reused",
                      f"This {IDEMPOTENCY_HEADER} was used for a different request; use a new key.",
                      errors=[FieldError(field=f"header.{IDEMPOTENCY_HEADER}", rule="idempotency_key_reuse",
                                         message="The key was already used with a different request body.")])
    if row.status_code == _IN_PROGRESS:
        raise _in_progress()
    return IdempotentResponse(status_code=row.status_code, body=bytes(row.response_body),
                              headers=dict(row.response_headers or {}), replayed=True)


def key_in_progress() -> Problem:
    """409 for a key whose first request is still running (retry shortly)."""
    return _in_progress()


def _in_progress() -> Problem:
    return Problem(409, "idempotency-request-in-progress", "Request in progress",
                   f"A request with this {IDEMPOTENCY_HEADER} is still being processed; retry shortly.",
                   headers={"Retry-After": "1"})


async def idempotent(session: AsyncSession, tables: PlatformTables, caller: Caller, key: str | None,
                     request_hash: str,
                     produce: Callable[[], Awaitable[ProducedResponse]]) -> IdempotentResponse:
    """Run `produce` once per (organization, key) and store its response in the session's transaction.

    `produce` returns (status, JSON-able body) or (status, body, headers). The caller commits. Without a key
    the work just runs. Raises Problem: 400 bad key, 422 key reused for another request, 409 still running.
    """
    if key is None:
        return _produced(*_unpack(await produce()))
    key = validate_idempotency_key(key)
    table = tables.idempotency_record
    where = (table.c.organization_id == caller.organization_id, table.c.key == key)

    async def load() -> Any:
        return (await session.execute(
            select(table.c.request_hash, table.c.status_code, table.c.response_body, table.c.response_headers)
            .where(*where))).first()

    # One statement claims the key: INSERT ... ON CONFLICT DO NOTHING. A concurrent first request holding the
    # key makes it wait for that commit (or rollback), exactly like the primary key did; a conflict means the
    # key is taken and the stored answer is replayed. No pre-read and no savepoint: 1 round trip, not 4.
    dialect = session.get_bind().dialect.name
    claim = (postgresql_insert if dialect == "postgresql" else sqlite_insert)(table).on_conflict_do_nothing(
        index_elements=[table.c.organization_id, table.c.key]).returning(table.c.key)
    try:
        claimed = (await session.execute(claim, {
            "organization_id": caller.organization_id, "key": key, "request_hash": request_hash,
            "status_code": _IN_PROGRESS, "response_body": b"", "response_headers": {},
            "created_at": datetime.now(UTC)})).first()
    except OperationalError as exc:
        if getattr(exc.orig, "sqlstate", None) == _LOCK_NOT_AVAILABLE:
            raise _in_progress() from None
        raise
    if claimed is None:
        existing = await load()
        if existing is None:  # the holder's row vanished (purged) between the two statements: retry later
            raise _in_progress()
        return _replay(existing, request_hash)

    status, body, headers = _unpack(await produce())
    response = _produced(status, body, headers)
    await session.execute(update(table).where(*where).values(
        status_code=response.status_code, response_body=response.body, response_headers=response.headers))
    return response


class IdempotencyKeyTaken(Exception):
    """The key already has a record (a retry, or a concurrent request that committed first): the write that
    tried to store another one must be rolled back, and the stored answer given instead."""


def is_key_taken(error: BaseException) -> bool:
    """True if a driver error is the record's primary key refusing a second record for the key."""
    return getattr(error, "sqlstate", None) == _UNIQUE_VIOLATION and \
        getattr(error, "constraint_name", None) == KEY_CONSTRAINT


def record_values(caller: Caller, key: str, request_hash: str, response: IdempotentResponse) -> dict[str, Any]:
    """The record that stores `response` for the key, for a route that writes it with its change."""
    return {"organization_id": caller.organization_id, "key": key, "request_hash": request_hash,
            "status_code": response.status_code, "response_body": response.body,
            "response_headers": response.headers, "created_at": datetime.now(UTC)}


async def store_response(session: AsyncSession, tables: PlatformTables, values: Mapping[str, Any]) -> None:
    """INSERT a record built by `record_values` in the session's transaction; raises IdempotencyKeyTaken if the
    key has one (after waiting for a concurrent first request to commit)."""
    try:
        await session.execute(insert(tables.idempotency_record).values(**values))
    except IntegrityError:
        raise IdempotencyKeyTaken() from None


async def stored_response(session: AsyncSession, tables: PlatformTables, caller: Caller, key: str,
                          request_hash: str) -> IdempotentResponse | None:
    """The stored answer for the key, replayed; None if the key has no record.

    Raises Problem: 422 when the key was used for a different request, 409 while its first request runs.
    """
    table = tables.idempotency_record
    row = (await session.execute(
        select(table.c.request_hash, table.c.status_code, table.c.response_body, table.c.response_headers)
        .where(table.c.organization_id == caller.organization_id, table.c.key == key))).first()
    return None if row is None else _replay(row, request_hash)


def produced_response(status: int, body: Any, headers: Mapping[str, str] | None = None) -> IdempotentResponse:
    """A fresh answer (JSON-able data or ready bytes) as it is sent and stored."""
    return _produced(status, body, headers or {})


def _unpack(result: ProducedResponse) -> tuple[int, Any, Mapping[str, str]]:
    if len(result) == 3:
        return result[0], result[1], result[2]
    return result[0], result[1], {}


def _produced(status: int, body: Any, headers: Mapping[str, str]) -> IdempotentResponse:
    stored = {k.lower(): v for k, v in headers.items()}
    stored.setdefault("content-type", "application/json")
    return IdempotentResponse(status_code=status, body=_encode(status, body), headers=stored, replayed=False)


async def purge_idempotency_records(session: AsyncSession, tables: PlatformTables, *,
                                    older_than: datetime) -> int:
    """Delete records created before `older_than` (keys are kept e.g. 24 h); returns how many went."""
    table = tables.idempotency_record
    result = await session.execute(delete(table).where(table.c.created_at < older_than))
    return int(getattr(result, "rowcount", 0) or 0)
