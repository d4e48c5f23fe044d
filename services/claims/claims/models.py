"""Tables of the claims service, all in its own schema `claims`.

Encounters (kept whether recorded or rejected), claims and their lines (with room for remittance posting:
payer claim number, paid and adjustment amounts), the history of every claim change after submission,
claim batches with per-MCP control numbers, acknowledgment files, and the projections kept from
authorization and eligibility events. Money is NUMERIC(12,2); dates of service are dates.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Index,
    Integer,
    Numeric,
    String,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.auth import define_audit_table
from shared.db import service_metadata
from shared.platform_tables import define_platform_tables

SCHEMA = "claims"



class Base(DeclarativeBase):
    """Declarative base of the claims schema (spelled out, not `shared.db.declarative_base`, so mypy sees a class)."""

    metadata = service_metadata(SCHEMA)


platform = define_platform_tables(Base.metadata)
audit_event = define_audit_table(Base.metadata)

Money = Numeric(12, 2)
BigId = BigInteger().with_variant(Integer, "sqlite")


class Encounter(Base):
    """A CBO's encounter as submitted, with the verdict of the checks (recorded or rejected) and its price."""

    __tablename__ = "encounter"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    external_id: Mapped[str | None] = mapped_column(String(100))  # the CBO's own id; unique per CBO
    cbo_organization_id: Mapped[str] = mapped_column(String(64))
    mcp_code: Mapped[str | None] = mapped_column(String(50))
    member_id: Mapped[str] = mapped_column(String(40))
    cin: Mapped[str] = mapped_column(String(9))  # PHI: needed for the 837P subscriber loop
    member: Mapped[dict[str, Any]] = mapped_column(JSON)  # PHI: names, birth date, sex, address
    program: Mapped[str] = mapped_column(String(10))
    cs_code: Mapped[str | None] = mapped_column(String(60))
    service_code: Mapped[str | None] = mapped_column(String(60))
    hcpcs: Mapped[str] = mapped_column(String(5))
    modifiers: Mapped[list[str]] = mapped_column(JSON)
    units: Mapped[Decimal] = mapped_column(Numeric(9, 2))
    service_from: Mapped[date] = mapped_column(Date)
    service_to: Mapped[date] = mapped_column(Date)
    place_of_service: Mapped[str] = mapped_column(String(2))
    diagnosis_codes: Mapped[list[str]] = mapped_column(JSON)
    rendering_npi: Mapped[str] = mapped_column(String(10))
    rendering_last_name: Mapped[str | None] = mapped_column(String(60))
    rendering_first_name: Mapped[str | None] = mapped_column(String(35))
    outreach_attempt: Mapped[bool] = mapped_column(Boolean)
    outreach_outcome: Mapped[str | None] = mapped_column(String(20))
    prerequisites: Mapped[list[str]] = mapped_column(JSON)
    care_plan_on_file: Mapped[bool] = mapped_column(Boolean)
    status: Mapped[str] = mapped_column(String(20))  # recorded, rejected
    reasons: Mapped[list[dict[str, str]]] = mapped_column(JSON)
    flags: Mapped[list[dict[str, str]]] = mapped_column(JSON)
    authorization_id: Mapped[str | None] = mapped_column(String(64))
    prior_authorization_number: Mapped[str | None] = mapped_column(String(50))
    expected_amount: Mapped[Decimal | None] = mapped_column(Money)
    pricing: Mapped[list[dict[str, str]]] = mapped_column(JSON)
    claim_id: Mapped[str | None] = mapped_column(String(20))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    submitted_by: Mapped[str] = mapped_column(String(64))

    __table_args__ = (
        UniqueConstraint("cbo_organization_id", "external_id"),
        Index("ix_encounter_member_id_service_from", "member_id", "service_from"),
        Index("ix_encounter_cbo_organization_id_received_at", "cbo_organization_id", "received_at"),
        Index("ix_encounter_claim_id", "claim_id"),
    )


