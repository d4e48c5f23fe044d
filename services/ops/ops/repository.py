"""Every query of the ops service, and the unit of work that exposes them."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy import Select, and_, delete, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ops import models as m
from ops.domain.alerts import AlertRule, AlertStatus, Comparator, KeyState, Metric, Transition
from ops.domain.boards import AuthorizationRow, ClaimRow
from ops.domain.journal import JournalRecord
from ops.domain.lag import ConsumerPosition
from ops.domain.projections import (
    AWAITING_DECISION,
    OUTSTANDING,
    AuthorizationStatus,
    Change,
    ClaimStatus,
    Projection,
    merge,
)
from shared.ids import uuid7
from shared.uow import UnitOfWork


def aware(moment: datetime | None) -> datetime | None:
    """A timezone-aware UTC datetime (SQLite hands timezone-aware columns back naive; they were written UTC)."""
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class DeadLetterStatus:
    """Values of `dead_letter.status`."""

    PENDING = "pending"
    REPLAYED = "replayed"
    DISCARDED = "discarded"
    ALL = ("pending", "replayed", "discarded")


@dataclass(frozen=True)
class JournalFilter:
    """Conditions of a journal search; every given one must hold."""

    event_type: str | None = None
    topic: str | None = None
    subject: str | None = None
    member_id: str | None = None
    correlation_id: UUID | None = None
    trace_id: str | None = None
    mcp_code: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    dead_letters: bool | None = None


ENTRY_COLUMNS = list(m.journal_entry.c)


@dataclass(frozen=True)
class StagedMessage:
    """A consumed message and what the journal read from it."""

    record: JournalRecord
    key: bytes | None
    value: bytes
    headers: Sequence[tuple[str, bytes]]


class JournalRepository:
    """The event journal: append consumed messages, search them, build timelines, purge old ones."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def append(self, messages: Sequence[StagedMessage], now: datetime) -> list[tuple[JournalRecord, UUID]]:
        """Insert the messages not journaled yet (by entry key), with payloads, references and dead letters.

        Returns the records inserted and their entry ids. A concurrent insert of the same key raises
        IntegrityError (the delivery policy retries one by one, and the retry finds it journaled).
        """
        unique: dict[str, StagedMessage] = {}
        for staged in messages:
            unique.setdefault(staged.record.entry_key, staged)
        if not unique:
            return []
        existing = set((await self.session.execute(
            select(m.journal_entry.c.entry_key).where(m.journal_entry.c.entry_key.in_(list(unique))))).scalars())
        fresh = [item for entry_key, item in unique.items() if entry_key not in existing]
        if not fresh:
            return []
        entries: list[dict[str, Any]] = []
        payloads: list[dict[str, Any]] = []
        references: list[dict[str, Any]] = []
        dead: list[dict[str, Any]] = []
        inserted: list[tuple[JournalRecord, UUID]] = []
        for staged in fresh:
            record = staged.record
            entry_id = uuid7()
            inserted.append((record, entry_id))
            entries.append({
                "id": entry_id, "entry_key": record.entry_key, "topic": record.topic[:200],
                "log_partition": record.partition, "log_offset": record.offset,
                "dead_letter": record.is_dead_letter, "event_id": record.event_id, "event_type": record.event_type,
                "schema_version": record.schema_version, "occurred_at": record.occurred_at, "journaled_at": now,
                "source": record.source, "subject": record.subject, "member_id": record.member_id,
                "correlation_id": record.correlation_id, "causation_id": record.causation_id,
                "traceparent": record.traceparent, "trace_id": record.trace_id, "mcp_code": record.mcp_code,
                "replayed_from": record.replayed_from,
            })
            payloads.append({"entry_id": entry_id, "message_key": staged.key, "value": staged.value,
                             "headers": [[name, raw.decode("utf-8", "replace")] for name, raw in staged.headers]})
            references.extend({"entry_id": entry_id, "name": name, "value": ref} for name, ref in record.references)
            facts = record.dead_letter
            if facts is not None:
                dead.append({
                    "id": uuid7(), "entry_id": entry_id, "dlq_topic": record.topic[:200],
                    "position": record.position[:300], "original_topic": facts.original_topic,
                    "original_partition": facts.original_partition, "original_offset": facts.original_offset,
                    "consumer_group": facts.consumer_group, "error_type": facts.error_type, "error": facts.error,
                    "attempts": facts.attempts, "event_id": record.event_id, "event_type": record.event_type,
                    "subject": record.subject, "dead_lettered_at": now, "status": DeadLetterStatus.PENDING,
                    "replay_count": 0, "last_replayed_at": None, "resolved_at": None, "resolved_by": None,
                    "discard_reason": None,
                })
        await self.session.execute(insert(m.journal_entry), entries)
        await self.session.execute(insert(m.journal_payload), payloads)
        if references:
            await self.session.execute(insert(m.journal_reference), references)
        if dead:
            await self.session.execute(insert(m.dead_letter), dead)
        return inserted

    def _filtered(self, query: Select[Any], where: JournalFilter) -> Select[Any]:
        e = m.journal_entry
        conditions = []
        if where.event_type:
            conditions.append(e.c.event_type == where.event_type)
        if where.topic:
            conditions.append(e.c.topic == where.topic)
        if where.subject:
            conditions.append(e.c.subject == where.subject)
        if where.member_id:
            conditions.append(e.c.member_id == where.member_id)
        if where.correlation_id:
            conditions.append(e.c.correlation_id == where.correlation_id)
        if where.trace_id:
            conditions.append(e.c.trace_id == where.trace_id)
        if where.mcp_code:
            conditions.append(e.c.mcp_code == where.mcp_code)
        if where.since:
            conditions.append(e.c.journaled_at >= where.since)
        if where.until:
            conditions.append(e.c.journaled_at < where.until)
        if where.dead_letters is not None:
            conditions.append(e.c.dead_letter.is_(where.dead_letters))
        return query.where(and_(*conditions)) if conditions else query

    async def search(self, where: JournalFilter, *, limit: int, before: UUID | None = None) -> list[Any]:
        """Entries matching the filter, newest first (by entry id, which is time-ordered), after a cursor."""
        e = m.journal_entry
        query = self._filtered(select(*ENTRY_COLUMNS), where).order_by(e.c.id.desc()).limit(limit)
        if before is not None:
            query = query.where(e.c.id < before)
        return list((await self.session.execute(query)).all())

    async def get(self, entry_id: UUID) -> tuple[Any, Any] | None:
        """An entry and its payload row, or None."""
        e, p = m.journal_entry, m.journal_payload
        row = (await self.session.execute(select(*ENTRY_COLUMNS).where(e.c.id == entry_id))).first()
        if row is None:
            return None
        payload = (await self.session.execute(select(p).where(p.c.entry_id == entry_id))).first()
        return row, payload

    async def references_of(self, entry_ids: Sequence[UUID]) -> dict[UUID, list[tuple[str, str]]]:
        """The referenced ids of each entry."""
        if not entry_ids:
            return {}
        r = m.journal_reference
        rows = (await self.session.execute(select(r.c.entry_id, r.c.name, r.c.value)
                                           .where(r.c.entry_id.in_(list(entry_ids))))).all()
        found: dict[UUID, list[tuple[str, str]]] = defaultdict(list)
        for row in rows:
            found[row.entry_id].append((row.name, row.value))
        return found

    async def timeline(self, *, subject: str | None = None, member_id: str | None = None,
                       correlation_id: UUID | None = None, limit: int = 500,
                       max_correlations: int = 50) -> list[Any]:
        """Every entry of a business story, oldest first.

        Seeds: entries whose subject is the id or whose data names it (a referral id on an authorization event),
        entries of the member, or of the correlation id. The story is then widened to every entry sharing a
        seed's correlation id, which is how a referral's lineage reaches its authorization, files and claims.
        """
        e, r = m.journal_entry, m.journal_reference
        seeds: list[Any] = []
        if subject:
            seeds.append(e.c.subject == subject)
            seeds.append(e.c.id.in_(select(r.c.entry_id).where(r.c.value == subject)))
        if member_id:
            seeds.append(e.c.member_id == member_id)
        if correlation_id:
            seeds.append(e.c.correlation_id == correlation_id)
        if not seeds:
            return []
        correlations = list((await self.session.execute(
            select(e.c.correlation_id).where(or_(*seeds), e.c.correlation_id.is_not(None))
            .group_by(e.c.correlation_id).limit(max_correlations))).scalars())
        condition = or_(*seeds, e.c.correlation_id.in_(correlations)) if correlations else or_(*seeds)
        rows = (await self.session.execute(
            select(*ENTRY_COLUMNS).where(condition)
            # Same instant: the event created first (UUIDv7 ids are time-ordered) is the cause; one event's own
            # entries read delivery, then dead letter, then replay, in the order they were journaled.
            .order_by(func.coalesce(e.c.occurred_at, e.c.journaled_at), e.c.event_id, e.c.dead_letter,
                      e.c.journaled_at, e.c.id).limit(limit))).all()
        return list(rows)

    async def flow(self, since: datetime) -> list[tuple[str, datetime, int]]:
        """(topic, minute, count) of entries journaled since `since`, per minute."""
        e = m.journal_entry
        dialect = self.session.get_bind().dialect.name
        if dialect == "postgresql":
            bucket: Any = func.date_trunc("minute", e.c.journaled_at)
        else:
            bucket = func.strftime("%Y-%m-%dT%H:%M:00", e.c.journaled_at)
        rows = (await self.session.execute(
            select(e.c.topic, bucket.label("minute"), func.count().label("n"))
            .where(e.c.journaled_at >= since).group_by(e.c.topic, bucket))).all()
        result = []
        for row in rows:
            minute = row.minute if isinstance(row.minute, datetime) else datetime.fromisoformat(str(row.minute))
            result.append((row.topic, aware(minute) or minute, int(row.n)))
        return result

    async def counts_by_type(self, event_types: Sequence[str], since: datetime) -> list[tuple[str | None, str, int]]:
        """(mcp code, event type, count) of events of the given types that happened since `since`."""
        e = m.journal_entry
        rows = (await self.session.execute(
            select(e.c.mcp_code, e.c.event_type, func.count())
            .where(e.c.event_type.in_(list(event_types)), e.c.occurred_at >= since, e.c.dead_letter.is_(False))
            .group_by(e.c.mcp_code, e.c.event_type))).all()
        return [(r[0], r[1], int(r[2])) for r in rows]

    async def purge(self, cutoff: datetime, chunk: int) -> int:
        """Delete up to `chunk` entries journaled before `cutoff` (with payloads, references and resolved dead
        letters); entries of pending dead letters are kept. Returns how many entries were deleted."""
        e, d = m.journal_entry, m.dead_letter
        pending = select(d.c.entry_id).where(d.c.status == DeadLetterStatus.PENDING)
        ids = list((await self.session.execute(
            select(e.c.id).where(e.c.journaled_at < cutoff, e.c.id.not_in(pending))
            .order_by(e.c.journaled_at).limit(chunk))).scalars())
        if not ids:
            return 0
        await self.session.execute(delete(m.journal_reference).where(m.journal_reference.c.entry_id.in_(ids)))
        await self.session.execute(delete(m.journal_payload).where(m.journal_payload.c.entry_id.in_(ids)))
        await self.session.execute(delete(d).where(d.c.entry_id.in_(ids)))
        await self.session.execute(delete(e).where(e.c.id.in_(ids)))
        return len(ids)


