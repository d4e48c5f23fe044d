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
from typing import Protocol

from claims.domain.configuration import FeeSchedule, OutreachCap, Rate, RateBasis

CENT = Decimal("0.01")


def cents(amount: Decimal) -> Decimal:
    """`amount` in whole cents, rounded half up: how a price is rounded, and how the 837P writes every amount."""
    return amount.quantize(CENT, ROUND_HALF_UP)


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


class PriorService(Protocol):
    """What pricing reads of a prior encounter: a PricedService, or any record with these attributes."""

    @property
    def mcp_code(self) -> str: ...

    @property
    def program(self) -> str: ...

    @property
    def service_from(self) -> date: ...

    @property
    def outreach_attempt(self) -> bool: ...

    @property
    def components(self) -> tuple[str, ...]: ...


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


def _matches(rate: Rate, program: str, service_code: str, hcpcs: str, modifiers: frozenset[str]) -> bool:
    if rate.program != program:
        return False
    if rate.service_code is not None and rate.service_code != service_code:
        return False
    if rate.hcpcs is not None and rate.hcpcs != hcpcs:
        return False
    return rate.modifiers is None or frozenset(rate.modifiers) == modifiers


class _RateTable:
    """One fee schedule's rates looked up by what an encounter matches on, each answer worked out once.

    Pricing a batch asks the same few questions of the same schedule tens of thousands of times.
    """

    def __init__(self, schedule: FeeSchedule) -> None:
        self.schedule = schedule
        self._rates: dict[tuple[str, str, str, tuple[str, ...]], Rate | None] = {}
        self._engagements: dict[str, Rate | None] = {}

    def rate(self, program: str, service_code: str, hcpcs: str, modifiers: tuple[str, ...]) -> Rate | None:
        """The most specific rate (first listed among equals) that prices the encounter, or None."""
        key = (program, service_code, hcpcs, modifiers)
        if key in self._rates:
            return self._rates[key]
        wanted = frozenset(modifiers)
        candidates = [r for r in self.schedule.rates if r.basis is not RateBasis.ONE_TIME_ENGAGEMENT
                      and _matches(r, program, service_code, hcpcs, wanted)]
        best = self._rates[key] = max(candidates, key=lambda r: r.specificity()) if candidates else None
        return best

    def engagement(self, program: str) -> Rate | None:
        """The program's one-time engagement rate, or None."""
        if program in self._engagements:
            return self._engagements[program]
        engagement = [r for r in self.schedule.rates if r.basis is RateBasis.ONE_TIME_ENGAGEMENT
                      and r.program == program]
        best = self._engagements[program] = max(engagement, key=lambda r: r.specificity()) if engagement else None
        return best


# Rate tables by schedule identity. Each entry holds its schedule, so an id is never reused while cached.
_TABLES: dict[int, _RateTable] = {}
_MAX_TABLES = 256  # configurations are few and long-lived; tests build many


def _rate_table(schedule: FeeSchedule) -> _RateTable:
    table = _TABLES.get(id(schedule))
    if table is None or table.schedule is not schedule:
        if len(_TABLES) >= _MAX_TABLES:
            _TABLES.clear()
        table = _TABLES[id(schedule)] = _RateTable(schedule)
    return table


def _same_month(a: date, b: date) -> bool:
    return (a.year, a.month) == (b.year, b.month)


def price(request: PricingRequest, schedule: FeeSchedule | None, history: Sequence[PriorService],
          outreach_cap: OutreachCap) -> Price:
    """Expected amount of an encounter; raises NoRate when the schedule does not price it."""
    if schedule is None:
        raise NoRate("no_fee_schedule", "no fee schedule of the MCP is in force on the date of service")
    table = _rate_table(schedule)
    rate = table.rate(request.program, request.service_code, request.hcpcs, tuple(request.modifiers))
    if rate is None:
        raise NoRate("no_rate", "the MCP's fee schedule has no rate for this service, code and modifiers")
    mcp_code, program = request.mcp_code, request.program
    mine = [h for h in history if h.mcp_code == mcp_code and h.program == program]
    parts: list[tuple[RateBasis, Decimal, str]] = []
    flags: list[str] = []
    basis = rate.basis
    if basis is RateBasis.PER_UNIT:
        parts.append((basis, rate.amount * request.units, "per unit"))
    elif basis is RateBasis.PER_ENCOUNTER:
        parts.append((basis, rate.amount, "per encounter"))
    elif basis is RateBasis.PMPM:
        paid = any(_same_month(h.service_from, request.service_from) and RateBasis.PMPM.value in h.components
                   for h in mine)
        parts.append((basis, Decimal("0") if paid else rate.amount,
                      "month already billed" if paid else "first billable encounter of the month"))
    elif basis is RateBasis.OUTREACH:
        attempts = [h for h in mine if h.outreach_attempt and RateBasis.OUTREACH.value in h.components
                    and (outreach_cap.period == "lifetime" or _same_month(h.service_from, request.service_from))]
        capped = len(attempts) >= outreach_cap.attempts
        if capped:
            flags.append("outreach_cap_reached")
        parts.append((basis, Decimal("0") if capped else rate.amount,
                      "outreach cap reached" if capped else "outreach attempt"))
    if request.outreach_successful:
        best = table.engagement(program)
        already = any(RateBasis.ONE_TIME_ENGAGEMENT.value in h.components for h in mine)
        if best is not None and not already:
            parts.append((RateBasis.ONE_TIME_ENGAGEMENT, best.amount, "successful engagement"))
    rounded = tuple(Component(kind, cents(amount), note) for kind, amount, note in parts)
    total = sum((c.amount for c in rounded), Decimal("0")).quantize(CENT)
    return Price(amount=total, components=rounded, flags=tuple(flags))
