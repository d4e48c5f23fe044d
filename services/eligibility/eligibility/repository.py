"""Every query of the eligibility service, and the unit of work that exposes them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Row, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from eligibility import models
from eligibility.domain.enrollment import MemberState, ProgramFlag, Source, Span, Status
from eligibility.domain.rules import Program, ServicePeriod
from eligibility.domain.schedule import PACIFIC, AuthorizedPeriod
from eligibility.settings import EligibilitySettings
from shared.filestore import FileStore
from shared.ids import uuid7
from shared.scheduler import Clock, SystemClock, TimerStatus
from shared.uow import UnitOfWork

_CHUNK = 500  # keeps IN lists well below SQLite's and asyncpg's parameter limits

# ISA13 is 9 digits and an MCP sees one ISA13 space per sender id (ISA06); a hub may give the 270 and the 837P
# the same sender id, so the two senders split the space: claims sends 1..499,999,999 (services/claims
# repository.py, LAST_INTERCHANGE_NUMBER), eligibility sends 500,000,000..999,999,999 and wraps inside it.
FIRST_INTERCHANGE_NUMBER = 500_000_000
LAST_INTERCHANGE_NUMBER = 999_999_999


def _chunks(values: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start:start + _CHUNK]


def aware(value: datetime | None) -> datetime | None:
    """A timestamp read back from the database as UTC (SQLite drops the offset; everything is written in UTC)."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class MemberRepository:
    """The member registry: demographics, CIN aliases, concluded status, spans and program flags."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def find_by_cin(self, cin: str) -> Row[Any] | None:
        """The member a CIN (or an alias CIN) belongs to, or None."""
        found = await self.find_many_by_cin([cin])
        return found.get(cin)

    async def find_many_by_cin(self, cins: Sequence[str]) -> dict[str, Row[Any]]:
        """Members by CIN, aliases resolved; CINs with no member are absent."""
        m, alias = models.member, models.cin_alias
        found: dict[str, Row[Any]] = {}
        unique = sorted(set(cins))
        for chunk in _chunks(unique):
            for row in (await self.session.execute(select(m).where(m.c.cin.in_(chunk)))).all():
                found[row.cin] = row
        missing = [c for c in unique if c not in found]
        for chunk in _chunks(missing):
            rows = (await self.session.execute(
                select(alias.c.cin.label("alias_cin"), m).join(m, m.c.member_id == alias.c.member_id)
                .where(alias.c.cin.in_(chunk)))).all()
            for row in rows:
                found[row.alias_cin] = row
        return found

    async def get(self, member_id: str) -> Row[Any] | None:
        """A member by internal id, or None."""
        return (await self.session.execute(
            select(models.member).where(models.member.c.member_id == member_id))).first()

    async def get_many(self, member_ids: Sequence[str]) -> dict[str, Row[Any]]:
        """Members by internal id; unknown ids are absent."""
        m = models.member
        found: dict[str, Row[Any]] = {}
        for chunk in _chunks(sorted(set(member_ids))):
            for row in (await self.session.execute(select(m).where(m.c.member_id.in_(chunk)))).all():
                found[row.member_id] = row
        return found

    async def ensure(self, member_id: str, cin: str, now: datetime, **demographics: Any) -> None:
        """Create the member if new, else fill in the demographics given (a None value keeps what is known)."""
        m = models.member
        values = {k: v for k, v in demographics.items() if v is not None}
        existing = await self.get(member_id)
        if existing is None:
            await self.session.execute(insert(m).values(
                member_id=member_id, cin=cin, status=Status.UNKNOWN.value, created_at=now, updated_at=now,
                **values))
        elif any(getattr(existing, k) != v for k, v in values.items()):
            await self.session.execute(update(m).where(m.c.member_id == member_id).values(updated_at=now, **values))

    async def add_alias(self, alias_cin: str, member_id: str, now: datetime) -> bool:
        """Record an older CIN of a member; False if the alias is already recorded."""
        a = models.cin_alias
        exists = (await self.session.execute(select(a.c.member_id).where(a.c.cin == alias_cin))).first()
        if exists is not None:
            return False
        await self.session.execute(insert(a).values(cin=alias_cin, member_id=member_id, created_at=now))
        return True

    async def aliases(self, member_id: str) -> list[str]:
        """The older CINs recorded for a member."""
        a = models.cin_alias
        rows = await self.session.execute(select(a.c.cin).where(a.c.member_id == member_id).order_by(a.c.cin))
        return [r.cin for r in rows]

    async def load_states(self, member_ids: Sequence[str]) -> dict[str, MemberState]:
        """The enrollment state of each member (unknown members get an empty state)."""
        ids = sorted(set(member_ids))
        rows = await self.get_many(ids)
        spans: dict[str, list[Span]] = {i: [] for i in ids}
        flags: dict[str, list[ProgramFlag]] = {i: [] for i in ids}
        s, p = models.enrollment_span, models.program_flag
        for chunk in _chunks(ids):
            for r in (await self.session.execute(select(s).where(s.c.member_id.in_(chunk)))).all():
                spans[r.member_id].append(Span(r.mcp_code, r.start_date, r.end_date, Source(r.source)))
            for r in (await self.session.execute(select(p).where(p.c.member_id.in_(chunk)))).all():
                flags[r.member_id].append(ProgramFlag(r.program_code, r.start_date, r.end_date, Source(r.source)))
        states: dict[str, MemberState] = {}
        for member_id in ids:
            row = rows.get(member_id)
            states[member_id] = MemberState(
                status=Status(row.status) if row else Status.UNKNOWN,
                mcp_code=row.mcp_code if row else None,
                effective=row.status_effective if row else None,
                as_of=row.as_of if row else None,
                source=Source(row.source) if row and row.source else None,
                verified_at=aware(row.verified_at) if row else None,
                spans=tuple(sorted(spans[member_id], key=lambda x: (x.start, x.mcp_code))),
                programs=tuple(sorted(flags[member_id], key=lambda x: (x.code, x.start))),
            )
        return states

    async def save_state(self, member_id: str, before: MemberState, after: MemberState, now: datetime) -> None:
        """Write what changed between two states of a member (status columns, spans, program flags)."""
        m, s, p = models.member, models.enrollment_span, models.program_flag
        status_columns = (before.status, before.mcp_code, before.effective, before.as_of, before.source,
                          before.verified_at)
        if status_columns != (after.status, after.mcp_code, after.effective, after.as_of, after.source,
                              after.verified_at):
            await self.session.execute(update(m).where(m.c.member_id == member_id).values(
                status=after.status.value, mcp_code=after.mcp_code, status_effective=after.effective,
                as_of=after.as_of, source=after.source.value if after.source else None,
                verified_at=after.verified_at, updated_at=now))
        if before.spans != after.spans:
            await self.session.execute(delete(s).where(s.c.member_id == member_id))
            if after.spans:
                await self.session.execute(insert(s), [
                    {"id": uuid7(), "member_id": member_id, "mcp_code": x.mcp_code, "start_date": x.start,
                     "end_date": x.end, "source": x.source.value} for x in after.spans])
        if before.programs != after.programs:
            await self.session.execute(delete(p).where(p.c.member_id == member_id))
            if after.programs:
                await self.session.execute(insert(p), [
                    {"id": uuid7(), "member_id": member_id, "program_code": x.code, "start_date": x.start,
                     "end_date": x.end, "source": x.source.value} for x in after.programs])


class AuthorizationRepository:
    """The projection of authorizations: which members are served, by which MCP and program, until when."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, authorization_id: str) -> Row[Any] | None:
        """One projected authorization, or None."""
        a = models.served_authorization
        return (await self.session.execute(select(a).where(a.c.authorization_id == authorization_id))).first()

    async def upsert(self, authorization_id: str, now: datetime, **values: Any) -> None:
        """Insert or update a projected authorization (None values keep what is known)."""
        a = models.served_authorization
        given = {k: v for k, v in values.items() if v is not None}
        if await self.get(authorization_id) is None:
            await self.session.execute(insert(a).values(authorization_id=authorization_id, updated_at=now, **given))
        else:
            await self.session.execute(update(a).where(a.c.authorization_id == authorization_id)
                                       .values(updated_at=now, **given))

    async def open_for(self, mcp_code: str) -> list[AuthorizedPeriod]:
        """Active authorizations with an MCP that name a member and a period."""
        a = models.served_authorization
        rows = await self.session.execute(select(a).where(
            a.c.mcp_code == mcp_code, a.c.status == "active", a.c.member_id.is_not(None),
            a.c.period_start.is_not(None), a.c.period_end.is_not(None)))
        return [AuthorizedPeriod(r.member_id, r.mcp_code, r.period_start, r.period_end) for r in rows]

    async def mcps_with_active(self) -> list[str]:
        """MCPs with at least one active authorization."""
        a = models.served_authorization
        rows = await self.session.execute(select(a.c.mcp_code).where(a.c.status == "active").distinct())
        return sorted(r.mcp_code for r in rows)

    async def services_for(self, member_id: str) -> list[ServicePeriod]:
        """The member's active authorized periods (ECM/CHW conflict checks)."""
        a = models.served_authorization
        rows = await self.session.execute(select(a).where(
            a.c.member_id == member_id, a.c.status == "active", a.c.period_start.is_not(None),
            a.c.period_end.is_not(None)))
        return [ServicePeriod(Program(r.program), r.period_start, r.period_end) for r in rows
                if r.program in Program.__members__.values()]

    async def cbos_for(self, member_id: str) -> set[str]:
        """CBOs holding an authorization for the member (tenancy: a CBO sees its own members)."""
        a = models.served_authorization
        rows = await self.session.execute(select(a.c.cbo_organization_id).where(
            a.c.member_id == member_id, a.c.cbo_organization_id.is_not(None)))
        return {r.cbo_organization_id for r in rows}