class DeadLetterRepository:
    """Dead letters: listing, history, replay and discard bookkeeping."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def listing(self, *, status: str | None, topic: str | None, group: str | None, limit: int,
                   before: UUID | None = None) -> list[Any]:
        """Dead letters newest first, filtered, after a cursor (a dead-letter id)."""
        d = m.dead_letter
        query = select(d).order_by(d.c.id.desc()).limit(limit)
        if status:
            query = query.where(d.c.status == status)
        if topic:
            query = query.where(d.c.original_topic == topic)
        if group:
            query = query.where(d.c.consumer_group == group)
        if before is not None:
            query = query.where(d.c.id < before)
        return list((await self.session.execute(query)).all())

    async def get(self, dead_letter_id: UUID, *, for_update: bool = False) -> Any | None:
        """One dead letter, or None; `for_update` locks it (PostgreSQL) against a concurrent replay."""
        d = m.dead_letter
        query = select(d).where(d.c.id == dead_letter_id)
        if for_update and self.session.get_bind().dialect.name == "postgresql":
            query = query.with_for_update()
        return (await self.session.execute(query)).first()

    async def many(self, ids: Sequence[UUID], *, for_update: bool = False) -> list[Any]:
        """Dead letters by id (missing ids are left out)."""
        d = m.dead_letter
        query = select(d).where(d.c.id.in_(list(ids))).order_by(d.c.id)
        if for_update and self.session.get_bind().dialect.name == "postgresql":
            query = query.with_for_update()
        return list((await self.session.execute(query)).all())

    async def message(self, entry_id: UUID) -> Any | None:
        """The stored message (key, value, headers) of a dead letter's journal entry."""
        p = m.journal_payload
        return (await self.session.execute(select(p).where(p.c.entry_id == entry_id))).first()

    async def history(self, event_id: UUID | None, group: str, entry_id: UUID) -> list[Any]:
        """Every dead letter of the same event in the same group, oldest first (the retry history)."""
        d = m.dead_letter
        condition = d.c.entry_id == entry_id if event_id is None else and_(d.c.event_id == event_id,
                                                                            d.c.consumer_group == group)
        return list((await self.session.execute(select(d).where(condition).order_by(d.c.id))).all())

    async def replays_of(self, positions: Sequence[str]) -> dict[str, list[Any]]:
        """Journal entries of replays, by the dead-letter position they were replayed from."""
        if not positions:
            return {}
        e = m.journal_entry
        rows = (await self.session.execute(
            select(e.c.replayed_from, e.c.topic, e.c.log_partition, e.c.log_offset, e.c.journaled_at)
            .where(e.c.replayed_from.in_(list(positions))))).all()
        found: dict[str, list[Any]] = defaultdict(list)
        for row in rows:
            found[row.replayed_from].append(row)
        return found

    async def mark_replayed(self, ids: Sequence[UUID], now: datetime, actor_key_id: str | None) -> None:
        """Record a replay of these dead letters."""
        d = m.dead_letter
        await self.session.execute(update(d).where(d.c.id.in_(list(ids))).values(
            status=DeadLetterStatus.REPLAYED, replay_count=d.c.replay_count + 1, last_replayed_at=now,
            resolved_at=now, resolved_by=actor_key_id))

    async def discard(self, dead_letter_id: UUID, reason: str, now: datetime, actor_key_id: str | None) -> None:
        """Record that a dead letter is given up on, with the reason."""
        d = m.dead_letter
        await self.session.execute(update(d).where(d.c.id == dead_letter_id).values(
            status=DeadLetterStatus.DISCARDED, discard_reason=reason, resolved_at=now, resolved_by=actor_key_id))

    async def pending_counts(self) -> list[tuple[str, str, int]]:
        """(consumer group, original topic, count) of pending dead letters."""
        d = m.dead_letter
        rows = (await self.session.execute(
            select(d.c.consumer_group, d.c.original_topic, func.count())
            .where(d.c.status == DeadLetterStatus.PENDING)
            .group_by(d.c.consumer_group, d.c.original_topic))).all()
        return [(r[0], r[1], int(r[2])) for r in rows]

    async def later_failures(self, event_id: UUID, group: str, after: datetime) -> int:
        """Dead letters of the same event and group journaled after a time (a replay that failed again)."""
        d = m.dead_letter
        return int(await self.session.scalar(select(func.count()).select_from(d).where(
            d.c.event_id == event_id, d.c.consumer_group == group, d.c.dead_lettered_at > after)) or 0)


