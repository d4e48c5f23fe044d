"""Every query of the claims service, and the unit of work that exposes them."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Select, and_, func, or_, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from claims.domain.encounters import Coverage, EligibilityFact, PriorEncounter
from claims.models import (
    AcknowledgmentFile,
    AuthorizationCoverage,
    Claim,
    ClaimBatch,
    ClaimHistory,
    ClaimLine,
    ControlNumber,
    EligibilityFactRow,
    Encounter,
)
from shared.auth import TenantScope
from shared.uow import UnitOfWork

MAX_CONTROL_NUMBER = 999_999_999  # ISA13 and GS06 are at most 9 digits


class ControlNumbersExhausted(RuntimeError):
    """ISA13/GS06 for an MCP reached 999999999; a new partner agreement (or sender id) is needed."""


def _is_postgres(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _aware(value: datetime | None) -> datetime | None:
    # SQLite keeps no offset; everything this service writes is UTC.
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


class EncounterRepository:
    """Encounters, recorded or rejected."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def add(self, encounter: Encounter) -> None:
        """Stage a new encounter."""
        self.session.add(encounter)

    async def get(self, encounter_id: str) -> Encounter | None:
        """The encounter with this id, or None."""
        return await self.session.get(Encounter, encounter_id)

    async def by_external_id(self, cbo_organization_id: str, external_id: str) -> Encounter | None:
        """A CBO's encounter by the CBO's own id, or None."""
        return (await self.session.scalars(select(Encounter).where(
            Encounter.cbo_organization_id == cbo_organization_id, Encounter.external_id == external_id))).first()

    async def history(self, member_id: str) -> list[PriorEncounter]:
        """The member's recorded encounters (every MCP and CBO), for the checks and pricing."""
        rows = (await self.session.scalars(select(Encounter).where(
            Encounter.member_id == member_id, Encounter.status == "recorded"))).all()
        return [prior_encounter(row) for row in rows]

    async def listing(self, scope: TenantScope, *, status: str | None, claim_id: str | None, limit: int,
                      after: tuple[datetime, str] | None) -> list[Encounter]:
        """Encounters the caller may see, newest first."""
        query = scope.filter(select(Encounter), cbo_column=Encounter.__table__.c.cbo_organization_id,
                             mcp_column=Encounter.__table__.c.mcp_code)
        if status:
            query = query.where(Encounter.status == status)
        if claim_id:
            query = query.where(Encounter.claim_id == claim_id)
        if after is not None:
            query = query.where(or_(Encounter.received_at < after[0],
                                    and_(Encounter.received_at == after[0], Encounter.id < after[1])))
        query = query.order_by(Encounter.received_at.desc(), Encounter.id.desc()).limit(limit)
        return list((await self.session.scalars(query)).all())


def prior_encounter(row: Encounter) -> PriorEncounter:
    """The check/pricing view of a recorded encounter row."""
    return PriorEncounter(
        encounter_id=row.id, cbo_organization_id=row.cbo_organization_id, mcp_code=row.mcp_code or "",
        program=row.program, service_code=row.service_code or "", hcpcs=row.hcpcs,
        modifiers=frozenset(row.modifiers), units=Decimal(row.units), service_from=row.service_from,
        service_to=row.service_to, rendering_npi=row.rendering_npi, outreach_attempt=row.outreach_attempt,
        expected_amount=Decimal(row.expected_amount or 0),
        components=tuple(c["basis"] for c in row.pricing if Decimal(c["amount"]) > 0))


class CoverageRepository:
    """The authorization projection."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, authorization_id: str) -> AuthorizationCoverage | None:
        """The projection row of an authorization, or None."""
        return await self.session.get(AuthorizationCoverage, authorization_id)

    def add(self, row: AuthorizationCoverage) -> None:
        """Stage a new projection row."""
        self.session.add(row)

    async def for_member(self, member_id: str) -> list[Coverage]:
        """The member's authorizations as the checks see them."""
        rows = (await self.session.scalars(select(AuthorizationCoverage).where(
            AuthorizationCoverage.member_id == member_id))).all()
        return [coverage(row) for row in rows]


def coverage(row: AuthorizationCoverage) -> Coverage:
    """The check view of a projection row."""
    suspensions = tuple((date.fromisoformat(str(s[0])), date.fromisoformat(str(s[1])) if s[1] else None)
                        for s in row.suspensions)
    return Coverage(authorization_id=row.authorization_id, mcp_code=row.mcp_code, program=row.program,
                    cs_code=row.cs_code, status=row.status, period_start=row.period_start,
                    period_end=row.period_end, ends_before=row.ends_before, suspensions=suspensions,
                    presumptive=row.presumptive, mcp_authorization_number=row.mcp_authorization_number)


