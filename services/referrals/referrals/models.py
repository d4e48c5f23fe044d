"""Tables of the referrals service, all in its own schema `referrals`."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Date, DateTime, Index, String, Text, Uuid
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.auth import define_audit_table
from shared.db import service_metadata
from shared.platform_tables import define_platform_tables
from shared.webhooks import define_webhook_tables

SCHEMA = "referrals"



class Base(DeclarativeBase):
    """Declarative base of the service's tables (as `shared.db.declarative_base`, spelled out for mypy)."""

    metadata = service_metadata(SCHEMA)


platform = define_platform_tables(Base.metadata)
audit_event = define_audit_table(Base.metadata)
webhooks = define_webhook_tables(Base.metadata)


class Referral(Base):
    """One referral: who, what, from whom, routed where, and where it stands in its closed loop.

    PHI (member demographics, notes, contact) lives only here and in the payloads of events whose consumers
    need it; ids, codes and statuses are what indexes, logs and webhooks use.
    """

    __tablename__ = "referral"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # ref_<uuid7 hex>: time-ordered
    member_id: Mapped[str] = mapped_column(String(40), index=True)
    member: Mapped[dict[str, Any]] = mapped_column(JSON)  # MemberDemographics as JSON
    program: Mapped[str] = mapped_column(String(8))
    service: Mapped[dict[str, Any]] = mapped_column(JSON)  # ServiceRequested as JSON
    urgency: Mapped[str] = mapped_column(String(16))
    expedited_reason: Mapped[str | None] = mapped_column(Text)
    county: Mapped[str] = mapped_column(String(40))
    requested_mcp_code: Mapped[str | None] = mapped_column(String(40))  # as named by the referrer
    mcp_code: Mapped[str | None] = mapped_column(String(40), index=True)  # as routed
    routing_basis: Mapped[str | None] = mapped_column(String(20))
    referring_organization_id: Mapped[str] = mapped_column(String(64), index=True)
    referring_npi: Mapped[str] = mapped_column(String(10))
    referring: Mapped[dict[str, Any]] = mapped_column(JSON)  # name and contact
    cbo_organization_id: Mapped[str | None] = mapped_column(String(64), index=True)
    notes: Mapped[str | None] = mapped_column(Text)
    consent: Mapped[dict[str, Any]] = mapped_column(JSON)
    external_identifiers: Mapped[list[dict[str, str]]] = mapped_column(JSON)
    channel: Mapped[str] = mapped_column(String(10))  # api | fhir
    status: Mapped[str] = mapped_column(String(20), index=True)
    status_reason: Mapped[str | None] = mapped_column(Text)
    closure_reason_code: Mapped[str | None] = mapped_column(String(60))
    status_changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    authorization_id: Mapped[str | None] = mapped_column(String(64))
    # `<member_id>:<service key>` while the referral is open, NULL once it is not: the unique constraint is
    # what makes "one open referral per member and service" hold under concurrent submissions.
    open_key: Mapped[str | None] = mapped_column(String(120), unique=True)
    correlation_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ReferralTimeline(Base):
    """The referral's history: every status change and routing decision, and events that changed nothing."""

    __tablename__ = "referral_timeline"
    __table_args__ = (Index(None, "referral_id", "occurred_at"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)  # UUIDv7
    referral_id: Mapped[str] = mapped_column(String(40))
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    kind: Mapped[str] = mapped_column(String(40))
    status: Mapped[str | None] = mapped_column(String(20))
    previous_status: Mapped[str | None] = mapped_column(String(20))
    reason: Mapped[str | None] = mapped_column(Text)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)  # ids and codes only
    event_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)  # the event that caused or carried the entry


class ReferralAuthorization(Base):
    """Which authorization (initial or reauthorization) belongs to which referral."""

    __tablename__ = "referral_authorization"

    authorization_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    referral_id: Mapped[str] = mapped_column(String(40), index=True)
    linked_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # The authorization this one continues (a reauthorization's predecessor; migration 0003): with it the current
    # authorization is the newest of the chain whatever order the links arrive in (domain.succession).
    previous_authorization_id: Mapped[str | None] = mapped_column(String(64))
    # The MCP's latest decision ("approved" | "denied") and when it was made (an overturned denial is a later
    # approval), and how the authorization ended (migration 0006): a denied reauthorization is never the current
    # one, and the end of the one it continued closes the loop whichever arrives first.
    decision: Mapped[str | None] = mapped_column(String(10))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    end_code: Mapped[str | None] = mapped_column(String(60))  # a ClosureReason value
    end_reason: Mapped[str | None] = mapped_column(Text)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class EarlyEncounter(Base):
    """The first encounter recorded under an authorization no referral was linked to yet (migration 0004).

    The claims and authorizations topics are not ordered with each other, and a dead letter may be replayed
    late: an encounter can arrive before the request that ties its authorization to a referral. It waits here,
    and the link moves the referral to `in_service` (one row per authorization; ids and times only)."""

    __tablename__ = "early_encounter"

    authorization_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    encounter_id: Mapped[str] = mapped_column(String(64))
    # The encounter event's time; indexed (migration 0005) for dropping those past their authorization.
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    event_id: Mapped[uuid.UUID] = mapped_column(Uuid)


class MemberPlan(Base):
    """Projection of eligibility events: the member's latest known plan (None after a loss)."""

    __tablename__ = "member_plan"

    member_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    mcp_code: Mapped[str | None] = mapped_column(String(40))
    as_of: Mapped[date] = mapped_column(Date)
    verified_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    source_event_type: Mapped[str] = mapped_column(String(60))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
