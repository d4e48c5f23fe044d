"""A member's enrollment: spans per MCP, program flags, and the change each new fact makes.

Every source (a MIF row, a 271 answer, a manual entry) becomes an `Observation`. `apply` folds it into the
member's `MemberState` and says which changes that is (verified for the first time, lost, regained, plan
changed, excluded) so each real change is announced once: applying the same fact again changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from enum import StrEnum

from shared.reference.exclusions import EcmRelation, ecm_conflicts, ecm_relation, program_codes

ONE_DAY = timedelta(days=1)


class Status(StrEnum):
    """What CalHub last concluded about the member's enrollment."""

    UNKNOWN = "unknown"
    ENROLLED = "enrolled"
    NOT_ENROLLED = "not_enrolled"


class Source(StrEnum):
    """Where a fact came from (the same values as the published EligibilitySource)."""

    MIF = "mif"
    X12_271 = "271"
    MANUAL = "manual"


class ChangeKind(StrEnum):
    """The published change events, by their verb."""

    VERIFIED = "verified"
    LOST = "lost"
    REGAINED = "regained"
    PLAN_CHANGED = "plan_changed"
    EXCLUDED = "excluded"


@dataclass(frozen=True, slots=True)
class Span:
    """Enrollment with one MCP from `start` to `end` (both inclusive; `end` None: open)."""

    mcp_code: str
    start: date
    end: date | None = None
    source: Source = Source.MANUAL

    def covers(self, on: date) -> bool:
        """True when the member is enrolled with this span's MCP on `on`."""
        return self.start <= on and (self.end is None or on <= self.end)

    def touches(self, start: date, end: date | None) -> bool:
        """True when [start, end] overlaps this span or begins the day after it ends (or ends the day before)."""
        self_end = self.end if self.end is not None else date.max
        other_end = end if end is not None else date.max
        return start <= (self_end + ONE_DAY if self_end < date.max else self_end) and \
            self.start <= (other_end + ONE_DAY if other_end < date.max else other_end)


@dataclass(frozen=True, slots=True)
class ProgramFlag:
    """Membership in another program (hospice, PACE, a waiver…) under the exclusion table's code."""

    code: str
    start: date
    end: date | None = None
    source: Source = Source.MANUAL

    def active_on(self, on: date) -> bool:
        """True when the member is in the program on `on`."""
        return self.start <= on and (self.end is None or on <= self.end)


@dataclass(frozen=True, slots=True)
class Observation:
    """One fact about a member's enrollment as a source states it on `as_of`.

    Active: enrolled with `mcp_code`. Inactive: not (or no longer) enrolled with `mcp_code` (None: with any MCP).
    `span_start`/`span_end` are the coverage dates the source gives, when it gives them.
    """

    active: bool
    mcp_code: str | None
    as_of: date
    source: Source
    observed_at: datetime
    span_start: date | None = None
    span_end: date | None = None
    reason: str | None = None
    programs: tuple[ProgramFlag, ...] = ()

    def normalized(self) -> Observation:
        """An active fact whose coverage ended before `as_of` is an inactive one (the span end says so)."""
        if self.active and self.span_end is not None and self.span_end < self.as_of:
            return replace(self, active=False, reason=self.reason or "coverage ended")
        return self


@dataclass(frozen=True, slots=True)
class MemberState:
    """What CalHub knows about one member: the concluded status and the evidence (spans, program flags)."""

    status: Status = Status.UNKNOWN
    mcp_code: str | None = None
    effective: date | None = None  # since when `status` holds
    as_of: date | None = None  # the date of the newest fact applied
    source: Source | None = None
    verified_at: datetime | None = None
    spans: tuple[Span, ...] = ()
    programs: tuple[ProgramFlag, ...] = ()

    def span_on(self, on: date) -> Span | None:
        """The enrollment span covering `on` (the latest-starting one if several), or None."""
        covering = [s for s in self.spans if s.covers(on)]
        return max(covering, key=lambda s: s.start) if covering else None

    def programs_on(self, on: date) -> frozenset[str]:
        """Codes of the programs the member is in on `on`."""
        return frozenset(p.code for p in self.programs if p.active_on(on))