class CheckRepository:
    """Eligibility checks (one per member per 270) and the jobs that asked for them."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, **values: Any) -> None:
        """Insert a check."""
        await self.session.execute(insert(models.eligibility_check).values(**values))

    async def add_many(self, rows: Sequence[dict[str, Any]]) -> None:
        """Insert checks in bulk."""
        if rows:
            await self.session.execute(insert(models.eligibility_check), list(rows))

    async def get_many(self, check_ids: Sequence[str]) -> dict[str, Row[Any]]:
        """Checks by id; unknown ids are absent."""
        c = models.eligibility_check
        found: dict[str, Row[Any]] = {}
        for chunk in _chunks(sorted(set(check_ids))):
            for row in (await self.session.execute(select(c).where(c.c.check_id.in_(chunk)))).all():
                found[row.check_id] = row
        return found

    async def queued(self, mcp_code: str) -> list[Row[Any]]:
        """Checks waiting for the next 270 to an MCP, oldest first."""
        c = models.eligibility_check
        rows = await self.session.execute(select(c).where(c.c.mcp_code == mcp_code, c.c.status == "queued")
                                          .order_by(c.c.requested_at, c.c.check_id))
        return list(rows.all())

    async def open_for_member(self, member_id: str, mcp_code: str) -> Row[Any] | None:
        """A queued or sent check of a member with an MCP, if one is outstanding."""
        c = models.eligibility_check
        return (await self.session.execute(select(c).where(
            c.c.member_id == member_id, c.c.mcp_code == mcp_code, c.c.status.in_(("queued", "sent")))
            .limit(1))).first()

    async def link(self, check_id: str, *, referral_id: str | None, job_id: str | None) -> None:
        """Attach a referral or a job to an existing queued check."""
        c = models.eligibility_check
        await self.session.execute(update(c).where(c.c.check_id == check_id)
                                   .values(referral_id=referral_id, job_id=job_id))

    async def mcps_with_queued(self) -> list[str]:
        """MCPs with queued checks."""
        c = models.eligibility_check
        rows = await self.session.execute(select(c.c.mcp_code).where(c.c.status == "queued").distinct())
        return sorted(r.mcp_code for r in rows)

    async def mark_sent(self, check_ids: Sequence[str], batch_id: str, at: datetime, *,
                        set_reference: str | None = None) -> None:
        """Checks went out in a batch (in the transaction set whose BHT03 is `set_reference`)."""
        c = models.eligibility_check
        for chunk in _chunks(list(check_ids)):
            await self.session.execute(update(c).where(c.c.check_id.in_(chunk)).values(
                status="sent", batch_id=batch_id, set_reference=set_reference, sent_at=at))

    async def finish(self, check_id: str, *, status: str, at: datetime, result: str | None = None,
                     result_mcp_code: str | None = None, reject_reason_code: str | None = None,
                     detail: str | None = None) -> None:
        """Record a check's outcome."""
        c = models.eligibility_check
        await self.session.execute(update(c).where(c.c.check_id == check_id).values(
            status=status, answered_at=at, result=result, result_mcp_code=result_mcp_code,
            reject_reason_code=reject_reason_code, detail=detail))

    async def sent_in_set(self, reference: str) -> list[Row[Any]]:
        """Checks of the 270 transaction set with this BHT03 still waiting for an answer.

        A 270 written before revision 0004 gave every set the batch id as BHT03: its sets cannot be told apart,
        so a reference that names no set is read as a batch id (the whole batch, as then).
        """
        c = models.eligibility_check
        rows = list((await self.session.execute(
            select(c).where(c.c.set_reference == reference, c.c.status == "sent"))).all())
        if rows:
            return rows
        return list((await self.session.execute(select(c).where(
            c.c.batch_id == reference, c.c.set_reference.is_(None), c.c.status == "sent"))).all())

    async def for_job(self, job_id: str) -> dict[str, Row[Any]]:
        """The checks a job created, by id."""
        c = models.eligibility_check
        rows = await self.session.execute(select(c).where(c.c.job_id == job_id))
        return {r.check_id: r for r in rows}

    async def add_job(self, job_id: str, organization_id: str, total: int, now: datetime) -> None:
        """Insert a job."""
        await self.session.execute(insert(models.check_job).values(
            job_id=job_id, organization_id=organization_id, total=total, created_at=now))

    async def add_job_items(self, rows: Sequence[dict[str, Any]]) -> None:
        """Insert a job's items."""
        if rows:
            await self.session.execute(insert(models.check_job_item), list(rows))

    async def job(self, job_id: str) -> Row[Any] | None:
        """A job, or None."""
        j = models.check_job
        return (await self.session.execute(select(j).where(j.c.job_id == job_id))).first()

    async def job_items(self, job_id: str) -> list[Row[Any]]:
        """A job's items in submission order."""
        i = models.check_job_item
        rows = await self.session.execute(select(i).where(i.c.job_id == job_id).order_by(i.c.position))
        return list(rows.all())


