"""Every query of the claims service, and the unit of work that exposes them."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy import JSON, Select, String, and_, bindparam, cast, func, insert, or_, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from claims.domain.coverage import suspended_days
from claims.domain.encounters import Coverage, EligibilityFact, PriorEncounter
from claims.domain.remittance import ClaimLine as PlanLine
from claims.domain.remittance import ClaimOutcome, ClaimRecord, PostingKind, PriorPosting
from claims.models import (
    AcknowledgmentFile,
    AuthorizationCoverage,
    Claim,
    ClaimBatch,
    ClaimHistory,
    ClaimLine,
    ClaimPayment,
    ControlNumber,
    Denial,
    EligibilityFactRow,
    Encounter,
    Payout,
    ProviderAdjustment,
    Remittance,
    RemittanceExceptionRow,
    RemittanceFile,
)
from shared.auth import TenantScope
from shared.db import advisory_xact_lock
from shared.json_encoding import to_json_text
from shared.uow import UnitOfWork

MAX_CONTROL_NUMBER = 999_999_999  # ISA13 and GS06 are at most 9 digits
# An MCP sees one ISA13 space per sender id (ISA06), and a hub may give the 837P and the 270 the same one, so the
# two senders split it: claims sends 1..499,999,999, eligibility 500,000,000..999,999,999 (services/eligibility
# repository.py, FIRST_INTERCHANGE_NUMBER). GS06 is unique within an interchange and keeps the full 9 digits.
LAST_INTERCHANGE_NUMBER = 499_999_999


class ControlNumbersExhausted(RuntimeError):
    """ISA13 for an MCP reached 499999999 (or GS06 999999999); a new partner agreement (or sender id) is needed."""


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
    suspensions = suspended_days([[date.fromisoformat(v) if v else None for v in pair] for pair in row.suspensions])
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
        if row.interchange >= LAST_INTERCHANGE_NUMBER or row.group_number >= MAX_CONTROL_NUMBER:
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


CHUNK = 1000  # bounded IN lists: one round trip per thousand ids (SQLite)
PG_CHUNK = 10_000  # PostgreSQL: one array parameter (= ANY) per ten thousand ids
COPY_FROM = 200  # rows from which PostgreSQL bulk inserts use COPY rather than INSERT ... VALUES


def _chunks(ids: Sequence[str], size: int = CHUNK) -> list[list[str]]:
    items = list(ids)
    return [items[start:start + size] for start in range(0, len(items), size)]


_PG_ARRAY_TYPES = {"String": "text", "Numeric": "numeric", "Date": "date", "DateTime": "timestamptz",
                   "Integer": "integer", "BigInteger": "bigint", "Boolean": "boolean"}


@dataclass
class ClaimState:
    """What posting needs of one of our claims besides the planner's view (columns, not ORM objects)."""

    claim_id: str
    status: str
    mcp_code: str
    cbo_organization_id: str
    member_id: str
    version: int
    payer_claim_number: str | None
    received_on: date | None
    line_pks: dict[str, int]  # encounter id (REF*6R) -> claim_line.id
    # Active (not reversed) prior postings: id -> (paid, adjustment total, BPR16, CLP07)
    active: dict[str, tuple[Decimal, Decimal, date, str]]
    correlation_id: UUID | None = None  # the claim's lineage (migration 0004); None for older claims


