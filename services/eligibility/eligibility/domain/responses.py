"""Reading a 271 answer as eligibility facts: active or inactive with the answering MCP, another payer (a new
MCP, fee-for-service, a Medi-Medi plan), program flags, or an AAA rejection in plain words.

How an MCP says "this member is in hospice / PACE / a waiver" in a 271 is not standardized: the readings are a
table (`PROGRAM_READINGS`) matched on EB01, EB03, EB04 and words in EB05, MSG or the 2120C payer name
[unconfirmed: confirm each MCP's wording and extend the table].
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from eligibility.domain.enrollment import Observation, ProgramFlag, Source
from eligibility.x12 import codes
from eligibility.x12.x271 import Benefit, Period, Rejection, SubscriberAnswer, Trace


@dataclass(frozen=True, slots=True)
class ProgramReading:
    """When a benefit loop means the member is in a program of the exclusion table."""

    program: str
    eb01: frozenset[str]
    keywords: tuple[str, ...] = ()
    service_types: frozenset[str] = frozenset()
    insurance_types: frozenset[str] = frozenset()

    def matches(self, benefit: Benefit, texts: Sequence[str]) -> bool:
        """True when EB01 fits and either a listed service type, insurance type or keyword is present; `texts` are
        the benefit's upper-cased EB05, MSGs and 2120C names, each read alone (see `_mentions`)."""
        if benefit.code not in self.eb01:
            return False
        return (bool(self.service_types.intersection(benefit.service_types))
                or benefit.insurance_type in self.insurance_types
                or any(_mentions(keyword, text) for keyword in self.keywords for text in texts))


# A program named shortly after one of these words is denied, not stated: "NO HOSPICE", "NO ACTIVE HOSPICE",
# "NOT ENROLLED IN PACE", "NON-HOSPICE PLAN" [unconfirmed: MCP wording varies; a denial placed after the name
# is not recognized]. A clause break between them ("NOT ELIGIBLE - HOSPICE", "NO SHARE OF COST, HOSPICE") means
# the denial is of something else, and the program is stated.
_NEGATIONS = frozenset({"NO", "NOT", "NON", "NONE", "NEVER", "WITHOUT"})
_NEGATION_REACH = 3  # words before the program's name
_CLAUSE_BREAK = re.compile(r"[,;:.()/]|\s[-\u2013\u2014]+(?:\s|$)")  # a spaced dash; NON-HOSPICE is one word
_WORD = re.compile(r"[A-Z0-9]+")


def _mentions(keyword: str, text: str) -> bool:
    """True when `text` names `keyword` as a whole word (PACE, not PACEMAKER) and does not deny it."""
    for found in re.finditer(rf"(?<![A-Z0-9]){re.escape(keyword)}(?![A-Z0-9])", text):
        clause = _CLAUSE_BREAK.split(text[:found.start()])[-1]
        if not _NEGATIONS.intersection(_WORD.findall(clause)[-_NEGATION_REACH:]):
            return True
    return False


_FLAGGING = frozenset({"1", "R", "D", "MC", "X"})
PROGRAM_READINGS: tuple[ProgramReading, ...] = (
    ProgramReading("hospice", _FLAGGING, ("HOSPICE",), frozenset({codes.SERVICE_TYPE_HOSPICE})),
    ProgramReading("pace", _FLAGGING, ("PACE", "ALL-INCLUSIVE CARE FOR THE ELDERLY")),
    ProgramReading("medi_cal_ffs", frozenset({"R", "1"}), ("FEE-FOR-SERVICE", "FEE FOR SERVICE", "MEDI-CAL FFS")),
    ProgramReading("medi_medi_snp", frozenset({"R", "1"}), ("D-SNP", "DSNP", "SPECIAL NEEDS PLAN", "MEDI-MEDI",
                                                            "EAE", "MEDICARE MEDI-CAL PLAN")),
    ProgramReading("palliative_care", _FLAGGING, ("PALLIATIVE",)),
    ProgramReading("assisted_living_waiver", _FLAGGING, ("ASSISTED LIVING WAIVER",)),
    ProgramReading("cct_mfp", _FLAGGING, ("MONEY FOLLOWS THE PERSON", "CALIFORNIA COMMUNITY TRANSITIONS")),
    ProgramReading("complex_care_management", _FLAGGING, ("COMPLEX CARE MANAGEMENT",)),
    ProgramReading("hcbs_dd_waiver", _FLAGGING, ("HCBS DD WAIVER", "DD WAIVER")),
    ProgramReading("hiv_aids_waiver", _FLAGGING, ("HIV/AIDS WAIVER", "AIDS WAIVER")),
    ProgramReading("hcba_waiver", _FLAGGING, ("HCBA",)),
    ProgramReading("mssp", _FLAGGING, ("MSSP", "MULTIPURPOSE SENIOR SERVICES")),
    ProgramReading("self_determination_program", _FLAGGING, ("SELF-DETERMINATION", "SELF DETERMINATION")),
)

