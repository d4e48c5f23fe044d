"""Decision deadlines (APL 21-011) and escalation times, on an MCP's business calendar in Pacific time.

Standard: the end of the 5th business day after receipt, never beyond the end of the 14th calendar day.
Expedited: 72 elapsed hours. The always-expedited Community Supports are expedited whatever the referral says.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from authorizations.domain.policy import Terms
from shared.contracts.values import Program, ServiceRequested, Urgency
from shared.reference.services import is_always_expedited

# A deadline is the last instant of its day; a timer due exactly then would call "now == deadline" overdue.
JUST_AFTER = timedelta(microseconds=1)


class DeadlineBasis(StrEnum):
    """Which rule set a request's decision_due."""

    STANDARD_BUSINESS_DAYS = "standard_business_days"
    CALENDAR_DAY_CAP = "calendar_day_cap"
    EXPEDITED_HOURS = "expedited_hours"


@dataclass(frozen=True)
class Deadline:
    """A computed decision deadline and how it was reached (recorded on the request)."""

    due: datetime
    urgency: Urgency
    basis: DeadlineBasis
    calendar: str
    expedited_by_rule: bool


def service_key(service: ServiceRequested) -> str:
    """The key per-service settings use: `ecm`, `chw` or the Community Support code.

    Raises ValueError for a Community Support request without a code.
    """
    if service.program is Program.CS:
        if not service.cs_code:
            raise ValueError("a Community Support request needs its cs_code")
        return service.cs_code
    return service.program.value


def expedited_by_rule(service: ServiceRequested) -> bool:
    """True when the service must be decided as expedited whatever the referral says.

    Raises ValueError for an unknown Community Support code.
    """
    if service.program is not Program.CS or not service.cs_code:
        return False
    return is_always_expedited(service.cs_code, service.after_acute_care)


def _aware(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("a timezone-aware datetime is required")
    return moment


def decision_due(received_at: datetime, urgency: Urgency, service: ServiceRequested, terms: Terms) -> Deadline:
    """The decision deadline of a request received at `received_at` under the MCP's terms.

    Raises ValueError for a naive `received_at` or an unknown Community Support code.
    """
    received = _aware(received_at)
    by_rule = expedited_by_rule(service)
    calendar = terms.calendar
    if urgency is Urgency.EXPEDITED or by_rule:
        # Elapsed hours, counted in UTC: a DST change moves the wall-clock time, not the length.
        due = received.astimezone(UTC) + timedelta(hours=terms.expedited_hours)
        return Deadline(due=due, urgency=Urgency.EXPEDITED, basis=DeadlineBasis.EXPEDITED_HOURS,
                        calendar=calendar.calendar_name, expedited_by_rule=by_rule and urgency is Urgency.STANDARD)
    business = calendar.add_business_days(received, terms.standard_business_days)
    cap = calendar.add_calendar_days(received, terms.standard_max_calendar_days)
    basis = DeadlineBasis.STANDARD_BUSINESS_DAYS if business <= cap else DeadlineBasis.CALENDAR_DAY_CAP
    return Deadline(due=min(business, cap).astimezone(UTC), urgency=Urgency.STANDARD, basis=basis,
                    calendar=calendar.calendar_name, expedited_by_rule=False)


def pend_extension(due: datetime, urgency: Urgency, terms: Terms, *, pended_at: datetime) -> datetime | None:
    """The extended deadline when the MCP pends for information at `pended_at`, or None where the rule lets no
    clock stop or the deadline has already passed.

    [unconfirmed] 42 CFR 438.210(d): up to 14 more calendar days when the MCP needs information; the extension
    is counted from the original deadline and can be granted once. Raises ValueError for a naive `due` or
    `pended_at`.
    """
    days = terms.expedited_pend_extension_days if urgency is Urgency.EXPEDITED else terms.pend_extension_days
    # An extension is taken before the deadline: a pend after it would turn a missed deadline into a met one.
    if days <= 0 or _aware(pended_at) > _aware(due):
        return None
    return terms.calendar.add_calendar_days(_aware(due), days).astimezone(UTC)


def escalation_at(due: datetime, escalation: int, urgency: Urgency, terms: Terms) -> datetime | None:
    """When `authorization.decision_overdue` number `escalation` (1 = at the deadline) fires, or None past
    the MCP's maximum. Standard repeats at the end of each following business day; expedited ones every
    `expedited_escalation_hours` elapsed hours. Raises ValueError for escalation < 1 or a naive `due`.
    """
    if escalation < 1:
        raise ValueError("escalations count from 1")
    if escalation > terms.escalation_max:
        return None
    due = _aware(due).astimezone(UTC)
    if escalation == 1:
        return due + JUST_AFTER
    if urgency is Urgency.EXPEDITED:
        return due + timedelta(hours=terms.expedited_escalation_hours * (escalation - 1)) + JUST_AFTER
    later = terms.calendar.add_business_days(due, escalation - 1)
    return later.astimezone(UTC) + JUST_AFTER


def next_escalation(raised: Iterable[tuple[datetime, int]], due: datetime) -> int:
    """The number of the next `authorization.decision_overdue` for deadline `due`, given those already raised as
    (deadline, number) pairs: a resumed request goes on from the last one (1 when none was raised for `due`).

    Raises ValueError for a naive datetime.
    """
    # Numbering is per deadline: a pend's extended deadline starts again at 1 (decision 0041).
    return max((number for at, number in raised if _aware(at) == _aware(due)), default=0) + 1
