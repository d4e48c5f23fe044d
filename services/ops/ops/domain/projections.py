"""Projections of the events the SLA boards need: one row per authorization, per claim, per MCP file kind.

Pure: an event (type, time, data) becomes `Change`s; `merge` folds a change into the current row. Events of one
aggregate arrive in order (one key, one partition), but a replayed dead letter can bring an old event late, so a
change never moves a status back in time and never overwrites a newer fact with an older one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any


class Projection(StrEnum):
    """Which projection table a change belongs to."""

    AUTHORIZATION = "authorization"
    CLAIM = "claim"
    FILE = "file"


class AuthorizationStatus(StrEnum):
    """Where an authorization stands, as far as the boards care."""

    REQUESTED = "requested"
    PENDED = "pended"
    APPROVED = "approved"
    DENIED = "denied"
    SUSPENDED = "suspended"
    EXPIRED = "expired"
    CLOSED = "closed"
    UNKNOWN = "unknown"  # a later event seen before its request (journal started mid-flow)


AWAITING_DECISION = frozenset({AuthorizationStatus.REQUESTED, AuthorizationStatus.PENDED})


class ClaimStatus(StrEnum):
    """Where a claim stands for aging and timely payment."""

    DRAFT = "draft"
    SUBMITTED = "submitted"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    PAID = "paid"
    DENIED = "denied"
    REVERSED = "reversed"
    UNKNOWN = "unknown"


# Submitted and acknowledged but neither paid nor denied: the MCP owes an answer.
OUTSTANDING = frozenset({ClaimStatus.SUBMITTED, ClaimStatus.ACCEPTED})


@dataclass(frozen=True)
class Change:
    """Facts one event establishes about one projection row."""

    projection: Projection
    key: tuple[str, ...]
    at: datetime
    values: Mapping[str, Any] = field(default_factory=dict)
    status: str | None = None
    escalation: int | None = None


def _time(value: object) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def _date(value: object) -> date | None:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value[:10])
        except ValueError:
            return None
    return None


def _decimal(value: object) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None


def _str(value: object, limit: int = 100) -> str | None:
    return value[:limit] if isinstance(value, str) and value else None


def _clean(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


_AUTH_STATUS = {
    "authorization.requested": AuthorizationStatus.REQUESTED,
    "authorization.pended": AuthorizationStatus.PENDED,
    "authorization.approved": AuthorizationStatus.APPROVED,
    "authorization.denied": AuthorizationStatus.DENIED,
    "authorization.suspended": AuthorizationStatus.SUSPENDED,
    "authorization.resumed": AuthorizationStatus.APPROVED,
    "authorization.expired": AuthorizationStatus.EXPIRED,
    "authorization.closed": AuthorizationStatus.CLOSED,
}

_CLAIM_STATUS = {
    "claim.created": ClaimStatus.DRAFT,
    "claim.corrected": ClaimStatus.DRAFT,
    "claim.submitted": ClaimStatus.SUBMITTED,
    "claim.accepted": ClaimStatus.ACCEPTED,
    "claim.rejected": ClaimStatus.REJECTED,
    "claim.paid": ClaimStatus.PAID,
    "claim.denied": ClaimStatus.DENIED,
    "claim.reversed": ClaimStatus.REVERSED,
}


def changes_for(event_type: str | None, occurred_at: datetime | None, data: Mapping[str, Any] | None,
                ) -> list[Change]:
    """The projection changes an event implies (none for events the boards do not use or malformed data)."""
    if not event_type or occurred_at is None or not data:
        return []
    if event_type.startswith("authorization."):
        return _authorization(event_type, occurred_at, data)
    if event_type.startswith("claim."):
        return _claim(event_type, occurred_at, data)
    if event_type in ("file.received", "file.late"):
        return _file(event_type, occurred_at, data)
    return []


def _authorization(event_type: str, at: datetime, data: Mapping[str, Any]) -> list[Change]:
    authorization_id = _str(data.get("authorization_id"))
    if authorization_id is None:
        return []
    common = {"mcp_code": _str(data.get("mcp_code"), 50), "referral_id": _str(data.get("referral_id")),
              "cbo_organization_id": _str(data.get("cbo_organization_id"), 64)}
    key = (authorization_id,)
    if event_type == "authorization.decision_overdue":
        escalation = data.get("escalation")
        return [Change(Projection.AUTHORIZATION, key, at, _clean({
            **common, "decision_due": _time(data.get("decision_due"))}),
            escalation=escalation if isinstance(escalation, int) and not isinstance(escalation, bool) else 1)]
    status = _AUTH_STATUS.get(event_type)
    if status is None:
        return []
    values: dict[str, Any] = dict(common)
    if event_type == "authorization.requested":
        values.update(urgency=_str(data.get("urgency"), 20), requested_at=_time(data.get("requested_at")),
                      decision_due=_time(data.get("decision_due")), clock_stopped=False)
    elif event_type in ("authorization.approved", "authorization.denied", "authorization.pended"):
        values["decided_at"] = _time(data.get("decided_at"))
        if event_type == "authorization.pended":
            values["clock_stopped"] = bool(data.get("clock_stopped"))
            values["decided_at"] = None  # a pend is not a decision
        else:
            values["decision"] = status.value
            values["clock_stopped"] = False
        if event_type == "authorization.approved":
            values.update(period_start=_date(data.get("period_start")), period_end=_date(data.get("period_end")))
    elif event_type == "authorization.expired":
        values["period_end"] = _date(data.get("period_end"))
    return [Change(Projection.AUTHORIZATION, key, at, _clean(values), status=status.value)]


def _claim(event_type: str, at: datetime, data: Mapping[str, Any]) -> list[Change]:
    claim_id = _str(data.get("claim_id"))
    status = _CLAIM_STATUS.get(event_type)
    if claim_id is None or status is None:
        return []
    values: dict[str, Any] = {"mcp_code": _str(data.get("mcp_code"), 50),
                              "cbo_organization_id": _str(data.get("cbo_organization_id"), 64)}
    if event_type == "claim.submitted":
        values["submitted_at"] = _time(data.get("submitted_at")) or at
    elif event_type == "claim.paid":
        values.update(paid_on=_date(data.get("paid_on")), paid_amount=_decimal(data.get("paid_amount")))
    elif event_type == "claim.denied":
        values["denied_at"] = at
    return [Change(Projection.CLAIM, (claim_id,), at, _clean(values), status=status.value)]


def _file(event_type: str, at: datetime, data: Mapping[str, Any]) -> list[Change]:
    mcp_code = _str(data.get("mcp_code"), 50)
    kind = _str(data.get("kind"), 30)
    if mcp_code is None or kind is None:
        return []
    if event_type == "file.received":
        values = {"last_received_at": _time(data.get("received_at")) or at}
    else:
        values = _clean({"last_late_at": at, "expected_by": _time(data.get("expected_by"))})
    return [Change(Projection.FILE, (mcp_code, kind), at, values)]


_LATEST_WINS = frozenset({"last_received_at", "last_late_at", "expected_by"})
# What an approval decides: set by the newest decision (decided_at), whichever event is newer.
_DECIDED = frozenset({"decided_at", "decision", "period_start", "period_end"})


def merge(current: Mapping[str, Any] | None, change: Change) -> dict[str, Any]:
    """The row after `change`: facts from an event older than the row's status fill only empty fields; the
    status moves only forward in time; escalations only grow; file times only move forward."""
    row: dict[str, Any] = dict(current or {})
    if change.projection is Projection.FILE:
        for name, value in change.values.items():
            existing = row.get(name)
            if existing is None or (isinstance(value, datetime) and _after(value, existing)):
                row[name] = value
        return row
    status_at = row.get("status_at")
    newer = status_at is None or not _after(status_at, change.at)  # change.at >= status_at
    # Two approvals that both arrive behind a newer event (approved, approved as modified, then suspended, told
    # backwards): the one decided later sets the period, not the first to arrive.
    decided_later = change.values.get("decision") == AuthorizationStatus.APPROVED.value and _after(
        change.values.get("decided_at"), row.get("decided_at"))
    for name, value in change.values.items():
        if name in _LATEST_WINS:
            continue
        if newer or row.get(name) is None or (decided_later and name in _DECIDED):
            row[name] = value
    if change.projection is Projection.AUTHORIZATION:
        row.setdefault("clock_stopped", False)
        row["escalations"] = max(int(row.get("escalations") or 0), change.escalation or 0)
    if change.status is not None and newer:
        row["status"] = change.status
        row["status_at"] = change.at
    if "status" not in row:
        row["status"] = "unknown"
        row["status_at"] = change.at
    return row


def _after(a: object, b: object) -> bool:
    """True if time `a` is strictly after time `b` (naive values are UTC, as SQLite hands them back)."""
    ta, tb = _time(a), _time(b)
    return ta is not None and tb is not None and ta > tb