@dataclass(frozen=True, slots=True)
class Change:
    """One change to announce. For LOST `mcp_code` is the plan the member left."""

    kind: ChangeKind
    mcp_code: str | None
    effective: date
    previous_mcp_code: str | None = None
    reason: str | None = None
    program: str | None = None  # EXCLUDED: the CalAIM program ruled out (ecm)
    exclusion: str | None = None  # EXCLUDED: the program flag that rules it out
    effective_to: date | None = None  # EXCLUDED: the program's last day (inclusive); None: open-ended
    span: Span | None = None
    first_seen: bool = False


@dataclass
class Outcome:
    """The new state and the changes applying an observation produced."""

    state: MemberState
    changes: list[Change] = field(default_factory=list)
    stale: bool = False  # older than what was known: kept as history, no status change


def _merge_spans(spans: Sequence[Span], mcp_code: str, start: date, end: date | None, source: Source,
                 authoritative_end: bool) -> list[Span]:
    """Add [start, end] for an MCP, merging with the spans it touches. A fresh fact's explicit end wins."""
    merged_start, merged_end = start, end
    kept: list[Span] = []
    for span in spans:
        if span.mcp_code == mcp_code and span.touches(start, end):
            merged_start = min(merged_start, span.start)
            if authoritative_end and end is not None:
                merged_end = end
            elif span.end is None or merged_end is None:
                merged_end = None
            else:
                merged_end = max(span.end, merged_end)
        else:
            kept.append(span)
    kept.append(Span(mcp_code, merged_start, merged_end, source))
    return sorted(kept, key=lambda s: (s.start, s.mcp_code))


def _close_spans(spans: Sequence[Span], last_day: date, *, only_mcp: str | None, except_mcp: str | None = None,
                 ) -> list[Span]:
    """End spans (of `only_mcp`, or all but `except_mcp`) on `last_day`; a span starting after it is dropped:
    the newer fact says the member was not enrolled then."""
    result: list[Span] = []
    for span in spans:
        selected = (only_mcp is None or span.mcp_code == only_mcp) and span.mcp_code != except_mcp
        if not selected or (span.end is not None and span.end <= last_day):
            result.append(span)
        elif span.start <= last_day:
            result.append(replace(span, end=last_day))
    return result


def _merge_programs(current: Sequence[ProgramFlag], new: Iterable[ProgramFlag],
                    ) -> tuple[list[ProgramFlag], list[ProgramFlag]]:
    """Merge new program flags; returns (all flags, those that were not known before)."""
    flags = list(current)
    added: list[ProgramFlag] = []
    for flag in new:
        if flag.code not in program_codes():
            raise ValueError(f"unknown program code: {flag.code!r}")
        touching = [f for f in flags if f.code == flag.code
                    and Span("", f.start, f.end).touches(flag.start, flag.end)]
        if not touching:
            flags.append(flag)
            added.append(flag)
            continue
        for old in touching:
            flags.remove(old)
        start = min([flag.start, *(f.start for f in touching)])
        end = flag.end if flag.end is not None else None
        flags.append(ProgramFlag(flag.code, start, end, flag.source))
    return sorted(flags, key=lambda f: (f.code, f.start)), added


def _exclusions(added: Iterable[ProgramFlag], as_of: date) -> list[Change]:
    """An EXCLUDED change for each new flag that rules ECM out (not eligible, or ECM-or-program), ending when the
    program ends. A stay that was over before `as_of` is history, not an exclusion: it is kept on the state (the
    rule engine still sees it for dates inside it) and not announced."""
    changes: list[Change] = []
    for flag in added:
        if flag.end is not None and flag.end < as_of:
            continue
        relation = ecm_relation(flag.code, flag.start)
        if relation not in (EcmRelation.NOT_ELIGIBLE, EcmRelation.ECM_OR_PROGRAM):
            continue
        reasons = ecm_conflicts({flag.code}, on=flag.start)
        changes.append(Change(ChangeKind.EXCLUDED, None, flag.start, program="ecm", exclusion=flag.code,
                              effective_to=flag.end, reason=reasons[0].message if reasons else None))
    return changes


