"""Medi-Cal managed care plans (MCPs) and the effective-dated table of which plans serve which county."""

from __future__ import annotations

import json
import re
from datetime import date
from enum import StrEnum
from functools import cache

from pydantic import BaseModel, ConfigDict

from shared.reference.counties import County, require_county
from shared.reference.facts import Effective, optional_date, packaged_csv_rows, packaged_text

PLANS_FILE = "plans.json"
COUNTY_MCP_FILE = "county_mcp.csv"


class Plan(BaseModel):
    """An MCP under CalHub's stable code, with its display name and the other names partners use for it."""

    model_config = ConfigDict(frozen=True)

    code: str
    name: str
    aliases: tuple[str, ...] = ()
    # A local plan whose network and clinical management another MCP runs (CalViva and CHPIV: Health Net).
    administered_by: str | None = None
    # Kaiser contracts ECM, CS and CHW only through national lead entities (CALAIM.md operations facts).
    contracts_via_lead_entity: bool = False
    notes: str = ""


class Arrangement(StrEnum):
    """How the published MCP serves a county."""

    DIRECT = "direct"
    # 'X (ASO)' in the DHCS table: the MCP administers the network for the county's local plan.
    ASO = "aso"


class PlanOffering(Effective):
    """One county-plan pair of the county→MCP table, in force between its effective dates."""

    county: County
    plan: Plan
    arrangement: Arrangement = Arrangement.DIRECT
    local_plan: Plan | None = None  # the plan of record when `arrangement` is ASO
    mcp_as_published: str
    source: str
    notes: str = ""


class _PlanFile(BaseModel):
    source: str
    plans: tuple[Plan, ...]


_NOT_ALNUM = re.compile(r"[^a-z0-9]")


def _key(text: str) -> str:
    # 'L.A. Care', 'LA Care' and 'lacare' are the same plan; punctuation, spacing and case carry no meaning.
    return _NOT_ALNUM.sub("", text.casefold())


@cache
def _plans() -> dict[str, Plan]:
    registry = _PlanFile.model_validate(json.loads(packaged_text(PLANS_FILE)))
    by_code: dict[str, Plan] = {}
    for plan in registry.plans:
        if plan.code in by_code:
            raise ValueError(f"{PLANS_FILE}: plan code {plan.code!r} appears twice")
        by_code[plan.code] = plan
    for plan in by_code.values():
        if plan.administered_by is not None and plan.administered_by not in by_code:
            raise ValueError(
                f"{PLANS_FILE}: {plan.code!r} is administered by unknown plan {plan.administered_by!r}"
            )
    return by_code


@cache
def _plans_by_key() -> dict[str, Plan]:
    index: dict[str, Plan] = {}
    for plan in _plans().values():
        for spelling in (plan.code, plan.name, *plan.aliases):
            key = _key(spelling)
            if index.get(key, plan) != plan:
                raise ValueError(f"{PLANS_FILE}: plan name {spelling!r} is ambiguous")
            index[key] = plan
    return index


@cache
def _offerings() -> tuple[PlanOffering, ...]:
    offerings: list[PlanOffering] = []
    for line, row in enumerate(packaged_csv_rows(COUNTY_MCP_FILE), start=2):
        where = f"{COUNTY_MCP_FILE} line {line}"
        local_code = row["local_plan_code"].strip()
        offering = PlanOffering(
            county=require_county(row["county"]),
            plan=plan_by_code(row["plan_code"]),
            arrangement=Arrangement(row["arrangement"].strip() or Arrangement.DIRECT),
            local_plan=plan_by_code(local_code) if local_code else None,
            mcp_as_published=row["mcp_as_published"],
            effective_from=optional_date(row["effective_from"]),
            effective_to=optional_date(row["effective_to"]),
            source=row["source"],
            notes=row["notes"],
        )
        if (offering.arrangement is Arrangement.ASO) != (offering.local_plan is not None):
            raise ValueError(f"{where}: an ASO row names its local plan, and only an ASO row does")
        if offering.local_plan is not None and offering.local_plan.administered_by != offering.plan.code:
            raise ValueError(
                f"{where}: {offering.local_plan.code} is not administered by {offering.plan.code}"
            )
        for earlier in offerings:
            if (earlier.county, earlier.plan) == (offering.county, offering.plan) and earlier.overlaps(
                offering
            ):
                raise ValueError(f"{where}: overlaps an earlier row for the same county and plan")
        offerings.append(offering)
    return tuple(offerings)


def all_plans() -> list[Plan]:
    """Every plan CalHub knows, in code order."""
    return sorted(_plans().values(), key=lambda plan: plan.code)


def plan_by_code(code: str) -> Plan:
    """The plan with this CalHub code. Raises ValueError for an unknown code."""
    try:
        return _plans()[code]
    except KeyError:
        raise ValueError(f"unknown plan code: {code!r}") from None


def plan_named(text: str) -> Plan | None:
    """The plan a code, display name or alias refers to (case, spacing and punctuation ignored), or None."""
    return _plans_by_key().get(_key(text))


def offerings_in_county(county: County | str, on: date) -> list[PlanOffering]:
    """The county→MCP rows in force for a county on a date. Raises ValueError for an unknown county."""
    target = require_county(county)
    return [o for o in _offerings() if o.county == target and o.in_force_on(on)]


def plans_in_county(county: County | str, on: date) -> list[Plan]:
    """The MCPs the DHCS table lists for a county on a date. Raises ValueError for an unknown county."""
    return [offering.plan for offering in offerings_in_county(county, on)]


def plan_offered_in(plan_code: str, county: County | str, on: date) -> bool:
    """True when the plan serves the county on the date, directly or as the local plan of an ASO row.

    Raises ValueError for an unknown plan code or county.
    """
    plan = plan_by_code(plan_code)
    return any(plan in (o.plan, o.local_plan) for o in offerings_in_county(county, on))


def counties_served_by(plan_code: str, on: date) -> list[County]:
    """The counties a plan serves on a date (directly or as ASO local plan). Raises ValueError if unknown."""
    plan = plan_by_code(plan_code)
    served = {
        o.county.name: o.county for o in _offerings() if o.in_force_on(on) and plan in (o.plan, o.local_plan)
    }
    return [served[name] for name in sorted(served)]
