"""Presumptive (retroactive) authorization: for providers an MCP trusts, and always for the justice-involved
Population of Focus from the day of release."""

from __future__ import annotations

from collections.abc import Set
from enum import StrEnum

from shared.contracts.values import Program, ServiceRequested


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
