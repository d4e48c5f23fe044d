"""Every query of the sftp-gateway service, and the unit of work that exposes them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Row, delete, func, insert, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from sftp_gateway.domain.returns import AuthorizationView, EncounterView, MemberOnFile, ReferralLoopView
from sftp_gateway.domain.tabular import Problem
from sftp_gateway.models import (
    authorization_record,
    encounter_record,
    file_problem,
    gateway_file,
    member_homelessness,
    received_content,
    referral_record,
    remote_status,
)
from shared.auth import TenantScope
from shared.scheduler import hold_pending
from shared.uow import UnitOfWork

# Inbound statuses of a file whose content was used (its rows went out, in whole or in part).
USED_STATUSES = ("processed", "partially_accepted")


def aware(moment: datetime | None) -> datetime | None:
    """SQLite returns timezone-aware columns naive; everything written here is UTC."""
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


class FileRepository:
    """The file ledger, its problems and the content-seen index."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, values: Mapping[str, Any]) -> None:
        """Insert a file row."""
        row = {"push_attempts": 0, "encrypted": False, **values}
        await self.session.execute(insert(gateway_file).values(**row))

    async def update(self, file_id: str, **values: Any) -> None:
        """Change columns of a file row."""
        await self.session.execute(update(gateway_file).where(gateway_file.c.id == file_id).values(**values))

    async def get(self, file_id: str) -> Row[Any] | None:
        """One file row, or None."""
        return (await self.session.execute(select(gateway_file).where(gateway_file.c.id == file_id))).first()

    async def search(self, scope: TenantScope, *, mcp_code: str | None = None, kind: str | None = None,
                   direction: str | None = None, status: str | None = None, received_from: datetime | None = None,
                   received_to: datetime | None = None, after: str | None = None,
                   limit: int = 50) -> list[Row[Any]]:
        """Files the caller may see, newest first, after a cursor (a file id)."""
        query = select(gateway_file)
        query = scope.filter(query, mcp_column=gateway_file.c.mcp_code)
        for column, value in ((gateway_file.c.mcp_code, mcp_code), (gateway_file.c.kind, kind),
                              (gateway_file.c.direction, direction), (gateway_file.c.status, status)):
            if value is not None:
                query = query.where(column == value)
        if received_from is not None:
            query = query.where(gateway_file.c.received_at >= received_from)
        if received_to is not None:
            query = query.where(gateway_file.c.received_at < received_to)
        if after is not None:
            query = query.where(gateway_file.c.id < after)
        query = query.order_by(gateway_file.c.id.desc()).limit(limit)
        return list((await self.session.execute(query)).all())

    async def seen(self, mcp_code: str, sha256: str) -> str | None:
        """The file that first brought these bytes from this MCP, or None."""
        return await self.session.scalar(select(received_content.c.file_id).where(
            received_content.c.mcp_code == mcp_code, received_content.c.sha256 == sha256))

    async def mark_seen(self, mcp_code: str, sha256: str, file_id: str, at: datetime) -> None:
        """Remember the bytes (primary key: a concurrent duplicate fails at commit)."""
        await self.session.execute(insert(received_content).values(
            mcp_code=mcp_code, sha256=sha256, file_id=file_id, received_at=at))

    async def add_problems(self, file_id: str, problems: Sequence[Problem], *, start: int = 0) -> None:
        """Store a file's problems (row numbers, columns, rules, messages without values)."""
        if not problems:
            return
        await self.session.execute(insert(file_problem), [
            {"file_id": file_id, "seq": start + i, "row_number": p.row, "column_name": p.column,
             "field": p.field, "rule": p.rule, "message": p.message[:300]} for i, p in enumerate(problems)])

    async def clear_problems(self, file_id: str) -> None:
        """Forget a file's problems (before a reprocess records new ones)."""
        await self.session.execute(delete(file_problem).where(file_problem.c.file_id == file_id))

    async def problems(self, file_id: str, limit: int = 1000) -> list[Row[Any]]:
        """A file's problems in order."""
        return list((await self.session.execute(
            select(file_problem).where(file_problem.c.file_id == file_id)
            .order_by(file_problem.c.seq).limit(limit))).all())

    async def rejected_rows(self, file_id: str) -> set[int]:
        """Row numbers of a file that were quarantined."""
        rows = await self.session.execute(select(file_problem.c.row_number).where(
            file_problem.c.file_id == file_id, file_problem.c.row_number.is_not(None)).distinct())
        return {r[0] for r in rows}

    async def latest_period(self, mcp_code: str, kind: str, *, excluding: str | None = None) -> str | None:
        """The newest reporting period among the MCP's used inbound files of a kind."""
        query = select(func.max(gateway_file.c.reporting_period)).where(
            gateway_file.c.mcp_code == mcp_code, gateway_file.c.kind == kind,
            gateway_file.c.direction == "inbound", gateway_file.c.status.in_(USED_STATUSES))
        if excluding is not None:
            query = query.where(gateway_file.c.id != excluding)
        value: str | None = await self.session.scalar(query)
        return value

    async def arrivals(self, mcp_code: str, kind: str, start: datetime, end: datetime) -> int:
        """Inbound files of a kind received in (start, end] whose content was used: a duplicate, or a file
        quarantined (bad columns, every row bad, cut off), is not the file the hub expected."""
        count = await self.session.scalar(select(func.count()).select_from(gateway_file).where(
            gateway_file.c.mcp_code == mcp_code, gateway_file.c.kind == kind,
            gateway_file.c.direction == "inbound", gateway_file.c.status.in_(USED_STATUSES),
            gateway_file.c.received_at > start, gateway_file.c.received_at <= end))
        return int(count or 0)

    async def outbound_for_source(self, kind: str, source_id: str) -> Row[Any] | None:
        """The outbound file already written for a source (claim batch, inbound file), or None."""
        return (await self.session.execute(select(gateway_file).where(
            gateway_file.c.direction == "outbound", gateway_file.c.kind == kind,
            gateway_file.c.source_id == source_id))).first()

    async def pending_pushes(self, mcp_code: str) -> list[Row[Any]]:
        """Outbound files of an MCP still to be pushed to its server, oldest first."""
        return list((await self.session.execute(select(gateway_file).where(
            gateway_file.c.mcp_code == mcp_code, gateway_file.c.direction == "outbound",
            gateway_file.c.push_status == "pending").order_by(gateway_file.c.id))).all())

    async def count_outbound(self, mcp_code: str, kind: str, since: datetime) -> int:
        """Outbound files of a kind written since a moment (sequence numbers in file names)."""
        count = await self.session.scalar(select(func.count()).select_from(gateway_file).where(
            gateway_file.c.mcp_code == mcp_code, gateway_file.c.kind == kind,
            gateway_file.c.direction == "outbound", gateway_file.c.received_at >= since))
        return int(count or 0)


