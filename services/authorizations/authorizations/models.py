"""Tables of the authorizations service, all in its own schema `authorizations`."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from uuid import UUID

from sqlalchemy import JSON, BigInteger, Boolean, Date, DateTime, Index, Integer, String, Text, UniqueConstraint, Uuid
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.auth import define_audit_table
from shared.db import service_metadata
from shared.platform_tables import define_platform_tables

SCHEMA = "authorizations"



class Base(DeclarativeBase):
    """Declarative base of the service's tables, in its schema."""

    metadata = service_metadata(SCHEMA)


platform = define_platform_tables(Base.metadata)
audit_event = define_audit_table(Base.metadata)


class Authorization(Base):
    """An authorization request and, once decided, the authorization itself."""

    __tablename__ = "authorization"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # auth_<uuid7 hex>
    referral_id: Mapped[str | None] = mapped_column(String(64), index=True)
    correlation_id: Mapped[UUID] = mapped_column(Uuid)  # the referral's lineage: every event of it shares it
    member_id: Mapped[str] = mapped_column(String(40), index=True)
    # PHI the MCP needs on the request (referral file, reauthorization); never logged or put in keys.
    member: Mapped[dict[str, Any]] = mapped_column(JSON)
    mcp_code: Mapped[str] = mapped_column(String(50))
    cbo_organization_id: Mapped[str | None] = mapped_column(String(64), index=True)
    referring_organization_id: Mapped[str | None] = mapped_column(String(64))
    program: Mapped[str] = mapped_column(String(10))
    service_key: Mapped[str] = mapped_column(String(60))
    service: Mapped[dict[str, Any]] = mapped_column(JSON)
    urgency: Mapped[str] = mapped_column(String(20))
    requested_urgency: Mapped[str] = mapped_column(String(20))
    expedited_reason: Mapped[str | None] = mapped_column(String(200))
    origin: Mapped[str] = mapped_column(String(30))
    previous_authorization_id: Mapped[str | None] = mapped_column(String(40), index=True)
    status: Mapped[str] = mapped_column(String(20))
    requested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    decision_due: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    original_decision_due: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    calendar: Mapped[str] = mapped_column(String(100))
    deadline_basis: Mapped[str] = mapped_column(String(40))
    expedited_by_rule: Mapped[bool] = mapped_column(Boolean)
    clock_stopped: Mapped[bool] = mapped_column(Boolean)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    decision: Mapped[str | None] = mapped_column(String(30))
    decided_within_deadline: Mapped[bool | None] = mapped_column(Boolean)
    mcp_authorization_number: Mapped[str | None] = mapped_column(String(100))
    period_start: Mapped[date | None] = mapped_column(Date)
    period_end: Mapped[date | None] = mapped_column(Date)
    presumptive: Mapped[bool] = mapped_column(Boolean)
    review_flags: Mapped[list[str]] = mapped_column(JSON)
    assigned_provider_npi: Mapped[str | None] = mapped_column(String(10))
    reason: Mapped[str | None] = mapped_column(Text)  # denial / pend / suspension / closure reason
    suspended_from: Mapped[str | None] = mapped_column(String(20))
    # Date-level timers of the daily sweep: set when the period is known, cleared once raised. NULLs sort
    # last in the index, so "due on or before today" only ever reads rows still waiting.
    expiring_due_on: Mapped[date | None] = mapped_column(Date)
    expiry_due_on: Mapped[date | None] = mapped_column(Date)
    expiring_raised_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    reauthorization: Mapped[str | None] = mapped_column(String(30))  # requested | task:<reason>
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index(None, "mcp_code", "status"),
        Index(None, "expiring_due_on"),
        Index(None, "expiry_due_on"),
        Index(None, "status", "decision_due"),
        Index(None, "reauthorization"),
    )


class AuthorizationHistory(Base):
    """Every change of an authorization, oldest first: what happened, who or what caused it."""

    __tablename__ = "authorization_history"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
                                    autoincrement=True)
    authorization_id: Mapped[str] = mapped_column(String(40), index=True)
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    action: Mapped[str] = mapped_column(String(50))
    status: Mapped[str] = mapped_column(String(20))
    actor: Mapped[str] = mapped_column(String(120))  # organization id, `system`, `mif:<file>:<row>`, `event:...`
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)  # ids, codes, dates; never member data


class MemberEligibility(Base):
    """The member's latest known enrollment, from eligibility events (for suspension and reauthorization)."""

    __tablename__ = "member_eligibility"

    member_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    eligible: Mapped[bool] = mapped_column(Boolean)
    mcp_code: Mapped[str | None] = mapped_column(String(50))
    as_of: Mapped[date] = mapped_column(Date)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class MemberEngagement(Base):
    """The member's latest non-outreach encounter per program (engagement for reauthorization)."""

    __tablename__ = "member_engagement"

    member_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    program: Mapped[str] = mapped_column(String(10), primary_key=True)
    last_encounter_on: Mapped[date] = mapped_column(Date)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class MifRowOutcome(Base):
    """What each Member Information File row did; exceptions stay open until a person resolves them."""

    __tablename__ = "mif_row_outcome"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # mifx_<uuid7 hex>
    file_id: Mapped[str] = mapped_column(String(100))
    row_number: Mapped[int] = mapped_column(Integer)
    mcp_code: Mapped[str] = mapped_column(String(50))
    member_id: Mapped[str] = mapped_column(String(40), index=True)
    outcome: Mapped[str] = mapped_column(String(30))
    reason: Mapped[str | None] = mapped_column(String(50))
    authorization_id: Mapped[str | None] = mapped_column(String(40))
    ecm_status: Mapped[str | None] = mapped_column(String(50))
    mcp_authorization_id: Mapped[str | None] = mapped_column(String(100))
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resolved_by: Mapped[str | None] = mapped_column(String(64))
    resolution: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # YYYY-MM of the row's file (migration 0003); NULL when the MCP's layout carries no reporting period.
    reporting_period: Mapped[str | None] = mapped_column(String(7))

    __table_args__ = (
        UniqueConstraint("file_id", "row_number"),
        Index(None, "outcome", "resolved_at"),
    )


class CareTeamTask(Base):
    """A decision the care team must make (an expiring authorization not reauthorized automatically)."""

    __tablename__ = "care_team_task"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # task_<uuid7 hex>
    authorization_id: Mapped[str] = mapped_column(String(40), index=True)
    member_id: Mapped[str] = mapped_column(String(40))
    mcp_code: Mapped[str] = mapped_column(String(50))
    cbo_organization_id: Mapped[str | None] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(40))
    reason: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(20))  # open | done
    due_on: Mapped[date] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    completed_by: Mapped[str | None] = mapped_column(String(64))
    outcome: Mapped[str | None] = mapped_column(String(40))

    __table_args__ = (
        Index(None, "status", "cbo_organization_id"),
    )
