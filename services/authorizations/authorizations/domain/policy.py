"""Per-MCP authorization terms: effective-dated overrides of deadlines, calendars, lead times and trust.

The facts (5 business days / 14 calendar days / 72 hours, always-expedited Community Supports, ECM periods,
CS caps) come from `shared.reference`; this module only holds what varies by MCP contract, validated once at
start (docs/decisions/0040-authorization-policy.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.reference.calendar import US_CA_STATE, BusinessCalendar, CalendarSpec
from shared.reference.facts import Effective
from shared.reference.identifiers import npi_problem
from shared.reference.services import (
    DurationCap,
    community_support,
    community_supports,
    decision_deadlines,
    duration_cap,
)

DEFAULT_KEY = "default"


class MifDecision(StrEnum):
    """What an MCP-defined ECM benefit status on a Member Information File row means to an authorization."""

    APPROVED = "approved"
    DENIED = "denied"
    PENDED = "pended"
    DISCONTINUED = "discontinued"


# MCP-defined benefit statuses as the gateway's profiles map them (FILES.md: e.g. authorized / enrolled /
# declined / discontinued / pending); an MCP's own words are added per policy file.
DEFAULT_MIF_STATUSES: dict[str, MifDecision] = {
    "authorized": MifDecision.APPROVED,
    "approved": MifDecision.APPROVED,
    "enrolled": MifDecision.APPROVED,
    "assigned": MifDecision.APPROVED,
    "declined": MifDecision.DENIED,
    "denied": MifDecision.DENIED,
    "pending": MifDecision.PENDED,
    "pended": MifDecision.PENDED,
    "discontinued": MifDecision.DISCONTINUED,
    "disenrolled": MifDecision.DISCONTINUED,
}


def service_keys() -> frozenset[str]:
    """Keys a per-service setting may use: `ecm`, `chw`, a Community Support code, or `default`."""
    return frozenset({"ecm", "chw", DEFAULT_KEY, *(cs.code for cs in community_supports())})


def _check_service_keys(values: Mapping[str, Any], field: str) -> None:
    unknown = sorted(set(values) - service_keys())
    if unknown:
        raise ValueError(f"{field}: unknown service key(s) {unknown}; use ecm, chw, a Community Support code "
                         "or default")


class McpTerms(Effective):
    """One effective-dated set of an MCP's terms; unset fields fall back to the policy defaults or the rule."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    calendar: str | None = Field(default=None, description="Name of a calendar in `calendars`.")
    standard_business_days: int | None = Field(default=None, ge=1)
    standard_max_calendar_days: int | None = Field(default=None, ge=1)
    expedited_hours: int | None = Field(default=None, ge=1)
    expiring_lead_days: dict[str, int] = Field(default_factory=dict)
    trusted_providers: frozenset[str] = Field(default_factory=frozenset,
                                              description="CBO organization ids the MCP trusts for "
                                                          "presumptive authorization.")
    pend_extension_days: int | None = Field(default=None, ge=0)
    duration_caps: dict[str, DurationCap] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _within_the_rule(self) -> McpTerms:
        rule = decision_deadlines()
        # [rule] APL 21-011 sets maxima: a contract may ask an MCP to decide sooner, never later.
        if self.standard_business_days is not None and self.standard_business_days > rule.standard_business_days:
            raise ValueError(f"standard_business_days may not exceed the rule ({rule.standard_business_days})")
        if (self.standard_max_calendar_days is not None
                and self.standard_max_calendar_days > rule.standard_max_calendar_days):
            raise ValueError(
                f"standard_max_calendar_days may not exceed the rule ({rule.standard_max_calendar_days})")
        if self.expedited_hours is not None and self.expedited_hours > rule.expedited_hours:
            raise ValueError(f"expedited_hours may not exceed the rule ({rule.expedited_hours})")
        _check_service_keys(self.expiring_lead_days, "expiring_lead_days")
        if any(days < 1 for days in self.expiring_lead_days.values()):
            raise ValueError("expiring_lead_days must be at least 1")
        for code in self.duration_caps:
            community_support(code)  # raises ValueError for an unknown code
        for code in self.duration_caps:
            duration_cap(code, self.duration_caps)  # raises when the cap is set by rule
        return self