def _member(row: Any) -> MemberOnFile:
    return MemberOnFile(cin=row.cin, last_name=row.last_name, first_name=row.first_name,
                        birth_date=row.birth_date, middle_name=row.middle_name, sex=row.sex, phone=row.phone,
                        address_line1=row.address_line1, address_line2=row.address_line2, city=row.city,
                        state=row.state, zip=row.zip)


def authorization_view(row: Any) -> AuthorizationView:
    """A projection row as the domain sees it."""
    return AuthorizationView(
        authorization_id=row.authorization_id, mcp_code=row.mcp_code, program=row.program, status=row.status,
        requested_at=aware(row.requested_at) or datetime.now(UTC), member=_member(row),
        referral_id=row.referral_id, cs_code=row.cs_code, pof_codes=tuple(row.pof_codes or ()),
        urgency=row.urgency, decision_due=aware(row.decision_due), period_start=row.period_start,
        period_end=row.period_end, ended_on=row.ended_on, end_reason=row.end_reason,
        mcp_authorization_number=row.mcp_authorization_number)


class ProjectionRepository:
    """The gateway's projections of authorization, referral and encounter events."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def authorization(self, authorization_id: str) -> Row[Any] | None:
        """One authorization row, or None."""
        return (await self.session.execute(select(authorization_record).where(
            authorization_record.c.authorization_id == authorization_id))).first()

    async def add_authorization(self, values: Mapping[str, Any]) -> None:
        """Insert an authorization row."""
        await self.session.execute(insert(authorization_record).values(**values))

    async def update_authorization(self, authorization_id: str, **values: Any) -> bool:
        """Change an authorization row; False if the gateway never saw its request."""
        result = await self.session.execute(update(authorization_record).where(
            authorization_record.c.authorization_id == authorization_id).values(**values))
        return bool(getattr(result, "rowcount", 0))

    async def authorizations(self, mcp_code: str) -> list[AuthorizationView]:
        """Every authorization of an MCP whose member the gateway knows, from its request or, for an MCP
        assignment, its approval (a decision kept before its request names no member yet: nothing to report)."""
        rows = await self.session.execute(select(authorization_record).where(
            authorization_record.c.mcp_code == mcp_code, authorization_record.c.cin.is_not(None)))
        return [authorization_view(r) for r in rows]

    async def unsent_requests(self, mcp_code: str) -> list[AuthorizationView]:
        """Open requests of an MCP not yet carried by a referral file."""
        rows = await self.session.execute(select(authorization_record).where(
            authorization_record.c.mcp_code == mcp_code, authorization_record.c.status == "requested",
            authorization_record.c.referral_file_id.is_(None), authorization_record.c.cin.is_not(None)))
        return [authorization_view(r) for r in rows]

    async def mark_sent(self, authorization_ids: Iterable[str], file_id: str) -> None:
        """Record the referral file that carried these requests."""
        await self.session.execute(update(authorization_record).where(
            authorization_record.c.authorization_id.in_(list(authorization_ids))).values(referral_file_id=file_id))

    async def referral(self, referral_id: str) -> Row[Any] | None:
        """One referral row, or None."""
        return (await self.session.execute(select(referral_record).where(
            referral_record.c.referral_id == referral_id))).first()

    async def save_referral(self, values: Mapping[str, Any]) -> None:
        """Insert or replace a referral's latest state."""
        if await self.referral(values["referral_id"]) is None:
            await self.session.execute(insert(referral_record).values(**values))
        else:
            await self.session.execute(update(referral_record).where(
                referral_record.c.referral_id == values["referral_id"]).values(**values))

    async def referral_loops(self, referral_ids: Iterable[str]) -> dict[str, ReferralLoopView]:
        """Closed-loop state by referral id."""
        ids = [i for i in set(referral_ids) if i]
        if not ids:
            return {}
        rows = await self.session.execute(select(referral_record).where(referral_record.c.referral_id.in_(ids)))
        return {r.referral_id: ReferralLoopView(referral_id=r.referral_id, status=r.status,
                                                changed_at=aware(r.changed_at) or datetime.now(UTC),
                                                closure_reason=r.closure_reason) for r in rows}

    async def add_encounter(self, values: Mapping[str, Any]) -> bool:
        """Insert an encounter once; False if it was already there."""
        exists = await self.session.scalar(select(encounter_record.c.encounter_id).where(
            encounter_record.c.encounter_id == values["encounter_id"]))
        if exists is not None:
            return False
        await self.session.execute(insert(encounter_record).values(**values))
        return True

    async def encounters(self, mcp_code: str, up_to: date) -> list[EncounterView]:
        """An MCP's encounters with dates of service up to a day."""
        rows = await self.session.execute(select(encounter_record).where(
            encounter_record.c.mcp_code == mcp_code, encounter_record.c.service_date <= up_to))
        return [EncounterView(encounter_id=r.encounter_id, authorization_id=r.authorization_id, program=r.program,
                              service_date=r.service_date, hcpcs=r.hcpcs, modifiers=tuple(r.modifiers or ()),
                              units=Decimal(r.units), outreach_attempt=bool(r.outreach_attempt)) for r in rows]

    async def save_homelessness(self, mcp_code: str, flags: Mapping[str, bool], *, period: str, file_id: str,
                                at: datetime) -> None:
        """Keep each member's homelessness flag from a file unless a newer one (a later reporting period, or the
        same period processed later) is already kept.

        One upsert per chunk, so two files of the same MCP processed at once never collide on a member's row:
        the newer of the two stands whichever commits first."""
        t = member_homelessness
        dialect = self.session.get_bind().dialect.name
        upsert = (postgresql_insert if dialect == "postgresql" else sqlite_insert)(t)
        statement = upsert.on_conflict_do_update(
            index_elements=[t.c.mcp_code, t.c.cin],
            set_={"homeless": upsert.excluded.homeless, "reporting_period": upsert.excluded.reporting_period,
                  "observed_at": upsert.excluded.observed_at, "file_id": upsert.excluded.file_id},
            where=tuple_(t.c.reporting_period, t.c.observed_at)
            <= tuple_(upsert.excluded.reporting_period, upsert.excluded.observed_at))
        rows = [{"mcp_code": mcp_code, "cin": cin, "homeless": homeless, "reporting_period": period,
                 "observed_at": at, "file_id": file_id} for cin, homeless in flags.items()]
        for start in range(0, len(rows), 1000):
            await self.session.execute(statement, rows[start:start + 1000])

    async def homelessness(self, mcp_code: str) -> dict[str, bool]:
        """The newest homelessness flag kept per member CIN of an MCP."""
        rows = await self.session.execute(select(member_homelessness.c.cin, member_homelessness.c.homeless).where(
            member_homelessness.c.mcp_code == mcp_code))
        return {r.cin: bool(r.homeless) for r in rows}