class Claim(Base):
    """A claim (CLM01 = id) of one member, CBO, service, authorization and month, in its lifecycle."""

    __tablename__ = "claim"

    id: Mapped[str] = mapped_column(String(20), primary_key=True)
    mcp_code: Mapped[str] = mapped_column(String(50))
    cbo_organization_id: Mapped[str] = mapped_column(String(64))
    member_id: Mapped[str] = mapped_column(String(40))
    cin: Mapped[str] = mapped_column(String(9))
    member: Mapped[dict[str, Any]] = mapped_column(JSON)
    program: Mapped[str] = mapped_column(String(10))
    service_code: Mapped[str] = mapped_column(String(60))
    authorization_id: Mapped[str | None] = mapped_column(String(64))
    prior_authorization_number: Mapped[str | None] = mapped_column(String(50))
    rendering_npi: Mapped[str] = mapped_column(String(10))
    rendering_last_name: Mapped[str | None] = mapped_column(String(60))
    rendering_first_name: Mapped[str | None] = mapped_column(String(35))
    billing_provider: Mapped[str] = mapped_column(String(10))  # hub or cbo
    billing_npi: Mapped[str] = mapped_column(String(10))
    claim_format: Mapped[str] = mapped_column(String(10))  # 837p or invoice
    place_of_service: Mapped[str] = mapped_column(String(2))
    diagnosis_codes: Mapped[list[str]] = mapped_column(JSON)
    service_month: Mapped[date] = mapped_column(Date)
    service_from: Mapped[date] = mapped_column(Date)
    service_to: Mapped[date] = mapped_column(Date)
    frequency_code: Mapped[str] = mapped_column(String(1))
    replaces_claim_id: Mapped[str | None] = mapped_column(String(20))
    payer_claim_number: Mapped[str | None] = mapped_column(String(50))
    status: Mapped[str] = mapped_column(String(20))
    expected_amount: Mapped[Decimal] = mapped_column(Money)
    paid_amount: Mapped[Decimal | None] = mapped_column(Money)
    adjustment_amount: Mapped[Decimal | None] = mapped_column(Money)
    paid_on: Mapped[date | None] = mapped_column(Date)
    rejection_reasons: Mapped[list[str]] = mapped_column(JSON)
    batch_id: Mapped[str | None] = mapped_column(String(20))
    transaction_set: Mapped[str | None] = mapped_column(String(9))  # ST02 of the set that carried it
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    submitted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    acknowledged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    version: Mapped[int] = mapped_column(Integer)
    # From the 835s (migration 0003): settlement over all active postings (paid, partially_paid, denied,
    # reporting_only, reversed, pending) and the MCP's receipt date (DTM*050) for the timely-payment clock.
    settlement: Mapped[str | None] = mapped_column(String(20))
    received_on: Mapped[date | None] = mapped_column(Date)
    # Lineage (migration 0004): the correlation id every claim.* event of this claim carries: the authorization's
    # (the referral's) when it bills one, else the first encounter's. NULL for claims opened before 0004.
    correlation_id: Mapped[UUID | None] = mapped_column(Uuid)

    __table_args__ = (
        Index("ix_claim_mcp_code_status", "mcp_code", "status"),
        Index("ix_claim_cbo_organization_id_status", "cbo_organization_id", "status"),
        Index("ix_claim_member_id", "member_id"),
        Index("ix_claim_batch_id", "batch_id"),
        Index("ix_claim_created_at_id", "created_at", "id"),
    )


