"""Every query of the authorizations service, and the unit of work that exposes them."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, cast

from sqlalchemy import ARRAY, Select, String, Table, and_, any_, bindparam, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from authorizations.domain.status import OPEN, AuthorizationStatus
from authorizations.models import (
    Authorization,
    AuthorizationHistory,
    CareTeamTask,
    MemberEligibility,
    MemberEngagement,
    MifRowOutcome,
    audit_event,
)
from shared.auth import TenantScope
from shared.contracts.authorizations import AuthorizationOrigin
from shared.uow import UnitOfWork

SWEEPABLE = (AuthorizationStatus.APPROVED.value, AuthorizationStatus.SUSPENDED.value)
# Core tables of the mapped classes, for bulk statements that need no identity map.
AUTHORIZATION = cast(Table, Authorization.__table__)
HISTORY = cast(Table, AuthorizationHistory.__table__)
TASK = cast(Table, CareTeamTask.__table__)


def aware(moment: datetime | None) -> datetime | None:
    """SQLite hands timezone-aware columns back naive; everything stored is UTC."""
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def encode_cursor(*values: Any) -> str:
    """An opaque pagination cursor for the last row of a page."""
    return base64.urlsafe_b64encode(json.dumps(values, default=str).encode()).decode()


def decode_cursor(cursor: str) -> list[Any]:
    """The values of a cursor; raises ValueError if it is not one of ours."""
    try:
        values = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, TypeError) as exc:
        raise ValueError("malformed cursor") from exc
    if not isinstance(values, list):
        raise ValueError("malformed cursor")
    return values


@dataclass(frozen=True)
class AuthorizationFilter:
    """Filters of GET /v1/authorizations."""

    member_id: str | None = None
    mcp_code: str | None = None
    cbo_organization_id: str | None = None
    statuses: tuple[str, ...] = ()
    expiring_by: date | None = None  # period end on or before this date (and not yet past)
    today: date | None = None
    overdue_at: datetime | None = None  # open and decision_due before this instant


class AuthorizationRepository:
    """Authorizations and their history."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def add(self, authorization: Authorization) -> None:
        """Stage a new authorization."""
        self.session.add(authorization)

    async def get(self, authorization_id: str, *, for_update: bool = False) -> Authorization | None:
        """One authorization, optionally row-locked for the rest of the transaction."""
        query = select(Authorization).where(Authorization.id == authorization_id)
        if for_update:
            query = query.with_for_update()
        return (await self.session.scalars(query)).first()

    async def from_referral(self, referral_id: str, mcp_code: str) -> Authorization | None:
        """The request a referral opened with an MCP (business idempotency of referral.routed)."""
        return (await self.session.scalars(
            select(Authorization).where(Authorization.referral_id == referral_id,
                                        Authorization.mcp_code == mcp_code,
                                        Authorization.origin.in_(("referral", "plan_change")))
            .order_by(Authorization.created_at).limit(1))).first()

    async def for_member(self, member_id: str, *, mcp_code: str | None = None,
                         statuses: Sequence[str] | None = None, for_update: bool = False) -> list[Authorization]:
        """The member's authorizations, oldest first, optionally one MCP's and in some statuses."""
        query = select(Authorization).where(Authorization.member_id == member_id)
        if mcp_code is not None:
            query = query.where(Authorization.mcp_code == mcp_code)
        if statuses is not None:
            query = query.where(Authorization.status.in_(list(statuses)))
        if for_update:
            query = query.with_for_update()
        return list((await self.session.scalars(query.order_by(Authorization.created_at, Authorization.id))).all())

    async def successor(self, authorization_id: str) -> Authorization | None:
        """The reauthorization request that follows an authorization, if any."""
        return (await self.session.scalars(
            select(Authorization).where(Authorization.previous_authorization_id == authorization_id,
                                        Authorization.origin == "reauthorization").limit(1))).first()

    def record(self, authorization_id: str, *, at: datetime, action: str, status: str, actor: str,
               detail: dict[str, Any] | None = None) -> None:
        """Append a history entry (ids, codes and dates only)."""
        self.session.add(AuthorizationHistory(authorization_id=authorization_id, occurred_at=at, action=action,
                                              status=status, actor=actor, detail=detail or {}))

    async def add_history_rows(self, rows: Sequence[dict[str, Any]]) -> None:
        """Append many history entries in one statement (the expiry sweep); Core, not ORM: no identity map."""
        if rows:
            await self.session.execute(insert(HISTORY), list(rows))

    async def history(self, authorization_id: str) -> list[AuthorizationHistory]:
        """An authorization's history, oldest first."""
        return list((await self.session.scalars(
            select(AuthorizationHistory).where(AuthorizationHistory.authorization_id == authorization_id)
            .order_by(AuthorizationHistory.id))).all())

    def _filtered(self, scope: TenantScope, flt: AuthorizationFilter) -> Select[Authorization]:
        query = scope.filter(select(Authorization), cbo_column=Authorization.cbo_organization_id.expression,
                             mcp_column=Authorization.mcp_code.expression)
        if flt.member_id:
            query = query.where(Authorization.member_id == flt.member_id)
        if flt.mcp_code:
            query = query.where(Authorization.mcp_code == flt.mcp_code)
        if flt.cbo_organization_id:
            query = query.where(Authorization.cbo_organization_id == flt.cbo_organization_id)
        if flt.statuses:
            query = query.where(Authorization.status.in_(flt.statuses))
        if flt.expiring_by is not None:
            query = query.where(Authorization.status.in_(SWEEPABLE), Authorization.period_end <= flt.expiring_by)
            if flt.today is not None:
                query = query.where(Authorization.period_end >= flt.today)
        if flt.overdue_at is not None:
            query = query.where(or_(Authorization.status.in_([s.value for s in OPEN]),
                                    Authorization.decision == "presumptive"),
                                Authorization.decision_due < flt.overdue_at)
        return query

    async def search(self, scope: TenantScope, flt: AuthorizationFilter, *, limit: int,
                     cursor: list[Any] | None) -> list[Authorization]:
        """A page of authorizations the caller may see, newest request first (keyset on requested_at, id)."""
        query = self._filtered(scope, flt)
        if cursor is not None:
            at, last_id = datetime.fromisoformat(str(cursor[0])), str(cursor[1])
            query = query.where(or_(Authorization.requested_at < at,
                                    and_(Authorization.requested_at == at, Authorization.id < last_id)))
        query = query.order_by(Authorization.requested_at.desc(), Authorization.id.desc()).limit(limit)
        return list((await self.session.scalars(query)).all())

    async def decided_between(self, scope: TenantScope, start: datetime, end: datetime,
                              mcp_code: str | None) -> list[tuple[str, datetime, datetime, bool | None]]:
        """(mcp, requested_at, decided_at, within deadline) of MCP decisions on requests, made in [start, end)."""
        query = scope.filter(
            select(Authorization.mcp_code, Authorization.requested_at, Authorization.decided_at,
                   Authorization.decided_within_deadline)
            .where(Authorization.decided_at >= start, Authorization.decided_at < end,
                   Authorization.decision.in_(("approved", "approved_as_modified", "denied")),
                   # An MCP assignment (a MIF row, no request) had no deadline to meet: counting it would report
                   # a 0-hour decision made in time.
                   Authorization.origin != AuthorizationOrigin.MCP_ASSIGNMENT.value,
                   Authorization.decision_due.is_not(None)),
            cbo_column=Authorization.cbo_organization_id.expression, mcp_column=Authorization.mcp_code.expression)
        if mcp_code:
            query = query.where(Authorization.mcp_code == mcp_code)
        rows = (await self.session.execute(query)).all()
        return [(r[0], aware(r[1]), aware(r[2]), r[3]) for r in rows]  # type: ignore[misc]

    async def count_by_mcp(self, scope: TenantScope, *conditions: Any) -> dict[str, int]:
        """Authorizations per MCP matching the conditions, within the caller's scope."""
        query = scope.filter(
            select(Authorization.mcp_code, func.count()).where(*conditions).group_by(Authorization.mcp_code),
            cbo_column=Authorization.cbo_organization_id.expression, mcp_column=Authorization.mcp_code.expression)
        return {row[0]: int(row[1]) for row in (await self.session.execute(query)).all()}

    # ------------------------------------------------------------------------------------ expiry sweep

    def _claim(self, query: Any, limit: int) -> Any:
        query = query.limit(limit)
        if self.session.get_bind().dialect.name == "postgresql":
            # Another instance's sweep skips rows this one holds; SQLite serializes writers anyway.
            query = query.with_for_update(of=Authorization, skip_locked=True)
        return query

    async def claim_expiring(self, today: date, limit: int) -> list[Any]:
        """Approved or suspended authorizations whose expiring notice is due by `today`, locked."""
        query = (
            select(Authorization.id, Authorization.member_id, Authorization.mcp_code,
                   Authorization.cbo_organization_id, Authorization.correlation_id, Authorization.status,
                   Authorization.period_end)
            .where(Authorization.expiring_due_on <= today, Authorization.status.in_(SWEEPABLE))
            .order_by(Authorization.expiring_due_on, Authorization.id)
        )
        return list((await self.session.execute(self._claim(query, limit))).all())

    async def followed_by_reauthorization(self, ids: Sequence[str]) -> set[str]:
        """Which of these authorizations already have a reauthorization request."""
        rows = await self.session.execute(
            select(Authorization.previous_authorization_id).where(
                Authorization.previous_authorization_id.in_(list(ids)), Authorization.origin == "reauthorization"))
        return {str(r[0]) for r in rows}

    async def claim_pending_reauthorization(self, pending: str, limit: int) -> list[Any]:
        """Authorizations whose reauthorization rule must run, locked, with the member's eligibility and
        engagement in the same program (the rule's inputs) and what a new request needs."""
        query = (
            select(Authorization.id, Authorization.member_id, Authorization.member, Authorization.mcp_code,
                   Authorization.cbo_organization_id, Authorization.referring_organization_id,
                   Authorization.referral_id, Authorization.correlation_id, Authorization.program,
                   Authorization.service_key, Authorization.service, Authorization.status,
                   Authorization.period_start, Authorization.period_end,
                   MemberEligibility.eligible, MemberEligibility.mcp_code.label("eligible_mcp_code"),
                   MemberEngagement.last_encounter_on)
            .outerjoin(MemberEligibility, MemberEligibility.member_id == Authorization.member_id)
            .outerjoin(MemberEngagement, and_(MemberEngagement.member_id == Authorization.member_id,
                                              MemberEngagement.program == Authorization.program))
            .where(Authorization.reauthorization == pending)
            .order_by(Authorization.id)
        )
        return list((await self.session.execute(self._claim(query, limit))).all())

    async def claim_expired(self, today: date, limit: int) -> list[Any]:
        """Approved or suspended authorizations whose period ended before `today`, locked."""
        query = (
            select(Authorization.id, Authorization.member_id, Authorization.mcp_code,
                   Authorization.cbo_organization_id, Authorization.correlation_id, Authorization.period_end,
                   Authorization.referral_id, Authorization.status)
            .where(Authorization.expiry_due_on <= today, Authorization.status.in_(SWEEPABLE))
            .order_by(Authorization.expiry_due_on, Authorization.id)
        )
        return list((await self.session.execute(self._claim(query, limit))).all())

    async def set_many(self, ids: Sequence[str], **values: Any) -> None:
        """Update the same columns of many authorizations in one statement."""
        if not ids:
            return
        table = AUTHORIZATION
        if self.session.get_bind().dialect.name == "postgresql":
            # One array parameter instead of thousands of IN parameters to render and bind.
            match = table.c.id == any_(bindparam("ids", list(ids), type_=ARRAY(String)))
        else:
            match = table.c.id.in_(list(ids))
        await self.session.execute(update(table).where(match).values(**values))

    async def add_many(self, rows: Sequence[dict[str, Any]]) -> None:
        """Insert many authorizations in one statement (reauthorization requests of a sweep)."""
        if rows:
            await self.session.execute(insert(AUTHORIZATION), list(rows))

    async def clear_stale_sweep_marks(self, today: date) -> None:
        """Forget expiry marks of authorizations no longer approved or suspended (denied, closed...), so they
        never stay in the sweep's index range."""
        await self.session.execute(
            update(Authorization)
            .where(or_(Authorization.expiring_due_on <= today, Authorization.expiry_due_on <= today),
                   Authorization.status.not_in(SWEEPABLE))
            .values(expiring_due_on=None, expiry_due_on=None))


