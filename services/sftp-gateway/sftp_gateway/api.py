"""HTTP routes of the sftp-gateway service: files, their content and reprocessing, generation, profiles,
client-mode heartbeat. MCP callers see only their own files (organization code = MCP code)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from sftp_gateway.models import audit_event
from sftp_gateway.ports import GatewayPorts
from sftp_gateway.remote import RemoteExchange
from sftp_gateway.repository import SftpGatewayUnitOfWork, aware
from sftp_gateway.service import GatewayError, generate_return_file, reprocess
from sftp_gateway.timers import ensure_timers
from shared.app import runtime_of
from shared.auth import Caller, Tenant, record_audit, require_scopes
from shared.contracts.gateway import FileKind
from shared.db import read_one_snapshot
from shared.filestore import SCHEME, FileNotStored
from shared.idempotency import IdempotencyKey, hash_request, idempotent
from shared.problems import FieldError, Problem, problem_responses, validation_problem
from shared.runtime import ServiceRuntime

SERVICE = "sftp-gateway"
router = APIRouter(tags=["sftp-gateway"])
Reader = Annotated[Caller, Depends(require_scopes("sftp-gateway:read"))]
Writer = Annotated[Caller, Depends(require_scopes("sftp-gateway:write"))]
FileId = Annotated[str, Path(pattern=r"^fil_[0-9a-f]{32}$", description="A gateway file id.")]


def _runtime(request: Request) -> ServiceRuntime:
    return runtime_of(request, SERVICE)


def _ports(runtime: ServiceRuntime) -> GatewayPorts:
    ports: GatewayPorts = runtime.ports["gateway"]
    return ports


def _uow(runtime: ServiceRuntime) -> SftpGatewayUnitOfWork:
    uow = runtime.uow()
    assert isinstance(uow, SftpGatewayUnitOfWork)
    return uow


def _problem(error: GatewayError) -> Problem:
    titles = {404: "Not found", 409: "Conflict", 422: "Request validation failed", 503: "Unavailable"}
    return Problem(error.status, error.slug, titles.get(error.status, "Error"), error.message)


def _hub_only(caller: Caller) -> None:
    if not caller.is_hub:
        raise Problem(403, "hub-only", "Hub only", "Only the hub may do this.")


class FileView(BaseModel):
    """A file in the ledger (no member data: names are the MCP's file names, counts and rules)."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    mcp_code: str
    direction: Literal["inbound", "outbound"]
    kind: str | None
    status: str
    name: str
    source: str
    source_id: str | None
    size: int
    sha256: str
    content_sha256: str | None
    encrypted: bool
    reporting_period: str | None
    rows_total: int | None
    rows_accepted: int | None
    rows_rejected: int | None
    reason: str | None
    duplicate_of: str | None
    path: str | None
    push_status: str | None
    received_at: datetime
    processed_at: datetime | None
    retain_until: datetime | None


def _view(row: Any) -> FileView:
    data = dict(row._mapping)
    for key in ("received_at", "processed_at", "retain_until", "pushed_at"):
        data[key] = aware(data.get(key))
    return FileView.model_validate(data)


class FilePage(BaseModel):
    items: list[FileView]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next (older) page; null at the end.")


class ProblemView(BaseModel):
    row: int | None = Field(description="Physical line of the file (1 = first line); null: the whole file.")
    column: str | None
    field: str | None
    rule: str
    message: str


class FileDetail(FileView):
    problems: list[ProblemView]
    problems_listed: int


def _bound(value: date | datetime | None, end: bool) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.combine(value, time.max if end else time.min, UTC)


@router.get("/v1/files", response_model=FilePage, summary="List files in and out",
            responses=problem_responses(401, 403, 422))
async def list_files(
    request: Request, caller: Reader, scope: Tenant,
    mcp_code: Annotated[str | None, Query(max_length=50)] = None,
    kind: FileKind | None = None,
    direction: Literal["inbound", "outbound"] | None = None,
    status: Annotated[str | None, Query(max_length=30)] = None,
    received_from: Annotated[date | datetime | None, Query(description="Inclusive (a date: from its start, UTC)")]
    = None,
    received_to: Annotated[date | datetime | None, Query(description="Inclusive (a date: to its end, UTC)")] = None,
    cursor: Annotated[str | None, Query(pattern=r"^fil_[0-9a-f]{32}$")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> FilePage:
    """Newest first; an MCP caller sees its own files only."""
    start, end = _bound(received_from, False), _bound(received_to, True)
    if start and end and start > end:
        raise validation_problem([FieldError(field="query.received_to", rule="after_received_from",
                                             message="received_to must not be before received_from")])
    async with _uow(_runtime(request)) as uow:
        rows = await uow.files.search(scope, mcp_code=mcp_code, kind=kind.value if kind else None,
                                    direction=direction, status=status, received_from=start,
                                    received_to=end, after=cursor, limit=limit + 1)
    items = [_view(r) for r in rows[:limit]]
    return FilePage(items=items, next_cursor=items[-1].id if len(rows) > limit else None)


@router.get("/v1/files/{file_id}", response_model=FileDetail, summary="A file with its parse results",
            responses=problem_responses(401, 403, 404))
async def get_file(request: Request, file_id: FileId, caller: Reader, scope: Tenant,
                   problems_limit: Annotated[int, Query(ge=0, le=10_000)] = 1000) -> FileDetail:
    """Metadata, row counts, and the problems with row numbers and rules."""
    async with _uow(_runtime(request)) as uow:
        await read_one_snapshot(uow.session)  # the file's counts and its problems as of one moment
        row = await uow.files.get(file_id)
        if row is None:
            raise Problem(404, "file-not-found", "File not found")
        scope.require(mcp_code=row.mcp_code, resource="file")
        problems = await uow.files.problems(file_id, limit=problems_limit)
    listed = [ProblemView(row=p.row_number, column=p.column_name, field=p.field, rule=p.rule, message=p.message)
              for p in problems]
    return FileDetail(**_view(row).model_dump(), problems=listed, problems_listed=len(listed))


@router.get("/v1/files/{file_id}/content", summary="The file's bytes (audited)",
            responses={200: {"content": {"application/octet-stream": {}}}, **problem_responses(401, 403, 404)})
async def get_file_content(
    request: Request, file_id: FileId, caller: Reader, scope: Tenant,
    variant: Annotated[Literal["plain", "transmitted"], Query(
        description="plain: decrypted content; transmitted: the bytes as they travelled")] = "plain",
) -> Response:
    """The stored bytes; every read is written to the audit trail (files carry PHI)."""
    runtime = _runtime(request)
    async with _uow(runtime) as uow:
        row = await uow.files.get(file_id)
        if row is None:
            raise Problem(404, "file-not-found", "File not found")
        scope.require(mcp_code=row.mcp_code, resource="file")
        digest = row.content_sha256 if variant == "plain" and row.content_sha256 else row.sha256
        try:
            content = _ports(runtime).files.get(SCHEME + digest)
        except FileNotStored:
            raise Problem(404, "file-content-not-stored", "File content not stored",
                          "The archive no longer holds this file (retention).") from None
        await record_audit(uow.session, audit_event, action="file.content_read", resource_type="gateway_file",
                           resource_id=file_id, caller=caller,
                           detail={"mcp_code": row.mcp_code, "kind": row.kind, "variant": variant})
        await uow.commit()
    download = row.name if variant == "transmitted" or not row.encrypted else row.name.rsplit(".", 1)[0]
    return Response(content, media_type="application/octet-stream",
                    headers={"Content-Disposition": f'attachment; filename="{download}"',
                             "X-Content-SHA256": digest})


@router.post("/v1/files/{file_id}/reprocess", response_model=FileView, summary="Run a quarantined file again",
             responses=problem_responses(401, 403, 404, 409, 422))
async def reprocess_file(request: Request, file_id: FileId, caller: Writer, scope: Tenant,
                         key: IdempotencyKey) -> Response:
    """Parse the archived bytes again with the profile now in force (after an MCP or profile fix); rows
    accepted before are not published twice."""
    _hub_only(caller)
    runtime = _runtime(request)
    fingerprint = await hash_request(request)
    async with _uow(runtime) as uow:
        row = await uow.files.get(file_id)
        if row is None:
            raise Problem(404, "file-not-found", "File not found")
        scope.require(mcp_code=row.mcp_code, resource="file")

        async def produce() -> tuple[int, Any]:
            try:
                await reprocess(uow, _ports(runtime), file_id)
            except GatewayError as exc:
                raise _problem(exc) from None
            await record_audit(uow.session, audit_event, action="file.reprocessed", resource_type="gateway_file",
                               resource_id=file_id, caller=caller, detail={"mcp_code": row.mcp_code})
            fresh = await uow.files.get(file_id)
            return 200, _view(fresh).model_dump(mode="json")

        result = await idempotent(uow.session, uow.tables, caller, key, fingerprint, produce)
        await uow.commit()
    return result.to_response()


class GenerateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mcp_code: str = Field(max_length=50)
    kind: Literal["rtf", "otf"]
    reporting_period: str = Field(pattern=r"^[0-9]{4}-(0[1-9]|1[0-2])$", description="YYYY-MM")


class GeneratedView(BaseModel):
    file: FileView
    rows: int
    skipped_unattributed: int = Field(description="OTF: outreach encounters without an authorization to name "
                                                  "the member (not reported).")


@router.post("/v1/files/generate", response_model=GeneratedView, status_code=201,
             summary="Generate an RTF or OTF now", responses=problem_responses(401, 403, 404, 409, 422))
async def generate_file(request: Request, body: GenerateRequest, caller: Writer, key: IdempotencyKey) -> Response:
    """Write the MCP's RTF or OTF for a reporting period into its outbound/ (and remote) now."""
    _hub_only(caller)
    runtime = _runtime(request)
    fingerprint = await hash_request(request)
    async with _uow(runtime) as uow:
        async def produce() -> tuple[int, Any]:
            try:
                made = await generate_return_file(uow, FileKind(body.kind), body.mcp_code, body.reporting_period,
                                                  source="api")
            except GatewayError as exc:
                raise _problem(exc) from None
            row = await uow.files.get(made.file_id)
            await record_audit(uow.session, audit_event, action="file.generated", resource_type="gateway_file",
                               resource_id=made.file_id, caller=caller,
                               detail={"mcp_code": body.mcp_code, "kind": body.kind, "rows": made.rows})
            return 201, GeneratedView(file=_view(row), rows=made.rows,
                                      skipped_unattributed=made.skipped).model_dump(mode="json")

        result = await idempotent(uow.session, uow.tables, caller, key, fingerprint, produce)
        await uow.commit()
    return result.to_response()


@router.get("/v1/profiles", summary="MCP profiles in force", responses=problem_responses(401, 403))
async def list_profiles(request: Request, caller: Reader) -> dict[str, Any]:
    """Every profile (an MCP caller: its own)."""
    ports = _ports(_runtime(request))
    profiles = [p for p in ports.profiles.all() if caller.is_hub or p.mcp_code == caller.organization_code]
    return {"version": ports.profiles.version, "items": [p.public_view() for p in profiles]}


@router.get("/v1/profiles/{mcp_code}", summary="One MCP's profile", responses=problem_responses(401, 403, 404))
async def get_profile(request: Request, mcp_code: str, caller: Reader, scope: Tenant) -> dict[str, Any]:
    """The profile of one MCP."""
    profile = _ports(_runtime(request)).profiles.get(mcp_code)
    if profile is None or not scope.allows(mcp_code=mcp_code):
        raise Problem(404, "profile-not-found", "Profile not found")
    return profile.public_view()


@router.post("/v1/profiles/reload", summary="Reload the profile files", responses=problem_responses(401, 403, 422))
async def reload_profiles(request: Request, caller: Writer) -> dict[str, Any]:
    """Read the profiles folder again; on any invalid file the profiles in force stay and the errors are listed
    (422). Schedules follow the new profiles."""
    _hub_only(caller)
    runtime = _runtime(request)
    ports = _ports(runtime)
    result = ports.profiles.reload()
    if not result.ok:
        raise Problem(422, "profile-invalid", "Profiles not reloaded",
                      "At least one profile file is invalid; the profiles in force are kept.",
                      errors=[FieldError(field="profiles", rule="profile", message=e[:300]) for e in result.errors])
    async with _uow(runtime) as uow:
        scheduled = await ensure_timers(uow, ports.profiles.all(), ports.clock.now())
        await uow.commit()
    for part in runtime.background:
        jail_home = getattr(part, "jail", None)
        if jail_home is not None:
            for profile in ports.profiles.all():
                jail_home.home(profile.account.username)
    return {"version": result.version, "loaded": result.loaded, "timers_scheduled": scheduled}


class RemoteView(BaseModel):
    mcp_code: str
    host: str
    last_attempt_at: datetime | None
    last_success_at: datetime | None
    consecutive_failures: int
    last_error_type: str | None
    files_fetched: int
    files_pushed: int
    healthy: bool


@router.get("/v1/remotes", response_model=list[RemoteView], summary="Client-mode heartbeat per MCP",
            responses=problem_responses(401, 403))
async def list_remotes(request: Request, caller: Reader, scope: Tenant) -> list[RemoteView]:
    """Last successful poll and failures in a row, for every MCP polled in client mode."""
    runtime = _runtime(request)
    ports = _ports(runtime)
    async with _uow(runtime) as uow:
        rows = {r.mcp_code: r for r in await uow.remotes.all()}
    views = []
    for profile in ports.profiles.all():
        if profile.remote is None or not scope.allows(mcp_code=profile.mcp_code):
            continue
        row = rows.get(profile.mcp_code)
        last_success = aware(row.last_success_at) if row else None
        failures = int(row.consecutive_failures) if row else 0
        stale = last_success is None or (ports.clock.now() - last_success).total_seconds() > \
            3 * profile.remote.poll_interval_seconds
        views.append(RemoteView(mcp_code=profile.mcp_code, host=profile.remote.host,
                                last_attempt_at=aware(row.last_attempt_at) if row else None,
                                last_success_at=last_success, consecutive_failures=failures,
                                last_error_type=row.last_error_type if row else None,
                                files_fetched=int(row.files_fetched) if row else 0,
                                files_pushed=int(row.files_pushed) if row else 0,
                                healthy=failures == 0 and not stale))
    return views


@router.post("/v1/remotes/{mcp_code}/poll", summary="Poll an MCP's server now",
             responses=problem_responses(401, 403, 404))
async def poll_remote(request: Request, mcp_code: str, caller: Writer) -> dict[str, Any]:
    """Fetch and push for one MCP in client mode now (ops, after fixing a connection)."""
    _hub_only(caller)
    runtime = _runtime(request)
    exchange = next((p for p in runtime.background if isinstance(p, RemoteExchange)), None)
    profile = _ports(runtime).profiles.get(mcp_code)
    if exchange is None or profile is None or profile.remote is None:
        raise Problem(404, "remote-not-found", "MCP not in client mode")
    result = await exchange.poll(mcp_code)
    return {"mcp_code": mcp_code, "ok": result.ok, "fetched": result.fetched, "pushed": result.pushed,
            "attempts": result.attempts, "error_type": result.error_type}