class ClaimLine(Base):
    """A service line (loop 2400) from one encounter; paid/adjusted amounts are posted from the 835."""

    __tablename__ = "claim_line"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    # No database FK to claim.id: the migration test compares models on SQLite with schema=None, where
    # SQLAlchemy cannot re-target a schema-qualified FK; the service writes lines only with their claim.
    claim_id: Mapped[str] = mapped_column(String(20))
    line_number: Mapped[int] = mapped_column(Integer)
    encounter_id: Mapped[str] = mapped_column(String(40))
    hcpcs: Mapped[str] = mapped_column(String(5))
    modifiers: Mapped[list[str]] = mapped_column(JSON)
    units: Mapped[Decimal] = mapped_column(Numeric(9, 2))
    charge: Mapped[Decimal] = mapped_column(Money)
    service_from: Mapped[date] = mapped_column(Date)
    service_to: Mapped[date] = mapped_column(Date)
    place_of_service: Mapped[str] = mapped_column(String(2))
    diagnosis_pointers: Mapped[list[int]] = mapped_column(JSON)
    paid_amount: Mapped[Decimal | None] = mapped_column(Money)
    adjustment_amount: Mapped[Decimal | None] = mapped_column(Money)

    __table_args__ = (
        UniqueConstraint("claim_id", "line_number"),
        Index("ix_claim_line_encounter_id", "encounter_id"),
        # Half of each page stays free for the 835 posting's update of the amounts: a heap-only tuple on the
        # same page, no new index entries (migration claims_0006, docs/decisions/0110).
        {"postgresql_with": {"fillfactor": 50}},
    )


class ClaimHistory(Base):
    """Every change to a claim: who (organization, key, or the acknowledgment that did it), when, what."""

    __tablename__ = "claim_history"

    id: Mapped[UUID] = mapped_column(Uuid, primary_key=True)
    claim_id: Mapped[str] = mapped_column(String(20))
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    actor: Mapped[str] = mapped_column(String(100))  # organization id, or system:<999|277ca|schedule|...>
    actor_key_id: Mapped[str | None] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(50))
    from_status: Mapped[str | None] = mapped_column(String(20))
    to_status: Mapped[str | None] = mapped_column(String(20))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)

    __table_args__ = (Index("ix_claim_history_claim_id_occurred_at", "claim_id", "occurred_at"),)


class ClaimBatch(Base):
    """An 837P or invoice file for one MCP, with its envelope control numbers and acknowledgment state."""

    __tablename__ = "claim_batch"

    id: Mapped[str] = mapped_column(String(20), primary_key=True)
    mcp_code: Mapped[str] = mapped_column(String(50))
    file_kind: Mapped[str] = mapped_column(String(10))
    interchange_control_number: Mapped[int] = mapped_column(Integer)
    group_control_number: Mapped[int] = mapped_column(Integer)
    transaction_sets: Mapped[int] = mapped_column(Integer)
    claims: Mapped[int] = mapped_column(Integer)
    total_amount: Mapped[Decimal] = mapped_column(Money)
    file_uri: Mapped[str] = mapped_column(String(200))
    file_sha256: Mapped[str] = mapped_column(String(64))
    file_size: Mapped[int] = mapped_column(BigId)
    status: Mapped[str] = mapped_column(String(20))  # created, delivered, acknowledged
    acknowledgment_code: Mapped[str | None] = mapped_column(String(2))  # AK9-01
    trigger: Mapped[str] = mapped_column(String(20))  # on_demand, schedule
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        UniqueConstraint("mcp_code", "interchange_control_number"),
        UniqueConstraint("mcp_code", "group_control_number"),
        Index("ix_claim_batch_mcp_code_created_at", "mcp_code", "created_at"),
    )


class ControlNumber(Base):
    """The last interchange (ISA13) and group (GS06) control numbers used with an MCP."""

    __tablename__ = "control_number"

    mcp_code: Mapped[str] = mapped_column(String(50), primary_key=True)
    interchange: Mapped[int] = mapped_column(Integer)
    group_number: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AcknowledgmentFile(Base):
    """A 999 or 277CA taken in (file.received), so the same file is applied once."""

    __tablename__ = "acknowledgment_file"

    id: Mapped[UUID] = mapped_column(Uuid, primary_key=True)
    kind: Mapped[str] = mapped_column(String(10))
    file_id: Mapped[str] = mapped_column(String(64))
    mcp_code: Mapped[str] = mapped_column(String(50))
    file_sha256: Mapped[str] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    processed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    summary: Mapped[dict[str, Any]] = mapped_column(JSON)

    __table_args__ = (UniqueConstraint("kind", "file_sha256"),)