def apply(state: MemberState, observation: Observation) -> Outcome:
    """Fold one observation into a member's state and list the changes it makes (none for a repeated fact).

    A fact dated before the newest one known only adds history (spans, program flags). Raises ValueError for a
    program flag code the exclusion table does not know.
    """
    obs = observation.normalized()
    stale = state.as_of is not None and obs.as_of < state.as_of
    programs, added = _merge_programs(state.programs, obs.programs)
    spans = list(state.spans)
    changes: list[Change] = []

    if obs.active and obs.mcp_code is not None:
        start = obs.span_start or obs.as_of
        # An older fact proves enrollment up to its own date, not beyond: it must not reopen a closed span.
        end = obs.span_end if obs.span_end is not None or not stale else obs.as_of
        spans = _merge_spans(spans, obs.mcp_code, start, end, obs.source, authoritative_end=not stale)
        if not stale:
            # Enrolled with one plan from `start` means the others ended the day before.
            spans = _close_spans(spans, start - ONE_DAY, only_mcp=None, except_mcp=obs.mcp_code)
    elif not obs.active and not stale:
        last_day = obs.span_end if obs.span_end is not None else obs.as_of - ONE_DAY
        spans = _close_spans(spans, last_day, only_mcp=obs.mcp_code)

    new = replace(state, spans=tuple(spans), programs=tuple(programs))
    if stale:
        # Judged against the newest date known: a stay over by then is history for an older fact too.
        return Outcome(new, _exclusions(added, state.as_of or obs.as_of), stale=True)

    if obs.active and obs.mcp_code is None:
        # program flags only: no enrollment fact to conclude from
        return Outcome(new, _exclusions(added, obs.as_of))
    new = replace(new, as_of=obs.as_of, source=obs.source, verified_at=obs.observed_at)
    if obs.active and obs.mcp_code is not None:
        effective = obs.span_start or obs.as_of
        span = new.span_on(obs.as_of) or new.span_on(effective)
        if state.status is Status.ENROLLED and state.mcp_code == obs.mcp_code:
            pass  # re-verified: no change to announce
        elif state.status is Status.ENROLLED:
            changes.append(Change(ChangeKind.PLAN_CHANGED, obs.mcp_code, effective,
                                  previous_mcp_code=state.mcp_code, span=span))
            new = replace(new, effective=effective)
        elif state.status is Status.NOT_ENROLLED:
            changes.append(Change(ChangeKind.REGAINED, obs.mcp_code, effective, span=span))
            new = replace(new, effective=effective)
        else:
            changes.append(Change(ChangeKind.VERIFIED, obs.mcp_code, effective, span=span, first_seen=True))
            new = replace(new, effective=effective)
        new = replace(new, status=Status.ENROLLED, mcp_code=obs.mcp_code)
    elif not obs.active:
        effective = obs.span_end + ONE_DAY if obs.span_end is not None else obs.as_of
        leaving = state.status is Status.ENROLLED and (obs.mcp_code is None or obs.mcp_code == state.mcp_code)
        if leaving:
            changes.append(Change(ChangeKind.LOST, state.mcp_code, effective,
                                  reason=obs.reason or "coverage inactive"))
            new = replace(new, status=Status.NOT_ENROLLED, effective=effective)
        elif state.status is Status.UNKNOWN:
            # First seen already without coverage: nothing was lost that CalHub had announced.
            new = replace(new, status=Status.NOT_ENROLLED, mcp_code=None, effective=effective)
        # Enrolled elsewhere and this plan says "not ours": consistent, nothing changes.
    changes.extend(_exclusions(added, obs.as_of))
    return Outcome(new, changes)