class BatchRepository:
    """270 batches and the per-partner interchange control numbers."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def by_key(self, batch_key: str) -> Row[Any] | None:
        """The batch with this key, or None."""
        b = models.eligibility_batch
        return (await self.session.execute(select(b).where(b.c.batch_key == batch_key))).first()

    async def get(self, batch_id: str) -> Row[Any] | None:
        """A batch by id, or None."""
        b = models.eligibility_batch
        return (await self.session.execute(select(b).where(b.c.batch_id == batch_id))).first()

    async def add(self, **values: Any) -> None:
        """Insert a batch (the unique batch key refuses a second batch for the same MCP and period)."""
        await self.session.execute(insert(models.eligibility_batch).values(**values))

    async def recent(self, mcp_code: str | None, limit: int) -> list[Row[Any]]:
        """Newest batches first, optionally of one MCP."""
        b = models.eligibility_batch
        query = select(b).order_by(b.c.created_at.desc(), b.c.batch_id.desc()).limit(limit)
        if mcp_code is not None:
            query = query.where(b.c.mcp_code == mcp_code)
        return list((await self.session.execute(query)).all())

    async def next_control_number(self, partner: str) -> int:
        """The next ISA13 for a partner (500000000…999999999, wrapping inside), taken under a row lock."""
        n = models.control_number
        query = select(n.c.last_value).where(n.c.partner == partner)
        if self.session.get_bind().dialect.name == "postgresql":
            query = query.with_for_update()
        current = (await self.session.execute(query)).scalar()
        if current is None:
            await self.session.execute(insert(n).values(partner=partner, last_value=FIRST_INTERCHANGE_NUMBER))
            return FIRST_INTERCHANGE_NUMBER
        value = following_interchange_number(int(current))
        await self.session.execute(update(n).where(n.c.partner == partner).values(last_value=value))
        return value


def following_interchange_number(last: int) -> int:
    """The ISA13 after `last`, inside eligibility's range.

    A counter below the range was left by a version that counted from 1; it has sent only numbers below
    FIRST_INTERCHANGE_NUMBER, so it moves to the range's start and never reuses a number it sent.
    """
    if last < FIRST_INTERCHANGE_NUMBER or last >= LAST_INTERCHANGE_NUMBER:
        return FIRST_INTERCHANGE_NUMBER
    return last + 1


class ResponseRepository:
    """271 files already applied or refused (a file is applied once)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def seen(self, file_id: str, sha256: str) -> bool:
        """True when this file (by id or by content) was handled before."""
        r = models.response_file
        row = (await self.session.execute(select(func.count()).select_from(r).where(
            (r.c.file_id == file_id) | (r.c.sha256 == sha256)))).scalar()
        return bool(row)

    async def add(self, **values: Any) -> None:
        """Record a handled file."""
        await self.session.execute(insert(models.response_file).values(**values))


