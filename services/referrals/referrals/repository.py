"""Every query of the referrals service, and the unit of work that exposes them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, NamedTuple
from uuid import UUID

from sqlalchemy import ColumnElement, Select, Table, delete, false, insert, or_, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import make_transient_to_detached

from referrals.domain.succession import AuthorizationEnd, AuthorizationLink
from referrals.models import (
    EarlyEncounter,
    MemberPlan,
    Referral,
    ReferralAuthorization,
    ReferralTimeline,
    audit_event,
    webhooks,
)
from shared.auth import Caller
from shared.contracts.referrals import ReferralStatus
from shared.db import Binds, DriverConnection, driver_connection, insert_rows_sql, pooled_driver_connection
from shared.idempotency import IdempotencyKeyTaken, is_key_taken, store_response
from shared.uow import UnitOfWork, encode_outbox_rows, outbox_values
from shared.webhooks import WebhookNotice, enqueue_notice, fan_out_sql


def visible_to(caller: Caller) -> ColumnElement[bool] | None:
    """Which referrals a caller sees (None: all). A CBO: those it made or was assigned; an MCP: those routed
    to its plan (or that it made itself); the hub: all."""
    if caller.is_hub:
        return None
    if caller.organization_kind == "cbo":
        return or_(Referral.referring_organization_id == caller.organization_id,
                   Referral.cbo_organization_id == caller.organization_id)
    if caller.organization_kind == "mcp":
        mine = Referral.referring_organization_id == caller.organization_id
        return or_(Referral.mcp_code == caller.organization_code, mine) if caller.organization_code else mine
    return false()


def can_see(caller: Caller, referral: Referral) -> bool:
    """The same rule as `visible_to`, for a loaded referral."""
    if caller.is_hub:
        return True
    if referral.referring_organization_id == caller.organization_id:
        return True
    if caller.organization_kind == "cbo":
        return referral.cbo_organization_id == caller.organization_id
    if caller.organization_kind == "mcp":
        return caller.organization_code is not None and referral.mcp_code == caller.organization_code
    return False


@lru_cache(maxsize=4)
def _insert_unless_open_statement(dialect: str) -> Any:
    # Built once: the values go in as parameters, so no per-request statement building or literal coercion.
    table = Referral.__table__
    assert isinstance(table, Table)
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    return insert(table).on_conflict_do_nothing(index_elements=[table.c.open_key]).returning(table.c.id)


def _aware(moment: datetime) -> datetime:
    # SQLite gives timezone-aware columns back naive; everything is written as UTC.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _table(model: type[Referral] | type[ReferralTimeline]) -> Table:
    table = model.__table__
    assert isinstance(table, Table)
    return table


def _row_of(instance: Referral, table: Table) -> dict[str, Any]:
    """A new mapped object's column values (attribute names are the column names in these models).

    Read from the instance's `__dict__`, where the ORM keeps the values set on it (a new object has every
    column set): instrumented attribute access costs several times as much, per column and per request."""
    values = instance.__dict__
    return {column.name: values[column.name] if column.name in values else getattr(instance, column.name)
            for column in table.columns}


class EarlyEncounterKept(NamedTuple):
    """An encounter kept for its authorization's link (`early_encounter`), as taken."""

    encounter_id: str
    recorded_at: datetime


@dataclass(frozen=True, slots=True)
class StagedTimelineEntry:
    """A timeline entry made in this unit of work: the `referral_timeline` row's values, kept as plain data (the
    columns' names) until the unit writes it. A mapped object would cost the ORM's bookkeeping per entry for a
    row that is written by one INSERT and never changed."""

    id: UUID
    referral_id: str
    occurred_at: datetime
    kind: str
    status: str | None
    previous_status: str | None
    reason: str | None
    detail: dict[str, Any]
    event_id: UUID | None

    def row(self) -> dict[str, Any]:
        """The row's values by column name."""
        return {"id": self.id, "referral_id": self.referral_id, "occurred_at": self.occurred_at, "kind": self.kind,
                "status": self.status, "previous_status": self.previous_status, "reason": self.reason,
                "detail": self.detail, "event_id": self.event_id}


TimelineRecord = ReferralTimeline | StagedTimelineEntry  # a stored entry or one staged in this unit