class AuthorizationCoverage(Base):
    """Projection of authorization.* events: which member and service an authorization covers, and when."""

    __tablename__ = "authorization_coverage"

    authorization_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    member_id: Mapped[str | None] = mapped_column(String(40))
    mcp_code: Mapped[str] = mapped_column(String(50))
    cbo_organization_id: Mapped[str | None] = mapped_column(String(64))
    program: Mapped[str] = mapped_column(String(10))
    cs_code: Mapped[str | None] = mapped_column(String(60))
    status: Mapped[str] = mapped_column(String(20))
    period_start: Mapped[date | None] = mapped_column(Date)
    period_end: Mapped[date | None] = mapped_column(Date)
    ends_before: Mapped[date | None] = mapped_column(Date)
    suspensions: Mapped[list[list[str | None]]] = mapped_column(JSON)
    presumptive: Mapped[bool] = mapped_column(Boolean)
    # As the authorizations service takes it (migration 0007); the encounter check refuses one REF*G1 cannot carry.
    mcp_authorization_number: Mapped[str | None] = mapped_column(String(100))
    # When the approval whose period stands was decided (migration 0005): of two approvals of one authorization
    # (approved, then approved as modified) the newest decision sets the period, whatever order they arrive in.
    # NULL until an approval arrives, and for rows projected before 0005.
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # Lineage (migration 0004): the correlation id of the authorization's events, which encounters and claims
    # billed against it continue. NULL for rows projected before 0004.
    correlation_id: Mapped[UUID | None] = mapped_column(Uuid)

    __table_args__ = (Index("ix_authorization_coverage_member_id", "member_id"),)


class EligibilityFactRow(Base):
    """Projection of eligibility.* events: enrolled / not enrolled / excluded, from a date."""

    __tablename__ = "eligibility_fact"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    event_id: Mapped[UUID] = mapped_column(Uuid)
    member_id: Mapped[str] = mapped_column(String(40))
    kind: Mapped[str] = mapped_column(String(20))
    mcp_code: Mapped[str | None] = mapped_column(String(50))
    program: Mapped[str | None] = mapped_column(String(10))
    exclusion: Mapped[str | None] = mapped_column(String(100))
    effective_from: Mapped[date] = mapped_column(Date)
    effective_to: Mapped[date | None] = mapped_column(Date)
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        UniqueConstraint("event_id"),
        Index("ix_eligibility_fact_member_id", "member_id"),
    )


class RemittanceFile(Base):
    """An 835 file taken in (API or gateway) and what became of it: accepted, duplicate or refused."""

    __tablename__ = "remittance_file"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    mcp_code: Mapped[str] = mapped_column(String(50))
    source: Mapped[str] = mapped_column(String(10))  # api, sftp
    gateway_file_id: Mapped[str | None] = mapped_column(String(64))
    file_sha256: Mapped[str] = mapped_column(String(64))
    file_uri: Mapped[str | None] = mapped_column(String(200))
    size: Mapped[int] = mapped_column(BigId)
    status: Mapped[str] = mapped_column(String(20))  # accepted, duplicate, refused_unbalanced
    interchange_control_number: Mapped[str] = mapped_column(String(9))
    transaction_sets: Mapped[int] = mapped_column(Integer)
    claim_payments: Mapped[int] = mapped_column(Integer)
    duplicate_of: Mapped[str | None] = mapped_column(String(40))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)  # refusal figures, duplicate sets: no PHI
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    processed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    actor: Mapped[str] = mapped_column(String(100))

    __table_args__ = (
        Index("ix_remittance_file_file_sha256", "file_sha256"),
        Index("ix_remittance_file_mcp_code_received_at", "mcp_code", "received_at"),
    )


