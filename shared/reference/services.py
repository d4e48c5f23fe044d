"""CalAIM programs and services: ECM Populations of Focus, Community Supports, authorization facts, doulas."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import date
from decimal import Decimal
from enum import StrEnum
from functools import cache
from typing import Literal

from pydantic import BaseModel, ConfigDict

from shared.reference.facts import Effective, Marker, packaged_text

SERVICES_FILE = "services.json"


class ProgramKind(StrEnum):
    """The CalAIM programs a hub delivers."""

    ECM = "ecm"  # Enhanced Care Management: one lead care manager per member
    CS = "cs"  # Community Supports
    CHW = (
        "chw"  # Community Health Worker preventive services; a CBO may bill CHW without being an ECM provider
    )


class _Fact(BaseModel):
    model_config = ConfigDict(frozen=True)


class PopulationOfFocus(_Fact):
    """An ECM Population of Focus. Numbering past 1a/1b is [unconfirmed]; MCP labels map onto these codes."""

    code: str
    name: str
    adults: bool
    children_youth: bool
    marker: Marker
    notes: str = ""


class ExpediteRule(StrEnum):
    """When a Community Support's authorization request is expedited by rule (decision within 72 hours)."""

    NOT_BY_RULE = "not_by_rule"
    ALWAYS = "always"
    AFTER_ACUTE_CARE = (
        "after_acute_care"  # medically tailored meals: only when the referral follows acute care
    )


class DurationCap(_Fact):
    """The longest one authorization of a service may last."""

    amount: int
    unit: Literal["hours", "days", "months"]
    marker: Marker
    configurable: bool  # only an [unconfirmed] cap may be replaced by a per-MCP setting
    source: str


class LifetimeCap(_Fact):
    """The most that may be paid for a service for one member over their lifetime, in US dollars."""

    amount: Decimal
    marker: Marker
    source: str


class CommunitySupport(_Fact):
    """One Community Support service under its stable code."""

    code: str
    name: str
    marker: Marker
    expedite: ExpediteRule = ExpediteRule.NOT_BY_RULE
    duration_cap: DurationCap | None = None
    lifetime_cap: LifetimeCap | None = None
    notes: str = ""

    @property
    def always_expedited(self) -> bool:
        """True when every request for this service is expedited, whatever the referral says."""
        return self.expedite is ExpediteRule.ALWAYS


class EcmAuthorizationPeriod(Effective):
    """How long an ECM authorization of one kind lasts, when it starts within the effective period."""

    kind: Literal["initial", "reauthorization"]
    months: int
    marker: Marker
    notes: str = ""


class DecisionDeadlines(_Fact):
    """MCP decision deadlines for authorization requests (APL 21-011) and for the first MIF after one."""

    standard_business_days: int  # as soon as appropriate, at most this many business days after complete info
    standard_max_calendar_days: int  # and never more than this many calendar days
    expedited_hours: int  # elapsed hours, not business hours
    member_information_after_authorization_working_days: int
    marker: Marker
    source: str


class ChwCarePlanRule(_Fact):
    """CHW: a licensed practitioner's care plan is required once a member reaches this many units."""

    units_before_care_plan: int
    counting_period: Literal["calendar_year", "rolling_12_months"]  # [unconfirmed]: configurable per MCP
    marker: Marker
    source: str


class DoulaBenefit(_Fact):
    """Doula services per pregnancy under one standing recommendation."""

    initial_visits: int
    prenatal_postpartum_visits: int
    labor_and_delivery_support: int
    extended_postpartum_visits: int
    max_amount: Decimal
    second_recommendation_max_amount: Decimal
    second_recommendation_condition: str
    marker: Marker
    source: str


class _ServicesFile(_Fact):
    source: str
    populations_of_focus: tuple[PopulationOfFocus, ...]
    community_supports: tuple[CommunitySupport, ...]
    ecm_authorization_periods: tuple[EcmAuthorizationPeriod, ...]
    decision_deadlines: DecisionDeadlines
    chw_care_plan: ChwCarePlanRule
    doula: DoulaBenefit


@cache
def _services() -> _ServicesFile:
    services = _ServicesFile.model_validate(json.loads(packaged_text(SERVICES_FILE)))
    for table in (services.populations_of_focus, services.community_supports):
        codes = [entry.code for entry in table]
        if len(codes) != len(set(codes)):
            raise ValueError(f"{SERVICES_FILE}: duplicate code in {codes}")
    periods = services.ecm_authorization_periods
    for index, period in enumerate(periods):
        if any(p.kind == period.kind and p.overlaps(period) for p in periods[:index]):
            raise ValueError(f"{SERVICES_FILE}: overlapping ECM {period.kind} periods")
    return services


def populations_of_focus() -> list[PopulationOfFocus]:
    """Every ECM Population of Focus, in code order (1a, 1b, 2 … 9)."""
    return list(_services().populations_of_focus)


def population_of_focus(code: str) -> PopulationOfFocus:
    """The Population of Focus with this code (e.g. '1a', '4'). Raises ValueError for an unknown code."""
    for population in _services().populations_of_focus:
        if population.code == code.strip().lower():
            return population
    raise ValueError(f"unknown Population of Focus: {code!r}")


def community_supports() -> list[CommunitySupport]:
    """Every Community Support: the 14 pre-approved services [rule], then Transitional Rent [practice]."""
    return list(_services().community_supports)


def community_support(cs_code: str) -> CommunitySupport:
    """The Community Support with this code (e.g. 'recuperative_care'). Raises ValueError if unknown."""
    for support in _services().community_supports:
        if support.code == cs_code:
            return support
    raise ValueError(f"unknown Community Support: {cs_code!r}")


def is_always_expedited(cs_code: str, after_acute_care: bool = False) -> bool:
    """True when a request for this Community Support must be expedited by rule.

    `after_acute_care` is the referral's flag that the member comes from an acute care stay; it matters for
    medically tailored meals only. Raises ValueError for an unknown code.
    """
    rule = community_support(cs_code).expedite
    return rule is ExpediteRule.ALWAYS or (rule is ExpediteRule.AFTER_ACUTE_CARE and after_acute_care)


def duration_cap(cs_code: str, overrides: Mapping[str, DurationCap] | None = None) -> DurationCap | None:
    """The duration cap of a Community Support, with a per-MCP override where the cap is configurable.

    Raises ValueError for an unknown code, or when an override targets a cap set by rule (or no cap at all).
    """
    cap = community_support(cs_code).duration_cap
    override = (overrides or {}).get(cs_code)
    if override is None:
        return cap
    if cap is None or not cap.configurable:
        raise ValueError(f"the duration cap of {cs_code!r} is not configurable")
    return override


def ecm_authorization_months(kind: Literal["initial", "reauthorization"], starts_on: date) -> int:
    """Months of an ECM authorization of this kind starting on a date. Raises LookupError if none is known."""
    for period in _services().ecm_authorization_periods:
        if period.kind == kind and period.in_force_on(starts_on):
            return period.months
    raise LookupError(f"no ECM {kind} period known for authorizations starting {starts_on.isoformat()}")


def decision_deadlines() -> DecisionDeadlines:
    """The MCP decision deadlines for authorization requests."""
    return _services().decision_deadlines


def chw_care_plan_rule() -> ChwCarePlanRule:
    """When a CHW member needs a licensed practitioner's care plan (the counting period is a default)."""
    return _services().chw_care_plan


def doula_benefit() -> DoulaBenefit:
    """The doula benefit per pregnancy (visit counts and dollar maxima)."""
    return _services().doula