class ReferralRepository:
    """Referrals, their timelines and their authorization links."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        # Timeline entries staged in this unit of work, so a new referral renders without reading them back.
        self.staged_timeline: list[StagedTimelineEntry] = []
        self.unwritten_timeline: list[StagedTimelineEntry] = []
        # Authorization links read or made in this unit (a new one is not in the identity map before a flush).
        self._links: dict[str, ReferralAuthorization] = {}

    def _locking(self, query: Select[Any]) -> Select[Any]:
        # PostgreSQL: two consumers (authorizations, claims topics) may move the same referral at once; the
        # row lock serializes them. SQLite needs nothing: BEGIN IMMEDIATE already serializes writers.
        if self.session.get_bind().dialect.name == "postgresql":
            return query.with_for_update()
        return query

    def add(self, referral: Referral) -> None:
        """Stage a new referral."""
        self.session.add(referral)

    async def insert_unless_open(self, referral: Referral) -> bool:
        """INSERT a new (transient) referral unless its `open_key` is taken; True if it was inserted.

        One statement (`ON CONFLICT (open_key) DO NOTHING RETURNING id`): no savepoint is needed to survive a
        duplicate, and a concurrent submission waits on the unique index for the other's commit. The inserted
        object joins the session as if it had been loaded, so later changes in the unit are UPDATEs.
        """
        values = {attr.key: getattr(referral, attr.key) for attr in Referral.__mapper__.column_attrs}
        statement = _insert_unless_open_statement(self.session.get_bind().dialect.name)
        if (await self.session.execute(statement, values)).first() is None:
            return False
        make_transient_to_detached(referral)
        self.session.add(referral)
        return True

    async def get(self, referral_id: str, *, for_update: bool = False) -> Referral | None:
        """The referral with this id, or None; `for_update` locks the row until commit."""
        query = select(Referral).where(Referral.id == referral_id)
        if for_update:
            query = self._locking(query)
        return (await self.session.execute(query)).scalar_one_or_none()

    async def open_with_key(self, open_key: str) -> Referral | None:
        """The open referral for a member and service, if any."""
        return (await self.session.execute(
            select(Referral).where(Referral.open_key == open_key))).scalar_one_or_none()

    async def for_authorization(self, authorization_id: str, *, for_update: bool = False) -> Referral | None:
        """The referral an authorization (initial or reauthorization) belongs to, or None."""
        found: Referral | None
        query = (select(Referral).join(ReferralAuthorization, ReferralAuthorization.referral_id == Referral.id)
                 .where(ReferralAuthorization.authorization_id == authorization_id))
        if for_update:
            query = self._locking(query)
        found = (await self.session.execute(query)).scalar_one_or_none()
        return found

    async def link_authorization(self, authorization_id: str, referral_id: str, at: datetime,
                                 previous_authorization_id: str | None = None) -> bool:
        """Record that an authorization belongs to a referral, and which one it continues when known; False if
        it was already linked (a predecessor it did not name yet is still recorded)."""
        existing = await self._link(authorization_id)
        if existing is not None:
            if existing.previous_authorization_id is None:
                existing.previous_authorization_id = previous_authorization_id
            return False
        link = ReferralAuthorization(authorization_id=authorization_id, referral_id=referral_id, linked_at=at,
                                     previous_authorization_id=previous_authorization_id)
        self.session.add(link)
        self._links[authorization_id] = link
        return True

    async def _link(self, authorization_id: str) -> ReferralAuthorization | None:
        found = self._links.get(authorization_id)
        if found is None:
            found = await self.session.get(ReferralAuthorization, authorization_id)
            if found is not None:
                self._links[authorization_id] = found
        return found

    async def record_decision(self, authorization_id: str, decision: str, decided_at: datetime) -> bool:
        """Keep the MCP's decision ("approved" | "denied") on a linked authorization unless a later-made one is
        known (an overturned denial is a later approval); True if whether it is denied changed (what decides
        the chain: a first approval changes nothing there)."""
        link = await self._link(authorization_id)
        if link is None:
            return False
        if link.decided_at is not None and _aware(link.decided_at) > decided_at:
            return False
        changed = (link.decision == "denied") != (decision == "denied")
        link.decision, link.decided_at = decision, decided_at
        return changed

    async def record_end(self, authorization_id: str, end: AuthorizationEnd) -> None:
        """Keep how a linked authorization ended (the first end told: an authorization ends once)."""
        link = await self._link(authorization_id)
        if link is not None and link.end_code is None:
            link.end_code, link.end_reason, link.ended_at = end.code, end.reason, end.at

    async def remember_encounter(self, authorization_id: str, encounter_id: str, recorded_at: datetime,
                                 event_id: UUID) -> None:
        """Keep an encounter of an authorization not linked yet (the first one only)."""
        table = EarlyEncounter.__table__
        assert isinstance(table, Table)
        dialect_insert = postgresql_insert if self.session.get_bind().dialect.name == "postgresql" else sqlite_insert
        await self.session.execute(dialect_insert(table).values(
            authorization_id=authorization_id, encounter_id=encounter_id, recorded_at=recorded_at,
            event_id=event_id).on_conflict_do_nothing(index_elements=[table.c.authorization_id]))

    async def forget_encounters_recorded_before(self, cutoff: datetime, *, at_most: int = 500) -> int:
        """Drop up to `at_most` kept encounters recorded before `cutoff` (their authorizations are over); how
        many. Rows another transaction holds are skipped, not waited for (PostgreSQL): the next call takes them."""
        table = EarlyEncounter.__table__
        assert isinstance(table, Table)
        stale = (select(table.c.authorization_id).where(table.c.recorded_at < cutoff).limit(at_most)
                 .with_for_update(skip_locked=True))
        result = await self.session.execute(delete(table).where(table.c.authorization_id.in_(stale)))
        return int(getattr(result, "rowcount", 0) or 0)

    async def take_early_encounter(self, authorization_id: str) -> EarlyEncounterKept | None:
        """The encounter kept for this authorization, removed (it is applied once), or None."""
        table = EarlyEncounter.__table__
        assert isinstance(table, Table)
        row = (await self.session.execute(delete(table).where(table.c.authorization_id == authorization_id)
                                          .returning(table.c.encounter_id, table.c.recorded_at))).first()
        return None if row is None else EarlyEncounterKept(row.encounter_id, row.recorded_at)

    async def authorization_links(self, referral_id: str) -> list[AuthorizationLink]:
        """The referral's authorizations (initial and reauthorizations), with what each continues."""
        await self.session.flush()  # sessions do not autoflush: a link made in this unit must be seen
        rows = await self.session.execute(select(
            ReferralAuthorization.authorization_id, ReferralAuthorization.previous_authorization_id,
            ReferralAuthorization.linked_at, ReferralAuthorization.decision, ReferralAuthorization.end_code,
            ReferralAuthorization.end_reason, ReferralAuthorization.ended_at, ReferralAuthorization.decided_at,
        ).where(ReferralAuthorization.referral_id == referral_id))
        return [AuthorizationLink(
            r.authorization_id, r.previous_authorization_id, _aware(r.linked_at), denied=r.decision == "denied",
            end=AuthorizationEnd(r.end_code, r.end_reason, _aware(r.ended_at))
            if r.end_code is not None and r.ended_at is not None else None,
            approved=r.decision == "approved",
            decided_at=_aware(r.decided_at) if r.decided_at is not None else None) for r in rows]

    async def encounter_told(self, referral_id: str) -> bool:
        """Whether an encounter under one of the referral's authorizations was consumed, even one the loop refused
        (kept on the timeline as a refused move to in_service); entries staged in this unit count too."""
        rows = (await self.session.execute(
            select(ReferralTimeline.kind, ReferralTimeline.status, ReferralTimeline.detail)
            .where(ReferralTimeline.referral_id == referral_id,
                   ReferralTimeline.kind.in_(("status_changed", "status_unchanged"))))).all()
        entries = [(r.kind, r.status, r.detail) for r in rows]
        entries += [(e.kind, e.status, e.detail) for e in self.staged_timeline_of(referral_id)]
        in_service = ReferralStatus.IN_SERVICE.value
        return any((kind == "status_changed" and status == in_service)
                   or (kind == "status_unchanged" and (detail or {}).get("requested_status") == in_service)
                   for kind, status, detail in entries)

    async def waiting_for_plan(self, member_id: str) -> Sequence[Referral]:
        """The member's referrals in needs_plan, oldest first, locked for routing."""
        query = (select(Referral).where(Referral.member_id == member_id,
                                        Referral.status == ReferralStatus.NEEDS_PLAN.value)
                 .order_by(Referral.id))
        found: Sequence[Referral] = (await self.session.execute(self._locking(query))).scalars().all()
        return found

    def add_timeline(self, entry: StagedTimelineEntry) -> None:
        """Stage a timeline entry (written when the unit flushes, or with a new referral)."""
        self.staged_timeline.append(entry)
        self.unwritten_timeline.append(entry)

    def take_unwritten_timeline(self) -> list[StagedTimelineEntry]:
        """The staged entries not yet written, which the caller now writes."""
        entries, self.unwritten_timeline = self.unwritten_timeline, []
        return entries

    def staged_timeline_of(self, referral_id: str) -> list[StagedTimelineEntry]:
        """The timeline entries of a referral staged in this unit, in `timeline()` order (UUIDv7 ids).

        For a referral created in this unit that is its whole timeline, without a read.
        """
        return sorted((e for e in self.staged_timeline if e.referral_id == referral_id), key=lambda e: e.id)

    async def timeline(self, referral_id: str) -> Sequence[ReferralTimeline]:
        """A referral's timeline in the order CalHub recorded it (UUIDv7 ids); `occurred_at` is business time,
        which may run backwards when a late event reports an earlier decision."""
        return (await self.session.execute(
            select(ReferralTimeline).where(ReferralTimeline.referral_id == referral_id)
            .order_by(ReferralTimeline.id))).scalars().all()

    async def search(self, *, caller: Caller, statuses: Sequence[str] = (), mcp_code: str | None = None,
                     cbo_organization_id: str | None = None, member_id: str | None = None,
                     created_since: datetime | None = None, before_id: str | None = None,
                     limit: int = 50) -> Sequence[Referral]:
        """Referrals the caller may see, newest first (ids are time-ordered), after a cursor."""
        query = select(Referral).order_by(Referral.id.desc()).limit(limit)
        condition = visible_to(caller)
        if condition is not None:
            query = query.where(condition)
        if statuses:
            query = query.where(Referral.status.in_(list(statuses)))
        if mcp_code is not None:
            query = query.where(Referral.mcp_code == mcp_code)
        if cbo_organization_id is not None:
            query = query.where(or_(Referral.cbo_organization_id == cbo_organization_id,
                                    Referral.referring_organization_id == cbo_organization_id))
        if member_id is not None:
            query = query.where(Referral.member_id == member_id)
        if created_since is not None:
            query = query.where(Referral.created_at >= created_since)
        if before_id is not None:
            query = query.where(Referral.id < before_id)
        return (await self.session.execute(query)).scalars().all()