class RemoteRepository:
    """Client-mode heartbeat per MCP."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, mcp_code: str) -> Row[Any] | None:
        """The MCP's remote status row, or None."""
        return (await self.session.execute(select(remote_status).where(remote_status.c.mcp_code == mcp_code))).first()

    async def all(self) -> list[Row[Any]]:
        """Every remote status row."""
        return list((await self.session.execute(select(remote_status).order_by(remote_status.c.mcp_code))).all())

    async def save(self, mcp_code: str, **values: Any) -> None:
        """Insert or update an MCP's status."""
        if await self.get(mcp_code) is None:
            row = {"consecutive_failures": 0, "files_fetched": 0, "files_pushed": 0, **values}
            await self.session.execute(insert(remote_status).values(mcp_code=mcp_code, **row))
        else:
            await self.session.execute(update(remote_status).where(remote_status.c.mcp_code == mcp_code)
                                       .values(**values))


class SftpGatewayUnitOfWork(UnitOfWork):
    """One transaction of the sftp-gateway service; repositories are built on its session."""

    files: FileRepository
    projections: ProjectionRepository
    remotes: RemoteRepository

    def _open(self) -> None:
        self.files = FileRepository(self.session)
        self.projections = ProjectionRepository(self.session)
        self.remotes = RemoteRepository(self.session)

    async def hold_pending_timer(self, kind: str, subject: str, *, now: datetime) -> bool:
        """True if a pending timer of this kind and subject will fire only after this transaction commits (it is
        held until then: shared.scheduler.hold_pending)."""
        return await hold_pending(self.session, self.tables, kind, subject, now=now) is not None