class RemittanceRepository:
    """835 files, payments, postings, PLB adjustments, exceptions, denials and payouts.

    Month-end files carry tens of thousands of claim payments: reads select columns in chunks of ids and writes
    are bulk inserts/updates, never one ORM object per row.
    """

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.postgres = _is_postgres(session)

    def _member_of(self, column: Any, ids: list[str]) -> Any:
        """`column IN ids`: one array parameter on PostgreSQL (one prepared statement whatever the count)."""
        if self.postgres:
            from sqlalchemy import String as SqlString
            from sqlalchemy import any_
            from sqlalchemy.dialects.postgresql import ARRAY

            return column == any_(bindparam("ids", ids, type_=ARRAY(SqlString)))
        return column.in_(ids)

    def _id_chunks(self, ids: Sequence[str]) -> list[list[str]]:
        return _chunks(ids, PG_CHUNK if self.postgres else CHUNK)

    def _physical(self, table: Any) -> str:
        translate = self.session.get_bind().get_execution_options().get("schema_translate_map") or {}
        schema: str = translate.get(table.schema, table.schema)
        return schema

    async def accepted_file(self, sha256: str) -> RemittanceFile | None:
        """The accepted 835 file with these bytes, or None."""
        return (await self.session.scalars(select(RemittanceFile).where(
            RemittanceFile.file_sha256 == sha256, RemittanceFile.status == "accepted"))).first()

    def add_file(self, row: RemittanceFile) -> None:
        """Stage a remittance file."""
        self.session.add(row)

    async def file(self, file_id: str) -> RemittanceFile | None:
        """A remittance file by id, or None."""
        return await self.session.get(RemittanceFile, file_id)

    async def posted_keys(self, digests: Sequence[str]) -> dict[str, str]:
        """Payment key digests already posted -> the file that posted them."""
        found: dict[str, str] = {}
        for chunk in _chunks(digests):
            rows = await self.session.execute(select(Remittance.key_digest, Remittance.file_id).where(
                Remittance.key_digest.in_(chunk)))
            found.update({digest: file_id for digest, file_id in rows})
        return found

    async def claims_for(self, claim_ids: Sequence[str], references: Sequence[str], *, mcp_code: str
                         ) -> tuple[dict[str, ClaimRecord], dict[str, ClaimState]]:
        """Our claims an 835 of `mcp_code` names (CLP01 = claim id; PLB references by claim id or payer claim
        number), as the planner sees them (lines, payer claim numbers, prior postings) and as posting updates
        them. Payer claim numbers are looked up among the paying MCP's claims only."""
        columns = (Claim.id, Claim.status, Claim.mcp_code, Claim.cbo_organization_id, Claim.member_id,
                   Claim.expected_amount, Claim.version, Claim.payer_claim_number, Claim.received_on,
                   Claim.correlation_id)
        # Rows are read as plain tuples and unpacked by position: at 50,000 claims and 100,000 lines the
        # per-attribute lookups of named rows were a third of the load.
        rows: dict[str, tuple[Any, ...]] = {}
        for chunk in self._id_chunks(sorted(set(claim_ids) | set(references))):
            for row in await self.session.execute(select(*columns).where(self._member_of(Claim.id, chunk))):
                rows[row[0]] = row
        # PLB03-2 may name the claim by the payer's claim number (277CA REF*1K or an earlier 835's CLP07), which
        # is unique only within one payer: another MCP's claim with the same number is not this payment's.
        unresolved = sorted(set(references) - {claim_id for claim_id, row in rows.items() if row[2] == mcp_code})
        for chunk in _chunks(unresolved):
            ids = set((await self.session.scalars(select(Claim.id).where(
                Claim.payer_claim_number.in_(chunk), Claim.mcp_code == mcp_code))).all())
            ids.update((await self.session.scalars(select(ClaimPayment.claim_id).where(
                ClaimPayment.payer_claim_number.in_(chunk), ClaimPayment.mcp_code == mcp_code))).all())
            for id_chunk in _chunks(sorted(ids - set(rows))):
                for row in await self.session.execute(select(*columns).where(Claim.id.in_(id_chunk))):
                    rows[row[0]] = row
        lines: dict[str, list[PlanLine]] = {claim_id: [] for claim_id in rows}
        line_pks: dict[str, dict[str, int]] = {claim_id: {} for claim_id in rows}
        postings: dict[str, list[Any]] = {claim_id: [] for claim_id in rows}
        # Modifiers are read as their JSON text and decoded once per distinct value: a file's 100,000 lines
        # carry a handful of modifier combinations.
        modifiers_of: dict[str, tuple[str, ...]] = {}
        for chunk in self._id_chunks(sorted(rows)):
            result = await self.session.execute(select(
                ClaimLine.id, ClaimLine.claim_id, ClaimLine.encounter_id, ClaimLine.hcpcs,
                cast(ClaimLine.modifiers, String), ClaimLine.service_from, ClaimLine.charge).where(
                self._member_of(ClaimLine.claim_id, chunk)).order_by(ClaimLine.claim_id, ClaimLine.line_number))
            for pk, claim_id, encounter_id, hcpcs, modifiers_text, service_from, charge in result:
                modifiers = modifiers_of.get(modifiers_text)
                if modifiers is None:
                    modifiers = modifiers_of[modifiers_text] = tuple(json.loads(modifiers_text))
                lines[claim_id].append(PlanLine(encounter_id, hcpcs, modifiers, service_from, Decimal(charge)))
                line_pks[claim_id][encounter_id] = pk
            for posting in await self.session.execute(select(
                    ClaimPayment.id, ClaimPayment.claim_id, ClaimPayment.payer_claim_number, ClaimPayment.kind,
                    ClaimPayment.outcome, ClaimPayment.paid, ClaimPayment.adjustment_total, ClaimPayment.paid_on,
                    ClaimPayment.line_ids, ClaimPayment.paid_line_ids, ClaimPayment.reversed_by).where(
                    self._member_of(ClaimPayment.claim_id, chunk)).order_by(ClaimPayment.posted_at, ClaimPayment.id)):
                postings[posting.claim_id].append(posting)
        records: dict[str, ClaimRecord] = {}
        states: dict[str, ClaimState] = {}
        for claim_id, (_, status, mcp_code, cbo_organization_id, member_id, expected_amount, version,
                       payer_claim_number, received_on, correlation_id) in rows.items():
            prior: tuple[PriorPosting, ...] = ()
            active: dict[str, tuple[Decimal, Decimal, date, str]] = {}
            if postings[claim_id]:
                prior = tuple(PriorPosting(p.id, p.payer_claim_number, PostingKind(p.kind), ClaimOutcome(p.outcome),
                                           Decimal(p.paid), tuple(p.line_ids), tuple(p.paid_line_ids),
                                           reversed=p.reversed_by is not None) for p in postings[claim_id])
                active = {p.id: (Decimal(p.paid), Decimal(p.adjustment_total), p.paid_on, p.payer_claim_number)
                          for p in postings[claim_id] if p.reversed_by is None and p.kind != "reversal"}
            records[claim_id] = ClaimRecord(
                claim_id, mcp_code, cbo_organization_id, member_id, Decimal(expected_amount), tuple(lines[claim_id]),
                (payer_claim_number,) if payer_claim_number else (), prior)
            states[claim_id] = ClaimState(
                claim_id, status, mcp_code, cbo_organization_id, member_id, version, payer_claim_number, received_on,
                line_pks[claim_id], active, correlation_id)
        return records, states

    async def insert(self, table: Any, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """Bulk insert rows (tuples in `columns` order) into one of the service's tables: COPY on PostgreSQL for
        many rows, else one multi-row INSERT. JSON columns take Python values (lists, tuples, dicts)."""
        if not rows:
            return
        if not self.postgres or len(rows) < COPY_FROM:
            await self.session.execute(insert(table), [dict(zip(columns, row, strict=True)) for row in rows])
            return
        json_at = [i for i, name in enumerate(columns) if isinstance(table.c[name].type, JSON)]
        records: Iterable[Sequence[Any]] = rows if not json_at else _with_json_text(rows, json_at)
        connection = await (await self.session.connection()).get_raw_connection()
        driver: Any = connection.driver_connection
        await driver.copy_records_to_table(table.name, records=records, columns=list(columns),
                                           schema_name=self._physical(table))

    async def update_by_id(self, table: Any, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """Bulk update rows by primary key: `columns` starts with "id", rows are tuples in that order.
        PostgreSQL: one UPDATE ... FROM unnest(arrays) per table; SQLite: executemany."""
        if not rows:
            return
        if columns[0] != "id":
            raise ValueError("update_by_id: the first column must be id")
        if self.postgres:
            types = [_PG_ARRAY_TYPES[type(table.c[n].type).__name__] for n in columns]
            # Amounts travel as text and are cast by the server: asyncpg's binary NUMERIC encoder costs ~1.5 us a
            # value (a third of a second for a month-end file's claims and lines), text ~0.2 us.
            arrays = ", ".join(f"CAST(CAST(:c{i} AS text[]) AS numeric[])" if kind == "numeric"
                               else f"CAST(:c{i} AS {kind}[])" for i, kind in enumerate(types))
            assignments = ", ".join(f'"{n}" = v."{n}"' for n in columns[1:])
            statement = text(f'UPDATE "{self._physical(table)}"."{table.name}" AS t SET {assignments} '  # noqa: S608
                             f'FROM unnest({arrays}) AS v({", ".join(chr(34) + n + chr(34) for n in columns)}) '
                             f"WHERE t.id = v.id")
            # Column arrays straight from the row tuples (one transposition).
            arrays_of = {f"c{i}": [None if v is None else str(v) for v in values] if kind == "numeric"
                         else list(values) for i, (kind, values) in enumerate(zip(types, zip(*rows, strict=True),
                                                                                    strict=True))}
            await self.session.execute(statement, arrays_of)
            return
        bulk = update(table).where(table.c.id == bindparam("_id")).values(
            {column: bindparam(f"_{column}") for column in columns[1:]})
        names = [f"_{column}" for column in columns]
        await self.session.execute(bulk, [dict(zip(names, row, strict=True)) for row in rows])

    async def last_received(self) -> dict[str, datetime]:
        """When each MCP's last 835 (accepted or duplicate) arrived."""
        rows = await self.session.execute(select(RemittanceFile.mcp_code, func.max(RemittanceFile.received_at))
                                          .where(RemittanceFile.status != "refused_unbalanced")
                                          .group_by(RemittanceFile.mcp_code))
        return {mcp: _aware(moment) or moment for mcp, moment in rows}

    async def last_payment_dates(self) -> dict[str, date]:
        """The latest BPR16 posted per MCP."""
        rows = await self.session.execute(select(Remittance.mcp_code, func.max(Remittance.payment_date))
                                          .group_by(Remittance.mcp_code))
        return {mcp: day for mcp, day in rows}

    async def get(self, remittance_id: str) -> Remittance | None:
        """A posted payment by id, or None."""
        return await self.session.get(Remittance, remittance_id)

    async def listing(self, *, mcp_code: str | None, trace_number: str | None, paid_from: date | None,
                      paid_to: date | None, limit: int, after: tuple[datetime, str] | None) -> list[Remittance]:
        """Posted payments, newest first."""
        query = select(Remittance)
        if mcp_code:
            query = query.where(Remittance.mcp_code == mcp_code)
        if trace_number:
            query = query.where(Remittance.trace_number == trace_number)
        if paid_from:
            query = query.where(Remittance.payment_date >= paid_from)
        if paid_to:
            query = query.where(Remittance.payment_date <= paid_to)
        if after is not None:
            query = query.where(or_(Remittance.posted_at < after[0],
                                    and_(Remittance.posted_at == after[0], Remittance.id < after[1])))
        query = query.order_by(Remittance.posted_at.desc(), Remittance.id.desc()).limit(limit)
        return list((await self.session.scalars(query)).all())

    async def payments_of(self, *, remittance_id: str | None = None, claim_id: str | None = None
                          ) -> list[ClaimPayment]:
        """Claim payment postings of a remittance or of a claim, in posting order."""
        query = select(ClaimPayment)
        if remittance_id:
            query = query.where(ClaimPayment.remittance_id == remittance_id)
        if claim_id:
            query = query.where(ClaimPayment.claim_id == claim_id)
        return list((await self.session.scalars(query.order_by(ClaimPayment.posted_at, ClaimPayment.position))).all())

    async def adjustments_of(self, remittance_id: str) -> list[ProviderAdjustment]:
        """PLB adjustments of a remittance, in file order."""
        return list((await self.session.scalars(select(ProviderAdjustment).where(
            ProviderAdjustment.remittance_id == remittance_id).order_by(ProviderAdjustment.position))).all())

    async def exception(self, exception_id: str, *, for_update: bool = False) -> RemittanceExceptionRow | None:
        """An exception by id, or None."""
        query = select(RemittanceExceptionRow).where(RemittanceExceptionRow.id == exception_id)
        if for_update and _is_postgres(self.session):
            query = query.with_for_update()
        return (await self.session.scalars(query)).first()

    async def exceptions(self, scope: TenantScope, *, status: str | None, mcp_code: str | None,
                         reason: str | None, remittance_id: str | None, limit: int,
                         after: tuple[datetime, str] | None) -> list[RemittanceExceptionRow]:
        """Exceptions the caller may see (hub: all; MCP: its own), newest first."""
        query = scope.filter(select(RemittanceExceptionRow),
                             mcp_column=RemittanceExceptionRow.__table__.c.mcp_code)
        if status:
            query = query.where(RemittanceExceptionRow.status == status)
        if mcp_code:
            query = query.where(RemittanceExceptionRow.mcp_code == mcp_code)
        if reason:
            query = query.where(RemittanceExceptionRow.reason == reason)
        if remittance_id:
            query = query.where(RemittanceExceptionRow.remittance_id == remittance_id)
        if after is not None:
            query = query.where(or_(RemittanceExceptionRow.created_at < after[0],
                                    and_(RemittanceExceptionRow.created_at == after[0],
                                         RemittanceExceptionRow.id < after[1])))
        query = query.order_by(RemittanceExceptionRow.created_at.desc(), RemittanceExceptionRow.id.desc())
        return list((await self.session.scalars(query.limit(limit))).all())

    async def provider_adjustment(self, adjustment_id: str) -> ProviderAdjustment | None:
        """A PLB adjustment by id, or None."""
        return await self.session.get(ProviderAdjustment, adjustment_id)

    async def denial(self, denial_id: str, *, for_update: bool = False) -> Denial | None:
        """A denial by id, or None."""
        query = select(Denial).where(Denial.id == denial_id)
        if for_update and _is_postgres(self.session):
            query = query.with_for_update()
        return (await self.session.scalars(query)).first()

    async def open_denials_of(self, claim_id: str) -> list[Denial]:
        """A claim's open denials."""
        return list((await self.session.scalars(select(Denial).where(
            Denial.claim_id == claim_id, Denial.status == "open"))).all())

    async def denials(self, scope: TenantScope, *, status: str | None, category: str | None,
                      mcp_code: str | None, cbo_organization_id: str | None, claim_id: str | None, limit: int,
                      after: tuple[datetime, str] | None) -> list[Denial]:
        """The denials work queue as the caller may see it (a CBO its own, an MCP its plan's), newest first."""
        query = scope.filter(select(Denial), cbo_column=Denial.__table__.c.cbo_organization_id,
                             mcp_column=Denial.__table__.c.mcp_code)
        for column, value in ((Denial.status, status), (Denial.category, category), (Denial.mcp_code, mcp_code),
                              (Denial.cbo_organization_id, cbo_organization_id), (Denial.claim_id, claim_id)):
            if value:
                query = query.where(column == value)
        if after is not None:
            query = query.where(or_(Denial.created_at < after[0],
                                    and_(Denial.created_at == after[0], Denial.id < after[1])))
        query = query.order_by(Denial.created_at.desc(), Denial.id.desc()).limit(limit)
        return list((await self.session.scalars(query)).all())

    async def reversed_denials(self, payment_ids: Sequence[str]) -> None:
        """Denials whose posting a reversal undid leave the work queue (status reversed)."""
        for chunk in _chunks(payment_ids):
            await self.session.execute(update(Denial).where(Denial.claim_payment_id.in_(chunk),
                                                            Denial.status == "open").values(status="reversed")
                                       .execution_options(synchronize_session=False))

    async def timely_rows(self, scope: TenantScope, mcp_codes: Sequence[str]) -> list[Any]:
        """Claims that reached the MCP (submitted or later), with what the timely-payment report needs."""
        query = scope.filter(select(Claim.id, Claim.mcp_code, Claim.status, Claim.expected_amount,
                                    Claim.received_on, Claim.acknowledged_at, Claim.submitted_at)
                             .where(Claim.mcp_code.in_(list(mcp_codes)),
                                    Claim.status.in_(("submitted", "accepted", "paid", "denied", "reversed"))),
                             cbo_column=Claim.__table__.c.cbo_organization_id, mcp_column=Claim.__table__.c.mcp_code)
        return list((await self.session.execute(query)).all())

    async def first_adjudications(self, mcp_codes: Sequence[str]) -> dict[str, tuple[date, Decimal]]:
        """Per claim: the BPR16 of its first paid or denied posting, and what that posting paid."""
        rows = await self.session.execute(select(ClaimPayment.claim_id, ClaimPayment.paid_on, ClaimPayment.paid)
                                          .where(ClaimPayment.mcp_code.in_(list(mcp_codes)),
                                                 ClaimPayment.kind != "reversal")
                                          .order_by(ClaimPayment.paid_on, ClaimPayment.posted_at))
        first: dict[str, tuple[date, Decimal]] = {}
        for claim_id, paid_on, paid in rows:
            first.setdefault(claim_id, (paid_on, Decimal(paid)))
        return first

    async def interest_paid(self, mcp_codes: Sequence[str]) -> list[ProviderAdjustment]:
        """PLB interest (L6) rows of these MCPs."""
        return list((await self.session.scalars(select(ProviderAdjustment).where(
            ProviderAdjustment.mcp_code.in_(list(mcp_codes)), ProviderAdjustment.kind == "interest"))).all())

    async def payout_for(self, cbo_organization_id: str, period_start: date) -> Payout | None:
        """The CBO's payout starting on this date, or None."""
        return (await self.session.scalars(select(Payout).where(
            Payout.cbo_organization_id == cbo_organization_id, Payout.period_start == period_start))).first()

    async def overlapping_payout(self, cbo_organization_id: str, start: date, end: date) -> Payout | None:
        """A payout of the CBO whose period overlaps [start, end], or None."""
        return (await self.session.scalars(select(Payout).where(
            Payout.cbo_organization_id == cbo_organization_id, Payout.period_start <= end,
            Payout.period_end >= start))).first()

    async def previous_payout(self, cbo_organization_id: str, before: date) -> Payout | None:
        """The CBO's latest payout ending before a date, or None."""
        return (await self.session.scalars(select(Payout).where(
            Payout.cbo_organization_id == cbo_organization_id, Payout.period_end < before)
            .order_by(Payout.period_end.desc()))).first()

    async def unsettled_payments(self, cbo_organization_id: str, start: date, end: date) -> list[ClaimPayment]:
        """The CBO's postings paid in the period and not yet in a payout."""
        return list((await self.session.scalars(select(ClaimPayment).where(
            ClaimPayment.cbo_organization_id == cbo_organization_id, ClaimPayment.payout_id.is_(None),
            ClaimPayment.paid_on >= start, ClaimPayment.paid_on <= end))).all())

    async def unsettled_adjustments(self, cbo_organization_id: str, start: date, end: date
                                    ) -> list[ProviderAdjustment]:
        """PLB adjustments attributed to the CBO's claims, in the period and not yet in a payout."""
        return list((await self.session.scalars(select(ProviderAdjustment).where(
            ProviderAdjustment.cbo_organization_id == cbo_organization_id, ProviderAdjustment.payout_id.is_(None),
            ProviderAdjustment.paid_on >= start, ProviderAdjustment.paid_on <= end))).all())

    async def unsettled_before(self, cbo_organization_id: str, start: date) -> int:
        """Postings and PLB rows of the CBO dated before `start` that no payout has taken (arrived late)."""
        payments = await self.session.scalar(select(func.count()).select_from(ClaimPayment).where(
            ClaimPayment.cbo_organization_id == cbo_organization_id, ClaimPayment.payout_id.is_(None),
            ClaimPayment.paid_on < start, ClaimPayment.paid != 0))
        adjustments = await self.session.scalar(select(func.count()).select_from(ProviderAdjustment).where(
            ProviderAdjustment.cbo_organization_id == cbo_organization_id, ProviderAdjustment.payout_id.is_(None),
            ProviderAdjustment.paid_on < start))
        return int(payments or 0) + int(adjustments or 0)

    async def payment_dates(self, payment_ids: Sequence[str]) -> dict[str, date]:
        """BPR16 of postings by id (a reversal's fee follows the payment it undoes)."""
        found: dict[str, date] = {}
        for chunk in _chunks(payment_ids):
            rows = await self.session.execute(select(ClaimPayment.id, ClaimPayment.paid_on).where(
                ClaimPayment.id.in_(chunk)))
            found.update({pid: day for pid, day in rows})
        return found

    def add_payout(self, row: Payout) -> None:
        """Stage a payout."""
        self.session.add(row)

    async def payout(self, payout_id: str) -> Payout | None:
        """A payout by id, or None."""
        return await self.session.get(Payout, payout_id)

    async def payouts(self, scope: TenantScope, *, cbo_organization_id: str | None, limit: int) -> list[Payout]:
        """Payouts the caller may see (a CBO its own), newest period first."""
        query = scope.filter(select(Payout), cbo_column=Payout.__table__.c.cbo_organization_id)
        if cbo_organization_id:
            query = query.where(Payout.cbo_organization_id == cbo_organization_id)
        return list((await self.session.scalars(query.order_by(Payout.period_end.desc(), Payout.id.desc())
                                                .limit(limit))).all())


def _json_text(value: Any) -> str | None:
    """A JSON column's value as COPY sends it (text), encoded as the engine's ORM path encodes it
    (`to_json_text`), so a batch stores the same text whatever its size; empty lists, the common case, skip the
    encoder."""
    if value is None:
        return None
    if not value and isinstance(value, list | tuple):
        return "[]"
    return to_json_text(value)


def _with_json_text(rows: Iterable[Sequence[Any]], json_at: Sequence[int]) -> Iterator[list[Any]]:
    """Rows with their JSON columns encoded, one at a time as COPY consumes them (no second copy of the rows)."""
    for row in rows:
        record = list(row)
        for i in json_at:
            record[i] = _json_text(record[i])
        yield record


class ClaimsUnitOfWork(UnitOfWork):
    """One transaction of the claims service; repositories are built on its session."""

    encounters: EncounterRepository
    coverages: CoverageRepository
    eligibility: EligibilityRepository
    claims: ClaimRepository
    batches: BatchRepository
    acknowledgments: AcknowledgmentRepository
    remittances: RemittanceRepository

    def _open(self) -> None:
        self.encounters = EncounterRepository(self.session)
        self.coverages = CoverageRepository(self.session)
        self.eligibility = EligibilityRepository(self.session)
        self.claims = ClaimRepository(self.session)
        self.batches = BatchRepository(self.session)
        self.acknowledgments = AcknowledgmentRepository(self.session)
        self.remittances = RemittanceRepository(self.session)

    async def lock_member(self, member_id: str) -> None:
        """Serialize work on one member's encounters (duplicates, caps, draft claims) across instances.

        PostgreSQL: a transaction-scoped advisory lock keyed by the member id; SQLite: BEGIN IMMEDIATE already
        serializes writers.
        """
        await advisory_xact_lock(self.session, member_id)


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
    from shared.ids import uuid7

    return ClaimHistory(id=uuid7(), claim_id=claim_id, occurred_at=at or datetime.now(UTC), actor=actor,
                        actor_key_id=actor_key_id, action=action, from_status=from_status, to_status=to_status,
                        detail=detail or {})


__all__ = ["ClaimsUnitOfWork", "ControlNumbersExhausted", "decode_cursor", "encode_cursor", "mark_claims",
           "new_history"]