class Remittance(Base):
    """One posted 835 payment (transaction set): BPR amount and TRN02 trace for bank reconciliation."""

    __tablename__ = "remittance"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    file_id: Mapped[str] = mapped_column(String(40))
    mcp_code: Mapped[str] = mapped_column(String(50))
    control_number: Mapped[str] = mapped_column(String(9))  # ST02
    trace_number: Mapped[str] = mapped_column(String(50))  # TRN02
    payer_id: Mapped[str] = mapped_column(String(50))  # TRN03
    payment_amount: Mapped[Decimal] = mapped_column(Money)  # BPR02, negative for a debit (BPR03 = D)
    payment_method: Mapped[str] = mapped_column(String(3))  # BPR04
    payment_date: Mapped[date] = mapped_column(Date)  # BPR16
    key_digest: Mapped[str] = mapped_column(String(64))  # duplicate payment key (TRN02, TRN03, BPR02, BPR16)
    claims_posted: Mapped[int] = mapped_column(Integer)
    exceptions: Mapped[int] = mapped_column(Integer)
    posted_amount: Mapped[Decimal] = mapped_column(Money)  # Σ CLP04 posted
    exception_amount: Mapped[Decimal] = mapped_column(Money)  # Σ CLP04 in the exception queue
    provider_adjustment_amount: Mapped[Decimal] = mapped_column(Money)  # Σ PLB
    warnings: Mapped[list[str]] = mapped_column(JSON)
    posted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        UniqueConstraint("key_digest"),
        Index("ix_remittance_mcp_code_payment_date", "mcp_code", "payment_date"),
        Index("ix_remittance_trace_number", "trace_number"),
        Index("ix_remittance_file_id", "file_id"),
    )


class ClaimPayment(Base):
    """One claim payment (CLP) posted against our claim: payment, correction or reversal."""

    __tablename__ = "claim_payment"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    remittance_id: Mapped[str] = mapped_column(String(40))
    claim_id: Mapped[str] = mapped_column(String(20))
    mcp_code: Mapped[str] = mapped_column(String(50))
    cbo_organization_id: Mapped[str] = mapped_column(String(64))
    position: Mapped[int] = mapped_column(Integer)  # segment position of CLP in the file
    kind: Mapped[str] = mapped_column(String(12))  # payment, correction, reversal
    outcome: Mapped[str] = mapped_column(String(20))  # paid, partially_denied, denied, reporting_only, reversed
    status_code: Mapped[str] = mapped_column(String(2))  # CLP02
    charge: Mapped[Decimal] = mapped_column(Money)
    paid: Mapped[Decimal] = mapped_column(Money)
    adjustment_total: Mapped[Decimal] = mapped_column(Money)
    patient_responsibility: Mapped[Decimal] = mapped_column(Money)
    payer_claim_number: Mapped[str] = mapped_column(String(50))  # CLP07
    adjustments: Mapped[list[dict[str, str]]] = mapped_column(JSON)  # claim-level CAS: group, reason, amount
    remarks: Mapped[list[str]] = mapped_column(JSON)  # claim-level RARC
    denial: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    reverses_payment_id: Mapped[str | None] = mapped_column(String(40))
    reversed_by: Mapped[str | None] = mapped_column(String(40))  # the reversal that undid this posting
    line_ids: Mapped[list[str]] = mapped_column(JSON)
    paid_line_ids: Mapped[list[str]] = mapped_column(JSON)
    received_on: Mapped[date | None] = mapped_column(Date)  # DTM*050
    paid_on: Mapped[date] = mapped_column(Date)  # BPR16
    trace_number: Mapped[str] = mapped_column(String(50))
    payout_id: Mapped[str | None] = mapped_column(String(40))
    posted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index("ix_claim_payment_claim_id", "claim_id"),
        Index("ix_claim_payment_remittance_id", "remittance_id"),
        Index("ix_claim_payment_cbo_organization_id_paid_on", "cbo_organization_id", "paid_on"),
        Index("ix_claim_payment_payer_claim_number", "payer_claim_number"),
    )


