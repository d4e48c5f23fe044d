"""Presumptive (retroactive) authorization: for providers an MCP trusts, and always for the justice-involved
Population of Focus from the day of release."""

from __future__ import annotations

from collections.abc import Mapping, Set
from datetime import date
from enum import StrEnum

from authorizations.domain.periods import Period, default_end
from shared.contracts.values import Program, ServiceRequested
from shared.reference.services import DurationCap

NO_PERIOD_BY_RULE = "no_period_by_rule"  # why a presumptive basis was not applied


class PresumptiveBasis(StrEnum):
    """Why a request was authorized presumptively."""

    JUSTICE_INVOLVED = "justice_involved"  # [rule] required from the day of release
    TRUSTED_PROVIDER = "trusted_provider"  # [rule] encouraged; the MCP names its trusted providers


def presumptive_basis(service: ServiceRequested, cbo_organization_id: str | None,
                      trusted_providers: Set[str], justice_pof_codes: Set[str]) -> PresumptiveBasis | None:
    """The basis for presumptive authorization of a request, or None when the MCP must decide first."""
    if service.program is Program.ECM and set(service.pof_codes) & set(justice_pof_codes):
        return PresumptiveBasis.JUSTICE_INVOLVED
    if cbo_organization_id is not None and cbo_organization_id in trusted_providers:
        return PresumptiveBasis.TRUSTED_PROVIDER
    return None


def presumptive_period(service_key: str, received_on: date,
                       caps: Mapping[str, DurationCap] | None = None) -> Period | None:
    """The period of a presumptive approval, from the receipt date to the rule's end; None when no rule gives
    the service a period (CHW, an uncapped Community Support).

    Raises ValueError for an unknown Community Support code, LookupError when no ECM period is known for the date.
    """
    # Without a rule's end the hub would have to invent one: the MCP decides such a request with its period.
    end = default_end(service_key, "initial", received_on, caps)
    return Period(start=received_on, end=end) if end is not None else None