class MemberRepository:
    """Eligibility and engagement facts about members, keyed by internal member id."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def eligibility(self, member_id: str) -> MemberEligibility | None:
        """The member's latest known enrollment, or None if never heard of."""
        return await self.session.get(MemberEligibility, member_id)

    async def set_eligibility(self, member_id: str, *, eligible: bool, mcp_code: str | None, as_of: date,
                              now: datetime) -> bool:
        """Record enrollment unless a later fact is already known; True if recorded."""
        current = await self.session.get(MemberEligibility, member_id, with_for_update=True)
        if current is None:
            self.session.add(MemberEligibility(member_id=member_id, eligible=eligible, mcp_code=mcp_code,
                                               as_of=as_of, updated_at=now))
            return True
        if current.as_of > as_of:
            return False  # an older fact arriving late changes nothing
        current.eligible, current.mcp_code, current.as_of, current.updated_at = eligible, mcp_code, as_of, now
        return True

    async def engagement(self, member_id: str, program: str) -> date | None:
        """The date of the member's latest encounter in a program, or None."""
        row = await self.session.get(MemberEngagement, (member_id, program))
        return row.last_encounter_on if row is not None else None

    async def record_encounter(self, member_id: str, program: str, on: date, now: datetime) -> None:
        """Keep the latest encounter date per member and program."""
        row = await self.session.get(MemberEngagement, (member_id, program), with_for_update=True)
        if row is None:
            self.session.add(MemberEngagement(member_id=member_id, program=program, last_encounter_on=on,
                                              updated_at=now))
        elif on > row.last_encounter_on:
            row.last_encounter_on, row.updated_at = on, now