class EligibilityRepository:
    """The eligibility projection."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, row: EligibilityFactRow) -> bool:
        """Stage a fact unless its event was already projected; True if added."""
        exists = await self.session.scalar(select(EligibilityFactRow.id).where(
            EligibilityFactRow.event_id == row.event_id))
        if exists is not None:
            return False
        self.session.add(row)
        return True

    async def close_open_enrollment(self, member_id: str, before: date) -> None:
        """End the member's open-ended enrollment facts the day before a change takes effect."""
        rows = (await self.session.scalars(select(EligibilityFactRow).where(
            EligibilityFactRow.member_id == member_id, EligibilityFactRow.kind.in_(("enrolled", "not_enrolled")),
            EligibilityFactRow.effective_to.is_(None), EligibilityFactRow.effective_from < before))).all()
        for row in rows:
            row.effective_to = date.fromordinal(before.toordinal() - 1)

    async def for_member(self, member_id: str) -> list[EligibilityFact]:
        """The member's facts as the checks see them."""
        rows = (await self.session.scalars(select(EligibilityFactRow).where(
            EligibilityFactRow.member_id == member_id).order_by(EligibilityFactRow.id))).all()
        return [EligibilityFact(kind=r.kind, effective_from=r.effective_from, effective_to=r.effective_to,
                                mcp_code=r.mcp_code, program=r.program, sequence=int(r.id or 0)) for r in rows]


@dataclass(frozen=True)
class ClaimFilter:
    """GET /v1/claims filters."""

    status: str | None = None
    mcp_code: str | None = None
    cbo_organization_id: str | None = None
    member_id: str | None = None
    service_from: date | None = None  # claims with service on or after
    service_to: date | None = None  # claims with service on or before
    min_age_days: int | None = None
    max_age_days: int | None = None
    batch_id: str | None = None