class LinePayment(Base):
    """One service line (SVC) of a claim payment, with its CAS adjustments and RARCs."""

    __tablename__ = "line_payment"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    claim_payment_id: Mapped[str] = mapped_column(String(40))
    claim_id: Mapped[str] = mapped_column(String(20))
    line_id: Mapped[str | None] = mapped_column(String(50))  # our REF*6R (encounter id); None: unmatched SVC
    position: Mapped[int] = mapped_column(Integer)
    procedure: Mapped[str] = mapped_column(String(60))  # SVC01 as code:modifiers
    charge: Mapped[Decimal] = mapped_column(Money)
    paid: Mapped[Decimal] = mapped_column(Money)
    allowed: Mapped[Decimal | None] = mapped_column(Money)
    units_paid: Mapped[Decimal | None] = mapped_column(Numeric(9, 2))
    outcome: Mapped[str] = mapped_column(String(20))
    adjustments: Mapped[list[dict[str, str]]] = mapped_column(JSON)
    remarks: Mapped[list[str]] = mapped_column(JSON)
    denial: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    __table_args__ = (Index("ix_line_payment_claim_payment_id", "claim_payment_id"),)


class ProviderAdjustment(Base):
    """A PLB adjustment recorded against the provider and fiscal period (positive reduces the payment)."""

    __tablename__ = "provider_adjustment"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    remittance_id: Mapped[str] = mapped_column(String(40))
    mcp_code: Mapped[str] = mapped_column(String(50))
    position: Mapped[int] = mapped_column(Integer)
    provider_id: Mapped[str] = mapped_column(String(50))  # PLB01
    fiscal_period_date: Mapped[date] = mapped_column(Date)  # PLB02
    reason: Mapped[str] = mapped_column(String(2))  # PLB03-1
    kind: Mapped[str] = mapped_column(String(20))  # interest, recoupment, forwarding_balance, ...
    reference: Mapped[str] = mapped_column(String(50))  # PLB03-2
    amount: Mapped[Decimal] = mapped_column(Money)
    claim_id: Mapped[str | None] = mapped_column(String(20))
    cbo_organization_id: Mapped[str | None] = mapped_column(String(64))
    paid_on: Mapped[date] = mapped_column(Date)  # BPR16 of the payment that carried it
    trace_number: Mapped[str] = mapped_column(String(50))
    payout_id: Mapped[str | None] = mapped_column(String(40))
    posted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index("ix_provider_adjustment_remittance_id", "remittance_id"),
        Index("ix_provider_adjustment_cbo_organization_id_paid_on", "cbo_organization_id", "paid_on"),
        Index("ix_provider_adjustment_claim_id", "claim_id"),
    )


class RemittanceExceptionRow(Base):
    """Money or a fact from an 835 that needs a person, with what they need to resolve it."""

    __tablename__ = "remittance_exception"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    remittance_id: Mapped[str] = mapped_column(String(40))
    mcp_code: Mapped[str] = mapped_column(String(50))
    reason: Mapped[str] = mapped_column(String(30))
    position: Mapped[int] = mapped_column(Integer)
    amount: Mapped[Decimal] = mapped_column(Money)
    patient_control_number: Mapped[str] = mapped_column(String(50))  # CLP01 or PLB reference
    payer_claim_number: Mapped[str] = mapped_column(String(50))
    status_code: Mapped[str] = mapped_column(String(2))
    charge: Mapped[Decimal | None] = mapped_column(Money)
    patient: Mapped[dict[str, str] | None] = mapped_column(JSON)  # PHI: names and member id from NM1*QC
    service_from: Mapped[date | None] = mapped_column(Date)
    service_to: Mapped[date | None] = mapped_column(Date)
    procedures: Mapped[list[str]] = mapped_column(JSON)
    claim_id: Mapped[str | None] = mapped_column(String(20))
    provider_adjustment_id: Mapped[str | None] = mapped_column(String(40))
    detail: Mapped[dict[str, str]] = mapped_column(JSON)
    trace_number: Mapped[str] = mapped_column(String(50))
    payment_date: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(10))  # open, resolved
    resolution: Mapped[str | None] = mapped_column(String(30))
    resolution_note: Mapped[str | None] = mapped_column(String(500))
    resolved_claim_id: Mapped[str | None] = mapped_column(String(20))
    resolved_by: Mapped[str | None] = mapped_column(String(64))
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index("ix_remittance_exception_status_mcp_code", "status", "mcp_code"),
        Index("ix_remittance_exception_remittance_id", "remittance_id"),
    )