class MifRepository:
    """Outcomes of Member Information File rows."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self._staged_periods: dict[tuple[str, str], str] = {}

    async def outcome_of(self, file_id: str, row_number: int) -> MifRowOutcome | None:
        """What a row already did (business idempotency when the gateway republishes a file)."""
        return (await self.session.scalars(select(MifRowOutcome).where(
            MifRowOutcome.file_id == file_id, MifRowOutcome.row_number == row_number))).first()

    def add(self, outcome: MifRowOutcome) -> None:
        """Stage a row outcome."""
        self.session.add(outcome)
        if outcome.reporting_period:
            # Rows staged in this unit of work (a consumer batch) count before they are flushed.
            key = (outcome.member_id, outcome.mcp_code)
            self._staged_periods[key] = max(self._staged_periods.get(key, ""), outcome.reporting_period)

    async def newest_period(self, member_id: str, mcp_code: str) -> str | None:
        """The newest reporting period (YYYY-MM) of any row already taken for a member from an MCP, or None."""
        stored = await self.session.scalar(select(func.max(MifRowOutcome.reporting_period)).where(
            MifRowOutcome.member_id == member_id, MifRowOutcome.mcp_code == mcp_code))
        newest = max(str(stored or ""), self._staged_periods.get((member_id, mcp_code), ""))
        return newest or None

    async def get(self, outcome_id: str, *, for_update: bool = False) -> MifRowOutcome | None:
        """One row outcome."""
        query = select(MifRowOutcome).where(MifRowOutcome.id == outcome_id)
        if for_update:
            query = query.with_for_update()
        return (await self.session.scalars(query)).first()

    async def exceptions(self, scope: TenantScope, *, open_only: bool, mcp_code: str | None, limit: int,
                         after: str | None) -> list[MifRowOutcome]:
        """Rows that need a person, oldest first; CBOs see none (MIF rows belong to the hub and the MCP)."""
        query = scope.filter(select(MifRowOutcome).where(MifRowOutcome.outcome == "exception"),
                             mcp_column=MifRowOutcome.mcp_code.expression)
        if open_only:
            query = query.where(MifRowOutcome.resolved_at.is_(None))
        if mcp_code:
            query = query.where(MifRowOutcome.mcp_code == mcp_code)
        if after:
            query = query.where(MifRowOutcome.id > after)
        return list((await self.session.scalars(query.order_by(MifRowOutcome.id).limit(limit))).all())


class TaskRepository:
    """Care-team tasks."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add_many(self, rows: Sequence[dict[str, Any]]) -> None:
        """Insert many tasks in one statement."""
        if rows:
            await self.session.execute(insert(TASK), list(rows))

    async def get(self, task_id: str, *, for_update: bool = False) -> CareTeamTask | None:
        """One task."""
        query = select(CareTeamTask).where(CareTeamTask.id == task_id)
        if for_update:
            query = query.with_for_update()
        return (await self.session.scalars(query)).first()

    async def search(self, scope: TenantScope, *, status: str | None, authorization_id: str | None,
                     limit: int, after: str | None) -> list[CareTeamTask]:
        """Tasks the caller may see, oldest first."""
        query = scope.filter(select(CareTeamTask), cbo_column=CareTeamTask.cbo_organization_id.expression,
                             mcp_column=CareTeamTask.mcp_code.expression)
        if status:
            query = query.where(CareTeamTask.status == status)
        if authorization_id:
            query = query.where(CareTeamTask.authorization_id == authorization_id)
        if after:
            query = query.where(CareTeamTask.id > after)
        return list((await self.session.scalars(query.order_by(CareTeamTask.id).limit(limit))).all())


class AuthorizationsUnitOfWork(UnitOfWork):
    """One transaction of the authorizations service; repositories are built on its session."""

    authorizations: AuthorizationRepository
    members: MemberRepository
    mif: MifRepository
    tasks: TaskRepository
    audit = audit_event

    def _open(self) -> None:
        self.authorizations = AuthorizationRepository(self.session)
        self.members = MemberRepository(self.session)
        self.mif = MifRepository(self.session)
        self.tasks = TaskRepository(self.session)