class MemberPlanRepository:
    """The member-plan projection fed by eligibility events."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, member_id: str) -> MemberPlan | None:
        """The member's latest known plan record, or None."""
        return await self.session.get(MemberPlan, member_id)

    def add(self, plan: MemberPlan) -> None:
        """Stage a new projection row."""
        self.session.add(plan)


class ReferralsUnitOfWork(UnitOfWork):
    """One transaction of the referrals service; repositories are built on its session.

    Timeline entries and webhook notices are staged and written when the unit flushes, like its events, so a
    new referral can be written with all of them in one statement (`create_referral`).
    """

    referrals: ReferralRepository
    member_plans: MemberPlanRepository
    audit = audit_event
    webhooks = webhooks

    webhooks_queued: int = 0
    notices: list[WebhookNotice]

    def _open(self) -> None:
        self.referrals = ReferralRepository(self.session)
        self.member_plans = MemberPlanRepository(self.session)
        self.webhooks_queued = 0
        self.notices = []

    def notify(self, notice: WebhookNotice) -> None:
        """Stage a webhook notice: its deliveries are queued in this unit's transaction."""
        self.notices.append(notice)

    async def flush(self) -> None:
        """Write staged timeline entries, queue staged webhook notices, then events and pending changes."""
        staged = self.referrals.take_unwritten_timeline()
        if staged:  # before the ORM's flush of the referral itself: fine, the timeline has no foreign key to it
            await self.session.execute(insert(_table(ReferralTimeline)), [entry.row() for entry in staged])
        notices, self.notices = self.notices, []
        for notice in notices:
            self.webhooks_queued += await enqueue_notice(self.session, self.webhooks, notice)
        await super().flush()

    async def rollback(self) -> None:
        """Discard changes and everything staged."""
        self.referrals.take_unwritten_timeline()
        self.notices = []
        await super().rollback()

    async def create_referral(self, referral: Referral, *, audit: Mapping[str, Any] | None = None,
                              answer: Mapping[str, Any] | None = None) -> bool:
        """Write a new referral unless an open one holds its `open_key`, and with it everything this unit
        staged (timeline, events, webhook notices), an audit row and a stored Idempotency-Key answer
        (`shared.idempotency.record_values`); False, and nothing written, if the key is held.

        PostgreSQL: one statement (the referral's guarded INSERT, the rest inserted only if it inserted a
        row), so no BEGIN/COMMIT round trips either: a statement is atomic on its own. A taken Idempotency-Key
        aborts it (IdempotencyKeyTaken). Elsewhere: the same writes one after the other in the transaction.
        """
        if self.session.get_bind().dialect.name == "postgresql":
            return await self._create_in_one_statement(referral, audit, answer)
        if not await self.referrals.insert_unless_open(referral):
            return False
        if audit is not None:
            await self.session.execute(insert(self.audit).values(**audit))
        if answer is not None:
            await store_response(self.session, self.tables, answer)
        await self.flush()
        return True

    async def _create_in_one_statement(self, referral: Referral, audit: Mapping[str, Any] | None,
                                       answer: Mapping[str, Any] | None) -> bool:
        engine = self.session.bind
        if self.session.in_transaction() or not isinstance(engine, AsyncEngine):
            # The unit read something first (or its session is bound to one connection): write on the same one.
            return await self._send_one_statement(await driver_connection(self.session), referral, audit, answer)
        # Nothing read yet (the usual case): a pooled connection without the session's transaction machinery.
        async with pooled_driver_connection(engine) as connection:
            return await self._send_one_statement(connection, referral, audit, answer)

    async def _send_one_statement(self, connection: DriverConnection, referral: Referral,
                                  audit: Mapping[str, Any] | None, answer: Mapping[str, Any] | None) -> bool:
        binds = Binds()
        referral_table, timeline_table = _table(Referral), _table(ReferralTimeline)
        # Each write is a CTE; every one after the first inserts "FROM new_referral", i.e. nothing on a duplicate.
        writes = {"new_referral": insert_rows_sql(connection, referral_table, [_row_of(referral, referral_table)],
                                                  binds, suffix=" ON CONFLICT (open_key) DO NOTHING RETURNING id")}
        dependent: list[tuple[str, Table, Sequence[Mapping[str, Any]]]] = [
            ("timeline", timeline_table, [e.row() for e in self.referrals.unwritten_timeline]),
            ("events", self.tables.outbox, outbox_values(encode_outbox_rows(self.recorded))),
            ("audit", self.audit, [audit] if audit is not None else []),
            ("answer", self.tables.idempotency_record, [answer] if answer is not None else []),
        ]
        for name, table, rows in dependent:
            if rows:
                writes[name] = insert_rows_sql(connection, table, rows, binds, source="new_referral")
        for number, notice in enumerate(self.notices):
            writes[f"deliveries_{number}"] = fan_out_sql(connection, self.webhooks, notice, binds,
                                                         source="new_referral")
        # Only our own CTE names and the builders' SQL are joined here; every value is a bound parameter.
        counted = " + ".join(f"(SELECT count(*) FROM {name})"  # noqa: S608
                             for name in writes if name.startswith("deliveries")) or "0"
        ctes = ", ".join(f"{name} AS ({sql})" for name, sql in writes.items())
        statement = f"WITH {ctes} SELECT (SELECT id FROM new_referral) AS id, {counted} AS deliveries"  # noqa: S608
        try:
            row = await connection.driver.fetchrow(statement, *binds.values)
        except Exception as exc:
            if is_key_taken(exc):
                raise IdempotencyKeyTaken() from None
            raise
        if row["id"] is None:
            return False  # nothing was written and everything stays staged: the caller may try again
        self.take_recorded()
        self.referrals.take_unwritten_timeline()
        self.notices = []
        self.webhooks_queued += int(row["deliveries"])
        return True

    async def commit(self) -> None:
        """Commit; if this transaction queued webhook deliveries, wake the deliverer (they are due now)."""
        await super().commit()
        queued, self.webhooks_queued = self.webhooks_queued, 0
        after_commit = self.ports.get("after_commit")
        # Only then: waking it on every commit would cost a claim query per request for nothing.
        if queued and after_commit is not None:
            after_commit()