class AuthorizationPolicy(BaseModel):
    """The whole per-MCP configuration file (YAML or JSON), with defaults that follow the rules."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    calendars: tuple[CalendarSpec, ...] = ()
    default_calendar: str = US_CA_STATE
    # [practice] 30 days ahead by default; a capped stay is short, so its notice comes nearer the end.
    expiring_lead_days: dict[str, int] = Field(default_factory=lambda: {
        DEFAULT_KEY: 30, "recuperative_care": 14, "sobering_centers": 1})
    engagement_window_days: int = Field(default=60, ge=1)
    # [unconfirmed] 42 CFR 438.210(d): a standard decision may be extended by up to 14 calendar days when the
    # MCP needs more information; an expedited one is not extended here unless an MCP's terms say so.
    pend_extension_days: int = Field(default=14, ge=0)
    expedited_pend_extension_days: int = Field(default=0, ge=0)
    escalation_max: int = Field(default=10, ge=1)
    expedited_escalation_hours: int = Field(default=24, ge=1)
    eligibility_unknown_is_eligible: bool = True
    # [rule] presumptive authorization is required for the justice-involved POF; its code ('4') is
    # [unconfirmed] numbering, so it is configurable.
    presumptive_pof_codes: frozenset[str] = frozenset({"4"})
    providers: dict[str, str] = Field(default_factory=dict,
                                      description="ECM provider NPI -> CBO organization id (MIF assignments).")
    mif_statuses: dict[str, MifDecision] = Field(default_factory=lambda: dict(DEFAULT_MIF_STATUSES))
    mcps: dict[str, tuple[McpTerms, ...]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> AuthorizationPolicy:
        names = [spec.name for spec in self.calendars]
        if len(names) != len(set(names)):
            raise ValueError("calendars: duplicate calendar name")
        known = {US_CA_STATE, *names}
        if self.default_calendar not in known:
            raise ValueError(f"default_calendar: unknown calendar {self.default_calendar!r}")
        _check_service_keys(self.expiring_lead_days, "expiring_lead_days")
        if DEFAULT_KEY not in self.expiring_lead_days:
            raise ValueError("expiring_lead_days needs a 'default' entry")
        if any(days < 1 for days in self.expiring_lead_days.values()):
            raise ValueError("expiring_lead_days must be at least 1")
        for npi in self.providers:
            problem = npi_problem(npi)
            if problem:
                raise ValueError(f"providers: {problem}")
        for mcp_code, terms in self.mcps.items():
            for index, term in enumerate(terms):
                if term.calendar is not None and term.calendar not in known:
                    raise ValueError(f"mcps.{mcp_code}[{index}].calendar: unknown calendar {term.calendar!r}")
                if any(other.overlaps(term) for other in terms[:index]):
                    raise ValueError(f"mcps.{mcp_code}: effective periods overlap")
        return self

    def calendar(self, name: str) -> BusinessCalendar:
        """The business calendar of a name in this policy; raises KeyError for an unknown name."""
        if name == US_CA_STATE:
            return BusinessCalendar()
        for spec in self.calendars:
            if spec.name == name:
                return BusinessCalendar(spec)
        raise KeyError(name)

    def terms_for(self, mcp_code: str, on: date) -> Terms:
        """The MCP's terms in force on a date (Pacific date of receipt), defaults filled in."""
        term = next((t for t in self.mcps.get(mcp_code, ()) if t.in_force_on(on)), None)
        rule = decision_deadlines()
        lead = dict(self.expiring_lead_days)
        if term is not None:
            lead.update(term.expiring_lead_days)
        calendar_name = term.calendar if term and term.calendar else self.default_calendar
        return Terms(
            mcp_code=mcp_code,
            calendar=self.calendar(calendar_name),
            standard_business_days=(term.standard_business_days if term and term.standard_business_days
                                    else rule.standard_business_days),
            standard_max_calendar_days=(term.standard_max_calendar_days
                                        if term and term.standard_max_calendar_days
                                        else rule.standard_max_calendar_days),
            expedited_hours=term.expedited_hours if term and term.expedited_hours else rule.expedited_hours,
            expiring_lead_days=lead,
            trusted_providers=term.trusted_providers if term else frozenset(),
            pend_extension_days=(term.pend_extension_days if term and term.pend_extension_days is not None
                                 else self.pend_extension_days),
            expedited_pend_extension_days=self.expedited_pend_extension_days,
            duration_caps=dict(term.duration_caps) if term else {},
            escalation_max=self.escalation_max,
            expedited_escalation_hours=self.expedited_escalation_hours,
        )

    def mif_decision(self, status: str | None) -> MifDecision | None:
        """What a MIF benefit status means (case and spacing ignored); None for an unknown status."""
        if status is None:
            return None
        return self.mif_statuses.get(status.strip().lower().replace(" ", "_"))


@dataclass(frozen=True)
class Terms:
    """An MCP's terms on one date, every default resolved."""

    mcp_code: str
    calendar: BusinessCalendar
    standard_business_days: int
    standard_max_calendar_days: int
    expedited_hours: int
    expiring_lead_days: Mapping[str, int]
    trusted_providers: frozenset[str]
    pend_extension_days: int
    expedited_pend_extension_days: int
    duration_caps: Mapping[str, DurationCap]
    escalation_max: int
    expedited_escalation_hours: int

    def lead_days(self, service_key: str) -> int:
        """Days before the period end that `authorization.expiring` is raised for a service."""
        return self.expiring_lead_days.get(service_key, self.expiring_lead_days[DEFAULT_KEY])
