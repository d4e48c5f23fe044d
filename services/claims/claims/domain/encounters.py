"""The checks an encounter must pass before it is billed, each with a stable reason code and a message.

Pure: the service layer hands in the projections it keeps from events (authorizations, eligibility, the
member's encounter history) and the MCP's billing setup. Every failing check is reported, not only the
first, so a CBO can fix an encounter in one go. Messages name rules and codes, never member data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from functools import lru_cache

from claims.domain.configuration import BillingConfiguration, McpBilling, ThresholdAction
from claims.domain.pricing import NoRate, Price, PricedService, PricingRequest, price
from claims.x12.x837p import reference_problem
from shared.reference import codes
from shared.reference.services import LifetimeCap, chw_care_plan_rule, community_support

ECM_SERVICES = ("ecm_clinical", "ecm_non_clinical", "ecm_outreach")
OUTREACH_SERVICES = frozenset({"ecm_outreach", "housing_outreach"})
HOUSING_SERVICES = frozenset({"housing_transition_navigation", "housing_deposits", "housing_tenancy_sustaining"})
# [practice] CHW services need a licensed practitioner's recommendation, not an MCP prior authorization;
# ECM and Community Supports are authorized by the MCP (CALAIM.md, flows 1-2).
AUTHORIZED_PROGRAMS = frozenset({"ecm", "cs"})


@dataclass(frozen=True)
class Reason:
    """Why a check failed (or flagged): a stable code for machines, a message for people."""

    code: str
    message: str


@dataclass(frozen=True)
class Coverage:
    """An authorization as the claims service knows it from authorization.* events."""

    authorization_id: str
    mcp_code: str
    program: str
    cs_code: str | None
    status: str  # requested, approved, denied, suspended, expired, closed
    period_start: date | None
    period_end: date | None
    ends_before: date | None = None  # closed: no coverage from this date on
    suspensions: tuple[tuple[date, date | None], ...] = ()
    presumptive: bool = False
    mcp_authorization_number: str | None = None

    def covers(self, day: date) -> bool:
        """True when the approved period (less suspensions and an early close) includes `day`."""
        if self.status in ("requested", "denied") or self.period_start is None or self.period_end is None:
            return False
        if not self.period_start <= day <= self.period_end:
            return False
        if self.ends_before is not None and day >= self.ends_before:
            return False
        return not any(start <= day and (end is None or day <= end) for start, end in self.suspensions)

    def suspended_on(self, day: date) -> bool:
        """True when a suspension includes `day`."""
        return any(start <= day and (end is None or day <= end) for start, end in self.suspensions)


@dataclass(frozen=True)
class EligibilityFact:
    """One fact from eligibility.* events: enrolled (with an MCP) or not, or excluded from a program."""

    kind: str  # enrolled, not_enrolled, excluded
    effective_from: date
    effective_to: date | None = None
    mcp_code: str | None = None
    program: str | None = None
    sequence: int = 0  # later facts win on the same effective date

    def in_force_on(self, day: date) -> bool:
        """True when the fact applies on `day`."""
        return self.effective_from <= day and (self.effective_to is None or day <= self.effective_to)


@dataclass(frozen=True)
class PriorEncounter:
    """A recorded encounter of the same member, for duplicates, limits, overlap and pricing."""

    encounter_id: str
    cbo_organization_id: str
    mcp_code: str
    program: str
    service_code: str
    hcpcs: str
    modifiers: frozenset[str]
    units: Decimal
    service_from: date
    service_to: date
    rendering_npi: str
    outreach_attempt: bool
    expected_amount: Decimal
    components: tuple[str, ...] = ()

    def priced(self) -> PricedService:
        """The pricing view of this encounter."""
        return PricedService(self.mcp_code, self.program, self.service_code, self.service_from,
                             self.outreach_attempt, self.components, self.expected_amount)


@dataclass(frozen=True)
class EncounterSubmission:
    """An encounter as submitted (already syntax-checked at the edge)."""

    cbo_organization_id: str
    mcp_code: str | None
    program: str
    cs_code: str | None
    hcpcs: str
    modifiers: tuple[str, ...]
    units: Decimal
    service_from: date
    service_to: date
    rendering_npi: str
    outreach_attempt: bool = False
    outreach_outcome: str | None = None  # successful, unsuccessful
    prerequisites: frozenset[str] = frozenset()  # e.g. initiating_em_visit, care_plan
    care_plan_on_file: bool = False


@dataclass(frozen=True)
class CheckContext:
    """What the checks look at besides the encounter."""

    configuration: BillingConfiguration
    coverages: Sequence[Coverage]
    eligibility: Sequence[EligibilityFact]
    history: Sequence[PriorEncounter]
    today: date


@dataclass
class CheckResult:
    """The verdict: reasons (refused) and flags (billed, but someone should look)."""

    mcp_code: str | None = None
    service_code: str | None = None
    authorization: Coverage | None = None
    reasons: list[Reason] = field(default_factory=list)
    flags: list[Reason] = field(default_factory=list)
    price: Price | None = None

    @property
    def accepted(self) -> bool:
        """True when no check refused the encounter."""
        return not self.reasons


def _days(start: date, end: date) -> list[date]:
    if start == end:  # most encounters are one day
        return [start]
    return [start + timedelta(days=n) for n in range((end - start).days + 1)]


@lru_cache(maxsize=8192)
def _code_problem(service_code: str, hcpcs: str, modifiers: tuple[str, ...], day: date) -> str | None:
    # The code table is immutable reference data: one lookup per (service, code, modifiers, date) is enough.
    return codes.check_code(service_code, hcpcs, modifiers, day)


@lru_cache(maxsize=4096)
def _rules_for(service_code: str, hcpcs: str, day: date) -> tuple[codes.CodeRule, ...]:
    return tuple(r for r in codes.allowed_codes(service_code, day) if r.hcpcs == hcpcs)


def _service_candidates(program: str, cs_code: str | None) -> list[str]:
    if program == "ecm":
        return list(ECM_SERVICES)
    if program == "chw":
        return ["chw"]
    candidates = [cs_code] if cs_code else []
    if cs_code in HOUSING_SERVICES:
        candidates.append("housing_outreach")
    return candidates


# Most useful first when several service codes refuse the same code: the closer the miss, the better the hint.
_CODE_REASONS = {
    codes.TOO_MANY_MODIFIERS: ("too_many_modifiers", 0),
    codes.MODIFIER_REPEATED: ("modifier_repeated", 0),
    codes.CODE_NOT_ACTIVE: ("code_not_active", 1),
    codes.MODIFIERS_NOT_ALLOWED: ("modifiers_not_allowed", 2),
    codes.CODE_NOT_ALLOWED: ("code_not_allowed", 3),
}


def resolve_service(submission: EncounterSubmission, result: CheckResult) -> None:
    """Find the billing service whose code table allows the code and modifiers on every date of service."""
    service_code, reasons = _resolution(submission.program, submission.cs_code, submission.hcpcs,
                                        tuple(submission.modifiers), submission.service_from, submission.service_to,
                                        submission.prerequisites)
    if service_code is not None:
        result.service_code = service_code
    result.reasons.extend(reasons)


@lru_cache(maxsize=8192)
def _resolution(program: str, cs_code: str | None, hcpcs: str, modifiers: tuple[str, ...], service_from: date,
                service_to: date, prerequisites: frozenset[str]) -> tuple[str | None, tuple[Reason, ...]]:
    # The code table is immutable reference data and Reasons are frozen: one answer per combination is enough.
    candidates = _service_candidates(program, cs_code)
    if not candidates:
        return None, (Reason("cs_code_required", "a Community Supports encounter names its service"),)
    days = {service_from, service_to}
    refusals: list[tuple[str, set[str | None]]] = []
    for service_code in candidates:
        try:
            problems = {_code_problem(service_code, hcpcs, modifiers, day) for day in days}
        except ValueError:
            return None, (Reason("unknown_service", "the Community Supports service code is unknown"),)
        problems.discard(None)
        if not problems:
            break
        refusals.append((service_code, problems))
    else:
        misses: list[tuple[int, str, str]] = []
        for service_code, problems in refusals:
            for problem in problems:
                assert problem is not None
                code, rank = _CODE_REASONS.get(problem, ("code_not_allowed", 3))
                misses.append((rank, code, f"{hcpcs} with modifiers {'+'.join(modifiers) or 'none'}: {problem} "
                                           f"({service_code}, effective-dated DHCS code table)"))
        _rank, code, message = min(misses)
        return None, (Reason(code, message),)
    reasons = []
    for rule in _rules_for(service_code, hcpcs.upper(), service_from):
        if rule.modifiers == frozenset(modifiers):
            missing = sorted(rule.prerequisites - prerequisites)
            if missing:
                reasons.append(Reason("prerequisite_missing", f"{rule.hcpcs} needs {', '.join(missing)}"))
    return service_code, tuple(reasons)


def _check_dates(submission: EncounterSubmission, billing: McpBilling, today: date, result: CheckResult) -> None:
    if submission.service_to < submission.service_from:
        result.reasons.append(Reason("service_dates_order", "the last date of service is before the first"))
    if submission.service_to > today:
        result.reasons.append(Reason("service_date_in_future", "services cannot be billed before they happen"))
    limit = billing.profile.timely_filing_days
    if (today - submission.service_to).days > limit:
        result.reasons.append(Reason("timely_filing_expired",
                                     f"filed more than {limit} days after the date of service (MCP profile)"))


def _check_outreach(submission: EncounterSubmission, result: CheckResult) -> None:
    if result.service_code is None:
        return
    is_outreach_code = result.service_code in OUTREACH_SERVICES
    if submission.outreach_attempt != is_outreach_code:
        result.reasons.append(Reason("outreach_code_mismatch", "outreach attempts are billed with the outreach "
                                     "code and modifier (U8), and only outreach attempts are"))
    if submission.outreach_outcome is not None and not submission.outreach_attempt:
        result.reasons.append(Reason("outreach_outcome_without_attempt", "an outcome needs an outreach attempt"))


def _check_authorization(submission: EncounterSubmission, context: CheckContext, result: CheckResult) -> None:
    if submission.program not in AUTHORIZED_PROGRAMS:
        return
    mcp = result.mcp_code
    relevant = [c for c in context.coverages if c.program == submission.program and (mcp is None or c.mcp_code == mcp)
                and (submission.program != "cs" or c.cs_code == submission.cs_code
                     or (result.service_code == "housing_outreach" and c.cs_code in HOUSING_SERVICES))]
    days = _days(submission.service_from, submission.service_to)
    if len(relevant) > 1:
        relevant.sort(key=lambda c: (not c.presumptive, c.authorization_id))
    for coverage in relevant:
        if all(coverage.covers(day) for day in days):
            result.authorization = coverage
            number = coverage.mcp_authorization_number
            problem = reference_problem(number) if number is not None else None
            if problem is not None:
                # The authorizations service takes up to 100 characters of any kind; the 837P cannot carry such a
                # number, and a claim with it would fail the MCP's whole batch.
                result.reasons.append(Reason("authorization_number_unusable", "the MCP authorization number of "
                                             f"the authorization {problem} to go in the 837P (REF*G1 prior "
                                             "authorization number); the authorization needs a corrected number"))
            return
    if any(c.suspended_on(day) for c in relevant for day in days):
        result.reasons.append(Reason("authorization_suspended", "the authorization is suspended on the date of "
                                     "service"))
    elif any(c.status == "denied" for c in relevant):
        result.reasons.append(Reason("authorization_denied", "the MCP denied the authorization for this service"))
    else:
        result.reasons.append(Reason("no_authorization", "no approved (or presumptive) authorization covers the "
                                     "date(s) of service for this member, service and MCP"))


def eligibility_on(facts: Sequence[EligibilityFact], day: date) -> EligibilityFact | None:
    """The enrollment fact in force on a day (latest effective date, then latest recorded), or None."""
    enrollment = [f for f in facts if f.kind in ("enrolled", "not_enrolled") and f.in_force_on(day)]
    if not enrollment:
        return None
    return max(enrollment, key=lambda f: (f.effective_from, f.sequence))


def _check_eligibility(submission: EncounterSubmission, context: CheckContext, billing: McpBilling,
                       result: CheckResult) -> None:
    # Every day of the span, as for the authorization: a gap in enrollment inside a range is as unbillable as
    # one on its first or last day.
    first, last = sorted((submission.service_from, submission.service_to))  # reversed dates: refused elsewhere
    for day in _days(first, last):
        excluded = [f for f in context.eligibility if f.kind == "excluded" and f.program == submission.program
                    and f.in_force_on(day)]
        if excluded:
            result.reasons.append(Reason("program_excluded", f"the member is excluded from {submission.program} "
                                         "on the date of service (eligibility exclusion)"))
            return
        if not billing.profile.require_eligibility:
            continue
        fact = eligibility_on(context.eligibility, day)
        if fact is None:
            result.reasons.append(Reason("eligibility_unknown", "no eligibility on record for the date of service"))
            return
        if fact.kind == "not_enrolled":
            result.reasons.append(Reason("not_eligible", "the member is not enrolled on the date of service"))
            return
        if fact.mcp_code != result.mcp_code:
            result.reasons.append(Reason("enrolled_with_other_mcp", "the member is enrolled with another MCP on "
                                         "the date of service"))
            return


def _same_month(a: date, b: date) -> bool:
    return (a.year, a.month) == (b.year, b.month)


_NEVER_WITH = {"ecm": "chw", "chw": "ecm"}


def _check_history(submission: EncounterSubmission, context: CheckContext, billing: McpBilling,
                   result: CheckResult) -> None:
    modifiers = frozenset(m.upper() for m in submission.modifiers)
    for prior in context.history:
        if (prior.cbo_organization_id == submission.cbo_organization_id and prior.hcpcs == submission.hcpcs
                and prior.modifiers == modifiers and prior.service_from == submission.service_from
                and prior.service_to == submission.service_to and prior.rendering_npi == submission.rendering_npi):
            result.reasons.append(Reason("duplicate_encounter", f"the same service was already recorded "
                                         f"(encounter {prior.encounter_id})"))
            break
    # ECM and CHW are never given to the same member in the same period (CALAIM.md; period per MCP: month).
    other = _NEVER_WITH.get(submission.program)
    if other is not None:
        clash = [p for p in context.history if p.program == other and _same_month(p.service_from,
                                                                                  submission.service_from)]
        if clash:
            result.reasons.append(Reason("ecm_chw_same_period", "ECM and CHW are never billed for the same member "
                                         "in the same month"))
        elif submission.program == "chw" and any(
                c.program == "ecm" and c.covers(submission.service_from) for c in context.coverages):
            result.reasons.append(Reason("ecm_chw_same_period", "the member has an ECM authorization on the date "
                                         "of service; ECM and CHW are never given in the same period"))
    if submission.program == "chw":
        _check_chw_threshold(submission, context, billing, result)
    if result.service_code is not None:
        rule = [r for r in _rules_for(result.service_code, submission.hcpcs.upper(), submission.service_from)
                if r.add_on_to]
        for add_on in rule:
            if not any(p.hcpcs == add_on.add_on_to and _same_month(p.service_from, submission.service_from)
                       for p in context.history):
                result.reasons.append(Reason("add_on_without_primary", f"{add_on.hcpcs} is billed only with "
                                             f"{add_on.add_on_to} in the same month"))


def chw_period_start(day: date, period: str) -> date:
    """First day of the CHW counting period that contains `day`."""
    if period == "calendar_year":
        return date(day.year, 1, 1)
    return day - timedelta(days=364)


def chw_periods(day: date, period: str, later: Sequence[date] = ()) -> list[tuple[date, date]]:
    """The CHW counting periods (first day, last day) that include `day`: its calendar year, or for a rolling
    period each 365-day window ending on `day` or on one of the `later` dates within a year of it."""
    if period == "calendar_year":
        return [(date(day.year, 1, 1), date(day.year, 12, 31))]
    ends = {day} | {end for end in later if day < end <= day + timedelta(days=364)}
    return [(chw_period_start(end, period), end) for end in sorted(ends)]


def _check_chw_threshold(submission: EncounterSubmission, context: CheckContext, billing: McpBilling,
                         result: CheckResult) -> None:
    reference = chw_care_plan_rule()
    period = billing.profile.chw_counting_period or reference.counting_period
    chw = [p for p in context.history if p.program == "chw"]
    # Every unit of the period counts, also those dated after this encounter: an encounter posted late (out of
    # date order) must not slip under the limit that the later ones already reached.
    used = max(sum((p.units for p in chw if start <= p.service_from <= end), Decimal("0"))
               for start, end in chw_periods(submission.service_from, period, [p.service_from for p in chw]))
    threshold = reference.units_before_care_plan
    if used + submission.units > threshold and not submission.care_plan_on_file:
        reason = Reason("chw_care_plan_required", f"more than {threshold} CHW units in the {period.replace('_', ' ')} "
                        "need a licensed practitioner's care plan")
        if billing.profile.chw_threshold_action is ThresholdAction.BLOCK:
            result.reasons.append(reason)
        else:
            result.flags.append(reason)


@lru_cache(maxsize=64)
def _lifetime_cap(cs_code: str) -> LifetimeCap | None:
    # Reference data, read once per Community Support; an unknown code has no cap to check here.
    try:
        return community_support(cs_code).lifetime_cap
    except ValueError:
        return None


def _check_lifetime_cap(submission: EncounterSubmission, context: CheckContext, result: CheckResult) -> None:
    if submission.program != "cs" or submission.cs_code is None or result.price is None:
        return
    cap = _lifetime_cap(submission.cs_code)
    if cap is None:
        return
    used = sum((p.expected_amount for p in context.history
                if p.program == "cs" and p.service_code == result.service_code), Decimal("0"))
    if used + result.price.amount > cap.amount:
        result.reasons.append(Reason("lifetime_cap_exceeded", f"the {submission.cs_code} lifetime cap of "
                                     f"${cap.amount} would be exceeded (already ${used})"))


def _resolve_mcp(submission: EncounterSubmission, context: CheckContext) -> str | None:
    if submission.mcp_code:
        return submission.mcp_code
    covering = {c.mcp_code for c in context.coverages
                if c.program == submission.program and c.covers(submission.service_from)}
    if len(covering) == 1:
        return covering.pop()
    fact = eligibility_on(context.eligibility, submission.service_from)
    return fact.mcp_code if fact is not None and fact.kind == "enrolled" else None


def check_encounter(submission: EncounterSubmission, context: CheckContext) -> CheckResult:
    """Run every check and price the encounter when the checks that pricing needs passed."""
    result = CheckResult(mcp_code=_resolve_mcp(submission, context))
    if result.mcp_code is None:
        result.reasons.append(Reason("mcp_unknown", "the MCP is neither given nor known from an authorization "
                                     "or eligibility on the date of service"))
        return result
    billing = context.configuration.mcp(result.mcp_code)
    if billing is None:
        result.reasons.append(Reason("mcp_not_billed", "CalHub has no billing profile for this MCP"))
        return result
    if context.configuration.billing_identity(result.mcp_code, submission.cbo_organization_id) is None:
        result.reasons.append(Reason("billing_provider_not_configured", "the MCP is billed by the CBO, and the "
                                     "CBO's billing NPI, TIN and address are not configured"))
    _check_dates(submission, billing, context.today, result)
    resolve_service(submission, result)
    _check_outreach(submission, result)
    _check_authorization(submission, context, result)
    _check_eligibility(submission, context, billing, result)
    _check_history(submission, context, billing, result)
    if result.service_code is not None:
        request = PricingRequest(
            mcp_code=result.mcp_code, program=submission.program, service_code=result.service_code,
            hcpcs=submission.hcpcs, modifiers=submission.modifiers, units=submission.units,
            service_from=submission.service_from, outreach_attempt=submission.outreach_attempt,
            outreach_successful=submission.outreach_outcome == "successful")
        try:
            # PriorEncounter carries what pricing reads of it: no PricedService copy per prior encounter.
            result.price = price(request, billing.fee_schedule_on(submission.service_from), context.history,
                                 billing.profile.outreach_cap)
        except NoRate as missing:
            result.reasons.append(Reason(missing.code, missing.message))
        else:
            if result.price.flags:
                result.flags.extend(Reason(flag, "outreach attempts beyond the MCP's cap are reported at $0")
                                    for flag in result.price.flags)
    _check_lifetime_cap(submission, context, result)
    return result
