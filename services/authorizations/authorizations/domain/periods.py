"""Authorized periods: ECM initial 12 months / reauthorization 6 months, Community Support duration caps.

A decision beyond a cap is flagged for review and kept as the MCP sent it, never silently trimmed.
"""

from __future__ import annotations

import calendar
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal

from shared.reference.services import DurationCap, duration_cap, ecm_authorization_months

PERIOD_BEYOND_CAP = "period_beyond_cap"
PeriodKind = Literal["initial", "reauthorization"]


class PeriodError(ValueError):
    """A period that cannot be authorized as given; `field` and `rule` name the problem (no PHI)."""

    def __init__(self, field: str, rule: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.rule = rule


@dataclass(frozen=True)
class Period:
    """An authorized period, both ends inclusive, with any review flags."""

    start: date
    end: date
    flags: tuple[str, ...] = ()


def add_months(day: date, months: int) -> date:
    """The same day `months` later, clamped to the month's last day (Jan 31 + 1 month = Feb 28/29)."""
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def _cs_code(service_key: str) -> str | None:
    return None if service_key in ("ecm", "chw") else service_key


def cap_end(service_key: str, start: date, caps: Mapping[str, DurationCap] | None = None) -> date | None:
    """The last day a period starting on `start` may reach under the service's duration cap (None: no cap).

    An hours cap may cross midnight: 24 hours from an evening arrival ends the next calendar day.
    Raises ValueError for an unknown Community Support code or an override of a cap set by rule.
    """
    code = _cs_code(service_key)
    cap = duration_cap(code, caps) if code else None
    if cap is None:
        return None
    if cap.unit == "hours":
        return start + timedelta(days=math.ceil(cap.amount / 24))
    if cap.unit == "days":
        return start + timedelta(days=cap.amount - 1)
    return add_months(start, cap.amount) - timedelta(days=1)


def default_end(service_key: str, kind: PeriodKind, start: date,
                caps: Mapping[str, DurationCap] | None = None) -> date | None:
    """The period end the rules give when the MCP sends none: ECM 12 / 6 months, a capped CS its cap.

    None when no rule gives one (uncapped CS, CHW). Raises LookupError when no ECM period is known for the date.
    """
    if service_key == "ecm":
        return add_months(start, ecm_authorization_months(kind, start)) - timedelta(days=1)
    return cap_end(service_key, start, caps)


def authorized_period(service_key: str, kind: PeriodKind, start: date | None, end: date | None, *,
                      default_start: date, caps: Mapping[str, DurationCap] | None = None) -> Period:
    """The period to record for an approval: given or default ends, checked against the cap.

    Raises PeriodError when the end is before the start or no end is given and no rule supplies one.
    """
    start = start or default_start
    if end is None:
        end = default_end(service_key, kind, start, caps)
        if end is None:
            raise PeriodError("period_end", "required",
                              "this service has no period by rule: the approval must give its end date")
    if end < start:
        raise PeriodError("period_end", "not_before_start", "the period end is before its start")
    limit = cap_end(service_key, start, caps)
    flags = (PERIOD_BEYOND_CAP,) if limit is not None and end > limit else ()
    return Period(start=start, end=end, flags=flags)


def expiring_on(period_end: date, lead_days: int, period_start: date) -> date:
    """The date `authorization.expiring` is due: `lead_days` before the end, never before the start."""
    return max(period_start, period_end - timedelta(days=lead_days))
