"""Matching a Member Information File row to the member's authorizations with the same MCP and service.

Every row ends in exactly one outcome: a decision on an open request, a confirmation of a known approval,
the MCP's number for an approval recorded without one, a period change, a discontinuation, an MCP-initiated
assignment, or an exception kept for a person. None is dropped (docs/decisions/0042-mif-matching.md). A row of an
older reporting period than one already applied for the member may confirm what stands but never changes it
(docs/decisions/0126-late-member-information-files.md).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum

from authorizations.domain.policy import MifDecision
from authorizations.domain.status import OPEN, AuthorizationStatus

# Extra MIF columns a profile may carry to name a Community Support instead of ECM (the canonical MIF is ECM).
SERVICE_COLUMNS = ("cs_code", "service")


class MifOutcome(StrEnum):
    """What a MIF row did."""

    DECISION_APPLIED = "decision_applied"
    CONFIRMED = "confirmed"  # the monthly MIF repeats a known approval
    NUMBER_RECORDED = "number_recorded"  # the MCP's number for an approval the hub recorded without one
    PERIOD_CHANGED = "period_changed"  # same MCP authorization number, new period: approved as modified
    DISCONTINUED = "discontinued"
    ASSIGNMENT_CREATED = "assignment_created"
    EXCEPTION = "exception"


class MifException(StrEnum):
    """Why a row needs a person."""

    UNKNOWN_BENEFIT_STATUS = "unknown_benefit_status"
    NO_OPEN_REQUEST = "no_open_request"  # a denial or pend for nothing open
    NOTHING_TO_DISCONTINUE = "nothing_to_discontinue"
    DENIAL_OF_APPROVED = "denial_of_approved"
    MISSING_AUTHORIZATION_START = "missing_authorization_start"
    UNKNOWN_SERVICE = "unknown_service"
    UNKNOWN_PROVIDER = "unknown_provider"  # assignment created, but the assigned NPI maps to no CBO
    INVALID_PERIOD = "invalid_period"
    OLDER_REPORTING_PERIOD = "older_reporting_period"  # the member's newer MIF already stands
    REQUEST_SUSPENDED = "request_suspended"  # a decision for a request suspended while awaiting the MCP


@dataclass(frozen=True)
class Candidate:
    """One of the member's authorizations with the row's MCP, as matching needs it."""

    authorization_id: str
    status: AuthorizationStatus
    service_key: str
    requested_at: datetime
    presumptive: bool = False
    mcp_authorization_number: str | None = None
    period_start: date | None = None
    period_end: date | None = None


@dataclass(frozen=True)
class MifMatch:
    """The outcome of one row; `authorization_id` is the authorization it acts on, if any."""

    outcome: MifOutcome
    authorization_id: str | None = None
    reason: MifException | None = None


def row_service_key(extra: Mapping[str, str], known: frozenset[str]) -> str | None:
    """The service a row is about: a mapped CS column if the profile carries one, else ECM; None if unknown."""
    for column in SERVICE_COLUMNS:
        value = (extra.get(column) or "").strip().lower()
        if value:
            return value if value in known else None
    return "ecm"


def _covers(candidate: Candidate, start: date | None, end: date | None) -> bool:
    if candidate.period_start is None or candidate.period_end is None:
        return False
    return (start is None or candidate.period_start <= start) and (end is None or end <= candidate.period_end)


def match_row(decision: MifDecision | None, service_key: str, number: str | None, start: date | None,
              end: date | None, candidates: Sequence[Candidate]) -> MifMatch:
    """Decide what a MIF row does to the member's authorizations with the row's MCP (all statuses)."""
    if decision is None:
        return MifMatch(MifOutcome.EXCEPTION, reason=MifException.UNKNOWN_BENEFIT_STATUS)
    if start is not None and end is not None and end < start:
        return MifMatch(MifOutcome.EXCEPTION, reason=MifException.INVALID_PERIOD)
    same = [c for c in candidates if c.service_key == service_key]
    # Oldest open request first: one open request per member, service and MCP is the norm, and the oldest
    # is the one whose clock has run longest.
    open_requests = sorted((c for c in same if c.status in OPEN), key=lambda c: c.requested_at)
    presumptive = [c for c in same if c.status is AuthorizationStatus.APPROVED and c.presumptive
                   and c.mcp_authorization_number is None]
    approved = [c for c in same if c.status in (AuthorizationStatus.APPROVED, AuthorizationStatus.SUSPENDED)]
    numbered = [c for c in approved if number and c.mcp_authorization_number == number]
    # Suspended before the MCP decided (an open request, or a presumptive approval awaiting confirmation): a
    # suspended request takes no decision (decision 0041), and an assignment beside it would be a duplicate.
    suspended_requests = [c for c in same if c.status is AuthorizationStatus.SUSPENDED
                          and (c.period_start is None or c.presumptive)]

    if decision is MifDecision.DISCONTINUED:
        target = numbered or approved
        if target:
            return MifMatch(MifOutcome.DISCONTINUED, target[0].authorization_id)
        return MifMatch(MifOutcome.EXCEPTION, reason=MifException.NOTHING_TO_DISCONTINUE)
    if open_requests:
        return MifMatch(MifOutcome.DECISION_APPLIED, open_requests[0].authorization_id)
    if presumptive and decision is not MifDecision.PENDED:
        return MifMatch(MifOutcome.DECISION_APPLIED, presumptive[0].authorization_id)
    if decision is MifDecision.APPROVED:
        if numbered:
            current = numbered[0]
            if (start is None or start == current.period_start) and (end is None or end == current.period_end):
                return MifMatch(MifOutcome.CONFIRMED, current.authorization_id)
            return MifMatch(MifOutcome.PERIOD_CHANGED, current.authorization_id)
        covering = [c for c in approved if not number and _covers(c, start, end)]
        if covering:
            return MifMatch(MifOutcome.CONFIRMED, covering[0].authorization_id)
        # The hub recorded the MCP's approval without its number (a phone or fax decision): this row is that
        # approval, not an MCP assignment beside it.
        unnumbered = [c for c in approved if number and c.mcp_authorization_number is None and not c.presumptive
                      and _covers(c, start, end)]
        if unnumbered:
            return MifMatch(MifOutcome.NUMBER_RECORDED, unnumbered[0].authorization_id)
        if suspended_requests:
            return MifMatch(MifOutcome.EXCEPTION, suspended_requests[0].authorization_id,
                            MifException.REQUEST_SUSPENDED)
        if start is None:
            return MifMatch(MifOutcome.EXCEPTION, reason=MifException.MISSING_AUTHORIZATION_START)
        return MifMatch(MifOutcome.ASSIGNMENT_CREATED)
    if decision is MifDecision.DENIED and numbered:
        return MifMatch(MifOutcome.EXCEPTION, numbered[0].authorization_id, MifException.DENIAL_OF_APPROVED)
    if suspended_requests:
        return MifMatch(MifOutcome.EXCEPTION, suspended_requests[0].authorization_id, MifException.REQUEST_SUSPENDED)
    return MifMatch(MifOutcome.EXCEPTION, reason=MifException.NO_OPEN_REQUEST)


_PERIOD = re.compile(r"^\s*(\d{4})[-/]?(0[1-9]|1[0-2])\s*$")


def reporting_month(reporting_period: str | None) -> str | None:
    """A MIF reporting period (YYYYMM, YYYY-MM or YYYY/MM) as YYYY-MM; None when absent or unreadable."""
    found = _PERIOD.match(reporting_period or "")
    return f"{found.group(1)}-{found.group(2)}" if found else None


def set_aside_if_older(match: MifMatch, row_period: str | None, newest_applied: str | None) -> MifMatch:
    """The outcome of a row once its reporting period is weighed against the newest period already applied for
    the member and MCP: an older row that would change anything is kept as an exception instead (the newer
    file's decisions stand); one that confirms, or is already an exception, keeps its outcome. Rows without a
    readable period are never set aside (nothing says they are older)."""
    if row_period is None or newest_applied is None or row_period >= newest_applied:
        return match
    if match.outcome in (MifOutcome.CONFIRMED, MifOutcome.EXCEPTION):
        return match
    return MifMatch(MifOutcome.EXCEPTION, match.authorization_id, MifException.OLDER_REPORTING_PERIOD)
