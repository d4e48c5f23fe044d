"""The eligibility rule engine: may this member receive ECM, this Community Support or CHW on this date, and if
not, why. Rules are rows of `RULES` (effective-dated); program exclusions come from shared.reference.exclusions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from enum import StrEnum

from eligibility.domain.enrollment import MemberState
from shared.reference.exclusions import EcmRelation, ecm_conflicts, ecm_relation
from shared.reference.facts import Marker
from shared.reference.services import community_support


class Program(StrEnum):
    """The CalAIM programs a member may be checked for."""

    ECM = "ecm"
    CS = "cs"
    CHW = "chw"


class RuleKind(StrEnum):
    """What a rule checks."""

    ENROLLED = "enrolled"  # enrolled with an MCP on the date (the hub bills the MCP)
    PROGRAM_EXCLUSIONS = "program_exclusions"  # the exclusion table (hospice, PACE, FFS, waivers…)
    NOT_SAME_PERIOD = "not_same_period"  # ECM and CHW never in the same period
    KNOWN_SERVICE = "known_service"  # the Community Support named exists
    FRESH_VERIFICATION = "fresh_verification"  # a warning: the last check is older than the re-check interval


@dataclass(frozen=True, slots=True)
class Rule:
    """One row of the rule table."""

    code: str
    kind: RuleKind
    programs: frozenset[Program]
    marker: Marker
    source: str
    effective_from: date | None = None
    effective_to: date | None = None
    warning_only: bool = False
    parameter: int | None = None

    def in_force_on(self, on: date) -> bool:
        """True when the rule applies to a date of service."""
        return (self.effective_from is None or self.effective_from <= on) and (
            self.effective_to is None or on <= self.effective_to)


_ALL = frozenset(Program)
RULES: tuple[Rule, ...] = (
    Rule("enrolled_with_mcp", RuleKind.ENROLLED, _ALL, Marker.PRACTICE,
         "CALAIM.md: stop services and billing when the member leaves the MCP (seed guidance)"),
    Rule("ecm_program_exclusions", RuleKind.PROGRAM_EXCLUSIONS, frozenset({Program.ECM}), Marker.PRACTICE,
         "shared.reference.exclusions (ecm_exclusions.csv)"),
    Rule("ecm_chw_not_same_period", RuleKind.NOT_SAME_PERIOD, frozenset({Program.ECM, Program.CHW}),
         Marker.PRACTICE, "CALAIM.md: ECM and CHW never for the same member in the same period"),
    Rule("cs_known_service", RuleKind.KNOWN_SERVICE, frozenset({Program.CS}), Marker.RULE,
         "shared.reference.services (the 14 pre-approved Community Supports and Transitional Rent)"),
    Rule("verified_within_interval", RuleKind.FRESH_VERIFICATION, _ALL, Marker.PRACTICE,
         "CALAIM.md: check each served member's eligibility at least monthly", warning_only=True, parameter=35),
)


def with_recheck_interval(days: int, rules: Sequence[Rule] = RULES) -> tuple[Rule, ...]:
    """The rule table with the re-check interval (days) the deployment configured."""
    return tuple(replace(rule, parameter=days) if rule.kind is RuleKind.FRESH_VERIFICATION else rule
                 for rule in rules)


@dataclass(frozen=True, slots=True)
class ServicePeriod:
    """A period the member receives a CalAIM program (an active authorization)."""

    program: Program
    start: date
    end: date


@dataclass(frozen=True, slots=True)
class Finding:
    """Why a member may not (or, for a warning, should be re-checked before) receiving a program."""

    rule: str
    code: str
    message: str
    marker: Marker
    program: str | None = None  # the excluding program flag, when one is the cause


@dataclass(frozen=True, slots=True)
class Verdict:
    """The engine's answer for one program on one date."""

    program: Program
    on: date
    allowed: bool
    mcp_code: str | None
    reasons: tuple[Finding, ...]
    warnings: tuple[Finding, ...]


def _active_services(services: Sequence[ServicePeriod], on: date) -> frozenset[Program]:
    return frozenset(s.program for s in services if s.start <= on <= s.end)


def evaluate(state: MemberState, program: Program, on: date, *, services: Sequence[ServicePeriod] = (),
             cs_code: str | None = None, now: datetime | None = None,
             rules: Sequence[Rule] = RULES) -> Verdict:
    """May the member receive `program` on `on`? Every rule in force is checked, so all reasons are listed.

    `services` are the member's authorized periods (ECM and CHW conflict with each other); `cs_code` names the
    Community Support for CS. Raises ValueError when `program` is CS and `cs_code` is missing.
    """
    if program is Program.CS and not cs_code:
        raise ValueError("a Community Support check names the service (cs_code)")
    reasons: list[Finding] = []
    warnings: list[Finding] = []
    span = state.span_on(on)
    flags = state.programs_on(on)
    for rule in rules:
        if program not in rule.programs or not rule.in_force_on(on):
            continue
        found: list[Finding] = []
        if rule.kind is RuleKind.ENROLLED and span is None:
            message = ("the member is not enrolled with an MCP on this date" if state.spans
                       else "no enrollment with an MCP is known for the member")
            found.append(Finding(rule.code, "not_enrolled", message, rule.marker))
        elif rule.kind is RuleKind.PROGRAM_EXCLUSIONS:
            conflicts = ecm_conflicts(flags - {"chw"}, on=on)  # CHW is the same-period rule's business
            found.extend(Finding(rule.code, c.code, c.message, c.marker, c.program) for c in conflicts)
        elif rule.kind is RuleKind.NOT_SAME_PERIOD and ecm_relation("chw", on) is EcmRelation.NOT_SAME_PERIOD:
            active = _active_services(services, on) | ({Program.CHW} if "chw" in flags else set())
            other = Program.CHW if program is Program.ECM else Program.ECM
            if other in active:
                found.append(Finding(rule.code, f"{program.value}_not_same_period",
                                     "ECM and CHW are never given to the same member in the same period: the "
                                     f"member has {other.value.upper()} on this date", rule.marker, other.value))
        elif rule.kind is RuleKind.KNOWN_SERVICE and cs_code is not None:
            try:
                community_support(cs_code)
            except ValueError:
                found.append(Finding(rule.code, "unknown_community_support",
                                     "no Community Support has this code", rule.marker))
        elif rule.kind is RuleKind.FRESH_VERIFICATION and now is not None and rule.parameter is not None:
            if state.verified_at is None:
                found.append(Finding(rule.code, "never_verified", "eligibility was never verified", rule.marker))
            elif (now - state.verified_at).days > rule.parameter:
                found.append(Finding(rule.code, "verification_stale",
                                     f"eligibility was last verified more than {rule.parameter} days ago; "
                                     "a re-check is due", rule.marker))
        (warnings if rule.warning_only else reasons).extend(found)
    return Verdict(program=program, on=on, allowed=not reasons, mcp_code=span.mcp_code if span else None,
                   reasons=tuple(reasons), warnings=tuple(warnings))