class ClaimRepository:
    """Claims, lines and their history."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def add(self, claim: Claim) -> None:
        """Stage a new claim."""
        self.session.add(claim)

    def add_line(self, line: ClaimLine) -> None:
        """Stage a new claim line."""
        self.session.add(line)

    def add_history(self, entry: ClaimHistory) -> None:
        """Stage a history entry."""
        self.session.add(entry)

    async def get(self, claim_id: str, *, for_update: bool = False) -> Claim | None:
        """The claim with this id (locked for update on PostgreSQL when asked), or None."""
        query = select(Claim).where(Claim.id == claim_id)
        if for_update and _is_postgres(self.session):
            query = query.with_for_update()
        return (await self.session.scalars(query)).first()

    async def by_ids(self, claim_ids: Sequence[str]) -> dict[str, Claim]:
        """Claims by id (missing ids are absent)."""
        found: dict[str, Claim] = {}
        ids = list(claim_ids)
        for start in range(0, len(ids), 1000):  # keep IN lists bounded
            rows = (await self.session.scalars(select(Claim).where(Claim.id.in_(ids[start:start + 1000])))).all()
            found.update({row.id: row for row in rows})
        return found

    async def open_draft(self, *, mcp_code: str, cbo_organization_id: str, member_id: str, program: str,
                         service_code: str, authorization_id: str | None, rendering_npi: str,
                         service_month: date) -> list[Claim]:
        """Draft original claims with this grouping key, oldest first."""
        query = select(Claim).where(
            Claim.status == "draft", Claim.frequency_code == "1", Claim.mcp_code == mcp_code,
            Claim.cbo_organization_id == cbo_organization_id, Claim.member_id == member_id,
            Claim.program == program, Claim.service_code == service_code, Claim.rendering_npi == rendering_npi,
            Claim.service_month == service_month,
            Claim.authorization_id == authorization_id if authorization_id else Claim.authorization_id.is_(None))
        return list((await self.session.scalars(query.order_by(Claim.created_at))).all())

    async def lines(self, claim_id: str) -> list[ClaimLine]:
        """A claim's lines in order."""
        return list((await self.session.scalars(select(ClaimLine).where(ClaimLine.claim_id == claim_id)
                                                .order_by(ClaimLine.line_number))).all())

    async def lines_of(self, claim_ids: Sequence[str]) -> dict[str, list[ClaimLine]]:
        """Lines of many claims, by claim id."""
        result: dict[str, list[ClaimLine]] = {cid: [] for cid in claim_ids}
        ids = list(claim_ids)
        for start in range(0, len(ids), 1000):
            rows = (await self.session.scalars(select(ClaimLine).where(
                ClaimLine.claim_id.in_(ids[start:start + 1000])).order_by(ClaimLine.claim_id,
                                                                        ClaimLine.line_number))).all()
            for row in rows:
                result[row.claim_id].append(row)
        return result

    async def drafts(self, mcp_code: str, limit: int) -> list[Claim]:
        """Draft claims of an MCP to batch, oldest first."""
        return list((await self.session.scalars(select(Claim).where(
            Claim.mcp_code == mcp_code, Claim.status == "draft").order_by(Claim.created_at, Claim.id)
            .limit(limit))).all())

    async def in_transaction_set(self, batch_id: str, control_number: str) -> list[Claim]:
        """The claims a batch carried in one transaction set (ST02)."""
        return list((await self.session.scalars(select(Claim).where(
            Claim.batch_id == batch_id, Claim.transaction_set == control_number))).all())

    async def history(self, claim_id: str) -> list[ClaimHistory]:
        """A claim's history, oldest first."""
        return list((await self.session.scalars(select(ClaimHistory).where(ClaimHistory.claim_id == claim_id)
                                                .order_by(ClaimHistory.occurred_at, ClaimHistory.id))).all())

    async def replacement_of(self, claim_id: str) -> Claim | None:
        """A pending (not yet rejected) replacement or void of a claim, or None."""
        return (await self.session.scalars(select(Claim).where(
            Claim.replaces_claim_id == claim_id, Claim.status != "rejected"))).first()

    def _filtered(self, scope: TenantScope, filters: ClaimFilter, now: datetime) -> Select[Any]:
        query = scope.filter(select(Claim), cbo_column=Claim.__table__.c.cbo_organization_id,
                             mcp_column=Claim.__table__.c.mcp_code)
        if filters.status:
            query = query.where(Claim.status == filters.status)
        if filters.mcp_code:
            query = query.where(Claim.mcp_code == filters.mcp_code)
        if filters.cbo_organization_id:
            query = query.where(Claim.cbo_organization_id == filters.cbo_organization_id)
        if filters.member_id:
            query = query.where(Claim.member_id == filters.member_id)
        if filters.batch_id:
            query = query.where(Claim.batch_id == filters.batch_id)
        if filters.service_from:
            query = query.where(Claim.service_to >= filters.service_from)
        if filters.service_to:
            query = query.where(Claim.service_from <= filters.service_to)
        # Age: days since the claim left (submitted) or, before that, since it was opened.
        aged_from = func.coalesce(Claim.submitted_at, Claim.created_at)
        if filters.min_age_days is not None:
            query = query.where(aged_from <= now - _days(filters.min_age_days))
        if filters.max_age_days is not None:
            query = query.where(aged_from >= now - _days(filters.max_age_days))
        return query

    async def listing(self, scope: TenantScope, filters: ClaimFilter, *, limit: int,
                      after: tuple[datetime, str] | None, now: datetime) -> list[Claim]:
        """Claims the caller may see, newest first, after a cursor."""
        query = self._filtered(scope, filters, now)
        if after is not None:
            query = query.where(or_(Claim.created_at < after[0],
                                    and_(Claim.created_at == after[0], Claim.id < after[1])))
        query = query.order_by(Claim.created_at.desc(), Claim.id.desc()).limit(limit)
        return list((await self.session.scalars(query)).all())


def _days(n: int) -> timedelta:
    return timedelta(days=n)


