"""Pricing an encounter from its MCP's fee schedule: expected amount and the components behind it.

PMPM: the first billable (non-outreach) encounter of a member in a calendar month carries the monthly rate,
later ones in that month are reported at $0. Outreach: each attempt is paid, successful or not, up to the
profile's cap. One-time engagement: once per member and MCP, on the first successful outreach.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

from claims.domain.configuration import FeeSchedule, OutreachCap, Rate, RateBasis

CENT = Decimal("0.01")


@dataclass(frozen=True)
class PricedService:
    """What a prior encounter of the member already used up: its month, components and amount."""

    mcp_code: str
    program: str
    service_code: str
    service_from: date
    outreach_attempt: bool
    components: tuple[str, ...]  # RateBasis values that contributed a non-zero amount
    expected_amount: Decimal


@dataclass(frozen=True)
class PricingRequest:
    """The encounter being priced."""

    mcp_code: str
    program: str
    service_code: str
    hcpcs: str
    modifiers: tuple[str, ...]
    units: Decimal
    service_from: date
    outreach_attempt: bool
    outreach_successful: bool


@dataclass(frozen=True)
class Component:
    """One priced part of an encounter."""

    basis: RateBasis
    amount: Decimal
    note: str = ""


@dataclass(frozen=True)
class Price:
    """The expected amount of an encounter and how it was reached."""

    amount: Decimal
    components: tuple[Component, ...]
    flags: tuple[str, ...] = ()

    def paid_components(self) -> tuple[str, ...]:
        """Bases that contributed money (what later encounters must not repeat)."""
        return tuple(c.basis.value for c in self.components if c.amount > 0)


class NoRate(LookupError):
    """No fee schedule or rate prices this encounter; `code` says which."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _matches(rate: Rate, request: PricingRequest) -> bool:
    if rate.program != request.program:
        return False
    if rate.service_code is not None and rate.service_code != request.service_code:
        return False
    if rate.hcpcs is not None and rate.hcpcs != request.hcpcs:
        return False
    return rate.modifiers is None or frozenset(rate.modifiers) == frozenset(request.modifiers)


def _same_month(a: date, b: date) -> bool:
    return (a.year, a.month) == (b.year, b.month)


def price(request: PricingRequest, schedule: FeeSchedule | None, history: Sequence[PricedService],
          outreach_cap: OutreachCap) -> Price:
    """Expected amount of an encounter; raises NoRate when the schedule does not price it."""
    if schedule is None:
        raise NoRate("no_fee_schedule", "no fee schedule of the MCP is in force on the date of service")
    candidates = [r for r in schedule.rates if r.basis is not RateBasis.ONE_TIME_ENGAGEMENT and _matches(r, request)]
    if not candidates:
        raise NoRate("no_rate", "the MCP's fee schedule has no rate for this service, code and modifiers")
    rate = max(candidates, key=lambda r: r.specificity())
    mine = [h for h in history if h.mcp_code == request.mcp_code and h.program == request.program]
    components: list[Component] = []
    flags: list[str] = []
    if rate.basis is RateBasis.PER_UNIT:
        components.append(Component(rate.basis, rate.amount * request.units, "per unit"))
    elif rate.basis is RateBasis.PER_ENCOUNTER:
        components.append(Component(rate.basis, rate.amount, "per encounter"))
    elif rate.basis is RateBasis.PMPM:
        paid = any(_same_month(h.service_from, request.service_from) and RateBasis.PMPM.value in h.components
                   for h in mine)
        components.append(Component(rate.basis, Decimal("0") if paid else rate.amount,
                                    "month already billed" if paid else "first billable encounter of the month"))
    elif rate.basis is RateBasis.OUTREACH:
        attempts = [h for h in mine if h.outreach_attempt and RateBasis.OUTREACH.value in h.components
                    and (outreach_cap.period == "lifetime" or _same_month(h.service_from, request.service_from))]
        capped = len(attempts) >= outreach_cap.attempts
        if capped:
            flags.append("outreach_cap_reached")
        components.append(Component(rate.basis, Decimal("0") if capped else rate.amount,
                                    "outreach cap reached" if capped else "outreach attempt"))
    if request.outreach_successful:
        engagement = [r for r in schedule.rates if r.basis is RateBasis.ONE_TIME_ENGAGEMENT
                      and r.program == request.program]
        already = any(RateBasis.ONE_TIME_ENGAGEMENT.value in h.components for h in mine)
        if engagement and not already:
            best = max(engagement, key=lambda r: r.specificity())
            components.append(Component(RateBasis.ONE_TIME_ENGAGEMENT, best.amount, "successful engagement"))
    rounded = tuple(Component(c.basis, c.amount.quantize(CENT, ROUND_HALF_UP), c.note) for c in components)
    total = sum((c.amount for c in rounded), Decimal("0")).quantize(CENT)
    return Price(amount=total, components=rounded, flags=tuple(flags))