async def pending_timer(session: AsyncSession, uow: UnitOfWork, kind: str, subject: str) -> Row[Any] | None:
    """The pending timer of a kind and subject, if any (the platform `timer` table)."""
    t = uow.tables.timer
    return (await session.execute(select(t).where(
        t.c.kind == kind, t.c.subject == subject, t.c.status == TimerStatus.PENDING.value)
        .order_by(t.c.due_at).limit(1))).first()


async def pending_timers(session: AsyncSession, uow: UnitOfWork, kind: str) -> list[Row[Any]]:
    """Every pending timer of a kind, soonest first."""
    t = uow.tables.timer
    rows = await session.execute(select(t).where(t.c.kind == kind, t.c.status == TimerStatus.PENDING.value)
                                 .order_by(t.c.due_at))
    return list(rows.all())


class EligibilityUnitOfWork(UnitOfWork):
    """One transaction of the eligibility service; repositories are built on its session."""

    members: MemberRepository
    authorizations: AuthorizationRepository
    checks: CheckRepository
    batches: BatchRepository
    responses: ResponseRepository

    def _open(self) -> None:
        self.members = MemberRepository(self.session)
        self.authorizations = AuthorizationRepository(self.session)
        self.checks = CheckRepository(self.session)
        self.batches = BatchRepository(self.session)
        self.responses = ResponseRepository(self.session)

    @property
    def files(self) -> FileStore:
        """The content-addressed file store (270s written, 271s read)."""
        store = self.ports.get("files")
        if store is None:
            raise RuntimeError("the eligibility service needs its 'files' port (see bootstrap.ports)")
        assert isinstance(store, FileStore)
        return store

    @property
    def clock(self) -> Clock:
        """Where the service reads the time (a fixed clock in tests)."""
        clock = self.ports.get("clock")
        return clock if clock is not None else SystemClock()

    @property
    def settings(self) -> EligibilitySettings:
        """The service's settings."""
        settings = self.ports.get("settings")
        return settings if isinstance(settings, EligibilitySettings) else EligibilitySettings()

    def now(self) -> datetime:
        """The current time from the clock port (UTC)."""
        return self.clock.now()

    def today(self) -> date:
        """Today in Pacific time (CalAIM dates are California dates)."""
        return self.now().astimezone(PACIFIC).date()