class BatchRepository:
    """Claim batches and per-MCP control numbers."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def add(self, batch: ClaimBatch) -> None:
        """Stage a new batch."""
        self.session.add(batch)

    async def get(self, batch_id: str) -> ClaimBatch | None:
        """The batch with this id, or None."""
        return await self.session.get(ClaimBatch, batch_id)

    async def by_group(self, mcp_code: str, group_control_number: int) -> ClaimBatch | None:
        """The batch an MCP's 999 answers (AK1-02 = our GS06), or None."""
        return (await self.session.scalars(select(ClaimBatch).where(
            ClaimBatch.mcp_code == mcp_code, ClaimBatch.group_control_number == group_control_number))).first()

    async def listing(self, mcp_code: str | None, limit: int) -> list[ClaimBatch]:
        """Recent batches, newest first."""
        query = select(ClaimBatch)
        if mcp_code:
            query = query.where(ClaimBatch.mcp_code == mcp_code)
        return list((await self.session.scalars(query.order_by(ClaimBatch.created_at.desc()).limit(limit))).all())

    async def lock_control_numbers(self, mcp_code: str) -> ControlNumber:
        """The MCP's counter row, locked until the transaction ends (created at 0/0 the first time).

        Taken before the drafts are read, so two batch runs for one MCP are serialized end to end.
        """
        query = select(ControlNumber).where(ControlNumber.mcp_code == mcp_code)
        if _is_postgres(self.session):
            query = query.with_for_update()
        row = (await self.session.scalars(query)).first()
        if row is not None:
            return row
        try:
            async with self.session.begin_nested():
                self.session.add(ControlNumber(mcp_code=mcp_code, interchange=0, group_number=0,
                                               updated_at=datetime.now(UTC)))
        except IntegrityError:
            pass  # another instance created it first; lock theirs
        row = (await self.session.scalars(query.execution_options(populate_existing=True))).first()
        assert row is not None
        return row

    @staticmethod
    def advance(row: ControlNumber) -> tuple[int, int]:
        """Take the next ISA13 and GS06 from a locked counter row; raises ControlNumbersExhausted."""
        if row.interchange >= MAX_CONTROL_NUMBER or row.group_number >= MAX_CONTROL_NUMBER:
            raise ControlNumbersExhausted(row.mcp_code)
        row.interchange += 1
        row.group_number += 1
        row.updated_at = datetime.now(UTC)
        return row.interchange, row.group_number


class AcknowledgmentRepository:
    """999/277CA files already applied."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def seen(self, kind: str, sha256: str) -> bool:
        """True if a file with these bytes was applied before."""
        return await self.session.scalar(select(AcknowledgmentFile.id).where(
            AcknowledgmentFile.kind == kind, AcknowledgmentFile.file_sha256 == sha256)) is not None

    def add(self, row: AcknowledgmentFile) -> None:
        """Stage a processed file."""
        self.session.add(row)


class ClaimsUnitOfWork(UnitOfWork):
    """One transaction of the claims service; repositories are built on its session."""

    encounters: EncounterRepository
    coverages: CoverageRepository
    eligibility: EligibilityRepository
    claims: ClaimRepository
    batches: BatchRepository
    acknowledgments: AcknowledgmentRepository

    def _open(self) -> None:
        self.encounters = EncounterRepository(self.session)
        self.coverages = CoverageRepository(self.session)
        self.eligibility = EligibilityRepository(self.session)
        self.claims = ClaimRepository(self.session)
        self.batches = BatchRepository(self.session)
        self.acknowledgments = AcknowledgmentRepository(self.session)

    async def lock_member(self, member_id: str) -> None:
        """Serialize work on one member's encounters (duplicates, caps, draft claims) across instances.

        PostgreSQL: a transaction-scoped advisory lock keyed by the member id; SQLite: BEGIN IMMEDIATE already
        serializes writers.
        """
        if _is_postgres(self.session):
            key = int.from_bytes(hashlib.sha256(member_id.encode()).digest()[:8], "big", signed=True)
            await self.session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


def encode_cursor(moment: datetime, row_id: str) -> str:
    """An opaque pagination cursor for (time, id)."""
    raw = json.dumps([moment.isoformat(), row_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The (time, id) of a cursor; raises ValueError for a malformed one."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        moment, row_id = json.loads(base64.urlsafe_b64decode(padded.encode()))
        parsed = datetime.fromisoformat(moment)
    except (ValueError, TypeError) as exc:
        raise ValueError("malformed cursor") from exc
    return (_aware(parsed) or parsed), str(row_id)


async def mark_claims(session: AsyncSession, claim_ids: Sequence[str], **values: Any) -> None:
    """Bulk-update claims (batching 50,000 claims one ORM object at a time is too slow)."""
    ids = list(claim_ids)
    for start in range(0, len(ids), 1000):
        await session.execute(update(Claim).where(Claim.id.in_(ids[start:start + 1000])).values(**values)
                              .execution_options(synchronize_session=False))


def new_history(claim_id: str, *, action: str, actor: str, from_status: str | None, to_status: str | None,
                detail: dict[str, Any] | None = None, actor_key_id: str | None = None,
                at: datetime | None = None) -> ClaimHistory:
    """A claim history entry (ids, codes and amounts in detail, never member data)."""
    from uuid6 import uuid7

    return ClaimHistory(id=uuid7(), claim_id=claim_id, occurred_at=at or datetime.now(UTC), actor=actor,
                        actor_key_id=actor_key_id, action=action, from_status=from_status, to_status=to_status,
                        detail=detail or {})


__all__ = ["ClaimsUnitOfWork", "ControlNumbersExhausted", "decode_cursor", "encode_cursor", "mark_claims",
           "new_history"]