class Denial(Base):
    """A denied (or partially denied) claim payment in the billers' work queue, with category and next action."""

    __tablename__ = "denial"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    claim_id: Mapped[str] = mapped_column(String(20))
    claim_payment_id: Mapped[str] = mapped_column(String(40))
    remittance_id: Mapped[str] = mapped_column(String(40))
    mcp_code: Mapped[str] = mapped_column(String(50))
    cbo_organization_id: Mapped[str] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(20))  # denied, partially_denied
    category: Mapped[str] = mapped_column(String(30))
    next_action: Mapped[str] = mapped_column(String(500))
    deciding_code: Mapped[str] = mapped_column(String(20))
    codes: Mapped[list[str]] = mapped_column(JSON)
    unknown_codes: Mapped[list[str]] = mapped_column(JSON)
    denied_amount: Mapped[Decimal] = mapped_column(Money)
    payer_claim_number: Mapped[str] = mapped_column(String(50))
    paid_on: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(20))  # open, resubmitted, resolved, reversed
    resolution: Mapped[str | None] = mapped_column(String(30))
    resolution_note: Mapped[str | None] = mapped_column(String(500))
    follow_up_claim_id: Mapped[str | None] = mapped_column(String(20))  # the replacement (7) or void (8)
    resolved_by: Mapped[str | None] = mapped_column(String(64))
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index("ix_denial_cbo_organization_id_status", "cbo_organization_id", "status"),
        Index("ix_denial_mcp_code_status", "mcp_code", "status"),
        Index("ix_denial_claim_id", "claim_id"),
        Index("ix_denial_created_at_id", "created_at", "id"),
    )


class Payout(Base):
    """A CBO's payout for one period: collected minus the hub's fee and recoupments, with its statement."""

    __tablename__ = "payout"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    cbo_organization_id: Mapped[str] = mapped_column(String(64))
    period_start: Mapped[date] = mapped_column(Date)
    period_end: Mapped[date] = mapped_column(Date)
    balance_forward: Mapped[Decimal] = mapped_column(Money)
    collected: Mapped[Decimal] = mapped_column(Money)
    hub_fee: Mapped[Decimal] = mapped_column(Money)
    recoupments: Mapped[Decimal] = mapped_column(Money)
    payable: Mapped[Decimal] = mapped_column(Money)
    payout_amount: Mapped[Decimal] = mapped_column(Money)
    carry_forward: Mapped[Decimal] = mapped_column(Money)
    statement: Mapped[dict[str, Any]] = mapped_column(JSON)
    generated_by: Mapped[str] = mapped_column(String(100))
    generated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        UniqueConstraint("cbo_organization_id", "period_start"),
        Index("ix_payout_cbo_organization_id_period_end", "cbo_organization_id", "period_end"),
    )


__all__ = [
    "SCHEMA", "AcknowledgmentFile", "AuthorizationCoverage", "Base", "Claim", "ClaimBatch", "ClaimHistory",
    "ClaimLine", "ClaimPayment", "ControlNumber", "Denial", "EligibilityFactRow", "Encounter", "LinePayment",
    "Payout", "ProviderAdjustment", "Remittance", "RemittanceExceptionRow", "RemittanceFile", "audit_event",
    "platform",
]