_FLAGGING_CODES = frozenset().union(*(reading.eb01 for reading in PROGRAM_READINGS))
_ANY_SERVICE_TYPE = frozenset().union(*(reading.service_types for reading in PROGRAM_READINGS))
_ANY_INSURANCE_TYPE = frozenset().union(*(reading.insurance_types for reading in PROGRAM_READINGS))
# One pass over the words decides whether any reading can match (most benefit loops mention no program).
_ANY_KEYWORD = re.compile("|".join(re.escape(k) for reading in PROGRAM_READINGS for k in reading.keywords))


def _may_flag(benefit: Benefit, words: str) -> bool:
    return (benefit.code in _FLAGGING_CODES
            and (bool(_ANY_SERVICE_TYPE.intersection(benefit.service_types))
                 or benefit.insurance_type in _ANY_INSURANCE_TYPE or _ANY_KEYWORD.search(words) is not None))


@dataclass(frozen=True, slots=True)
class Rejected:
    """An AAA answer for one member: no eligibility fact, a plain reason, whether CalHub asks again."""

    loop: str
    reason_code: str
    reason: str
    follow_up_code: str | None
    follow_up: str | None
    retry: bool


@dataclass(frozen=True, slots=True)
class Answer:
    """What one 2000C answer means: facts to apply (in order) or a rejection.

    `trace` is the check id the 270 sent, echoed (TRN01=2, TRN03 = the hub's originator id); `other_traces` are
    TRN02s that may still name it when the MCP rewrote TRN03 or sent the echo as TRN01=1 with our TRN03 (the
    caller accepts one only for a check of this MCP about this very member). Neither is ever the MCP's own trace.
    """

    cin: str
    trace: str | None
    observations: tuple[Observation, ...] = ()
    rejected: Rejected | None = None
    other_traces: tuple[str, ...] = ()


def our_traces(traces: Sequence[Trace], originator_id: str) -> tuple[str | None, tuple[str, ...]]:
    """The echoed trace of the hub's 270 (or None) and the other references that may name a check, in file order.

    X279A1 2000C: the 271 returns each TRN of the 270 as TRN01=2 with its TRN03 unchanged, and may add its own
    as TRN01=1 under the MCP's TRN03; that one never names a CalHub check, whatever its position.
    """
    echoed = [t.reference for t in traces if t.type == codes.TRN_REFERENCED and t.originator == originator_id]
    others = [t.reference for t in traces
              if t.reference not in echoed and t.reference
              and (t.type == codes.TRN_REFERENCED or t.originator == originator_id)]
    return (echoed[0] if echoed else None), tuple(echoed[1:] + others)


def rejected(rejection: Rejection) -> Rejected:
    """The plain reading of an AAA segment."""
    reason = codes.reject_reason(rejection.reason_code)
    # AAA04 decides whether asking again helps; the reason's own default applies without one.
    retry = reason.retry if rejection.follow_up_code is None else rejection.follow_up_code in ("P", "R") and \
        reason.retry
    return Rejected(rejection.loop, rejection.reason_code, reason.plain, rejection.follow_up_code,
                    codes.FOLLOW_UP.get(rejection.follow_up_code or ""), retry)


def _dates(periods: Sequence[Period]) -> tuple[date | None, date | None]:
    start: date | None = None
    end: date | None = None
    for period in periods:
        if period.qualifier in codes.DTP_PERIOD and period.end is not None:
            start, end = start or period.start, end or period.end
        elif period.qualifier in codes.DTP_BEGIN:
            start = start or period.start
        elif period.qualifier in codes.DTP_END:
            end = end or period.start
    return start, end