_PROJECTION_TABLES = {
    Projection.AUTHORIZATION: (m.authorization_sla, ("authorization_id",)),
    Projection.CLAIM: (m.claim_sla, ("claim_id",)),
    Projection.FILE: (m.file_expectation, ("mcp_code", "kind")),
}


class ProjectionRepository:
    """The SLA projections: fold changes in, read what the boards need."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def apply(self, changes: Sequence[Change]) -> None:
        """Fold changes into their rows (in order), inserting rows that do not exist yet."""
        by_projection: dict[Projection, list[Change]] = defaultdict(list)
        for change in changes:
            by_projection[change.projection].append(change)
        for projection, items in by_projection.items():
            table, key_columns = _PROJECTION_TABLES[projection]
            keys = {c.key for c in items}
            current: dict[tuple[str, ...], dict[str, Any]] = {}
            if len(key_columns) == 1:
                rows = (await self.session.execute(
                    select(table).where(table.c[key_columns[0]].in_([k[0] for k in keys])))).mappings().all()
            else:
                rows = (await self.session.execute(select(table).where(or_(*[
                    and_(*[table.c[col] == part for col, part in zip(key_columns, key, strict=True)])
                    for key in keys])))).mappings().all()
            for row in rows:
                current[tuple(row[c] for c in key_columns)] = dict(row)
            existing = set(current)
            for change in items:
                merged = merge(current.get(change.key), change)
                merged.update(dict(zip(key_columns, change.key, strict=True)))
                current[change.key] = merged
            columns = set(table.c.keys())
            for key in keys:
                values = {k: v for k, v in current[key].items() if k in columns}
                if key in existing:
                    condition = and_(*[table.c[col] == part for col, part in zip(key_columns, key, strict=True)])
                    await self.session.execute(update(table).where(condition).values(**values))
                else:
                    await self.session.execute(insert(table).values(**values))

    async def authorizations_open(self, expiring_until: date) -> list[AuthorizationRow]:
        """Authorizations awaiting a decision, and approved ones ending by `expiring_until`."""
        a = m.authorization_sla
        rows = (await self.session.execute(select(a).where(or_(
            a.c.status.in_([s.value for s in AWAITING_DECISION]),
            and_(a.c.status == AuthorizationStatus.APPROVED.value, a.c.period_end <= expiring_until))))).all()
        return [AuthorizationRow(authorization_id=r.authorization_id, mcp_code=r.mcp_code, status=r.status,
                                 referral_id=r.referral_id, decision_due=aware(r.decision_due),
                                 clock_stopped=bool(r.clock_stopped), period_end=r.period_end,
                                 escalations=int(r.escalations or 0)) for r in rows]

    async def claims_since(self, submitted_since: datetime) -> list[ClaimRow]:
        """Outstanding and paid claims submitted since a time (the timely-payment window)."""
        c = m.claim_sla
        rows = (await self.session.execute(select(c).where(
            c.c.submitted_at >= submitted_since,
            c.c.status.in_([*(s.value for s in OUTSTANDING), ClaimStatus.PAID.value])))).all()
        return [ClaimRow(claim_id=r.claim_id, mcp_code=r.mcp_code, status=r.status,
                         submitted_at=aware(r.submitted_at), paid_on=r.paid_on) for r in rows]

    async def file_expectations(self) -> list[tuple[str, str, datetime | None, datetime | None]]:
        """(mcp code, kind, last received, last late) of every MCP file kind seen."""
        f = m.file_expectation
        rows = (await self.session.execute(select(f))).all()
        return [(r.mcp_code, r.kind, aware(r.last_received_at), aware(r.last_late_at)) for r in rows]


def _rule(row: Any) -> AlertRule:
    return AlertRule(id=row.id, name=row.name, metric=Metric(row.metric), comparator=Comparator(row.comparator),
                     threshold=Decimal(row.threshold), scope=row.scope, for_minutes=int(row.for_minutes),
                     enabled=bool(row.enabled))


class AlertRepository:
    """Alert rules, their per-key states, alert history and consumer positions."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def rules(self, *, include_disabled: bool = False) -> list[AlertRule]:
        """Rules, oldest first; disabled ones only when asked."""
        r = m.alert_rule
        query = select(r).order_by(r.c.created_at, r.c.id)
        if not include_disabled:
            query = query.where(r.c.enabled.is_(True))
        return [_rule(row) for row in (await self.session.execute(query)).all()]

    async def rule_rows(self) -> list[Any]:
        """Every rule row (console listing), newest first."""
        r = m.alert_rule
        return list((await self.session.execute(select(r).order_by(r.c.created_at.desc(), r.c.id.desc()))).all())

    async def get_rule(self, rule_id: str) -> AlertRule | None:
        """One rule, or None."""
        row = (await self.session.execute(select(m.alert_rule).where(m.alert_rule.c.id == rule_id))).first()
        return _rule(row) if row else None

    async def add_rule(self, rule: AlertRule, now: datetime, created_by: str | None) -> None:
        """Store a new rule."""
        await self.session.execute(insert(m.alert_rule).values(
            id=rule.id, name=rule.name, metric=rule.metric.value, comparator=rule.comparator.value,
            threshold=rule.threshold, scope=rule.scope, for_minutes=rule.for_minutes, enabled=rule.enabled,
            created_at=now, created_by=created_by, disabled_at=None))

    async def disable_rule(self, rule_id: str, now: datetime) -> None:
        """Switch a rule off (kept for the history); the next evaluation resolves what it was firing."""
        await self.session.execute(update(m.alert_rule).where(m.alert_rule.c.id == rule_id)
                                   .values(enabled=False, disabled_at=now))

    async def states(self) -> dict[str, dict[str, KeyState]]:
        """Stored key states per rule id."""
        s = m.alert_state
        found: dict[str, dict[str, KeyState]] = defaultdict(dict)
        for row in (await self.session.execute(select(s))).all():
            found[row.rule_id][row.key] = KeyState(AlertStatus(row.status), aware(row.since) or row.since,
                                                   Decimal(row.value) if row.value is not None else None)
        return found

    async def replace_states(self, rule_id: str, states: Mapping[str, KeyState]) -> None:
        """Store a rule's key states after an evaluation."""
        s = m.alert_state
        await self.session.execute(delete(s).where(s.c.rule_id == rule_id))
        if states:
            await self.session.execute(insert(s), [
                {"rule_id": rule_id, "key": key[:300], "status": state.status.value, "since": state.since,
                 "value": state.value} for key, state in states.items()])

    async def add_events(self, transitions: Sequence[Transition]) -> list[UUID]:
        """Append alert notifications to the history; returns their ids (also the webhook event ids)."""
        ids: list[UUID] = [uuid7() for _ in transitions]
        if transitions:
            await self.session.execute(insert(m.alert_event), [
                {"id": event_id, "rule_id": t.rule_id, "key": t.key[:300], "kind": t.kind.value, "value": t.value,
                 "threshold": t.threshold, "occurred_at": t.at} for event_id, t in zip(ids, transitions, strict=True)])
        return ids

    async def history(self, limit: int, before: UUID | None = None) -> list[Any]:
        """Alert notifications newest first, with the rule's name and metric and the webhook delivery state."""
        ev, r, wd = m.alert_event, m.alert_rule, m.webhooks.delivery
        delivery = (select(func.count()).select_from(wd)
                    .where(wd.c.event_id == ev.c.id, wd.c.status == "delivered").scalar_subquery())
        deliveries = select(func.count()).select_from(wd).where(wd.c.event_id == ev.c.id).scalar_subquery()
        query = (select(ev, r.c.name, r.c.metric, delivery.label("delivered"), deliveries.label("deliveries"))
                 .join(r, r.c.id == ev.c.rule_id).order_by(ev.c.id.desc()).limit(limit))
        if before is not None:
            query = query.where(ev.c.id < before)
        return list((await self.session.execute(query)).all())

    async def firing(self) -> list[Any]:
        """Keys firing now, with their rule."""
        s, r = m.alert_state, m.alert_rule
        return list((await self.session.execute(
            select(s, r.c.name, r.c.metric).join(r, r.c.id == s.c.rule_id)
            .where(s.c.status == AlertStatus.FIRING.value).order_by(s.c.since))).all())

    async def positions(self) -> dict[tuple[str, str], ConsumerPosition]:
        """Last known position of every group on every topic."""
        p = m.consumer_position
        return {(r.consumer_group, r.topic): ConsumerPosition(
            r.consumer_group, r.topic, int(r.committed_total), int(r.end_total), int(r.lag),
            aware(r.last_progress_at) or r.last_progress_at, aware(r.sampled_at) or r.sampled_at)
            for r in (await self.session.execute(select(p))).all()}

    async def save_positions(self, positions: Sequence[ConsumerPosition], known: Iterable[tuple[str, str]]) -> None:
        """Store sampled positions (update known pairs, insert new ones)."""
        p = m.consumer_position
        known_set = set(known)
        for pos in positions:
            values = {"committed_total": pos.committed_total, "end_total": pos.end_total, "lag": pos.lag,
                      "last_progress_at": pos.last_progress_at, "sampled_at": pos.sampled_at}
            if (pos.group, pos.topic) in known_set:
                await self.session.execute(update(p).where(p.c.consumer_group == pos.group, p.c.topic == pos.topic)
                                           .values(**values))
            else:
                await self.session.execute(insert(p).values(consumer_group=pos.group, topic=pos.topic, **values))


class OpsUnitOfWork(UnitOfWork):
    """One transaction of the ops service; repositories are built on its session."""

    journal: JournalRepository
    dead_letters: DeadLetterRepository
    projections: ProjectionRepository
    alerts: AlertRepository

    def _open(self) -> None:
        self.journal = JournalRepository(self.session)
        self.dead_letters = DeadLetterRepository(self.session)
        self.projections = ProjectionRepository(self.session)
        self.alerts = AlertRepository(self.session)