def _covers_plan(benefit: Benefit) -> bool:
    # Health benefit plan coverage (30), or no service type: the answer is about the plan as a whole.
    return not benefit.service_types or codes.SERVICE_TYPE_PLAN_COVERAGE in benefit.service_types


def interpret(answer: SubscriberAnswer, *, mcp_code: str, originator_id: str, as_of: date, observed_at: datetime,
              plan_of: Callable[[str], str | None]) -> Answer:
    """The facts one 271 member answer states. `plan_of` maps a payer name or id to an MCP code (or None);
    `originator_id` is the TRN03 the hub's 270s carry.

    Order of the facts: coverage with the answering MCP first, then coverage another MCP holds (a plan change).
    """
    trace, other_traces = our_traces(answer.traces, originator_id)
    rejections = list(answer.rejections) + [r for b in answer.benefits for r in b.rejections]
    if rejections and not any(b.code in codes.EB01_ACTIVE | codes.EB01_INACTIVE for b in answer.benefits):
        return Answer(answer.member_id, trace, rejected=rejected(rejections[0]), other_traces=other_traces)
    member_start, member_end = _dates(answer.periods)
    programs: list[ProgramFlag] = []
    for benefit in answer.benefits:
        texts = [text.upper() for text in (benefit.description, *benefit.messages, *(r.name for r in benefit.related))
                 if text]
        if not _may_flag(benefit, " ".join(texts)):
            continue
        for reading in PROGRAM_READINGS:
            if reading.matches(benefit, texts):
                start, end = _dates(benefit.periods)
                programs.append(ProgramFlag(reading.program, start or as_of, end, Source.X12_271))
                break
    observations: list[Observation] = []
    active = [b for b in answer.benefits if b.code in codes.EB01_ACTIVE and _covers_plan(b)]
    inactive = [b for b in answer.benefits if b.code in codes.EB01_INACTIVE and _covers_plan(b)]
    if active:
        start, end = _dates(active[0].periods)
        observations.append(Observation(True, mcp_code, as_of, Source.X12_271, observed_at,
                                        span_start=start or member_start, span_end=end or member_end,
                                        programs=tuple(programs)))
    elif inactive:
        start, end = _dates(inactive[0].periods)
        end = end or member_end
        other = _other_mcp(answer.benefits, plan_of, mcp_code)
        if other is not None:
            # "Not ours; the member is with that MCP now": one fact, enrollment with the other plan from the day
            # after ours ended. Applying it closes our span and announces the plan change.
            other_mcp, other_start = other
            begins = other_start or (end + timedelta(days=1) if end is not None else as_of)
            observations.append(Observation(True, other_mcp, as_of, Source.X12_271, observed_at,
                                            span_start=begins, programs=tuple(programs)))
        else:
            reason = codes.EB01[inactive[0].code].lower()
            if any(p.code == "medi_cal_ffs" for p in programs):
                reason = "member moved to Medi-Cal fee-for-service"
            observations.append(Observation(False, mcp_code, as_of, Source.X12_271, observed_at,
                                            span_end=end, reason=reason, programs=tuple(programs)))
    elif programs:
        # Only other-payer or benefit loops: record the program flags without an enrollment conclusion.
        observations.append(Observation(True, None, as_of, Source.X12_271, observed_at, programs=tuple(programs)))
    return Answer(answer.member_id, trace, tuple(observations), other_traces=other_traces)


def _other_mcp(benefits: Sequence[Benefit], plan_of: Callable[[str], str | None],
               answering: str) -> tuple[str, date | None] | None:
    """The MCP an EB*R (other or additional payor) loop names, with its coverage start, if it is one we know."""
    for benefit in benefits:
        if benefit.code != codes.EB01_OTHER_PAYOR:
            continue
        for entity in benefit.related:
            plan = plan_of(entity.id) if entity.id else None
            plan = plan or plan_of(entity.name)
            if plan is not None and plan != answering:
                start, _ = _dates(benefit.periods)
                return plan, start
    return None

